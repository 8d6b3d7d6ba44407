// Stack configuration: read once, validated once, turned into a typed object the
// rest of the program trusts. Every error names the key, the value and what is allowed.
import * as pulumi from "@pulumi/pulumi";
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
/** The HAProxy time format the template accepts for the timeout keys. */
export const DURATION_PATTERN = /^[0-9]{1,6}(us|ms|s|m|h|d)?$/;

export type Target = "local" | "aws";

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
}

export interface Settings {
    readonly project: string;
    readonly stack: string;
    readonly target: Target;
    readonly nodeCount: number;
    /** Network mode for RUN steps of image builds: default, or host where the default bridge has no route out. */
    readonly buildNetwork: "default" | "host";
    readonly network: { readonly name: string; readonly subnet: string; readonly gateway: string };
    readonly consul: {
        readonly image: string;
        readonly datacenter: string;
        readonly httpPort: number;
        readonly dnsPort: number;
        readonly bindAddress: string;
        readonly maxConnsPerClient: number;
        readonly encryptKey?: pulumi.Output<string>;
    };
    readonly registrator: { readonly image: string; readonly resyncSeconds: number };
    readonly gateway: {
        readonly httpPort: number;
        readonly statsPort: number;
        readonly bindAddress: string;
        readonly consulTemplateSource: "release" | "context";
    };
    readonly haproxy: HaproxySettings;
    readonly stats: { readonly user: string; readonly password?: pulumi.Output<string> };
    readonly services: readonly ServiceSettings[];
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
const duration = matching(DURATION_PATTERN, "a duration such as 5s, 500ms or 1m (digits, then us|ms|s|m|h|d)");
const ipv4Pattern = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
const ipv4 = matching(ipv4Pattern, "an IPv4 address such as 127.0.0.1 or 0.0.0.0");
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
    target: z.enum(["local", "aws"], { error: "local or aws" }).default("local"),
    nodeCount: intIn(1, 100).default(1),
    buildNetwork: z.enum(["default", "host"], { error: "default or host" }).default("default"),
    network: z.strictObject({
        name: matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -").default("service-discovery"),
        subnet: cidr24.default("172.28.0.0/24"),
    }, { error: "an object with name and subnet" }).default({ name: "service-discovery", subnet: "172.28.0.0/24" }),
    consul: z.strictObject({
        image: imageRef.default(DEFAULT_CONSUL_IMAGE),
        datacenter: matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -").default("dc1"),
        httpPort: port.default(8500),
        dnsPort: port.default(8600),
        bindAddress: ipv4.default("127.0.0.1"),
        maxConnsPerClient: intIn(200, 100000).default(8192),
    }, { error: "an object with image, datacenter, httpPort, dnsPort, bindAddress, maxConnsPerClient" }).default({
        image: DEFAULT_CONSUL_IMAGE, datacenter: "dc1", httpPort: 8500, dnsPort: 8600, bindAddress: "127.0.0.1", maxConnsPerClient: 8192,
    }),
    registrator: z.strictObject({
        image: imageRef.default(DEFAULT_REGISTRATOR_IMAGE),
        resyncSeconds: intIn(5, 3600).default(30),
    }, { error: "an object with image and resyncSeconds" }).default({ image: DEFAULT_REGISTRATOR_IMAGE, resyncSeconds: 30 }),
    gateway: z.strictObject({
        httpPort: port.default(80),
        statsPort: port.default(1936),
        bindAddress: ipv4.default("0.0.0.0"),
        consulTemplateSource: z.enum(["release", "context"], {
            error: "release (download the pinned release, checksum verified) or context (a binary placed in the image folder)",
        }).default("release"),
    }, { error: "an object with httpPort, statsPort, bindAddress, consulTemplateSource" }).default({
        httpPort: 80, statsPort: 1936, bindAddress: "0.0.0.0", consulTemplateSource: "release",
    }),
    haproxy: z.strictObject({
        maxconn: intIn(1, 1000000).default(4096),
        timeouts: z.strictObject({
            connect: duration.default("5s"),
            client: duration.default("30s"),
            server: duration.default("30s"),
        }, { error: "an object with connect, client, server" }).default({ connect: "5s", client: "30s", server: "30s" }),
    }, { error: "an object with maxconn and timeouts" }).default({ maxconn: 4096, timeouts: { connect: "5s", client: "30s", server: "30s" } }),
    statsUser: matching(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, "a user name: a letter, then letters, digits, _ . -, at most 32 characters").default("stats"),
    services: z.array(serviceSchema, { error: "a list of services" }).default([]),
});

/** Keys a stack may set under the project namespace; anything else is a typo. */
export const CONFIG_KEYS = ["target", "nodeCount", "buildNetwork", "network", "consul", "registrator", "gateway", "haproxy", "statsUser", "statsPassword", "consulEncryptKey", "services"] as const;
const SECRET_KEYS = new Set(["statsPassword", "consulEncryptKey"]);

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
export function parseSettings(raw: RawConfig, stack: string, secrets: { statsPassword?: pulumi.Output<string>; consulEncryptKey?: pulumi.Output<string> } = {}): Settings {
    const unknown = Object.keys(raw).filter((k) => raw[k] !== undefined && !(CONFIG_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
        throw new ConfigError(`${PROJECT}:${unknown[0]}: unknown config key; allowed keys: ${CONFIG_KEYS.join(", ")}`);
    }
    const input: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
        if (value === undefined || SECRET_KEYS.has(key)) continue;
        input[key] = parseValue(key, value);
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

    const ports = [["gateway.httpPort", c.gateway.httpPort], ["gateway.statsPort", c.gateway.statsPort], ["consul.httpPort", c.consul.httpPort], ["consul.dnsPort", c.consul.dnsPort]] as const;
    ports.forEach(([key, value], i) => {
        const clash = ports.findIndex(([, other]) => other === value);
        if (clash !== i) {
            throw new ConfigError(`${PROJECT}:${key}: ${value} is not allowed; expected a host port not already used by ${ports[clash][0]}`);
        }
    });

    if (c.target === "local" && c.nodeCount !== 1) {
        throw new ConfigError(`${PROJECT}:nodeCount: ${c.nodeCount} is not allowed; expected 1 for target local (one Docker engine is one node)`);
    }
    if (c.target === "aws") {
        throw new ConfigError(`${PROJECT}:target: "aws" is not allowed yet; expected local (the aws target's resources are not built yet; Pulumi.aws.yaml parses so that its config can be reviewed)`);
    }

    const [subnetBase] = c.network.subnet.split("/");
    const gateway = subnetBase.replace(/\.0$/, ".1");
    return {
        project: PROJECT, stack, target: c.target, nodeCount: c.nodeCount, buildNetwork: c.buildNetwork,
        network: { name: c.network.name, subnet: c.network.subnet, gateway },
        consul: { ...c.consul, encryptKey: secrets.consulEncryptKey },
        registrator: c.registrator,
        gateway: c.gateway,
        haproxy: c.haproxy,
        stats: { user: c.statsUser, password: secrets.statsPassword },
        services,
    };
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
    });
}
