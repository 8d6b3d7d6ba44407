// The stack config schema: the one source of the keys, their defaults, the allowed values and
// (through z.output) the types of the settings.
import { z } from "zod";
import { LINUX_CAPABILITIES, REPLICA_DEFAULTS } from "../containment";
import { DEFAULT_DRAIN_SECONDS, MAX_DRAIN_SECONDS } from "../drain";
import {
    DEFAULT_ACME_RENEW_BEFORE_DAYS,
    DEFAULTS,
    DNS_NAME,
    HOST_NAME,
    LETS_ENCRYPT_DIRECTORY,
    LIMIT_RANGES,
    MAX_HOSTS_PER_SERVICE,
    RATE_PERIOD,
    TLS_SOURCES,
} from "../images/gateway/controller/rules";
import {
    aligned,
    buildPath,
    cidr,
    cidrBlock,
    duration,
    imageRef,
    intIn,
    ipv4,
    lowercaseName,
    matching,
    parseCidr,
    port,
    section,
    sshHostKey,
    SERVICE_NAME_PATTERN,
    VERSION_PATTERN,
} from "./fields";

/** Consul release the stack runs and the test suite builds; the last MPL-2.0 release. */
export const CONSUL_VERSION = "1.16.3";
export const DEFAULT_CONSUL_IMAGE = `hashicorp/consul:${CONSUL_VERSION}`;
export const DEFAULT_REGISTRATOR_IMAGE = "gliderlabs/registrator:v7";

const secretFields = new Set<z.ZodType>();
/** A key set with `pulumi config set --secret`: checked from its raw text (never parsed as JSON),
 * never shown in an error; the program gets its value as an Output from `readSettings`. */
const secret = (field: z.ZodType<string>) => {
    const optional = field.optional();
    secretFields.add(optional);
    return optional;
};

// The gateway's budgets (docs/security.md, "Budgets"): ranges and defaults are the gateway's own
// (controller/rules.ts), so the stack never writes a value the gateway would refuse.
const connectionsPerInstance = intIn(...LIMIT_RANGES.serverMaxconn);
const requestsPerClient = intIn(
    ...LIMIT_RANGES.clientRate,
    `an integer from ${LIMIT_RANGES.clientRate[0]} (no limit) to ${LIMIT_RANGES.clientRate[1]}: requests of one client address per ${RATE_PERIOD}`,
);

/** An ACM certificate's ARN: partition, region, account, certificate ID. */
export const ACM_CERTIFICATE_ARN = /^arn:aws[-a-z]*:acm:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:certificate\/[A-Za-z0-9-]{1,128}$/;
/**
 * The load balancer's TLS security policies that allow TLS 1.2 and 1.3 only (AWS's
 * ELBSecurityPolicy-TLS13-1-2-*, -TLS13-1-3-*, -TLS-1-2-*, -FS-1-2-*); ELBSecurityPolicy-TLS13-1-0-*,
 * -TLS13-1-1-* and the older ones still allow TLS 1.0 or 1.1.
 */
export const NLB_TLS12_POLICY = /^ELBSecurityPolicy-(TLS13-1-[23]|TLS-1-2|FS-1-2)(-[A-Za-z0-9]{1,20}){1,6}$/;
/** TLS 1.3 and 1.2 with forward-secret ciphers: AWS's recommended policy for a TLS listener. */
export const DEFAULT_NLB_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/** The host port of the offload listener (source acm) unless gateway.tls.offloadPort says otherwise. */
export const DEFAULT_OFFLOAD_PORT = 8443;

/**
 * TLS at the edge (docs/security.md, "TLS at the edge"): where the HTTPS listener's certificates
 * come from. The cross-key rules (what each source requires, the aws target) are checked in
 * parseSettings (config/index.ts).
 */
