// The patterns, ports and KV key names the gateway's decisions rest on. They have one home here:
// the Pulumi program imports them too (components/config, components/gateway-kv.ts), so the
// values the stack writes and the values the gateway accepts cannot drift apart.
// Nothing here imports Pulumi: this file is bundled into the gateway image.

/** A DNS label, the only service names Consul DNS and HAProxy both accept (at most 63 characters). */
export const DNS_LABEL = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
/** A versioned service's Consul name: `<name>-v<N>`, served at /<name>/v<N>/. */
export const VERSIONED_NAME = /^([a-z]([a-z0-9-]*[a-z0-9])?)-(v[0-9]{1,4})$/;
/** An IPv4 address, each octet 0-255, without leading zeros. */
export const IPV4 = /^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
/** An IPv4 CIDR block, prefix 0-32. */
export const CIDR = /^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\/(3[0-2]|[12]?[0-9])$/;
/**
 * A timeout HAProxy runs with: not 0 (no timeout at all), at most 2^31-1 ms (~24.8 days; larger
 * ones look like a number and a unit but fail `haproxy -c`).
 */
export const DURATION = /^([1-9][0-9]{0,5}(us|ms|s)?|[1-9][0-9]{0,3}m|[1-9][0-9]?h|([1-9]|1[0-9]|2[0-4])d)$/;
/** A health-check path: / then letters, digits . _ ~ / - (nothing HAProxy's config would read as syntax). */
export const CHECK_PATH = /^\/[A-Za-z0-9._~/-]{0,100}$/;
/** A version's weight in the split of its unversioned path. */
export const WEIGHT = /^([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-6])$/;
/** Docker's container names, the maintenance key's list. */
export const CONTAINER_NAMES = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*( [a-zA-Z0-9][a-zA-Z0-9_.-]*)*$/;
/** A Consul node name the gateway follows. */
export const NODE_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Ports no server may use on any address: Consul's server RPC, gossip, HTTP(S), gRPC and DNS
 * ports, and the Docker API's. The program refuses them as a tcp service's listenPort too.
 */
export const CONTROL_PORTS: readonly number[] = [2375, 2376, 8300, 8301, 8302, 8500, 8501, 8502, 8503, 8600];

/** The gateway's keys in Consul's KV store, all under this prefix (written by Pulumi only). */
export const KV_PREFIX = "service/haproxy";

/** The KV keys, relative to KV_PREFIX. */
export const KV_KEYS = {
    maxconn: "maxconn",
    timeoutConnect: "timeouts/connect",
    timeoutClient: "timeouts/client",
    timeoutServer: "timeouts/server",
    limitServices: "limits/services",
    limitInstances: "limits/instances",
    networkBackends: "networks/backends",
    networkNodes: "networks/nodes",
    /** services/<consul name>/<field>: check, listen, weight, maintenance. */
    service: (consulName: string, field: ServiceField): string => `services/${consulName}/${field}`,
    /** routes/<name>/sticky */
    sticky: (name: string): string => `routes/${name}/sticky`,
} as const;

export type ServiceField = "check" | "listen" | "weight" | "maintenance";

/** Defaults the gateway runs with when a key is absent or rejected. */
export const DEFAULTS = {
    timeoutConnect: "5s",
    timeoutClient: "30s",
    timeoutServer: "30s",
    maxServices: 5000,
    maxInstances: 100,
    maxconn: 4096,
} as const;
