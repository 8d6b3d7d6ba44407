// Stack configuration: read once, validated once, turned into a typed object the
// rest of the program trusts. Every error names the key, the value and what is allowed.
import * as pulumi from "@pulumi/pulumi";
import * as fs from "node:fs";
import { z } from "zod";

export const PROJECT = "service-discovery";

/** Consul release the stack runs and the test suite builds; the last MPL-2.0 release. */
export const CONSUL_VERSION = "1.16.3";
export const DEFAULT_CONSUL_IMAGE = `hashicorp/consul:${CONSUL_VERSION}`;
export const DEFAULT_REGISTRATOR_IMAGE = "gliderlabs/registrator:v7";

/** A DNS label: the only service names Consul DNS, HAProxy and consul-template all accept. */
export const SERVICE_NAME_PATTERN = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;
/** Versions are `v` and a number, so `hello-v1` is always service `hello`, version `v1`. */
export const VERSION_PATTERN = /^v[0-9]{1,4}$/;
/** The HAProxy time format the template accepts for the timeout keys: non-zero, and below
 * HAProxy's limit of 2^31 ms (~24.8 days), so `haproxy -c` never rejects a valid setting. */
export const DURATION_PATTERN = /^([1-9][0-9]{0,5}(us|ms|s)?|[1-9][0-9]{0,3}m|[1-9][0-9]?h|([1-9]|1[0-9]|2[0-4])d)$/;

export type Target = "local" | "virtualbox" | "hosts" | "aws";
/** How agents find the servers: their addresses, or Consul's cloud auto-join by EC2 tag. */
export type ConsulJoin = "static" | "aws-tags";

/** An existing Docker host of the `hosts` target. */
export interface HostSettings {
    readonly name: string;
    /** Docker endpoint: tcp://host:2376 (with certPath) or ssh://user@host. */
    readonly host: string;
    /** Address other nodes and the gateway reach this host's published ports on. */
    readonly address: string;
    readonly certPath?: string;
}

export interface ServiceSettings {
    /** Route name: `/<name>/<version>/...`. */
    readonly name: string;
    readonly version?: string;
    /** Consul service name: `<name>-<version>`, or `<name>` when unversioned. */
    readonly consulName: string;
    /** URL prefix the gateway strips. */
    readonly path: string;
    /** A pullable image, or a build context folder relative to the project. */
    readonly image?: string;
    readonly build?: string;
    readonly containerPort: number;
    readonly replicas: number;
    readonly healthCheckPath: string;
    readonly protocol: "http";
}

export interface HaproxySettings {
    readonly maxconn: number;
    readonly timeouts: { readonly connect: string; readonly client: string; readonly server: string };
    /** Caps of the gateway's trust rules: routed services, and servers per service. */
    readonly maxServices: number;
    readonly maxInstancesPerService: number;
}