export const tlsSchema = section({
    source: z
        .enum(TLS_SOURCES, {
            error: "none (no HTTPS listener), self-signed (a stack CA, for dev), provided (gatewayTlsCertificate and gatewayTlsPrivateKey), acme (the gateways order from an ACME CA such as Let's Encrypt) or acm (target aws: the load balancer terminates TLS with an ACM certificate)",
        })
        .default("none"),
    /** The DNS names an acme or self-signed certificate covers; default: every host name the services declare (and localhost, self-signed). */
    hosts: z
        .array(matching(DNS_NAME, "a lowercase DNS name such as app.example.com (no wildcard: the HTTP-01 challenge cannot prove one)"), {
            error: 'a list of DNS names such as ["app.example.com"]',
        })
        .min(1, { error: 'a non-empty list of DNS names such as ["app.example.com"]' })
        .max(100, { error: "at most 100 DNS names (one certificate covers them all)" })
        .optional(),
    /** Plain HTTP answers with a redirect to HTTPS (ACME challenges excepted); default true with a source. */
    redirect: z.boolean({ error: "true or false" }).optional(),
    /** Strict-Transport-Security max-age on HTTPS answers; 0: none. Default 15552000 (180 days) when redirecting. */
    hstsSeconds: intIn(0, 63072000, "an integer from 0 (no HSTS) to 63072000 (two years): seconds").optional(),
    /** Source acm: the ACM certificate the load balancer's 443 serves. */
    acmCertificateArn: matching(
        ACM_CERTIFICATE_ARN,
        "an ACM certificate ARN such as arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789 (the certificate, in the stack's region, the load balancer serves)",
    ).optional(),
    /** Source acm: the load balancer's TLS security policy (TLS 1.2 and 1.3 only). */
    sslPolicy: matching(
        NLB_TLS12_POLICY,
        `a TLS 1.2+ security policy of the load balancer, such as ${DEFAULT_NLB_SSL_POLICY} (the default): ELBSecurityPolicy-TLS13-1-2-..., ELBSecurityPolicy-TLS13-1-3-..., ELBSecurityPolicy-TLS-1-2-... or ELBSecurityPolicy-FS-1-2-... (policies that allow TLS 1.0 or 1.1 are refused)`,
    ).optional(),
    /** Source acm: the host port of the gateway's offload listener, where the load balancer sends the HTTPS it terminated (PROXY protocol v2). */
    offloadPort: intIn(1024, 65535, "a port from 1024 to 65535 for the gateway's offload listener, such as 8443 (the default)").optional(),
    acme: section({
        directoryUrl: matching(
            /^https:\/\/[^\s]{1,500}$/,
            "an https:// ACME directory URL such as https://acme-staging-v02.api.letsencrypt.org/directory",
        ).default(LETS_ENCRYPT_DIRECTORY),
        email: matching(/^[^\s@]{1,64}@[^\s@]{1,250}\.[a-z]{2,63}$/i, "the ACME account's contact e-mail address, such as ops@example.com").optional(),
        /** External account binding (a CA that requires one): its key ID; the HMAC key is the secret gatewayAcmeEabHmacKey. */
        eabKid: matching(/^[A-Za-z0-9._~+\/=-]{1,256}$/, "the external account binding's key ID the CA gave you").optional(),
        renewBeforeDays: intIn(1, 60, "an integer from 1 to 60: days before expiry").default(DEFAULT_ACME_RENEW_BEFORE_DAYS),
    }).optional(),
}).prefault({});

export const hostSchema = section({
    name: lowercaseName,
    /** Docker endpoint: tcp://host:2376 (with certPath) or ssh://user@host. */
    host: matching(
        /^(tcp:\/\/[A-Za-z0-9.-]+:[0-9]{1,5}|ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?)$/,
        "a Docker endpoint tcp://host:port or ssh://user@host[:port]",
    ),
    /** Address other nodes and the gateway reach this host's published ports on. */
    address: ipv4,
    certPath: matching(/^[A-Za-z0-9_.~\/-]{1,200}$/, "a folder holding ca.pem, cert.pem and key.pem").optional(),
    /** An ssh:// host's SSH host key, pinned (components/host-keys.ts); without it the user's known_hosts decides. */
    hostKey: sshHostKey.optional(),
});

// A replica's containment (components/containment.ts; docs/services.md, "What a replica may do").
const CAPABILITY = "a Linux capability name in upper case without CAP_, such as NET_BIND_SERVICE or CHOWN (capabilities(7))";
const capabilityName = z
    .string({ error: CAPABILITY })
    .refine((v) => v !== "ALL", {
        error: "each capability by name, not ALL (it would give back every capability Docker allows): list the ones the image needs",
    })
    .refine((v) => v === "ALL" || (LINUX_CAPABILITIES as readonly string[]).includes(v), { error: CAPABILITY });
