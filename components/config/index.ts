// Stack configuration: read once, validated once, turned into a typed object the
// rest of the program trusts. Every error names the key, the value and what is allowed.
// The keys, defaults and allowed values are the schema's (schema.ts); the types below
// are derived from it, adding only what parseSettings resolves.
import * as pulumi from "@pulumi/pulumi";
import * as fs from "node:fs";
import { DEFAULT_HSTS_SECONDS, gatewayTerminatesTls, type TlsSource } from "../images/gateway/controller/rules";
import { formatIpv4, parseCidr } from "./fields";
import { CONFIG_KEYS, configSchema, DEFAULT_NLB_SSL_POLICY, DEFAULT_OFFLOAD_PORT, ParsedConfig, SECRET_KEYS } from "./schema";

export { DURATION_PATTERN, formatIpv4, parseCidr, SERVICE_NAME_PATTERN, VERSION_PATTERN } from "./fields";
export type { Cidr } from "./fields";
export { CONFIG_KEYS, CONSUL_VERSION, DEFAULT_CONSUL_IMAGE, DEFAULT_REGISTRATOR_IMAGE } from "./schema";

export const PROJECT = "service-discovery";

/** A schema output made read-only all the way down: the program only reads its settings. */
type Frozen<T> = T extends readonly (infer U)[] ? readonly Frozen<U>[] : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

export type Target = ParsedConfig["target"];
/** How agents find the servers: their addresses, or Consul's cloud auto-join by EC2 tag. */
export type ConsulJoin = ParsedConfig["consul"]["join"];
/** An existing Docker host of the `hosts` target. */
export type HostSettings = Frozen<NonNullable<ParsedConfig["hosts"]>[number]>;
export type HaproxySettings = Frozen<ParsedConfig["haproxy"]>;
export type ServiceSettings = Frozen<ParsedConfig["services"][number]> & {
    /** Consul service name: `<name>-<version>`, or `<name>` when unversioned. */
    readonly consulName: string;
    /** URL prefix the gateway strips. */
    readonly path: string;
    /**
     * The name of each replica, replica 1 first (replicaContainerName): its hostname, and its
     * container's name without the generation suffix `-<8 hex>` that service.ts appends.
     */
    readonly containerNames: readonly string[];
    /**
     * What `maintenance` puts at weight 0 at the gateway: "all" (the whole service) or the
     * names of the replicas listed, which the gateway matches in Registrator's service IDs (the
     * container name, with or without its generation suffix); undefined when none is in maintenance.
     */
    readonly maintenanceInstances?: "all" | readonly string[];
};

/** Docker's ephemeral host ports (Linux's default ip_local_port_range): where service containers are published (`-p :PORT`). */
export const EPHEMERAL_PORTS = { from: 32768, to: 60999 } as const;

/**
 * Ports a tcp service's listenPort may never take, whatever the config says, and why: the
 * gateway container's own listeners, SSH, the Docker API, Consul's ports (the gateway refuses
 * the last two on every address too) and the host ports replicas are published on.
 */
export const RESERVED_LISTEN_PORTS: readonly { readonly from: number; readonly to: number; readonly why: string }[] = [
    { from: 22, to: 22, why: "22 is SSH" },
    { from: 80, to: 80, why: "80 is the gateway container's own HTTP port" },
    { from: 443, to: 443, why: "443 is the gateway container's own HTTPS port" },
    { from: 1936, to: 1936, why: "1936 is the gateway container's own stats port" },
    { from: 2375, to: 2376, why: "2375-2376 are the Docker API's" },
    { from: 8300, to: 8302, why: "8300-8302 are Consul's server RPC and gossip ports" },
    { from: 8500, to: 8503, why: "8500-8503 are Consul's HTTP, HTTPS and gRPC ports" },
    { from: 8600, to: 8600, why: "8600 is Consul's DNS port" },
    {
        from: EPHEMERAL_PORTS.from,
        to: EPHEMERAL_PORTS.to,
        why: `${EPHEMERAL_PORTS.from}-${EPHEMERAL_PORTS.to} are Docker's ephemeral host ports, where service replicas are published`,
    },
];

/**
 * The name of replica `replica` (1-based) of a service: its hostname; service.ts names its
 * container `<this>-<generation>` (components/service.ts, replicaGeneration).
 */
export function replicaContainerName(stack: string, consulName: string, replica: number): string {
    return `${stack}-${consulName}-${replica}`;
}

/** The validated config with what follows from it resolved (node count, servers, addresses). */
export interface Settings {
    readonly project: string;
    readonly stack: string;
    readonly target: Target;
    readonly nodeCount: number;
    readonly edgeNodes: readonly number[];
    readonly buildNetwork: ParsedConfig["buildNetwork"];
    /** `gateway`: the subnet's first address. */
    readonly network: Frozen<ParsedConfig["network"]> & { readonly gateway: string };
    readonly consul: Frozen<Omit<ParsedConfig["consul"], "servers" | "bindAddress">> & {
        readonly servers: number;
        /** Where the API and DNS are published: undefined, each node's own address (bindAddressDefault). */
        readonly bindAddress?: string;
        readonly encryptKey?: pulumi.Output<string>;
        readonly managementToken?: pulumi.Output<string>;
    };
    readonly hosts: readonly HostSettings[];
    readonly virtualbox: Frozen<ParsedConfig["virtualbox"]>;
    /** adminCidr and publicKey are "" outside target aws, where they are required. */
    readonly aws: Frozen<Omit<ParsedConfig["aws"], "adminCidr" | "publicKey">> & { readonly adminCidr: string; readonly publicKey: string };
    readonly registrator: Frozen<ParsedConfig["registrator"]>;
    /** bindAddress: where every gateway port is published; undefined, each node's own address (bindAddressDefault). */
    readonly gateway: Frozen<Omit<ParsedConfig["gateway"], "tls">> & { readonly tls: TlsSettings };
    readonly haproxy: HaproxySettings;
    readonly stats: { readonly user: string; readonly password?: pulumi.Output<string> };
    readonly services: readonly ServiceSettings[];
}