export interface Settings {
    readonly project: string;
    readonly stack: string;
    readonly target: Target;
    readonly nodeCount: number;
    /** 1-based node numbers that run a gateway. */
    readonly edgeNodes: readonly number[];
    /** Network mode for RUN steps of image builds: default, or host where the default bridge has no route out. */
    readonly buildNetwork: "default" | "host";
    readonly network: { readonly name: string; readonly subnet: string; readonly gateway: string };
    readonly consul: {
        readonly image: string;
        readonly datacenter: string;
        /** Published port of the HTTPS API (plain HTTP answers only on each agent's loopback). */
        readonly httpsPort: number;
        readonly dnsPort: number;
        readonly bindAddress: string;
        readonly maxConnsPerClient: number;
        /** Number of Consul servers (odd); they run on the first nodes, agents on the rest. */
        readonly servers: number;
        /** `static`: agents join the servers' (private) addresses; `aws-tags`: cloud auto-join,
         * which needs the instance role from inside the container (metadata hop limit 2). */
        readonly join: ConsulJoin;
        readonly encryptKey?: pulumi.Output<string>;
        /** The initial management token (a UUID), when the user set one. */
        readonly managementToken?: pulumi.Output<string>;
    };
    readonly hosts: readonly HostSettings[];
    readonly virtualbox: { readonly cpus: number; readonly memoryMb: number; readonly diskMb: number };
    readonly aws: {
        readonly instanceType: string;
        readonly adminCidr: string;
        readonly vpcCidr: string;
        readonly availabilityZones: number;
        readonly publicKey: string;
        readonly sshUser: string;
        readonly rootVolumeGb: number;
    };
    readonly registrator: { readonly image: string; readonly resyncSeconds: number; readonly dockerSocket: string };
    readonly gateway: {
        readonly httpPort: number;
        readonly statsPort: number;
        readonly bindAddress: string;
        readonly consulTemplateSource: "release" | "context";
        /** IPv4 CIDR blocks of proxies in front of the gateway whose X-Forwarded-* headers are kept. */
        readonly trustedProxies: readonly string[];
    };
    readonly haproxy: HaproxySettings;
    readonly stats: { readonly user: string; readonly password?: pulumi.Output<string> };
    readonly services: readonly ServiceSettings[];
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

const intIn = (min: number, max: number) =>
    z.number({ error: `an integer from ${min} to ${max}` })
        .int({ error: `an integer from ${min} to ${max}` })
        .min(min, { error: `an integer from ${min} to ${max}` })
        .max(max, { error: `an integer from ${min} to ${max}` });
const port = intIn(1, 65535);
const matching = (pattern: RegExp, allowed: string) =>
    z.string({ error: allowed }).regex(pattern, { error: allowed });
const duration = matching(DURATION_PATTERN, "a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d");
const ipv4Pattern = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
const ipv4 = matching(ipv4Pattern, "an IPv4 address such as 127.0.0.1 or 0.0.0.0");
/** An IPv4 CIDR block such as 203.0.113.0/24. */
const cidr = z.string({ error: "an IPv4 CIDR block such as 203.0.113.0/24" }).refine((v) => {
    const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(v);
    return !!m && ipv4Pattern.test(m[1]) && Number(m[2]) <= 32;
}, { error: "an IPv4 CIDR block such as 203.0.113.0/24" });
const cidr24 = z.string({ error: "a private IPv4 /16 to /28 subnet such as 172.28.0.0/24" }).refine(
    (v) => {
        const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(v);
        return !!m && ipv4Pattern.test(m[1]) && Number(m[2]) >= 16 && Number(m[2]) <= 28 && m[1].endsWith(".0");
    },
    { error: "a private IPv4 /16 to /28 subnet such as 172.28.0.0/24" },
);
// Images: registry/repository[:tag][@digest]; a tag or a digest is required (no floating `latest`).
const imageRef = matching(
    /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    "an image reference with a pinned tag or digest, such as hashicorp/consul:1.16.3",
).refine((v) => /(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[a-f0-9]{64})$/.test(v.replace(/^[^/]*:[0-9]+\//, "")) && !v.endsWith(":latest"), {
    error: "an image reference with a pinned tag or digest (not :latest), such as hashicorp/consul:1.16.3",
});
const buildPath = matching(/^[A-Za-z0-9_./-]{1,200}$/, "a build context folder relative to the project, such as components/images/hello")
    .refine((v) => !v.startsWith("/") && !v.split("/").includes(".."), {
        error: "a build context folder inside the project (relative, no ..), such as components/images/hello",
    });

const serviceSchema = z.strictObject(
    {
        name: matching(SERVICE_NAME_PATTERN, "a lowercase DNS label: a-z first, then a-z 0-9 -, at most 32 characters"),
        version: matching(VERSION_PATTERN, "v followed by 1 to 4 digits, such as v1").optional(),
        image: imageRef.optional(),
        build: buildPath.optional(),
        containerPort: port.default(8080),
        replicas: intIn(1, 50).default(1),
        healthCheckPath: matching(/^\/[A-Za-z0-9._~\/-]{0,100}$/, "a path starting with / (letters, digits, . _ ~ / -)").default("/health"),
        protocol: z.literal("http", { error: "http (the only protocol routed so far)" }).default("http"),
    },
    { error: (issue) => (issue.code === "unrecognized_keys" ? `only the keys name, version, image, build, containerPort, replicas, healthCheckPath, protocol` : "an object with name and image or build") },
);

const schema = z.object({
    target: z.enum(["local", "virtualbox", "hosts", "aws"], { error: "local, virtualbox, hosts or aws" }).default("local"),
    nodeCount: intIn(1, 100).optional(),
    edgeNodes: z.array(intIn(1, 100), { error: "a list of node numbers (1-based), such as [1, 2]" }).min(1, { error: "a non-empty list of node numbers (1-based)" }).optional(),
    hosts: z.array(z.strictObject({
        name: matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -"),
        host: matching(/^(tcp:\/\/[A-Za-z0-9.-]+:[0-9]{1,5}|ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?)$/, "a Docker endpoint tcp://host:port or ssh://user@host[:port]"),
        address: ipv4,
        certPath: matching(/^[A-Za-z0-9_.~\/-]{1,200}$/, "a folder holding ca.pem, cert.pem and key.pem").optional(),
    }, { error: "an object with name, host, address and optionally certPath" }), { error: "a list of Docker hosts" }).optional(),
    virtualbox: z.strictObject({
        cpus: intIn(1, 16).default(1),
        memoryMb: intIn(512, 65536).default(1024),
        diskMb: intIn(5000, 500000).default(20000),
    }, { error: "an object with cpus, memoryMb, diskMb" }).default({ cpus: 1, memoryMb: 1024, diskMb: 20000 }),
    aws: z.strictObject({
        instanceType: matching(/^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$/, "an EC2 instance type such as t3.small").default("t3.small"),
        adminCidr: cidr.optional(),
        vpcCidr: z.string({ error: "an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16" }).refine((v) => {
            const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(v);
            if (!m || !ipv4Pattern.test(m[1]) || Number(m[2]) < 16 || Number(m[2]) > 24) return false;
            const value = m[1].split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
            return value % 2 ** (32 - Number(m[2])) === 0;
        }, { error: "an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16 (VPCs allow /16-/28; subnets are /+4)" }).default("10.42.0.0/16"),
        availabilityZones: intIn(1, 6).default(2),
        publicKey: matching(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) [A-Za-z0-9+\/=]{40,2000}( [^\n]{0,100})?$/, "an SSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...)").optional(),
        sshUser: matching(/^[a-z_][a-z0-9_-]{0,31}$/, "a Linux user name").default("admin"),
        rootVolumeGb: intIn(8, 1000).default(20),
    }, { error: "an object with instanceType, adminCidr, vpcCidr, availabilityZones, publicKey, sshUser, rootVolumeGb" }).default({
        instanceType: "t3.small", vpcCidr: "10.42.0.0/16", availabilityZones: 2, sshUser: "admin", rootVolumeGb: 20,
    }),
    buildNetwork: z.enum(["default", "host"], { error: "default or host" }).default("default"),
    network: z.strictObject({
        name: matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -").default("service-discovery"),
        subnet: cidr24.default("172.28.0.0/24"),
    }, { error: "an object with name and subnet" }).default({ name: "service-discovery", subnet: "172.28.0.0/24" }),
    consul: z.strictObject({
        image: imageRef.default(DEFAULT_CONSUL_IMAGE),
        datacenter: matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -").default("dc1"),
        httpsPort: port.default(8501),
        dnsPort: port.default(8600),
        bindAddress: ipv4.optional(),
        maxConnsPerClient: intIn(200, 100000).default(8192),
        join: z.enum(["static", "aws-tags"], {
            error: "static (agents join the servers' addresses) or aws-tags (Consul's cloud auto-join by EC2 tag, target aws only)",
        }).default("static"),
        servers: z.union([z.literal(1), z.literal(3), z.literal(5), z.literal(7)], { error: "1, 3, 5 or 7 (an odd number keeps a quorum)" }).optional(),
    }, { error: "an object with image, datacenter, httpsPort, dnsPort, bindAddress, maxConnsPerClient, servers, join" }).default({
        image: DEFAULT_CONSUL_IMAGE, datacenter: "dc1", httpsPort: 8501, dnsPort: 8600, maxConnsPerClient: 8192, join: "static",
    }),
    registrator: z.strictObject({
        image: imageRef.default(DEFAULT_REGISTRATOR_IMAGE),
        resyncSeconds: intIn(5, 3600).default(30),
        dockerSocket: matching(/^\/[A-Za-z0-9._\/-]{1,200}\.sock$/, "an absolute path to the Docker socket on the node, such as /var/run/docker.sock").default("/var/run/docker.sock"),
    }, { error: "an object with image, resyncSeconds and dockerSocket" }).default({ image: DEFAULT_REGISTRATOR_IMAGE, resyncSeconds: 30, dockerSocket: "/var/run/docker.sock" }),
    gateway: z.strictObject({
        httpPort: port.default(80),
        statsPort: port.default(1936),
        bindAddress: ipv4.default("0.0.0.0"),
        consulTemplateSource: z.enum(["release", "context"], {
            error: "release (download the pinned release, checksum verified) or context (a binary placed in the image folder)",
        }).default("release"),
        // Clients whose X-Forwarded-For/-Prefix the gateway keeps; from anyone else they are dropped.
        trustedProxies: z.array(
            cidr.refine((v) => !v.endsWith("/0"), { error: "a CIDR block narrower than /0 (trusting every client would keep spoofed X-Forwarded-For)" }),
            { error: "a list of IPv4 CIDR blocks of proxies in front of the gateway, such as [\"10.0.0.0/8\"]" },
        ).max(64, { error: "at most 64 CIDR blocks" }).default([]),
    }, { error: "an object with httpPort, statsPort, bindAddress, consulTemplateSource, trustedProxies" }).default({
        httpPort: 80, statsPort: 1936, bindAddress: "0.0.0.0", consulTemplateSource: "release", trustedProxies: [],
    }),
    haproxy: z.strictObject({
        maxconn: intIn(1, 1000000).default(4096),
        timeouts: z.strictObject({
            connect: duration.default("5s"),
            client: duration.default("30s"),
            server: duration.default("30s"),
        }, { error: "an object with connect, client, server" }).default({ connect: "5s", client: "30s", server: "30s" }),
        // Caps of the gateway (KV service/haproxy/limits/*): the services it routes, the servers per service.
        maxServices: intIn(1, 100000).default(5000),
        maxInstancesPerService: intIn(1, 10000).default(100),
    }, { error: "an object with maxconn, timeouts, maxServices, maxInstancesPerService" }).default({
        maxconn: 4096, timeouts: { connect: "5s", client: "30s", server: "30s" }, maxServices: 5000, maxInstancesPerService: 100,
    }),
    statsUser: matching(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, "a user name: a letter, then letters, digits, _ . -, at most 32 characters").default("stats"),
    services: z.array(serviceSchema, { error: "a list of services" }).default([]),
});

/** Keys a stack may set under the project namespace; anything else is a typo. */
export const CONFIG_KEYS = ["target", "nodeCount", "edgeNodes", "hosts", "virtualbox", "aws", "buildNetwork", "network", "consul", "registrator", "gateway", "haproxy", "statsUser", "statsPassword", "consulEncryptKey", "consulManagementToken", "services"] as const;
const SECRET_KEYS = new Set(["statsPassword", "consulEncryptKey", "consulManagementToken"]);

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
export function parseSettings(raw: RawConfig, stack: string, secrets: { statsPassword?: pulumi.Output<string>; consulEncryptKey?: pulumi.Output<string>; consulManagementToken?: pulumi.Output<string> } = {}): Settings {
    const unknown = Object.keys(raw).filter((k) => raw[k] !== undefined && !(CONFIG_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
        throw new ConfigError(`${PROJECT}:${unknown[0]}: unknown config key; allowed keys: ${CONFIG_KEYS.join(", ")}`);
    }
    // Secrets are checked here, from the raw value, and never echoed in the message.
    if (raw.consulManagementToken !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(raw.consulManagementToken)) {
        throw new ConfigError(`${PROJECT}:consulManagementToken: the value set is not allowed; expected a lowercase UUID such as 6f1c3a2e-1b2c-4d5e-8f90-0123456789ab, or unset it to have one generated`);
    }
    const input: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
        if (value === undefined || SECRET_KEYS.has(key)) continue;
        input[key] = parseValue(key, value);
    }
    // The API is HTTPS only since ACLs and TLS are on: say so rather than "unknown key".
    const consulInput = input.consul as Record<string, unknown> | undefined;
    if (consulInput && typeof consulInput === "object" && consulInput.httpPort !== undefined) {
        throw new ConfigError(`${PROJECT}:consul.httpPort: ${describe(consulInput.httpPort)} is not allowed; expected consul.httpsPort instead (the Consul API is served over HTTPS only; plain HTTP answers on each agent's loopback)`);
    }
    const result = schema.safeParse(input);
    if (!result.success) {
        const issue = result.error.issues[0];
        const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
        const shown = issue.code === "unrecognized_keys" ? "an unknown key" : describe(valueAt(input, path));
        throw new ConfigError(`${keyName(path)}: ${shown} is not allowed; expected ${issue.message}`);
    }
    const c = result.data;

    const services: ServiceSettings[] = c.services.map((s, i) => {
        if (s.image !== undefined && s.build !== undefined) {
            throw new ConfigError(`${PROJECT}:services[${i}].image: ${describe(s.image)} is not allowed together with build; expected exactly one of image or build`);
        }
        if (s.image === undefined && s.build === undefined) {
            throw new ConfigError(`${PROJECT}:services[${i}]: service ${describe(s.name)} has neither image nor build; expected exactly one of image or build`);
        }
        const consulName = s.version ? `${s.name}-${s.version}` : s.name;
        if (/-v[0-9]{1,4}$/.test(s.name)) {
            throw new ConfigError(`${PROJECT}:services[${i}].name: ${describe(s.name)} is not allowed; expected a name that does not end in -v<digits> (that suffix is how versions are named in Consul); use version instead`);
        }
        // On local nothing is published: Registrator registers the ports the image exposes.
        if (c.target === "local" && s.build !== undefined) {
            const dockerfile = `${s.build}/Dockerfile`;
            if (fs.existsSync(dockerfile) && dockerfileExposes(fs.readFileSync(dockerfile, "utf8"), s.containerPort) === false) {
                throw new ConfigError(`${PROJECT}:services[${i}].containerPort: ${s.containerPort} is not allowed; expected a port ${dockerfile} exposes (add EXPOSE ${s.containerPort}): on target local the gateway reaches the container's exposed port, nothing is published`);
            }
        }
        return {
            name: s.name, version: s.version, consulName, path: s.version ? `/${s.name}/${s.version}` : `/${s.name}`,
            image: s.image, build: s.build, containerPort: s.containerPort, replicas: s.replicas,
            healthCheckPath: s.healthCheckPath, protocol: s.protocol,
        };
    });
    const seen = new Map<string, number>();
    services.forEach((s, i) => {
        const previous = seen.get(s.consulName);
        if (previous !== undefined) {
            throw new ConfigError(`${PROJECT}:services[${i}]: ${describe(s.consulName)} is not allowed; expected each name and version once (also at services[${previous}])`);
        }
        seen.set(s.consulName, i);
    });

    const ports = [["gateway.httpPort", c.gateway.httpPort], ["gateway.statsPort", c.gateway.statsPort], ["consul.httpsPort", c.consul.httpsPort], ["consul.dnsPort", c.consul.dnsPort]] as const;
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
            throw new ConfigError(`${PROJECT}:aws.adminCidr: missing is not allowed; expected the CIDR block allowed to reach SSH, stats and the Consul UI, such as 203.0.113.7/32`);
        }
        if (c.aws.adminCidr.endsWith("/0")) {
            throw new ConfigError(`${PROJECT}:aws.adminCidr: ${describe(c.aws.adminCidr)} is not allowed; expected a CIDR block narrower than /0 (only the gateway port is open to the world)`);
        }
        if (c.aws.publicKey === undefined) {
            throw new ConfigError(`${PROJECT}:aws.publicKey: missing is not allowed; expected an SSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...) whose private key is in your ssh-agent`);
        }
    }
    if (c.consul.join === "aws-tags" && c.target !== "aws") {
        throw new ConfigError(`${PROJECT}:consul.join: ${describe(c.consul.join)} is not allowed; expected static for target ${c.target} (aws-tags is Consul's cloud auto-join by EC2 tag, target aws only)`);
    }

    const [subnetBase] = c.network.subnet.split("/");
    const gateway = subnetBase.replace(/\.0$/, ".1");
    return {
        project: PROJECT, stack, target: c.target, nodeCount, edgeNodes, buildNetwork: c.buildNetwork,
        network: { name: c.network.name, subnet: c.network.subnet, gateway },
        consul: {
            ...c.consul, servers, encryptKey: secrets.consulEncryptKey, managementToken: secrets.consulManagementToken,
            // Local: the API stays on this machine. Elsewhere Pulumi must reach it to write KV;
            // on AWS the security group admits only the admin network.
            bindAddress: c.consul.bindAddress ?? (c.target === "local" ? "127.0.0.1" : "0.0.0.0"),
        },
        hosts: c.hosts ?? [],
        virtualbox: c.virtualbox,
        aws: { ...c.aws, adminCidr: c.aws.adminCidr ?? "", publicKey: c.aws.publicKey ?? "" },
        registrator: c.registrator,
        gateway: c.gateway,
        haproxy: c.haproxy,
        stats: { user: c.statsUser, password: secrets.statsPassword },
        services,
    };
}