const TMPFS_PATH = "an absolute folder path such as /tmp or /var/cache/app (letters, digits, . _ -), not / and not under /proc, /sys or /dev";
const tmpfsPath = matching(/^(\/[A-Za-z0-9._-]{1,100}){1,10}$/, TMPFS_PATH).refine(
    (v) => !v.split("/").some((segment) => segment === "." || segment === "..") && !/^\/(proc|sys|dev)(\/|$)/.test(v),
    { error: TMPFS_PATH },
);
const HOST =
    "a DNS name such as app.example.com: labels of letters, digits and - (not at either end), at most 63 characters each, the last one starting with a letter; exact names only (no wildcard *.)";
/** A host name routed to the service: lower-cased, then checked (the gateway's own pattern). */
const hostName = z
    .string({ error: HOST })
    .transform((v) => v.toLowerCase())
    .pipe(matching(HOST_NAME, HOST));
const CPUS = "a number of CPUs from 0.01 to 64 with at most two decimals, such as 0.5, 1 or 2";

export const serviceSchema = section(
    {
        /** Route name: `/<name>/<version>/...`. */
        name: matching(SERVICE_NAME_PATTERN, "a lowercase DNS label: a-z first, then a-z 0-9 -, at most 32 characters"),
        version: matching(VERSION_PATTERN, "v followed by 1 to 4 digits, such as v1").optional(),
        /** A pullable image, or a build context folder relative to the project. */
        image: imageRef.optional(),
        build: buildPath.optional(),
        containerPort: port.default(8080),
        replicas: intIn(1, 50).default(1),
        healthCheckPath: matching(/^\/[A-Za-z0-9._~\/-]{0,100}$/, "a path starting with / (letters, digits, . _ ~ / -)").default("/health"),
        protocol: z.enum(["http", "tcp"], { error: "http (routed by URL path) or tcp (a gateway listener on listenPort)" }).default("http"),
        /** http: host names routed to this service (or version) by the Host header, every path, before the path prefixes.
         * tcp: TLS host names passed through to it, undecrypted, by SNI on the gateway's HTTPS port. */
        hosts: z
            .array(hostName, { error: 'a list of DNS names such as ["app.example.com"]' })
            .max(MAX_HOSTS_PER_SERVICE, { error: `at most ${MAX_HOSTS_PER_SERVICE} host names` })
            .default([]),
        /** tcp: the port the gateway listens on, published on each edge node at the same port (optional with hosts). */
        listenPort: port.optional(),
        /** tcp, target aws: who may reach listenPort (one security-group rule each); [] = the cluster's nodes only. */
        allowedCidrs: z
            .array(cidrBlock("an aligned IPv4 CIDR block such as 203.0.113.0/24 (no host bits set), or 0.0.0.0/0 for the world", aligned), {
                error: 'a list of IPv4 CIDR blocks allowed to reach listenPort, such as ["203.0.113.0/24"]',
            })
            .max(20, { error: "at most 20 CIDR blocks (each is a security-group rule; a group holds 60 by default)" })
            .default([]),
        /** Graceful drain: seconds a stopping replica fails its health check while it still serves
         * (DRAIN_SECONDS); its stop timeout is this plus the time left for requests in flight. */
        drainSeconds: intIn(0, MAX_DRAIN_SECONDS).default(DEFAULT_DRAIN_SECONDS),
        /** A versioned http service's share of its unversioned path /<name>/. */
        weight: intIn(0, 256).optional(),
        /** With weight: a client stays on the version it was first given (cookie). */
        sticky: z.boolean({ error: "true or false" }).default(false),
        /** The most connections (http: requests in flight) the gateway sends each instance at once;
         * the rest wait at the gateway (KV services/<consul name>/maxconn). Else haproxy.connectionsPerInstance. */
        connectionsPerInstance: connectionsPerInstance.optional(),
        /** http: requests of one client address to this service per 10 s; more get 429 (KV …/rate). */
        requestsPerClient: requestsPerClient.optional(),
        /** tcp: how long a connection may stay idle (KV …/idle-timeout). Else haproxy.timeouts.tcpIdle. */
        idleTimeout: duration.optional(),
        /** true: every instance of this service, or these replica numbers, get weight 0 (drain). */
        maintenance: z
            .union(
                [
                    z.literal(true),
                    z
                        .array(intIn(1, 50), { error: "a list of replica numbers" })
                        .min(1, { error: "true (the whole service) or a non-empty list of replica numbers such as [2]; remove the key to end maintenance" }),
                ],
                { error: "true (the whole service) or a list of replica numbers such as [2]; remove the key to end maintenance" },
            )
            .optional(),
        // Containment: each key relaxes one default for this service (the policy pack refuses that off dev).
        /** Linux capabilities given back to the replica; every other one is dropped. */
        capAdd: z
            .array(capabilityName, { error: 'a list of Linux capability names such as ["NET_BIND_SERVICE"]' })
            .max(LINUX_CAPABILITIES.length, { error: `at most ${LINUX_CAPABILITIES.length} capability names` })
            .default([]),
        /** false: the replica may write its root filesystem (its container's writable layer, on the node's disk). */
        readOnlyRootFilesystem: z
            .boolean({
                error: "true (the default: nothing in the image can be changed) or false (the replica may write its root filesystem, on the node's disk)",
            })
            .default(true),
        /** Writable in-memory folders (tmpfs) over the root filesystem, each holding up to tmpfsMb. */
        tmpfs: z
            .array(tmpfsPath, { error: 'a list of absolute folder paths such as ["/tmp", "/var/cache/app"]; [] for none' })
            .max(10, { error: "at most 10 folders" })
            .default(() => [...REPLICA_DEFAULTS.tmpfs]),
        tmpfsMb: intIn(1, 1024, "an integer from 1 to 1024: MiB each tmpfs folder may hold").default(REPLICA_DEFAULTS.tmpfsMb),
        /** The replica's memory limit in MiB (tmpfs files included; no swap). */
        memoryMb: intIn(16, 65536, "an integer from 16 to 65536: MiB of memory, tmpfs files included (no swap)").default(REPLICA_DEFAULTS.memoryMb),
        /** The CPU time the replica may use, in CPUs. */
        cpus: z
            .number({ error: CPUS })
            .min(0.01, { error: CPUS })
            .max(64, { error: CPUS })
            .refine((v) => Math.abs(v * 100 - Math.round(v * 100)) < 1e-9, { error: CPUS })
            .default(REPLICA_DEFAULTS.cpus),
        /** The processes and threads the replica may run at once (the engine's PidsLimit). */
        pidsLimit: intIn(16, 65536, "an integer from 16 to 65536: processes and threads the replica may run at once").default(REPLICA_DEFAULTS.pidsLimit),
        /** true: the replicas join the node's network, which every container of the stack shares, instead of a network of the service's own. */
        sharedNetwork: z
            .boolean({
                error: "false (the default: the replicas are on a network of the service's own, which only they and the gateway join) or true (they join the node's network, where they reach every container of the stack)",
            })
            .default(false),
    },
    "an object with name and image or build",
);