/** gateway.tls resolved: each source's defaults applied, its secrets as Outputs (docs/security.md, "TLS at the edge"). */
export interface TlsSettings {
    readonly source: TlsSource;
    /** The names an acme or self-signed certificate covers (certificateHosts): those listed, else the services' hosts; [] otherwise. */
    readonly hosts: readonly string[];
    readonly redirect: boolean;
    readonly hstsSeconds: number;
    readonly acme?: Frozen<NonNullable<ParsedConfig["gateway"]["tls"]["acme"]>> & { readonly email: string };
    /** provided: the certificate and its chain, and its key (PEM, secrets). */
    readonly certificate?: pulumi.Output<string>;
    readonly privateKey?: pulumi.Output<string>;
    /** acme with eabKid: the EAB HMAC key (secret). */
    readonly eabHmacKey?: pulumi.Output<string>;
    /** acm: the load balancer terminates TLS with this certificate and policy, and sends the requests to offloadPort. */
    readonly acm?: { readonly certificateArn: string; readonly sslPolicy: string; readonly offloadPort: number };
}

/** The secrets the config may hold, as Outputs (readSettings reads them through Pulumi). */
export interface ConfigSecrets {
    statsPassword?: pulumi.Output<string>;
    consulEncryptKey?: pulumi.Output<string>;
    consulManagementToken?: pulumi.Output<string>;
    gatewayTlsCertificate?: pulumi.Output<string>;
    gatewayTlsPrivateKey?: pulumi.Output<string>;
    gatewayAcmeEabHmacKey?: pulumi.Output<string>;
}

/**
 * Whether a Dockerfile's EXPOSE instructions include `port` (tcp): undefined when one of them
 * uses a variable, which only a build resolves.
 */
export function dockerfileExposes(dockerfile: string, port: number): boolean | undefined {
    let unresolved = false;
    for (const m of dockerfile.matchAll(/^[ \t]*EXPOSE[ \t]+(.+)$/gim)) {
        for (const spec of m[1].trim().split(/\s+/)) {
            if (spec.includes("$")) unresolved = true;
            const [portText, protocol = "tcp"] = spec.toLowerCase().split("/");
            if (Number(portText) === port && protocol === "tcp") return true;
        }
    }
    return unresolved ? undefined : false;
}

/** Thrown for any invalid stack config value; the message is the whole story. */
export class ConfigError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ConfigError";
    }
}

/** A raw config source: what `pulumi.Config` holds, as key → string. */
export type RawConfig = Record<string, string | undefined>;

