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
    timeoutHttpRequest: "timeouts/http-request",
    timeoutHttpKeepAlive: "timeouts/http-keep-alive",
    timeoutTcpIdle: "timeouts/tcp-idle",
    limitServices: "limits/services",
    limitInstances: "limits/instances",
    limitClientConnections: "limits/client-connections",
    limitClientRate: "limits/client-rate",
    limitBodySize: "limits/body-size",
    limitServerMaxconn: "limits/server-maxconn",
    networkBackends: "networks/backends",
    networkNodes: "networks/nodes",
    /** "true" or "false": whether services the stack does not declare (no replicas key) are routed. */
    routeUndeclared: "routing/undeclared",
    /** services/<consul name>/<field>: check, listen, weight, maintenance, maxconn, rate, idle-timeout, replicas, hosts, sni. */
    service: (consulName: string, field: ServiceField): string => `services/${consulName}/${field}`,
    /** routes/<name>/sticky */
    sticky: (name: string): string => `routes/${name}/sticky`,
} as const;

export type ServiceField = "check" | "listen" | "weight" | "maintenance" | "maxconn" | "rate" | "idle-timeout" | "replicas" | "hosts" | "sni";

// ---------------------------------------------------------------------------------------------
// Host routes (docs/traffic-control.md, "Routes by host name")

/**
 * A host name a service is routed by (the Host header): a DNS name of RFC 1123 labels, lower
 * case, whose last label starts with a letter (no IP address); exact names only, no wildcard.
 */
export const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** The most host names one service (or version) declares. */
export const MAX_HOSTS_PER_SERVICE = 50;
/** KV services/<consul name>/hosts (and /sni, a tcp service's pass-through names): its host names separated by single spaces. */
export function isHostList(value: string): boolean {
    if (value.length > MAX_HOSTS_PER_SERVICE * 254) return false;
    const names = value.split(" ");
    return names.length <= MAX_HOSTS_PER_SERVICE && names.every((n) => HOST_NAME.test(n));
}

/** Defaults the gateway runs with when a key is absent or rejected. */
export const DEFAULTS = {
    timeoutConnect: "5s",
    timeoutClient: "30s",
    timeoutServer: "30s",
    maxServices: 5000,
    maxInstances: 100,
    maxconn: 4096,
    /** `timeout http-request`: a client has this long to send a request's headers (slowloris). */
    timeoutHttpRequest: "5s",
    timeoutHttpKeepAlive: "10s",
    /** A TCP service's idle connections (database pools keep theirs open for long). */
    timeoutTcpIdle: "1h",
    /** Concurrent connections of one client address on each public listener. */
    clientConnections: 100,
    /** Requests of one client address per RATE_PERIOD on the HTTP listener; 0: no limit. */
    clientRate: 0,
    /** Largest request body (Content-Length), bytes: 10 MiB. */
    bodySize: 10485760,
    /** Concurrent connections (HTTP: requests) the gateway sends one server (instance). */
    serverMaxconn: 1000,
    /**
     * Services no replicas key declares are routed when KV routing/undeclared is absent: a stack
     * written before the key existed keeps its routes. The stack writes the key, false unless
     * gateway.routeUndeclared says otherwise.
     */
    routeUndeclared: true,
} as const;

/**
 * The ranges of the integer budgets, for the stack's config and the gateway's KV checks alike:
 * [min, max]. A request rate of 0 is no limit.
 */
export const LIMIT_RANGES = {
    clientConnections: [1, 100000],
    clientRate: [0, 1000000],
    bodySize: [1, 1000000000000],
    serverMaxconn: [1, 100000],
} as const;

/** The window of the request rates (stick-table `http_req_rate(<period>)`). */
export const RATE_PERIOD = "10s";

/** A server's queue at the gateway (`maxqueue`) once it has its maxconn of connections. */
export const SERVER_MAXQUEUE = 256;

/**
 * Headers that say where a request came from or what it asked for before a proxy rewrote it.
 * The gateway drops every one a client sends unless the client is a trusted proxy
 * (GATEWAY_TRUSTED_PROXIES), then sets X-Forwarded-For/-Host/-Proto/-Port itself.
 */
export const FORWARDING_HEADERS: readonly string[] = [
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "Forwarded",
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-Host",
    "X-Host",
    "Front-End-Https",
    "X-Url-Scheme",
];

// ---------------------------------------------------------------------------------------------
// TLS (docs/security.md, "TLS at the edge")

/** A certificate's name in KV (tls/certificates/<name>/...): a DNS label. */
export const CERTIFICATE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** An ACME HTTP-01 token (base64url, RFC 8555 §8.3) and its key authorization (<token>.<thumbprint>). */
export const ACME_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
export const ACME_KEY_AUTHORIZATION = /^[A-Za-z0-9_-]{16,128}\.[A-Za-z0-9_-]{43}$/;
/** Where ACME CAs ask for HTTP-01 answers; never redirected to HTTPS. */
export const ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/";

/**
 * The certificate sources a stack chooses from (gateway.tls.source). acm: the AWS load balancer
 * terminates TLS with an ACM certificate and sends the requests, plain, to the gateway's offload
 * listener (HTTPS terminated upstream, the PROXY protocol v2): the gateway holds no certificate.
 */
export const TLS_SOURCES = ["none", "self-signed", "provided", "acme", "acm"] as const;
export type TlsSource = (typeof TLS_SOURCES)[number];

/** Whether the gateway terminates TLS itself (an HTTPS listener with certificates from KV): every source but none and acm. */
export function gatewayTerminatesTls(source: string): boolean {
    return (TLS_SOURCES as readonly string[]).includes(source) && source !== "none" && source !== "acm";
}

/** The KV keys of certificates and ACME, relative to KV_PREFIX. */
export const TLS_KV = {
    certificates: "tls/certificates/",
    /** The certificate and its chain, PEM (public). */
    chain: (name: string): string => `tls/certificates/${name}/chain`,
    /** Its private key, PEM, sealed (controller/sealed.ts) at this very path. */
    key: (name: string): string => `tls/certificates/${name}/key`,
    /** The name of the certificate the gateways order from the ACME CA. */
    acmeCertificate: "acme",
    acme: "tls/acme/",
    /** The Consul session lock of the replica that orders or renews. */
    acmeLock: "tls/acme/lock",
    /** The ACME account's private key, sealed. */
    acmeAccountKey: "tls/acme/account-key",
    /** The EAB HMAC key (when the CA requires external account binding), sealed; written by Pulumi. */
    acmeEabHmacKey: "tls/acme/eab-hmac-key",
    /** tls/acme/challenges/<token>: the key authorization every gateway answers with. */
    acmeChallenges: "tls/acme/challenges/",
    acmeChallenge: (token: string): string => `tls/acme/challenges/${token}`,
} as const;

/** The port HTTPS listens on in the gateway's container (published as gateway.httpsPort). */
export const CONTAINER_HTTPS_PORT = 443;

/**
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers (Mozilla's "intermediate" profile without
 * the DHE suites, which need DH parameters): every browser and client of the last decade.
 */
export const TLS_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");
export const TLS_CIPHERSUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"].join(":");

/** HSTS: half a year, what browsers' preload lists ask at least. */
export const DEFAULT_HSTS_SECONDS = 15552000;
/** An ACME certificate is renewed this long before it expires (Let's Encrypt's advice: a third of 90 days). */
export const DEFAULT_ACME_RENEW_BEFORE_DAYS = 30;
export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";
/** A DNS name a certificate may cover (no wildcard: HTTP-01 cannot prove one). */
export const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