/**
 * A section that answers a key it used to have with what replaces it (`removed`: key -> the
 * "expected ..." text), where a stack written for an older release would otherwise be told
 * only "an unknown key".
 */
function withoutRemovedKeys<T extends z.ZodType>(schema: T, removed: Readonly<Record<string, string>>) {
    return z.preprocess((value, ctx) => {
        if (value !== null && typeof value === "object" && !Array.isArray(value)) {
            for (const [key, expected] of Object.entries(removed)) {
                if (Object.hasOwn(value, key)) ctx.addIssue({ code: "custom", message: expected, path: [key], input: (value as Record<string, unknown>)[key] });
            }
        }
        return value;
    }, schema);
}

// Sections use prefault({}): a missing section is parsed as an empty one, so each field's own
// default is the only one written.
export const haproxySchema = section({
    maxconn: intIn(1, 1000000).default(4096),
    timeouts: section({
        connect: duration.default("5s"),
        client: duration.default("30s"),
        server: duration.default("30s"),
        /** A client's time to send a request's headers (slowloris holds a connection no longer). */
        httpRequest: duration.default(DEFAULTS.timeoutHttpRequest),
        httpKeepAlive: duration.default(DEFAULTS.timeoutHttpKeepAlive),
        /** tcp services' idle connections. */
        tcpIdle: duration.default(DEFAULTS.timeoutTcpIdle),
    }).prefault({}),
    // Caps of the gateway's trust rules (KV service/haproxy/limits/*): the services it routes,
    // the servers per service.
    maxServices: intIn(1, 100000).default(5000),
    maxInstancesPerService: intIn(1, 10000).default(100),
    // Budgets no client can exhaust (KV service/haproxy/limits/*).
    /** Concurrent connections of one client address on each public listener. */
    connectionsPerClient: intIn(...LIMIT_RANGES.clientConnections).default(DEFAULTS.clientConnections),
    /** HTTP requests of one client address per 10 s (429 beyond); 0: no limit. */
    requestsPerClient: requestsPerClient.default(DEFAULTS.clientRate),
    /** The largest request body (Content-Length), in bytes (413 beyond). */
    maxBodyBytes: intIn(
        ...LIMIT_RANGES.bodySize,
        `an integer from ${LIMIT_RANGES.bodySize[0]} to ${LIMIT_RANGES.bodySize[1]}: bytes (10485760 is 10 MiB)`,
    ).default(DEFAULTS.bodySize),
    /** Connections (http: requests in flight) the gateway sends one instance at once. */
    connectionsPerInstance: connectionsPerInstance.default(DEFAULTS.serverMaxconn),
}).prefault({});