function parseValue(key: string, raw: string): unknown {
    const trimmed = raw.trim();
    // Pulumi stores structured values as JSON and scalars as plain strings.
    if (/^[\[{"]/.test(trimmed) || /^-?[0-9]+(\.[0-9]+)?$/.test(trimmed) || trimmed === "true" || trimmed === "false") {
        try {
            return JSON.parse(trimmed);
        } catch {
            throw new ConfigError(`${PROJECT}:${key}: ${JSON.stringify(raw)} is not valid JSON/YAML structure`);
        }
    }
    return raw;
}

function describe(value: unknown): string {
    if (value === undefined) return "missing";
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(root: Record<string, unknown>, path: readonly PropertyKey[]): unknown {
    let cur: unknown = root;
    for (const p of path) {
        if (cur === null || typeof cur !== "object") return undefined;
        cur = (cur as Record<PropertyKey, unknown>)[p];
    }
    return cur;
}

function keyName(path: readonly PropertyKey[]): string {
    let out = `${PROJECT}:${String(path[0])}`;
    for (const p of path.slice(1)) out += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return out;
}

/**
 * Validates raw stack config. Pure (no Pulumi runtime), so the tests and the
 * program share it. Secrets are passed through as Outputs by `readSettings`.
 */
export function parseSettings(raw: RawConfig, stack: string, secrets: ConfigSecrets = {}): Settings {
    const unknown = Object.keys(raw).filter((k) => raw[k] !== undefined && !(CONFIG_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
        throw new ConfigError(`${PROJECT}:${unknown[0]}: unknown config key; allowed keys: ${CONFIG_KEYS.join(", ")}`);
    }
    // Secrets are checked from their raw text (never parsed: a JSON error would echo them) and
    // never shown in a message.
    const input: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
        if (value !== undefined) input[key] = SECRET_KEYS.has(key) ? value : parseValue(key, value);
    }
    // The API is HTTPS only since ACLs and TLS are on: say so rather than "unknown key".
    const consulInput = input.consul as Record<string, unknown> | undefined;
    if (consulInput && typeof consulInput === "object" && consulInput.httpPort !== undefined) {
        throw new ConfigError(
            `${PROJECT}:consul.httpPort: ${describe(consulInput.httpPort)} is not allowed; expected consul.httpsPort instead (the Consul API is served over HTTPS only; plain HTTP answers on each agent's loopback)`,
        );
    }
    const result = configSchema.safeParse(input);
    if (!result.success) {
        const issue = result.error.issues[0];
        const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
        const shown =
            issue.code === "unrecognized_keys" ? "an unknown key" : SECRET_KEYS.has(String(path[0])) ? "the value set" : describe(valueAt(input, path));
        throw new ConfigError(`${keyName(path)}: ${shown} is not allowed; expected ${issue.message}`);
    }
    const c = result.data;

    const services: ServiceSettings[] = c.services.map((s, i) => {
        if (s.image !== undefined && s.build !== undefined) {
            throw new ConfigError(
                `${PROJECT}:services[${i}].image: ${describe(s.image)} is not allowed together with build; expected exactly one of image or build`,
            );
        }
        if (s.image === undefined && s.build === undefined) {
            throw new ConfigError(`${PROJECT}:services[${i}]: service ${describe(s.name)} has neither image nor build; expected exactly one of image or build`);
        }
        const consulName = s.version ? `${s.name}-${s.version}` : s.name;
        if (/-v[0-9]{1,4}$/.test(s.name)) {
            throw new ConfigError(
                `${PROJECT}:services[${i}].name: ${describe(s.name)} is not allowed; expected a name that does not end in -v<digits> (that suffix is how versions are named in Consul); use version instead`,
            );
        }
        // On local nothing is published: Registrator registers the ports the image exposes.
        if (c.target === "local" && s.build !== undefined) {
            const dockerfile = `${s.build}/Dockerfile`;
            if (fs.existsSync(dockerfile) && dockerfileExposes(fs.readFileSync(dockerfile, "utf8"), s.containerPort) === false) {
                throw new ConfigError(
                    `${PROJECT}:services[${i}].containerPort: ${s.containerPort} is not allowed; expected a port ${dockerfile} exposes (add EXPOSE ${s.containerPort}): on target local the gateway reaches the container's exposed port, nothing is published`,
                );
            }
        }
        checkTraffic(s, i, c, (key) => valueAt(input, ["services", i, key]) !== undefined);
        checkContainment(s, i, (key) => valueAt(input, ["services", i, key]) !== undefined);
        const containerNames = Array.from({ length: s.replicas }, (_, r) => replicaContainerName(stack, consulName, r + 1));
        return {
            ...s,
            consulName,
            path: s.version ? `/${s.name}/${s.version}` : `/${s.name}`,
            containerNames,
            maintenanceInstances: s.maintenance === true ? "all" : s.maintenance?.map((r) => containerNames[r - 1]),
        };
    });
    const seen = new Map<string, number>();
    services.forEach((s, i) => {
        const previous = seen.get(s.consulName);
        if (previous !== undefined) {
            throw new ConfigError(
                `${PROJECT}:services[${i}]: ${describe(s.consulName)} is not allowed; expected each name and version once (also at services[${previous}])`,
            );
        }
        seen.set(s.consulName, i);
    });
    checkTrafficAcrossServices(services);

    const ports = stackHostPorts(c);
    ports.forEach(([key, value], i) => {
        const clash = ports.findIndex(([, other]) => other === value);
        if (clash !== i) {
            throw new ConfigError(`${PROJECT}:${key}: ${value} is not allowed; expected a host port not already used by ${ports[clash][0]}`);
        }
    });

    const nodeCount = resolveNodeCount(c);
    const servers = c.consul.servers ?? (nodeCount >= 3 ? 3 : 1);
    if (servers > nodeCount) {
        throw new ConfigError(`${PROJECT}:consul.servers: ${servers} is not allowed; expected at most nodeCount (${nodeCount}), and odd`);
    }
    const edgeNodes = c.edgeNodes ?? Array.from({ length: nodeCount }, (_, i) => i + 1);
    edgeNodes.forEach((n, i) => {
        if (n > nodeCount) throw new ConfigError(`${PROJECT}:edgeNodes[${i}]: ${n} is not allowed; expected a node number from 1 to ${nodeCount}`);
        if (edgeNodes.indexOf(n) !== i) throw new ConfigError(`${PROJECT}:edgeNodes[${i}]: ${n} is not allowed; expected each node number once`);
    });
    if (c.target === "aws") {
        if (c.aws.adminCidr === undefined) {
            throw new ConfigError(
                `${PROJECT}:aws.adminCidr: missing is not allowed; expected the CIDR block allowed to reach SSH, stats and the Consul UI, such as 203.0.113.7/32`,
            );
        }
        if (parseCidr(c.aws.adminCidr)?.prefix === 0) {
            throw new ConfigError(
                `${PROJECT}:aws.adminCidr: ${describe(c.aws.adminCidr)} is not allowed; expected a CIDR block narrower than /0 (only the gateway port is open to the world)`,
            );
        }
        if (c.aws.access === "ssm" && c.aws.previewCidr !== undefined) {
            throw new ConfigError(
                `${PROJECT}:aws.previewCidr: ${describe(c.aws.previewCidr)} is not allowed with aws.access ssm; expected it unset (with ssm port 22 is closed to everyone: previews reach the nodes through Systems Manager sessions, as deploys do)`,
            );
        }
        if (c.aws.publicKey === undefined) {
            throw new ConfigError(
                `${PROJECT}:aws.publicKey: missing is not allowed; expected an SSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...) whose private key is in your ssh-agent`,
            );
        }
    }
    c.aws.egress.forEach((e, i) => {
        const first = c.aws.egress.findIndex((o) => o.cidr === e.cidr && o.port === e.port && o.protocol === e.protocol);
        if (first !== i)
            throw new ConfigError(
                `${PROJECT}:aws.egress[${i}]: ${describe(e)} is not allowed; expected each outbound rule once (also at aws.egress[${first}])`,
            );
        if ((e.port === 443 || e.port === 80) && e.protocol === "tcp" && parseCidr(e.cidr)?.prefix === 0)
            throw new ConfigError(
                `${PROJECT}:aws.egress[${i}]: ${describe(e)} is not allowed; expected a rule the nodes do not have already (tcp 443 and 80 to anywhere are always allowed)`,
            );
    });
    const tls = resolveTls(c, (path) => valueAt(input, path), raw, secrets);
    if (c.consul.join === "aws-tags" && c.target !== "aws") {
        throw new ConfigError(
            `${PROJECT}:consul.join: ${describe(c.consul.join)} is not allowed; expected static for target ${c.target} (aws-tags is Consul's cloud auto-join by EC2 tag, target aws only)`,
        );
    }

    checkBindAddresses(c, nodeCount);

    // The schema took the subnet as a block; its first address is the network's gateway.
    const gateway = formatIpv4(parseCidr(c.network.subnet)!.address + 1);
    return {
        project: PROJECT,
        stack,
        target: c.target,
        nodeCount,
        edgeNodes,
        buildNetwork: c.buildNetwork,
        network: { ...c.network, gateway },
        consul: {
            ...c.consul,
            servers,
            encryptKey: secrets.consulEncryptKey,
            managementToken: secrets.consulManagementToken,
            bindAddress: c.consul.bindAddress ?? bindAddressDefault(c.target),
        },
        hosts: c.hosts ?? [],
        virtualbox: c.virtualbox,
        aws: { ...c.aws, adminCidr: c.aws.adminCidr ?? "", publicKey: c.aws.publicKey ?? "" },
        registrator: c.registrator,
        gateway: { ...c.gateway, bindAddress: c.gateway.bindAddress ?? bindAddressDefault(c.target), tls },
        haproxy: c.haproxy,
        stats: { user: c.statsUser, password: secrets.statsPassword },
        services,
    };
}

type ParsedService = ParsedConfig["services"][number];

/** The only bind address that publishes a port on every address of a node, the opt-in (docs/security.md, "Published ports"). */
export const ALL_ADDRESSES = "0.0.0.0";

/**
 * Where the stack publishes its ports (the gateway's, every tcp listener, Consul's API and DNS)
 * when the stack sets no bindAddress: on `local` the machine's loopback, nothing reaching
 * beyond it; elsewhere undefined, each node's own address (its address in the node list, the
 * VM's, the instance's private one, which its public address is translated to). Never every
 * address: Docker's published ports bypass a host firewall such as ufw.
 */
export function bindAddressDefault(target: Target): string | undefined {
    return target === "local" ? "127.0.0.1" : undefined;
}

/**
 * An explicit bind address off `local`: one address is on one machine only, so on several
 * nodes only every address (0.0.0.0) or the loopback (the gateway's; Pulumi reaches Consul's
 * API from outside) can be on all of them.
 */
function checkBindAddresses(c: ParsedConfig, nodeCount: number): void {
    if (c.target === "local") return;
    const own = "no bindAddress (each node's own address, the default)";
    const consul = c.consul.bindAddress;
    if (consul !== undefined && consul !== ALL_ADDRESSES && (consul.startsWith("127.") || nodeCount > 1)) {
        throw new ConfigError(
            `${PROJECT}:consul.bindAddress: ${describe(consul)} is not allowed; expected ${own} or ${ALL_ADDRESSES} (every address: firewall it, docs/security.md) for target ${c.target}: Pulumi writes KV and ACLs through each node's address${nodeCount > 1 ? `, and one address cannot be on all ${nodeCount} nodes` : ""}`,
        );
    }
    const gateway = c.gateway.bindAddress;
    if (gateway !== undefined && gateway !== ALL_ADDRESSES && !gateway.startsWith("127.") && nodeCount > 1) {
        throw new ConfigError(
            `${PROJECT}:gateway.bindAddress: ${describe(gateway)} is not allowed; expected ${own}, 127.0.0.1 (the node's own clients only) or ${ALL_ADDRESSES} (every address: firewall it, docs/security.md) for target ${c.target}: one address cannot be on all ${nodeCount} nodes`,
        );
    }
}

/**
 * The traffic keys of one service (protocol, listenPort, allowedCidrs, weight, sticky,
 * maintenance, requestsPerClient, idleTimeout) against each other and the rest of the config,
 * in that order. `set` tells a key written in the stack from one the schema defaulted.
 */
/** The host ports the stack publishes on its nodes, by key: none may be given twice. */
function stackHostPorts(c: ParsedConfig): readonly (readonly [string, number])[] {
    return [
        ["gateway.httpPort", c.gateway.httpPort],
        ...(gatewayTerminatesTls(c.gateway.tls.source) ? [["gateway.httpsPort", c.gateway.httpsPort] as const] : []),
        ...(c.gateway.tls.source === "acm" ? [["gateway.tls.offloadPort", c.gateway.tls.offloadPort ?? DEFAULT_OFFLOAD_PORT] as const] : []),
        ["gateway.statsPort", c.gateway.statsPort],
        ["consul.httpsPort", c.consul.httpsPort],
        ["consul.dnsPort", c.consul.dnsPort],
    ];
}

function checkTraffic(s: ParsedService, i: number, c: ParsedConfig, set: (key: keyof ParsedService) => boolean): void {
    const key = `${PROJECT}:services[${i}]`;
    const tcp = s.protocol === "tcp";
    if (tcp && s.listenPort === undefined && s.hosts.length === 0) {
        throw new ConfigError(
            `${key}.listenPort: missing is not allowed; expected the port the gateway listens on for this tcp service, such as 5432 (required with protocol tcp unless hosts names the TLS host names passed through to it on gateway.httpsPort)`,
        );
    }
    if (!tcp && s.listenPort !== undefined) {
        throw new ConfigError(
            `${key}.listenPort: ${s.listenPort} is not allowed; expected no listenPort for protocol http (http services are served on gateway.httpPort; set protocol tcp for a listener of its own)`,
        );
    }
    if (s.listenPort !== undefined) {
        const clash = stackHostPorts(c).find(([, value]) => value === s.listenPort);
        if (clash) throw new ConfigError(`${key}.listenPort: ${s.listenPort} is not allowed; expected a port not already used by ${clash[0]}`);
        const reserved = RESERVED_LISTEN_PORTS.find((r) => s.listenPort! >= r.from && s.listenPort! <= r.to);
        if (reserved) {
            const all = RESERVED_LISTEN_PORTS.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(", ");
            throw new ConfigError(
                `${key}.listenPort: ${s.listenPort} is not allowed; expected a port the stack does not use itself: ${reserved.why} (reserved: ${all})`,
            );
        }
    }
    if (!tcp && set("allowedCidrs")) {
        throw new ConfigError(
            `${key}.allowedCidrs: ${describe(s.allowedCidrs)} is not allowed; expected no allowedCidrs for protocol http (they open a tcp service's listenPort; the gateway's HTTP port is public)`,
        );
    }
    s.allowedCidrs.forEach((cidr, k) => {
        const first = s.allowedCidrs.indexOf(cidr);
        if (first !== k) {
            throw new ConfigError(
                `${key}.allowedCidrs[${k}]: ${describe(cidr)} is not allowed; expected each CIDR block once (also at allowedCidrs[${first}])`,
            );
        }
    });
    if (tcp && set("healthCheckPath")) {
        throw new ConfigError(
            `${key}.healthCheckPath: ${describe(s.healthCheckPath)} is not allowed; expected no healthCheckPath for protocol tcp (the gateway and Consul check a tcp service by connecting to it)`,
        );
    }
    if (tcp && s.hosts.length > 0 && c.gateway.tls.source === "acm") {
        throw new ConfigError(
            `${key}.hosts: ${describe(s.hosts)} is not allowed; expected no hosts for protocol tcp while gateway.tls.source is acm (the load balancer terminates every TLS connection on 443, so none can be passed through by SNI: give the service a listenPort instead)`,
        );
    }
    if (tcp && s.hosts.length > 0 && c.gateway.tls.source === "none") {
        throw new ConfigError(
            `${key}.hosts: ${describe(s.hosts)} is not allowed; expected no hosts for protocol tcp while gateway.tls.source is none (a tcp service's hosts are TLS host names passed through, by SNI, on the gateway's HTTPS listener: set gateway.tls.source to acme, provided or self-signed, or give the service a listenPort instead)`,
        );
    }
    s.hosts.forEach((host, k) => {
        const first = s.hosts.indexOf(host);
        if (first !== k) throw new ConfigError(`${key}.hosts[${k}]: ${describe(host)} is not allowed; expected each host name once (also at hosts[${first}])`);
    });
    if (s.weight !== undefined && tcp) {
        throw new ConfigError(
            `${key}.weight: ${s.weight} is not allowed; expected no weight for protocol tcp (a weight is a version's share of the http path /${s.name}/)`,
        );
    }
    if (s.weight !== undefined && s.version === undefined) {
        throw new ConfigError(
            `${key}.weight: ${s.weight} is not allowed; expected a weight only on a versioned service (it is that version's share of /${s.name}/); set version`,
        );
    }
    if (tcp && s.requestsPerClient !== undefined) {
        throw new ConfigError(
            `${key}.requestsPerClient: ${s.requestsPerClient} is not allowed; expected no requestsPerClient for protocol tcp (a request rate counts HTTP requests; haproxy.connectionsPerClient caps a client's connections to every listener)`,
        );
    }
    if (!tcp && s.idleTimeout !== undefined) {
        throw new ConfigError(
            `${key}.idleTimeout: ${describe(s.idleTimeout)} is not allowed; expected no idleTimeout for protocol http (it is a tcp service's idle timeout; http services take haproxy.timeouts.client and .server)`,
        );
    }
    if (set("sticky") && s.weight === undefined) {
        throw new ConfigError(
            `${key}.sticky: ${describe(s.sticky)} is not allowed; expected sticky only together with weight (it keeps a client on one version of the split of /${s.name}/)`,
        );
    }
    const maintenance = s.maintenance;
    if (Array.isArray(maintenance)) {
        maintenance.forEach((replica, k) => {
            if (replica > s.replicas) {
                throw new ConfigError(`${key}.maintenance[${k}]: ${replica} is not allowed; expected a replica number from 1 to ${s.replicas} (replicas)`);
            }
            if (maintenance.indexOf(replica) !== k) {
                throw new ConfigError(`${key}.maintenance[${k}]: ${replica} is not allowed; expected each replica number once`);
            }
        });
    }
}

/** The traffic rules between services: one listener per port, one meaning per unversioned name, one stickiness per split. */
function checkTrafficAcrossServices(services: readonly ServiceSettings[]): void {
    services.forEach((s, i) => {
        if (s.listenPort === undefined) return;
        const first = services.findIndex((o) => o.listenPort === s.listenPort);
        if (first !== i) {
            throw new ConfigError(
                `${PROJECT}:services[${i}].listenPort: ${s.listenPort} is not allowed; expected each listenPort once (also at services[${first}])`,
            );
        }
    });
    services.forEach((s, i) => {
        if (s.version !== undefined) return;
        const weighted = services.findIndex((o) => o.name === s.name && o.version !== undefined && o.weight !== undefined);
        if (weighted !== -1) {
            throw new ConfigError(
                `${PROJECT}:services[${i}].name: ${describe(s.name)} is not allowed; expected a name without weighted versions: services[${weighted}] (${services[weighted].consulName}) has a weight, so ${s.name} is the split of its versions at /${s.name}/`,
            );
        }
    });
    const hostOwner = new Map<string, string>();
    services.forEach((s, i) => {
        s.hosts.forEach((host, k) => {
            const key = `${PROJECT}:services[${i}].hosts[${k}]`;
            const first = hostOwner.get(host);
            if (first !== undefined) {
                throw new ConfigError(
                    `${key}: ${describe(host)} is not allowed; expected a host name no other service declares (also at ${first}): a host name routes to one service or version`,
                );
            }
            hostOwner.set(host, key);
        });
    });
    services.forEach((s, i) => {
        if (s.weight === undefined) return;
        const first = services.findIndex((o) => o.name === s.name && o.weight !== undefined);
        if (services[first].sticky !== s.sticky) {
            throw new ConfigError(
                `${PROJECT}:services[${i}].sticky: ${describe(s.sticky)} is not allowed; expected ${services[first].sticky} like services[${first}].sticky (every weighted version of ${s.name} says the same)`,
            );
        }
    });
}

/**
 * The containment keys of one service (capAdd, tmpfs, tmpfsMb, memoryMb) against each other:
 * each capability and folder once, and a tmpfs folder no larger than the memory limit its files
 * count in. `set` tells a key written in the stack from one the schema defaulted.
 */
function checkContainment(s: ParsedService, i: number, set: (key: keyof ParsedService) => boolean): void {
    const key = `${PROJECT}:services[${i}]`;
    for (const list of ["capAdd", "tmpfs"] as const) {
        const values: readonly string[] = s[list];
        values.forEach((value, k) => {
            const first = values.indexOf(value);
            if (first !== k) {
                throw new ConfigError(
                    `${key}.${list}[${k}]: ${describe(value)} is not allowed; expected each ${list === "capAdd" ? "capability" : "folder"} once (also at ${list}[${first}])`,
                );
            }
        });
    }
    if (s.tmpfs.length > 0 && s.tmpfsMb > s.memoryMb) {
        // A tmpfs folder's files are memory, counted in the replica's limit: name the key the stack wrote.
        if (set("tmpfsMb") || !set("memoryMb")) {
            throw new ConfigError(
                `${key}.tmpfsMb: ${s.tmpfsMb} is not allowed; expected at most memoryMb (${s.memoryMb}): a tmpfs folder's files are memory, counted in the replica's memory limit`,
            );
        }
        throw new ConfigError(
            `${key}.memoryMb: ${s.memoryMb} is not allowed; expected at least tmpfsMb (${s.tmpfsMb}), or a smaller tmpfsMb: a tmpfs folder's files are memory, counted in the replica's memory limit`,
        );
    }
}

/** Node count per target: fixed for local, the host list's length for hosts, configured otherwise. */
function resolveNodeCount(c: ParsedConfig): number {
    switch (c.target) {
        case "local":
            if (c.nodeCount !== undefined && c.nodeCount !== 1) {
                throw new ConfigError(
                    `${PROJECT}:nodeCount: ${c.nodeCount} is not allowed; expected 1 for target local (one Docker engine is one node; use virtualbox, hosts or aws for more)`,
                );
            }
            if (c.hosts !== undefined)
                throw new ConfigError(`${PROJECT}:hosts: a list is not allowed; expected no hosts for target local (hosts is for target hosts)`);
            return 1;
        case "hosts": {
            const hosts = c.hosts ?? [];
            if (hosts.length === 0) {
                throw new ConfigError(`${PROJECT}:hosts: ${describe(c.hosts)} is not allowed; expected a non-empty list of Docker hosts for target hosts`);
            }
            if (c.nodeCount !== undefined && c.nodeCount !== hosts.length) {
                throw new ConfigError(
                    `${PROJECT}:nodeCount: ${c.nodeCount} is not allowed; expected ${hosts.length} (the number of hosts) or no nodeCount for target hosts`,
                );
            }
            hosts.forEach((h, i) => {
                if (hosts.findIndex((o) => o.name === h.name) !== i)
                    throw new ConfigError(`${PROJECT}:hosts[${i}].name: ${describe(h.name)} is not allowed; expected each host name once`);
                if (h.host.startsWith("tcp://") && h.hostKey !== undefined) {
                    throw new ConfigError(
                        `${PROJECT}:hosts[${i}].hostKey: a key is not allowed; expected no hostKey for ${h.host} (an SSH host key pins ssh:// hosts; tcp:// hosts are verified by their certificates, certPath)`,
                    );
                }
                if (h.host.startsWith("tcp://") && h.certPath === undefined) {
                    throw new ConfigError(
                        `${PROJECT}:hosts[${i}].certPath: missing is not allowed; expected the TLS certificate folder for ${h.host} (plain TCP Docker endpoints are refused)`,
                    );
                }
            });
            return hosts.length;
        }
        default:
            if (c.hosts !== undefined)
                throw new ConfigError(`${PROJECT}:hosts: a list is not allowed; expected no hosts for target ${c.target} (hosts is for target hosts)`);
            return c.nodeCount ?? (c.target === "aws" ? 3 : 1);
    }
}

/** Reads the current stack's config through Pulumi and validates it. */
export function readSettings(): Settings {
    const config = new pulumi.Config(PROJECT);
    const raw: RawConfig = {};
    const prefix = `${PROJECT}:`;
    for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
        if (key.startsWith(prefix)) raw[key.slice(prefix.length)] = value;
    }
    return parseSettings(raw, pulumi.getStack(), {
        statsPassword: config.getSecret("statsPassword"),
        consulEncryptKey: config.getSecret("consulEncryptKey"),
        consulManagementToken: config.getSecret("consulManagementToken"),
        gatewayTlsCertificate: config.getSecret("gatewayTlsCertificate"),
        gatewayTlsPrivateKey: config.getSecret("gatewayTlsPrivateKey"),
        gatewayAcmeEabHmacKey: config.getSecret("gatewayAcmeEabHmacKey"),
    });
}

/** The most DNS names one certificate covers (Let's Encrypt's limit; gateway.tls.hosts' too). */
export const MAX_CERTIFICATE_HOSTS = 100;

/**
 * The DNS names the gateway's certificate covers: those gateway.tls.hosts lists when it lists
 * them, else every host name the services declare (in their order, each once), after localhost
 * for a self-signed certificate. None for a provided certificate (it names its own) or none.
 */
export function certificateHosts(
    source: TlsSource,
    listed: readonly string[] | undefined,
    services: readonly { readonly hosts: readonly string[]; readonly protocol?: "http" | "tcp" }[],
): readonly string[] {
    if (source !== "acme" && source !== "self-signed") return [];
    if (listed !== undefined) return listed;
    // A tcp service's hosts are passed through: its own certificate answers them, never the gateway's.
    const declared = [...new Set(services.flatMap((s) => (s.protocol === "tcp" ? [] : s.hosts)))];
    return source === "self-signed" ? [...new Set(["localhost", ...declared])] : declared;
}

/**
 * gateway.tls against the rest of the config: what each source requires and allows, the aws
 * target's HTTPS, and the secrets of the provided certificate and of the ACME account binding.
 */
function resolveTls(c: ParsedConfig, at: (path: PropertyKey[]) => unknown, raw: RawConfig, secrets: ConfigSecrets): TlsSettings {
    const t = c.gateway.tls;
    const key = `${PROJECT}:gateway.tls`;
    const set = (k: string): boolean => at(["gateway", "tls", k]) !== undefined;
    const secretSet = (k: keyof ConfigSecrets): boolean => raw[k] !== undefined || secrets[k] !== undefined;
    if (c.target === "aws" && t.source === "none") {
        throw new ConfigError(
            `${key}.source: ${describe(at(["gateway", "tls", "source"]))} is not allowed; expected acme, acm, provided or self-signed for target aws (its gateways face the internet behind the load balancer: users get HTTPS, and HTTP is redirected; acme gets a real certificate, acm has the load balancer terminate TLS with an ACM certificate)`,
        );
    }
    if (t.source === "acm" && c.target !== "aws") {
        throw new ConfigError(
            `${key}.source: "acm" is not allowed; expected acme, provided or self-signed for target ${c.target} (acm has the AWS load balancer terminate TLS: target aws only)`,
        );
    }
    for (const k of ["acmCertificateArn", "sslPolicy", "offloadPort"] as const) {
        if (t.source !== "acm" && set(k))
            throw new ConfigError(
                `${key}.${k}: ${describe(at(["gateway", "tls", k]))} is not allowed; expected no ${k} with source ${t.source} (it configures source acm, target aws)`,
            );
    }
    let acm: TlsSettings["acm"];
    if (t.source === "acm") {
        if (t.acmCertificateArn === undefined) {
            throw new ConfigError(
                `${key}.acmCertificateArn: missing is not allowed; expected the ARN of the ACM certificate the load balancer serves, such as arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789 (required with source acm; the certificate must be issued, in the stack's region)`,
            );
        }
        if (set("hosts")) {
            throw new ConfigError(`${key}.hosts: ${describe(t.hosts)} is not allowed; expected no hosts with source acm (the ACM certificate names its hosts)`);
        }
        acm = { certificateArn: t.acmCertificateArn, sslPolicy: t.sslPolicy ?? DEFAULT_NLB_SSL_POLICY, offloadPort: t.offloadPort ?? DEFAULT_OFFLOAD_PORT };
        const reserved = RESERVED_LISTEN_PORTS.find((r) => acm!.offloadPort >= r.from && acm!.offloadPort <= r.to);
        if (reserved) {
            throw new ConfigError(
                `${key}.offloadPort: ${acm.offloadPort} is not allowed; expected a port the stack does not use itself, such as ${DEFAULT_OFFLOAD_PORT}: ${reserved.why}`,
            );
        }
        const clash = stackHostPorts(c).find(([k, value]) => k !== "gateway.tls.offloadPort" && value === acm!.offloadPort);
        if (clash) throw new ConfigError(`${key}.offloadPort: ${acm.offloadPort} is not allowed; expected a port not already used by ${clash[0]}`);
    }
    if (t.source === "none") {
        for (const k of ["hosts", "redirect", "hstsSeconds", "acme"] as const) {
            if (set(k))
                throw new ConfigError(
                    `${key}.${k}: ${describe(at(["gateway", "tls", k]))} is not allowed; expected no ${k} with source none (no HTTPS listener)`,
                );
        }
    }
    if (t.source === "provided" && set("hosts")) {
        throw new ConfigError(
            `${key}.hosts: ${describe(t.hosts)} is not allowed; expected no hosts with source provided (the certificate in gatewayTlsCertificate names its hosts)`,
        );
    }
    if (t.source !== "acme" && set("acme")) {
        throw new ConfigError(
            `${key}.acme: ${describe(at(["gateway", "tls", "acme"]))} is not allowed; expected no acme section with source ${t.source} (it configures source acme)`,
        );
    }
    for (const k of ["gatewayTlsCertificate", "gatewayTlsPrivateKey"] as const) {
        if (t.source === "provided" && !secretSet(k)) {
            throw new ConfigError(
                `${PROJECT}:${k}: missing is not allowed; expected ${k === "gatewayTlsCertificate" ? "the certificate and its chain (PEM)" : "the certificate's private key (PEM)"} with gateway.tls.source provided, set as a secret: pulumi config set --secret ${k} < ${k === "gatewayTlsCertificate" ? "chain.pem" : "key.pem"}`,
            );
        }
        if (t.source !== "provided" && secretSet(k)) {
            throw new ConfigError(
                `${PROJECT}:${k}: the value set is not allowed; expected it only with gateway.tls.source provided (the source is ${t.source})`,
            );
        }
    }
    (t.hosts ?? []).forEach((host, k) => {
        const i = c.services.findIndex((s) => s.protocol === "tcp" && s.hosts.includes(host));
        if (i === -1) return;
        throw new ConfigError(
            `${key}.hosts[${k}]: ${describe(host)} is not allowed; expected names of the gateway's own certificate, not a host whose TLS is passed through to a tcp service (${PROJECT}:services[${i}].hosts[${c.services[i]!.hosts.indexOf(host)}]): that service's own certificate answers it`,
        );
    });
    const hosts = certificateHosts(t.source, t.hosts, c.services);
    let acme: TlsSettings["acme"];
    if (t.source === "acme") {
        if (hosts.length === 0) {
            throw new ConfigError(
                `${key}.hosts: missing is not allowed; expected the DNS names the certificate covers, such as ["app.example.com"] (required with source acme unless services declare hosts, which it then covers)`,
            );
        }
        if (hosts.length > MAX_CERTIFICATE_HOSTS) {
            throw new ConfigError(
                `${key}.hosts: missing is not allowed; expected the DNS names the certificate covers (at most ${MAX_CERTIFICATE_HOSTS}): the services declare ${hosts.length} host names, more than one certificate covers; list the ones it should`,
            );
        }
        const email = t.acme?.email;
        if (email === undefined) {
            throw new ConfigError(
                `${key}.acme.email: missing is not allowed; expected the ACME account's contact e-mail address, such as ops@example.com (required with source acme: the CA writes there about expiring certificates and its terms)`,
            );
        }
        acme = { ...t.acme!, email };
        if (t.acme?.eabKid !== undefined && !secretSet("gatewayAcmeEabHmacKey")) {
            throw new ConfigError(
                `${PROJECT}:gatewayAcmeEabHmacKey: missing is not allowed; expected the HMAC key of the external account binding ${describe(t.acme.eabKid)} (a secret: pulumi config set --secret gatewayAcmeEabHmacKey <key>)`,
            );
        }
    }
    if (secretSet("gatewayAcmeEabHmacKey") && acme?.eabKid === undefined) {
        throw new ConfigError(`${PROJECT}:gatewayAcmeEabHmacKey: the value set is not allowed; expected it only with gateway.tls.acme.eabKid (source acme)`);
    }
    const redirect = t.redirect ?? t.source !== "none";
    return {
        source: t.source,
        hosts,
        redirect,
        hstsSeconds: t.hstsSeconds ?? (redirect ? DEFAULT_HSTS_SECONDS : 0),
        ...(acme ? { acme } : {}),
        ...(t.source === "provided" ? { certificate: secrets.gatewayTlsCertificate, privateKey: secrets.gatewayTlsPrivateKey } : {}),
        ...(acme?.eabKid !== undefined ? { eabHmacKey: secrets.gatewayAcmeEabHmacKey } : {}),
        ...(acm ? { acm } : {}),
    };
}