type Parsed = z.infer<typeof schema>;

/** Node count per target: fixed for local, the host list's length for hosts, configured otherwise. */
function resolveNodeCount(c: Parsed): number {
    switch (c.target) {
        case "local":
            if (c.nodeCount !== undefined && c.nodeCount !== 1) {
                throw new ConfigError(`${PROJECT}:nodeCount: ${c.nodeCount} is not allowed; expected 1 for target local (one Docker engine is one node; use virtualbox, hosts or aws for more)`);
            }
            if (c.hosts !== undefined) throw new ConfigError(`${PROJECT}:hosts: a list is not allowed; expected no hosts for target local (hosts is for target hosts)`);
            return 1;
        case "hosts": {
            const hosts = c.hosts ?? [];
            if (hosts.length === 0) {
                throw new ConfigError(`${PROJECT}:hosts: ${describe(c.hosts)} is not allowed; expected a non-empty list of Docker hosts for target hosts`);
            }
            if (c.nodeCount !== undefined && c.nodeCount !== hosts.length) {
                throw new ConfigError(`${PROJECT}:nodeCount: ${c.nodeCount} is not allowed; expected ${hosts.length} (the number of hosts) or no nodeCount for target hosts`);
            }
            hosts.forEach((h, i) => {
                if (hosts.findIndex((o) => o.name === h.name) !== i) throw new ConfigError(`${PROJECT}:hosts[${i}].name: ${describe(h.name)} is not allowed; expected each host name once`);
                if (h.host.startsWith("tcp://") && h.certPath === undefined) {
                    throw new ConfigError(`${PROJECT}:hosts[${i}].certPath: missing is not allowed; expected the TLS certificate folder for ${h.host} (plain TCP Docker endpoints are refused)`);
                }
            });
            return hosts.length;
        }
        default:
            if (c.hosts !== undefined) throw new ConfigError(`${PROJECT}:hosts: a list is not allowed; expected no hosts for target ${c.target} (hosts is for target hosts)`);
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
    });
}