const shape = {
    target: z.enum(["local", "virtualbox", "hosts", "aws"], { error: "local, virtualbox, hosts or aws" }).default("local"),
    nodeCount: intIn(1, 100).optional(),
    /** 1-based node numbers that run a gateway. */
    edgeNodes: z
        .array(intIn(1, 100), { error: "a list of node numbers (1-based), such as [1, 2]" })
        .min(1, { error: "a non-empty list of node numbers (1-based)" })
        .optional(),
    /** The existing Docker hosts of the `hosts` target. */
    hosts: z.array(hostSchema, { error: "a list of Docker hosts" }).optional(),
    virtualbox: section({
        cpus: intIn(1, 16).default(1),
        memoryMb: intIn(512, 65536).default(1024),
        diskMb: intIn(5000, 500000).default(20000),
    }).prefault({}),
    aws: section({
        instanceType: matching(/^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$/, "an EC2 instance type such as t3.small").default("t3.small"),
        adminCidr: cidr.optional(),
        /** Where pull-request previews run: admitted to SSH only, for their read-only key (docs/development.md). */
        previewCidr: cidr
            .refine((v) => parseCidr(v)?.prefix !== 0, { error: "a CIDR block narrower than /0, such as 198.51.100.7/32 (the preview runners' addresses)" })
            .optional(),
        vpcCidr: cidrBlock(
            "an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16 (VPCs allow /16-/28; subnets are /+4)",
            (b) => b.prefix >= 16 && b.prefix <= 24 && aligned(b),
            "an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16",
        ).default("10.42.0.0/16"),
        availabilityZones: intIn(1, 6).default(2),
        publicKey: matching(
            /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) [A-Za-z0-9+\/=]{40,2000}( [^\n]{0,100})?$/,
            "an SSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...)",
        ).optional(),
        sshUser: matching(/^[a-z_][a-z0-9_-]{0,31}$/, "a Linux user name").default("admin"),
        /**
         * How Pulumi (and you) reach the nodes' SSH, over which the Docker providers and image builds
         * run: `ssh`, port 22 open to adminCidr (and previewCidr); `ssm`, port 22 closed to everyone,
         * SSH carried by AWS Systems Manager sessions to the instance IDs (docs/operations.md).
         */
        access: z.enum(["ssh", "ssm"], { error: "ssh or ssm" }).default("ssh"),
        rootVolumeGb: intIn(8, 1000).default(20),
        /**
         * Outbound traffic the nodes may send besides what they need (HTTPS and HTTP to anywhere:
         * images, Debian packages, AWS APIs, ACME; anything between the cluster's own nodes): one
         * security-group egress rule each, such as a database your services call.
         */
        egress: z
            .array(
                section({
                    cidr,
                    port: intIn(1, 65535),
                    protocol: z.enum(["tcp", "udp"], { error: "tcp or udp" }).default("tcp"),
                }),
                { error: 'a list of outbound rules such as [{ cidr: "10.1.0.0/16", port: 5432 }]' },
            )
            .default([]),
    }).prefault({}),
    /** Network mode for RUN steps of image builds: default, or host where the default bridge has no route out. */
    buildNetwork: z.enum(["default", "host"], { error: "default or host" }).default("default"),
    network: section({
        name: lowercaseName.default("service-discovery"),
        subnet: cidrBlock("a private IPv4 /16 to /28 subnet such as 172.28.0.0/24", (b) => b.prefix >= 16 && b.prefix <= 28 && b.base.endsWith(".0")).default(
            "172.28.0.0/24",
        ),
    }).prefault({}),
    consul: section({
        image: imageRef.default(DEFAULT_CONSUL_IMAGE),
        datacenter: lowercaseName.default("dc1"),
        /** Published port of the HTTPS API (plain HTTP answers only on each agent's loopback). */
        httpsPort: port.default(8501),
        dnsPort: port.default(8600),
        /** Host address the API and DNS are published on; default: bindAddressDefault (config/index.ts). */
        bindAddress: ipv4.optional(),
        maxConnsPerClient: intIn(200, 100000).default(200),
        /** Number of Consul servers (odd); they run on the first nodes, agents on the rest. */
        servers: z.union([z.literal(1), z.literal(3), z.literal(5), z.literal(7)], { error: "1, 3, 5 or 7 (an odd number keeps a quorum)" }).optional(),
        /** `static`: agents join the servers' (private) addresses; `aws-tags`: cloud auto-join,
         * which needs the instance role from inside the container (metadata hop limit 2). */
        join: z
            .enum(["static", "aws-tags"], {
                error: "static (agents join the servers' addresses) or aws-tags (Consul's cloud auto-join by EC2 tag, target aws only)",
            })
            .default("static"),
    }).prefault({}),
    registrator: section({
        image: imageRef.default(DEFAULT_REGISTRATOR_IMAGE),
        resyncSeconds: intIn(5, 3600).default(30),
        dockerSocket: matching(/^\/[A-Za-z0-9._\/-]{1,200}\.sock$/, "an absolute path to the Docker socket on the node, such as /var/run/docker.sock").default(
            "/var/run/docker.sock",
        ),
    }).prefault({}),
    gateway: withoutRemovedKeys(
        section({
            httpPort: port.default(80),
            /** Host port of the HTTPS listener (gateway.tls). */
            httpsPort: port.default(443),
            statsPort: port.default(1936),
            /** Host address every gateway port is published on; default: bindAddressDefault (config/index.ts). */
            bindAddress: ipv4.optional(),
            /** Where the image's Node.js comes from (the Dockerfile's NODE_SOURCE). */
            nodeSource: z
                .enum(["release", "context"], {
                    error: "release (download the pinned Node.js release from nodejs.org, checksum verified) or context (a Linux node binary placed in the image folder as node)",
                })
                .default("release"),
            /** IPv4 CIDR blocks of proxies in front of the gateway whose forwarding headers
             * (X-Forwarded-*, Forwarded, X-Real-IP...) are kept and whose connections the
             * per-client budgets do not count; from anyone else they are dropped. */
            trustedProxies: z
                .array(
                    cidr.refine((v) => parseCidr(v)?.prefix !== 0, {
                        error: "a CIDR block narrower than /0 (trusting every client would keep spoofed X-Forwarded-For)",
                    }),
                    { error: 'a list of IPv4 CIDR blocks of proxies in front of the gateway, such as ["10.0.0.0/8"]' },
                )
                .max(64, { error: "at most 64 CIDR blocks" })
                .default([]),
            /** Route services no container of the stack registers (started by hand, by another
             * tool). A declared service's route belongs to its replicas whatever this says. */
            routeUndeclared: z.boolean({ error: "true or false" }).default(false),
            tls: tlsSchema,
        }),
        {
            consulTemplateSource:
                "gateway.nodeSource instead (gateway.consulTemplateSource was removed: the gateway runs no consul-template any more; for offline builds use gateway.nodeSource: context)",
        },
    ).prefault({}),
    haproxy: haproxySchema,
    statsUser: matching(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, "a user name: a letter, then letters, digits, _ . -, at most 32 characters").default("stats"),
    statsPassword: secret(z.string()),
    consulEncryptKey: secret(z.string()),
    /** The initial management token (a UUID), when the user sets one; generated otherwise. */
    consulManagementToken: secret(
        matching(
            /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
            "a lowercase UUID such as 6f1c3a2e-1b2c-4d5e-8f90-0123456789ab, or unset it to have one generated",
        ),
    ),
    /** gateway.tls.source provided: the certificate and its chain (PEM), and its private key (PEM). */
    gatewayTlsCertificate: secret(z.string()),
    gatewayTlsPrivateKey: secret(z.string()),
    /** gateway.tls.acme.eabKid: the external account binding's HMAC key (base64url), as the CA gave it. */
    gatewayAcmeEabHmacKey: secret(z.string()),
    services: z.array(serviceSchema, { error: "a list of services" }).default([]),
};
export const configSchema = z.object(shape);
export type ParsedConfig = z.output<typeof configSchema>;

export type ConfigKey = keyof typeof shape;
/** Keys a stack may set under the project namespace; anything else is a typo. */
export const CONFIG_KEYS = Object.keys(shape) as readonly ConfigKey[];
/** The keys set as Pulumi secrets. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(CONFIG_KEYS.filter((k) => secretFields.has(shape[k])));
