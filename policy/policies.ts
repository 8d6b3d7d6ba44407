// Rules every stack must pass before `pulumi up`. Each is a plain Pulumi policy object
// (mandatory); the tests feed them resources that pass and resources that fail.
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as fs from "node:fs";
import * as path from "node:path";
import { ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy, UnknownValueError, validateResourceOfType } from "@pulumi/policy";

/**
 * Config the pack accepts (`pulumi preview --policy-pack-config`): the gateway's public port, and
 * the tcp services' listenPorts whose allowedCidrs name 0.0.0.0/0 on purpose.
 */
export interface ServiceDiscoveryPolicyConfig {
    gatewayPort: number;
    /** The gateway's HTTPS port (gateway.httpsPort), open to the world like gatewayPort; default 443. */
    gatewayHttpsPort?: number;
    publicTcpPorts?: number[];
    /** Stacks whose gateways may serve plain HTTP only (gateway.tls.source none); default ["dev"]. */
    plainHttpStacks?: string[];
    /** Stacks whose service replicas may relax their containment (capAdd beyond the safe ones, a writable root, no limits, a shared network); default ["dev"]. */
    relaxedReplicaStacks?: string[];
    /** Stacks whose containers may publish ports on every address of a node (0.0.0.0, a firewall in front); default ["dev"]. */
    allAddressesStacks?: string[];
    /** Stacks that may pull images and build FROM images by tag alone, without a digest; default ["dev"]. */
    tagOnlyImageStacks?: string[];
}

/** Repository of the Docker socket proxy's image tag (components/socket-proxy.ts builds it). */
export const SOCKET_PROXY_IMAGE_REPOSITORY = "service-discovery/docker-socket-proxy";
/** Host folders that hold the usual Docker sockets: mounting one mounts the socket. */
const SOCKET_FOLDERS = ["/", "/run", "/var", "/var/run"];
/** Passwords no stack may use, whatever else holds. */
const WEAK_PASSWORDS = new Set(["admin", "password", "haproxy", "stats", "changeme", "secret", "123456"]);

/** A reference names a tag that is not `latest`, or a digest. Image IDs (sha256:...) are pinned. */
export function isPinnedImage(ref: string): boolean {
    if (/^sha256:[a-f0-9]{64}$/.test(ref) || /@sha256:[a-f0-9]{64}$/.test(ref)) return true;
    const lastSegment = ref.split("/").pop() ?? "";
    const tag = lastSegment.includes(":") ? lastSegment.split(":").pop()! : "";
    return tag !== "" && tag !== "latest";
}

const pinnedImages: ResourceValidationPolicy = {
    name: "pinned-image-tags",
    description: "Every container image, pulled image and built image tag is pinned (a tag other than latest, or a digest).",
    enforcementLevel: "mandatory",
    validateResource: [
        validateResourceOfType(docker.Container, (c, _args, report) => {
            if (typeof c.image === "string" && !isPinnedImage(c.image))
                report(`container ${c.name ?? ""} runs image "${c.image}" without a pinned tag or digest`);
        }),
        validateResourceOfType(docker.RemoteImage, (img, _args, report) => {
            if (!isPinnedImage(img.name)) report(`image "${img.name}" is pulled without a pinned tag or digest`);
        }),
        validateResourceOfType(dockerBuild.Image, (img, _args, report) => {
            for (const tag of img.tags ?? []) if (!isPinnedImage(tag)) report(`built image is tagged "${tag}" (no tag, or latest)`);
        }),
    ],
};

/** A reference that names one image for good: an image ID, or a reference with @sha256:<digest>. */
export function isDigestPinned(ref: string): boolean {
    return /^sha256:[a-f0-9]{64}$/.test(ref) || /@sha256:[a-f0-9]{64}$/.test(ref);
}

/**
 * The images a Dockerfile builds FROM, as Docker resolves them: ARGs declared before the first
 * FROM, with `buildArgs` over their defaults, substituted (${NAME}, $NAME); `scratch` and earlier
 * stages are left out. An ARG with neither a default nor a build arg leaves its name in place.
 */
export function dockerfileBaseImages(text: string, buildArgs: Record<string, string> = {}): string[] {
    const lines = text
        .replace(/\\\r?\n/g, " ")
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#"));
    const globals = new Map<string, string>();
    const stages = new Set<string>();
    const bases: string[] = [];
    let seenFrom = false;
    const expand = (s: string): string => s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a, b) => globals.get(a ?? b) ?? m);
    for (const line of lines) {
        const [instruction, ...rest] = line.split(/\s+/);
        if (/^ARG$/i.test(instruction) && !seenFrom) {
            for (const decl of rest) {
                const eq = decl.indexOf("=");
                const name = eq === -1 ? decl : decl.slice(0, eq);
                const value = buildArgs[name] ?? (eq === -1 ? undefined : decl.slice(eq + 1).replace(/^"(.*)"$/, "$1"));
                if (value !== undefined) globals.set(name, value);
            }
        } else if (/^FROM$/i.test(instruction)) {
            seenFrom = true;
            const words = rest.filter((w) => !w.startsWith("--"));
            const image = expand(words[0] ?? "");
            // An earlier stage (also one an ARG chooses: FROM node-${NODE_SOURCE}) is no image to pull.
            if (image.toLowerCase() !== "scratch" && !stages.has(image.toLowerCase())) bases.push(image);
            if (words.length >= 3 && /^AS$/i.test(words[1])) stages.add(words[2].toLowerCase());
        }
    }
    return bases;
}

/** The images a Dockerfile builds FROM that are not pinned by digest. */
export function unpinnedBaseImages(text: string, buildArgs: Record<string, string> = {}): string[] {
    return dockerfileBaseImages(text, buildArgs).filter((ref) => !isDigestPinned(ref));
}

/**
 * A built image's Dockerfile, when the policy can read it: inline, or at its location (as given,
 * else relative to the project folder this pack is in). Undefined when it cannot.
 */
function dockerfileText(img: { dockerfile?: { inline?: string; location?: string }; context?: { location?: string } }): string | undefined {
    if (typeof img.dockerfile?.inline === "string") return img.dockerfile.inline;
    const location = img.dockerfile?.location ?? (img.context?.location === undefined ? undefined : `${img.context.location}/Dockerfile`);
    if (typeof location !== "string") return undefined;
    for (const candidate of path.isAbsolute(location) ? [location] : [path.resolve(location), path.resolve(__dirname, "..", location)]) {
        try {
            return fs.readFileSync(candidate, "utf8");
        } catch {
            /* the next place */
        }
    }
    return undefined;
}

// Digests where this project can verify them: the base image every shipped Dockerfile starts
// FROM (mandatory). Consul's and Registrator's images are pulled by the tag the stack names: a
// digest for them comes from the user (docs/security.md, "Pinned images"), so that rule warns
// (advisory) until the stack pins them; a policy config can make it mandatory.
const digestPinnedBaseImages: ResourceValidationPolicy = {
    name: "pinned-base-images",
    description:
        "Every image a build starts FROM is pinned by digest (its Dockerfile's defaults with the build's args: name:tag@sha256:...); " +
        "only the stacks named in tagOnlyImageStacks (default dev) may use tags alone.",
    enforcementLevel: "mandatory",
    configSchema: { properties: { tagOnlyImageStacks: { type: "array", items: { type: "string" }, default: ["dev"] } } },
    validateResource: [
        validateResourceOfType(dockerBuild.Image, (img, args, report) => {
            const stack = stackOfUrn(args.urn);
            const allowed = args.getConfig<ServiceDiscoveryPolicyConfig>().tagOnlyImageStacks ?? ["dev"];
            if (stack !== undefined && allowed.includes(stack)) return;
            const buildArgs = Object.fromEntries(Object.entries(known(() => img.buildArgs) ?? {}).filter(([, v]) => typeof v === "string")) as Record<
                string,
                string
            >;
            const text = dockerfileText(img as any);
            const unpinned = text === undefined ? [] : [...new Set(unpinnedBaseImages(text, buildArgs))];
            // Unread or not, a base image given as a build arg must carry its digest.
            for (const [name, value] of Object.entries(buildArgs))
                if (/IMAGE$/.test(name) && !isDigestPinned(value) && !unpinned.includes(value)) unpinned.push(value);
            for (const ref of unpinned) {
                report(
                    `the build of ${(img.tags ?? []).join(", ") || args.name}${stack ? ` on stack ${stack}` : ""} starts FROM "${ref}" without a digest: ` +
                        `pin it (FROM or its ARG default: name:tag@sha256:<digest>, or the build arg); only the stacks in tagOnlyImageStacks (${namesOrNone(allowed)}) may use tags alone`,
                );
            }
        }),
    ],
};

const digestPinnedPulledImages: ResourceValidationPolicy = {
    name: "pinned-pulled-images",
    description:
        "Every pulled image (consul.image, registrator.image, services[i].image) is pinned by digest (name:tag@sha256:...); " +
        "only the stacks named in tagOnlyImageStacks (default dev) may use tags alone. Advisory: set its enforcementLevel to mandatory once the stack pins them.",
    enforcementLevel: "advisory",
    configSchema: { properties: { tagOnlyImageStacks: { type: "array", items: { type: "string" }, default: ["dev"] } } },
    validateResource: [
        validateResourceOfType(docker.RemoteImage, (img, args, report) => {
            const stack = stackOfUrn(args.urn);
            const allowed = args.getConfig<ServiceDiscoveryPolicyConfig>().tagOnlyImageStacks ?? ["dev"];
            if ((stack !== undefined && allowed.includes(stack)) || typeof img.name !== "string" || isDigestPinned(img.name)) return;
            report(
                `image "${img.name}"${stack ? ` on stack ${stack}` : ""} is pulled by tag alone: a tag can be moved to another image. ` +
                    `Pin it by digest in the stack config (consul.image, registrator.image or services[i].image), e.g. ${img.name}@sha256:<digest> ` +
                    `(docker buildx imagetools inspect ${img.name} prints it); only the stacks in tagOnlyImageStacks (${namesOrNone(allowed)}) may use tags alone`,
            );
        }),
    ],
};

/**
 * Whether a bind mount of this host path hands a container a Docker engine's socket: a UNIX
 * socket file (the program only accepts `.sock` paths for the engine's socket, a rootless
 * engine's included) or a folder the usual sockets live in.
 */
export function exposesDockerSocket(hostPath: string): boolean {
    const p = hostPath.replace(/\/{2,}/g, "/").replace(/(.)\/$/, "$1");
    return p.endsWith(".sock") || SOCKET_FOLDERS.includes(p);
}

/** Reads a value that may not be known yet (during preview): undefined then. */
function known<T>(read: () => T): T | undefined {
    try {
        return read();
    } catch (e) {
        if (e instanceof UnknownValueError) return undefined;
        throw e;
    }
}

// A read-only bind mount protects nothing here: connecting to a socket is no write to the file,
// and whoever can talk to the engine owns the host. So only the socket proxy may mount it, and
// only while nothing but its internal network reaches it.
const dockerSocketOnlyInProxy: StackValidationPolicy = {
    name: "docker-socket-proxy-only",
    description:
        "Only the Docker socket proxy mounts the Docker socket (any other container reaches Docker through it), " +
        "and the proxy publishes no port, joins only internal networks, and runs with no-new-privileges, unprivileged.",
    enforcementLevel: "mandatory",
    validateStack: (args, report) => {
        const internal = new Set<string>();
        for (const r of args.resources) {
            const n = r.asType(docker.Network);
            if (n && n.internal === true) internal.add(n.name);
        }
        for (const r of args.resources) {
            const c = r.asType(docker.Container);
            if (!c) continue;
            const name = `container ${c.name ?? r.name}`;
            const sources = [...(c.volumes ?? []).map((v) => v.hostPath), ...(c.mounts ?? []).filter((m) => m.type === "bind").map((m) => m.source)].filter(
                (x): x is string => typeof x === "string" && exposesDockerSocket(x),
            );
            if (sources.length === 0) continue;
            // The image ref of a build is unknown in a preview that does not build: the other
            // rules still run, and `pulumi up` checks the image.
            const image = known(() => c.image);
            if (typeof image === "string" && !image.startsWith(`${SOCKET_PROXY_IMAGE_REPOSITORY}:`) && !image.startsWith(`${SOCKET_PROXY_IMAGE_REPOSITORY}@`)) {
                report(
                    `${name} mounts ${sources.join(", ")}: only the Docker socket proxy (image ${SOCKET_PROXY_IMAGE_REPOSITORY}) may mount the Docker socket; give the container DOCKER_HOST=tcp://docker-socket-proxy:2375 on the proxy's network instead (a read-only mount does not stop API writes)`,
                );
                continue;
            }
            if ((c.ports ?? []).length > 0) report(`${name} (the Docker socket proxy) publishes ports; it must be reachable only on its internal network`);
            if (c.networkMode !== undefined && !internal.has(c.networkMode))
                report(`${name} (the Docker socket proxy) has networkMode ${JSON.stringify(c.networkMode)}; it must be on internal networks only`);
            const networks = (c.networksAdvanced ?? []).map((n) => n.name);
            if (networks.length === 0) report(`${name} (the Docker socket proxy) joins no network of the stack; it must be on an internal one`);
            for (const n of networks.filter((x) => !internal.has(x)))
                report(`${name} (the Docker socket proxy) joins network ${n}, which is not a network of the stack marked internal`);
            if (c.privileged === true) report(`${name} (the Docker socket proxy) is privileged`);
            if (!(c.securityOpts ?? []).some((o) => /^no-new-privileges(:true|=true)?$/.test(o)))
                report(`${name} (the Docker socket proxy) runs without securityOpts no-new-privileges:true`);
        }
    },
};

function worldOpen(cidr4?: string, cidr6?: string): boolean {
    return cidr4 === "0.0.0.0/0" || cidr6 === "::/0";
}

/** The ports a rule may open to the world (tcp only): the gateway's, and the public tcp services'. */
function publicPorts(args: ResourceValidationArgs): { ports: number[]; text: string } {
    const config = args.getConfig<ServiceDiscoveryPolicyConfig>();
    const named = config.publicTcpPorts ?? [];
    const ports = [config.gatewayPort, config.gatewayHttpsPort ?? 443, ...named];
    return { ports, text: `only tcp ${ports.join(", ")} may be (gatewayPort, gatewayHttpsPort${named.length > 0 ? ", publicTcpPorts" : ""})` };
}

/** One tcp port, and one the config names. */
function allowedOpen(ports: number[], protocol: string | undefined, from: number | undefined, to: number | undefined): boolean {
    return protocol === "tcp" && from !== undefined && from === to && ports.includes(from);
}

const onlyGatewayPublic: ResourceValidationPolicy = {
    name: "only-gateway-port-public",
    description:
        "No security-group rule opens anything to 0.0.0.0/0 or ::/0 but the gateway's HTTP and HTTPS ports (TCP) and the TCP ports named in publicTcpPorts (tcp services whose allowedCidrs name 0.0.0.0/0).",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: {
            gatewayPort: { type: "integer", default: 80 },
            gatewayHttpsPort: { type: "integer", default: 443 },
            publicTcpPorts: { type: "array", items: { type: "integer", minimum: 1, maximum: 65535 }, default: [] },
        },
    },
    validateResource: [
        validateResourceOfType(aws.vpc.SecurityGroupIngressRule, (r, args, report) => {
            const { ports, text } = publicPorts(args);
            if (worldOpen(r.cidrIpv4, r.cidrIpv6) && !allowedOpen(ports, r.ipProtocol, r.fromPort, r.toPort)) {
                report(`ingress ${r.ipProtocol} ${r.fromPort ?? "all"}-${r.toPort ?? "all"} is open to the world; ${text}`);
            }
        }),
        validateResourceOfType(aws.ec2.SecurityGroupRule, (r, args, report) => {
            const { ports, text } = publicPorts(args);
            const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
            if (r.type === "ingress" && open && !allowedOpen(ports, r.protocol, r.fromPort, r.toPort)) {
                report(`ingress ${r.protocol} ${r.fromPort}-${r.toPort} is open to the world; ${text}`);
            }
        }),
        validateResourceOfType(aws.ec2.SecurityGroup, (sg, args, report) => {
            const { ports, text } = publicPorts(args);
            for (const r of sg.ingress ?? []) {
                const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
                if (open && !allowedOpen(ports, r.protocol, r.fromPort, r.toPort)) {
                    report(`inline ingress ${r.protocol} ${r.fromPort}-${r.toPort} is open to the world; ${text}`);
                }
            }
        }),
    ],
};

/** Whether an egress rule lets everything out: all protocols, or every port of tcp/udp. */
function allTraffic(protocol: string | undefined, from: number | undefined, to: number | undefined): boolean {
    if (protocol === undefined || protocol === "-1" || protocol === "all") return true;
    return (from === undefined || from <= 1) && (to === undefined || to >= 65535);
}

const egressLimited: ResourceValidationPolicy = {
    name: "egress-limited",
    description:
        "No security-group rule lets everything out to 0.0.0.0/0 or ::/0 (all protocols, or every port): nodes reach the world on the ports they need (the program: HTTPS and HTTP, and what aws.egress names).",
    enforcementLevel: "mandatory",
    validateResource: [
        validateResourceOfType(aws.vpc.SecurityGroupEgressRule, (r, _args, report) => {
            if (worldOpen(r.cidrIpv4, r.cidrIpv6) && allTraffic(r.ipProtocol, r.fromPort, r.toPort))
                report(`egress ${r.ipProtocol} ${r.fromPort ?? "all"}-${r.toPort ?? "all"} to the world: name the ports the nodes need (aws.egress)`);
        }),
        validateResourceOfType(aws.ec2.SecurityGroupRule, (r, _args, report) => {
            const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
            if (r.type === "egress" && open && allTraffic(r.protocol, r.fromPort, r.toPort))
                report(`egress ${r.protocol} ${r.fromPort}-${r.toPort} to the world: name the ports the nodes need (aws.egress)`);
        }),
        validateResourceOfType(aws.ec2.SecurityGroup, (sg, _args, report) => {
            for (const r of sg.egress ?? []) {
                const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
                if (open && allTraffic(r.protocol, r.fromPort, r.toPort))
                    report(`inline egress ${r.protocol} ${r.fromPort}-${r.toPort} to the world: name the ports the nodes need (aws.egress)`);
            }
        }),
    ],
};

const hardenedInstances: ResourceValidationPolicy = {
    name: "ec2-imdsv2-encrypted-volumes",
    description: "EC2 instances require IMDSv2 and encrypt every volume.",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(aws.ec2.Instance, (i, _args, report) => {
        if (i.metadataOptions?.httpTokens !== "required") report('instance does not require IMDSv2 (metadataOptions.httpTokens must be "required")');
        if (i.rootBlockDevice?.encrypted !== true) report("instance root volume is not encrypted (rootBlockDevice.encrypted must be true)");
        for (const v of i.ebsBlockDevices ?? []) if (v.encrypted !== true) report(`EBS volume ${v.deviceName} is not encrypted`);
    }),
};

/** `KEY=value` env entries as a map. */
function envMap(envs: string[] | undefined): Map<string, string> {
    return new Map((envs ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
}

/** What the policies check of a Consul agent: its uploaded config file (the program's way), or its flags. */
interface ConsulAgentView {
    server: boolean;
    bootstrapExpect?: number;
    encrypt?: string;
    config?: Record<string, any>;
}

/** The Consul agent a container runs, undefined for any other container. */
export function consulAgentOf(c: { command?: string[]; uploads?: { file?: string; content?: string }[] }): ConsulAgentView | undefined {
    const command = c.command ?? [];
    if (command[0] !== "agent") return undefined;
    const file = (c.uploads ?? []).find((u) => /^\/consul\/config\/[^/]+\.json$/.test(u.file ?? "") && u.content !== undefined);
    if (file) {
        let config: Record<string, any>;
        try {
            config = JSON.parse(String(file.content));
        } catch {
            return { server: false, config: {} };
        }
        return { server: config.server === true, bootstrapExpect: config.bootstrap_expect, encrypt: config.encrypt, config };
    }
    const flag = (name: string) => command.find((a) => a.startsWith(`-${name}=`))?.slice(name.length + 2);
    const expect = flag("bootstrap-expect");
    return { server: command.includes("-server"), bootstrapExpect: expect === undefined ? undefined : Number(expect), encrypt: flag("encrypt") };
}

/**
 * Names of environment variables that hold a secret: a container's environment is in
 * `docker inspect` and in the Docker API (which Registrator reads through the socket proxy).
 */
export const SECRET_ENV_NAME = /(^|_)(TOKEN|PASSWORD|PASSWD|SECRET|PASSPHRASE|PRIVATE_KEY|ENCRYPT_KEY|HMAC_KEY)$/;

/** The content of a container's upload at `file`, if it has one. */
function uploadContent(c: { uploads?: { file?: string; content?: string }[] }, file: string | undefined): string | undefined {
    if (file === undefined) return undefined;
    const u = (c.uploads ?? []).find((x) => x.file === file);
    return u?.content === undefined ? undefined : String(u.content);
}

const strongCredentials: ResourceValidationPolicy = {
    name: "credentials-strong",
    description:
        "No secret in a container's environment (uploaded files instead); the gateway's stats password and Consul's gossip key are set, strong and never a known default. " +
        "(Policies see secrets unwrapped; that they are Pulumi secrets is asserted by the program's graph tests.)",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(docker.Container, (c, _args, report) => {
        const env = envMap(c.envs);
        for (const [name, value] of env) {
            if (SECRET_ENV_NAME.test(name) && value !== "")
                report(`container ${c.name ?? ""}: ${name} in its environment, which \`docker inspect\` shows: upload it as a file (${name}_FILE names it)`);
        }
        if (env.has("STATS_USER") || env.has("STATS_PASSWORD_FILE")) {
            const password = (uploadContent(c, env.get("STATS_PASSWORD_FILE")) ?? "").replace(/\r?\n$/, "");
            if (password.length < 16 || WEAK_PASSWORDS.has(password.toLowerCase())) {
                report(
                    `container ${c.name ?? ""}: the stats password (the file STATS_PASSWORD_FILE names) must be at least 16 characters and not a known default`,
                );
            }
        }
        const agent = consulAgentOf(c);
        if (agent && (!agent.encrypt || Buffer.from(agent.encrypt, "base64").length !== 32)) {
            report(`Consul agent ${c.name ?? ""} runs without a 32-byte gossip encryption key (encrypt)`);
        }
    }),
};

/** Bytes in a Docker log size ("10m", "512k", "1g", as the json-file driver reads it); undefined unless positive. */
export function logSizeBytes(value: unknown): number | undefined {
    const m = typeof value === "string" ? /^([0-9]+(\.[0-9]+)?) ?([kmgtp])?i?b?$/i.exec(value) : null;
    if (!m) return undefined;
    const bytes = Number(m[1]) * 1000 ** " kmgtp".indexOf((m[3] ?? " ").toLowerCase());
    return bytes > 0 ? bytes : undefined;
}

const containerLogLimits: ResourceValidationPolicy = {
    name: "container-log-limits",
    description:
        "Every container keeps its logs within a bound: the json-file driver with max-size (and a positive max-file if set), or the local driver, which rotates by default.",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(docker.Container, (c, _args, report) => {
        // Unset, the node's daemon default decides: an unbounded json-file unless someone changed it.
        if (c.logDriver !== "json-file" && c.logDriver !== "local") {
            report(
                `container ${c.name ?? ""}: log driver ${c.logDriver === undefined ? "unset (the daemon's default)" : `"${c.logDriver}"`} has no size limit the stack controls; use json-file with max-size/max-file, or local`,
            );
            return;
        }
        const opts = c.logOpts ?? {};
        // local rotates by default (5 files of 20 MB); json-file only with max-size.
        if ((c.logDriver === "json-file" || opts["max-size"] !== undefined) && logSizeBytes(opts["max-size"]) === undefined) {
            report(
                `container ${c.name ?? ""}: ${c.logDriver} logs need a positive max-size, else they grow without limit (logOpts max-size ${JSON.stringify(opts["max-size"] ?? null)})`,
            );
        }
        if (opts["max-file"] !== undefined && !/^[1-9][0-9]*$/.test(opts["max-file"])) {
            report(`container ${c.name ?? ""}: logOpts max-file ${JSON.stringify(opts["max-file"])} is not a positive number of files`);
        }
    }),
};

const oddConsulServers: StackValidationPolicy = {
    name: "consul-servers-odd",
    description: "Consul runs an odd number of servers, each expecting exactly that many.",
    enforcementLevel: "mandatory",
    validateStack: (args, report) => {
        const servers = args.resources
            .filter((r) => r.isType(docker.Container))
            .map((r) => consulAgentOf(r.props as { command?: string[] }))
            .filter((a): a is ConsulAgentView => a !== undefined && a.server);
        if (servers.length === 0) return;
        if (servers.length % 2 === 0) report(`${servers.length} Consul servers: an even number loses quorum as easily as one fewer`);
        for (const s of servers) {
            if (s.bootstrapExpect !== servers.length)
                report(
                    `a Consul server has ${s.bootstrapExpect === undefined ? "no bootstrap_expect" : `bootstrap_expect ${s.bootstrapExpect}`} but ${servers.length} servers exist`,
                );
        }
    },
};

const consulSecured: ResourceValidationPolicy = {
    name: "consul-acl-tls",
    description: "Every Consul agent runs with ACLs (default deny) and TLS that verifies both ends and the servers' names, its secrets in a config file.",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(docker.Container, (c, _args, report) => {
        const agent = consulAgentOf(c);
        if (!agent) return;
        const name = c.name ?? "";
        if (!agent.config) {
            report(
                `Consul agent ${name} is configured by flags: ACLs and TLS need its config file (/consul/config/*.json), and flags put secrets on the command line`,
            );
            return;
        }
        const acl = agent.config.acl ?? {};
        if (acl.enabled !== true || acl.default_policy !== "deny")
            report(
                `Consul agent ${name}: ACLs must be enabled with default_policy "deny" (acl.enabled ${acl.enabled}, default_policy ${JSON.stringify(acl.default_policy)})`,
            );
        const tls = agent.config.tls ?? {};
        const d = tls.defaults ?? {};
        if (d.verify_incoming !== true || d.verify_outgoing !== true || tls.internal_rpc?.verify_server_hostname !== true) {
            report(`Consul agent ${name}: TLS must set verify_incoming, verify_outgoing and verify_server_hostname`);
        }
        // Plain HTTP: the agent's loopback and UNIX sockets (in a volume) only, never an address others reach.
        const http = String(agent.config.addresses?.http ?? "0.0.0.0")
            .split(/\s+/)
            .filter(Boolean);
        if (!http.every((a) => a === "127.0.0.1" || a.startsWith("unix://"))) {
            report(
                `Consul agent ${name}: plain HTTP must answer only on the agent's loopback or a UNIX socket (addresses.http ${JSON.stringify(agent.config.addresses?.http ?? null)})`,
            );
        }
    }),
};

/** The stack's name in a resource's URN (urn:pulumi:<stack>::<project>::...), undefined when it has none. */
export function stackOfUrn(urn: string): string | undefined {
    return /^urn:pulumi:([^:]+)::/.exec(urn)?.[1];
}

const edgeTls: StackValidationPolicy = {
    name: "edge-tls",
    description:
        "The edge serves HTTPS: every gateway has a certificate source (gateway.tls.source), and a load balancer that listens on 80 listens on 443 too; only the stacks named in plainHttpStacks (default dev) may serve plain HTTP only.",
    enforcementLevel: "mandatory",
    configSchema: { properties: { plainHttpStacks: { type: "array", items: { type: "string" }, default: ["dev"] } } },
    validateStack: (args, report) => {
        const allowed = new Set(args.getConfig<ServiceDiscoveryPolicyConfig>().plainHttpStacks ?? ["dev"]);
        const listeners: number[] = [];
        for (const r of args.resources) {
            const stack = stackOfUrn(r.urn);
            if (stack !== undefined && allowed.has(stack)) continue;
            const l = r.asType(aws.lb.Listener);
            if (l && typeof l.port === "number") listeners.push(l.port);
            const c = r.asType(docker.Container);
            if (!c) continue;
            const env = envMap(known(() => c.envs) ?? []);
            if (!env.has("STATS_USER")) continue; // not a gateway
            const source = env.get("GATEWAY_TLS_SOURCE") ?? "none";
            if (source === "none") {
                report(
                    `gateway ${c.name ?? r.name} serves plain HTTP only (GATEWAY_TLS_SOURCE ${source})${stack ? ` on stack ${stack}` : ""}: set gateway.tls.source (acme for a real certificate, provided, or self-signed); only the stacks in plainHttpStacks (${[...allowed].join(", ")}) may have an edge without TLS`,
                    r.urn,
                );
            }
        }
        if (listeners.includes(80) && !listeners.includes(443)) {
            report("the load balancer listens on 80 but not on 443: the edge has no HTTPS (gateway.tls.source none on target aws)");
        }
    },
};

/** The component type of a versioned service (components/service.ts): the containers it parents are its replicas. */
export const SERVICE_COMPONENT_TYPE = "service-discovery:service:VersionedService";

/**
 * Whether a URN (urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>) is a container
 * whose parent is a versioned service: a service replica.
 */
export function isServiceReplicaUrn(urn: string): boolean {
    const parts = urn.split("::");
    if (parts.length < 4 || !parts[0].startsWith("urn:pulumi:")) return false;
    const types = parts[2].split("$");
    return types.length >= 2 && types[types.length - 1] === "docker:index/container:Container" && types[types.length - 2] === SERVICE_COMPONENT_TYPE;
}

/**
 * Capabilities a replica may be given back outside the relaxed stacks: Docker's own default set
 * without NET_RAW (raw and packet sockets: ARP spoofing on a network the replica shares: its service's own, or the node network with sharedNetwork).
 */
export const REPLICA_SAFE_CAPABILITIES: readonly string[] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/** A Docker capability name as the engine reads it: upper case, without CAP_. */
function capabilityName(name: string): string {
    return name.toUpperCase().replace(/^CAP_/, "");
}

/** MiB in a tmpfs mount's size= option (k, m, g suffixes; bytes without one); undefined without a positive size. */
export function tmpfsSizeMb(options: string): number | undefined {
    const m = /(?:^|,)size=([0-9]+)([kmg]?)(?:,|$)/i.exec(options);
    if (!m) return undefined;
    const mb = Number(m[1]) * { "": 1 / 1048576, k: 1 / 1024, m: 1, g: 1024 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
    return mb > 0 ? mb : undefined;
}

/** The config of the replica policies: the stacks that may relax them (policy pack config relaxedReplicaStacks). */
const RELAXED_REPLICA_STACKS_SCHEMA = {
    properties: { relaxedReplicaStacks: { type: "array" as const, items: { type: "string" as const }, default: ["dev"] } },
};

/** The stacks that may relax the replica policies: relaxedReplicaStacks, default dev. */
function relaxedReplicaStacks(args: { getConfig<T extends object>(): T }): string[] {
    return args.getConfig<ServiceDiscoveryPolicyConfig>().relaxedReplicaStacks ?? ["dev"];
}

/** Stack names for a message: comma-separated, "none" for none. */
function namesOrNone(names: readonly string[]): string {
    return names.join(", ") || "none";
}

const replicasContained: ResourceValidationPolicy = {
    name: "service-replicas-contained",
    description:
        "Every service replica runs contained: all capabilities dropped (only Docker's defaults but NET_RAW may be given back), no-new-privileges, " +
        "not privileged and no host namespace, a read-only root filesystem with size-bounded tmpfs folders, a memory limit without swap and a CPU limit; " +
        "only the stacks named in relaxedReplicaStacks (default dev) may relax these.",
    enforcementLevel: "mandatory",
    configSchema: RELAXED_REPLICA_STACKS_SCHEMA,
    validateResource: validateResourceOfType(docker.Container, (c, args, report) => {
        if (!isServiceReplicaUrn(args.urn)) return;
        const stack = stackOfUrn(args.urn);
        const relaxed = relaxedReplicaStacks(args);
        if (stack !== undefined && relaxed.includes(stack)) return;
        const name = `service replica ${known(() => c.name) ?? args.name}${stack ? ` on stack ${stack}` : ""}`;
        const fix = `(only the stacks in relaxedReplicaStacks, ${namesOrNone(relaxed)}, may relax it)`;
        if (c.privileged === true) report(`${name} is privileged ${fix}`);
        for (const mode of ["networkMode", "pidMode", "ipcMode", "usernsMode"] as const) {
            if (c[mode] === "host") report(`${name} shares the node's namespace (${mode} host) ${fix}`);
        }
        const drops = (c.capabilities?.drops ?? []).map(capabilityName);
        if (!drops.includes("ALL")) report(`${name} keeps Docker's default capabilities: capabilities.drops must include ALL ${fix}`);
        for (const add of (c.capabilities?.adds ?? []).map(capabilityName)) {
            if (!REPLICA_SAFE_CAPABILITIES.includes(add)) {
                report(`${name} is given capability ${add} (capAdd); allowed: ${REPLICA_SAFE_CAPABILITIES.join(", ")} ${fix}`);
            }
        }
        if (!(c.securityOpts ?? []).some((o) => /^no-new-privileges(:true|=true)?$/.test(o))) {
            report(`${name} runs without securityOpts no-new-privileges:true: a setuid binary would gain privileges`);
        }
        if (c.readOnly !== true) report(`${name} may write its root filesystem, on the node's disk (readOnlyRootFilesystem false) ${fix}`);
        const memory = typeof c.memory === "number" && c.memory > 0 ? c.memory : undefined;
        if (memory === undefined) report(`${name} has no memory limit (memoryMb) ${fix}`);
        else if (c.memorySwap !== memory) report(`${name} may swap: memorySwap ${c.memorySwap ?? "unset"} is not its memory limit ${memory} ${fix}`);
        const cpus = Number(c.cpus);
        if (c.cpus === undefined || !(cpus > 0)) report(`${name} has no CPU limit (cpus) ${fix}`);
        for (const [path, options] of Object.entries(c.tmpfs ?? {})) {
            const size = tmpfsSizeMb(String(options));
            if (size === undefined) report(`${name}: tmpfs ${path} has no size: it could take half the node's memory ${fix}`);
            else if (memory !== undefined && size > memory) report(`${name}: tmpfs ${path} may hold ${size} MiB, more than the memory limit ${memory} ${fix}`);
        }
    }),
};

/** The type of @pulumi/command's local command: a replica's process limit is one (components/service.ts). */
const LOCAL_COMMAND_TYPE = "command:local:Command";

/**
 * The URN of the command that sets a replica container's process limit: beside the container, under
 * the same service component, named after it with `-pids` (components/service.ts). Undefined for
 * a URN that is not a replica's.
 */
export function pidsCommandUrnOf(replicaUrn: string): string | undefined {
    if (!isServiceReplicaUrn(replicaUrn)) return undefined;
    const parts = replicaUrn.split("::");
    const types = parts[2].split("$");
    types[types.length - 1] = LOCAL_COMMAND_TYPE;
    return [...parts.slice(0, 2), types.join("$"), `${parts.slice(3).join("::")}-pids`].join("::");
}

// The Docker provider cannot set a container's PidsLimit: the program gives each replica a
// command that does (`docker update --pids-limit`, components/containment.ts). Without it, a
// fork bomb in one replica takes every process slot of the node, the Consul server's included.
const replicasPidsLimited: StackValidationPolicy = {
    name: "service-replicas-pids-limited",
    description:
        "Every service replica has its process limit before it starts: created with start false, and the command beside it that runs `docker update --pids-limit` with a limit (services[i].pidsLimit) and then starts it; " +
        "only the stacks named in relaxedReplicaStacks (default dev) may do without.",
    enforcementLevel: "mandatory",
    configSchema: RELAXED_REPLICA_STACKS_SCHEMA,
    validateStack: (args, report) => {
        const relaxed = relaxedReplicaStacks(args);
        const fix = `(the program declares it for every replica; only the stacks in relaxedReplicaStacks, ${namesOrNone(relaxed)}, may do without)`;
        const byUrn = new Map(args.resources.map((r) => [r.urn, r]));
        for (const r of args.resources) {
            const c = r.asType(docker.Container);
            const commandUrn = c ? pidsCommandUrnOf(r.urn) : undefined;
            if (!c || commandUrn === undefined) continue;
            const stack = stackOfUrn(r.urn);
            if (stack !== undefined && relaxed.includes(stack)) continue;
            const who = `service replica ${known(() => c.name) ?? r.name}${stack ? ` on stack ${stack}` : ""}`;
            // Started by the provider, it would run without its limit until the command ran.
            if (known(() => c.start) !== false) report(`${who} is started before its process limit is set (start must be false: its command starts it) ${fix}`);
            const command = byUrn.get(commandUrn);
            if (command === undefined || command.type !== LOCAL_COMMAND_TYPE) {
                report(`${who} has no process limit: no command ${commandUrn.slice(commandUrn.lastIndexOf("::") + 2)} sets its PidsLimit ${fix}`);
                continue;
            }
            const props = command.props as { create?: unknown; environment?: Record<string, unknown> };
            const limit = known(() => props.environment?.SD_PIDS_LIMIT);
            const create = known(() => props.create);
            if (typeof create !== "string" || !create.includes('update --pids-limit "$SD_PIDS_LIMIT"')) {
                report(`${who}: its command does not run docker update --pids-limit ${fix}`);
            } else if (typeof limit !== "string" || !/^[1-9][0-9]*$/.test(limit)) {
                report(`${who}: its process limit ${JSON.stringify(limit)} is not a positive number (SD_PIDS_LIMIT) ${fix}`);
            }
        }
    },
};

/** The component type of a gateway (components/gateway.ts): the container it parents is the edge node's gateway. */
export const GATEWAY_COMPONENT_TYPE = "service-discovery:gateway:Gateway";

/** Whether a URN is a container whose parent is a gateway component. */
export function isGatewayUrn(urn: string): boolean {
    const parts = urn.split("::");
    if (parts.length < 4) return false;
    const types = parts[2].split("$");
    return types.length >= 2 && types[types.length - 1] === "docker:index/container:Container" && types[types.length - 2] === GATEWAY_COMPONENT_TYPE;
}

/**
 * The one subnet an agent config's address setting is bound inside: a go-sockaddr template
 * `{{ GetAllInterfaces | include "network" "<cidr>" | attr "address" }}` (components/consul-agent-config.ts,
 * addressesIn), else undefined (every address, or one the policy cannot tell).
 */
export function boundSubnet(setting: unknown): string | undefined {
    const m = typeof setting === "string" ? /^\{\{ GetAllInterfaces \| include "network" "([0-9./]+)" \| attr "address" \}\}$/.exec(setting) : null;
    return m?.[1];
}

// A replica on a network where another service's replica, or anything else of the stack but the
// gateway, is reachable, can reach it on any port (components/service-networks.ts). The Consul
// agent may join a service network (one node: it checks the replicas there) only bound to
// another network's subnet: nothing of it listens where the replica is.
const replicasIsolated: StackValidationPolicy = {
    name: "service-replicas-isolated",
    description:
        "Every service replica is on networks only its own service's replicas and the gateway share (a network of its own: services[i].sharedNetwork false); " +
        "the Consul agent may be there too only with its listeners bound to another network; only the stacks named in relaxedReplicaStacks (default dev) may relax this.",
    enforcementLevel: "mandatory",
    configSchema: RELAXED_REPLICA_STACKS_SCHEMA,
    validateStack: (args, report) => {
        const relaxed = relaxedReplicaStacks(args);
        const fix = `(services[i].sharedNetwork true, or a container joined to it; only the stacks in relaxedReplicaStacks, ${namesOrNone(relaxed)}, may relax it)`;
        // The subnets the stack declares for its networks (the node network's); the engine picks the others.
        const subnets = new Map<string, string>();
        for (const r of args.resources) {
            const n = r.asType(docker.Network);
            const subnet = n ? known(() => n.ipamConfigs?.[0]?.subnet) : undefined;
            if (n && typeof n.name === "string" && subnet) subnets.set(n.name, subnet);
        }
        type Member = { name: string; urn: string; networks: string[]; service?: string; gateway: boolean; agentBound?: string; agent: boolean };
        const members: Member[] = [];
        for (const r of args.resources) {
            const c = r.asType(docker.Container);
            if (!c) continue;
            const networks = (known(() => c.networksAdvanced) ?? []).flatMap((n) => {
                const name = known(() => n.name);
                return typeof name === "string" ? [name] : [];
            });
            const replica = isServiceReplicaUrn(r.urn);
            const agent = consulAgentOf({ command: known(() => c.command), uploads: known(() => c.uploads) });
            const config = agent?.config;
            const bind = config ? boundSubnet(config.bind_addr) : undefined;
            members.push({
                name: known(() => c.name) ?? r.name,
                urn: r.urn,
                networks,
                service: replica ? (envMap(known(() => c.envs)).get("SERVICE_NAME") ?? r.name.replace(/-[0-9]+$/, "")) : undefined,
                gateway: isGatewayUrn(r.urn),
                agent: agent !== undefined,
                // Bound only when gossip, RPC, the API and DNS all are, inside one subnet.
                agentBound:
                    config && bind !== undefined && [config.client_addr, config.addresses?.https, config.addresses?.dns].every((x) => boundSubnet(x) === bind)
                        ? bind
                        : undefined,
            });
        }
        for (const r of members) {
            if (r.service === undefined) continue;
            const stack = stackOfUrn(r.urn);
            if (stack !== undefined && relaxed.includes(stack)) continue;
            const who = `service replica ${r.name}${stack ? ` on stack ${stack}` : ""}`;
            if (r.networks.length === 0)
                report(`${who} joins no network of the stack: it would be on Docker's default bridge, which every container without one shares ${fix}`);
            for (const network of r.networks) {
                for (const other of members) {
                    if (other === r || !other.networks.includes(network)) continue;
                    if (other.service === r.service || other.gateway) continue;
                    if (other.agent && other.agentBound !== undefined && other.agentBound !== subnets.get(network)) continue;
                    const what =
                        other.service !== undefined
                            ? `service replica ${other.name} of ${other.service}`
                            : other.agent
                              ? `the Consul agent ${other.name}, which listens there`
                              : `container ${other.name}`;
                    report(`${who} shares network ${network} with ${what}: it can reach it on any port ${fix}`);
                }
            }
        }
    },
};

/** Host addresses that publish a port on every address of a node; Docker's own default when a port names none. */
const EVERY_ADDRESS = new Set(["", "0.0.0.0", "::", "[::]"]);

/** The published ports (host port set) of a container that face every address of the node: "80/tcp"... */
export function portsOnEveryAddress(ports: readonly { internal?: number; external?: number; ip?: string; protocol?: string }[] | undefined): string[] {
    return (ports ?? []).filter((p) => EVERY_ADDRESS.has(p.ip ?? "")).map((p) => `${p.external ?? `(any) for ${p.internal}`}/${p.protocol ?? "tcp"}`);
}

// Docker publishes a port with its own iptables rules, before a host firewall such as ufw sees
// the packet: a port on every address faces every network the node is on, the LAN included.
const publishedPortsClosed: ResourceValidationPolicy = {
    name: "published-ports-not-on-every-address",
    description:
        "No container publishes a port on every address of its node (0.0.0.0, or no address: Docker's published ports bypass ufw and similar firewalls): " +
        "the program publishes on the loopback (local) or the node's own address unless the stack sets bindAddress 0.0.0.0; " +
        "only the stacks named in allAddressesStacks (default dev) may, with a firewall in front (docs/security.md, Published ports).",
    enforcementLevel: "mandatory",
    configSchema: { properties: { allAddressesStacks: { type: "array", items: { type: "string" }, default: ["dev"] } } },
    validateResource: validateResourceOfType(docker.Container, (c, args, report) => {
        const stack = stackOfUrn(args.urn);
        const allowed = args.getConfig<ServiceDiscoveryPolicyConfig>().allAddressesStacks ?? ["dev"];
        if (stack !== undefined && allowed.includes(stack)) return;
        // A node's address is unknown in a preview before its VM exists: `pulumi up` checks that port.
        const ports: { internal?: number; external?: number; ip?: string; protocol?: string }[] = [];
        for (const p of known(() => c.ports) ?? []) {
            let ip: string | undefined;
            try {
                ip = p.ip;
            } catch (e) {
                if (e instanceof UnknownValueError) continue;
                throw e;
            }
            ports.push({ internal: known(() => p.internal), external: known(() => p.external), ip, protocol: known(() => p.protocol) });
        }
        const open = portsOnEveryAddress(ports);
        if (open.length === 0) return;
        report(
            `container ${known(() => c.name) ?? args.name}${stack ? ` on stack ${stack}` : ""} publishes ${open.join(", ")} on every address of its node: ` +
                "Docker's published ports bypass a host firewall such as ufw, so the LAN (or the internet) reaches them; remove gateway.bindAddress and consul.bindAddress " +
                `(the node's own address; 127.0.0.1 on local), or put a firewall in front (DOCKER-USER rules, docs/security.md) and name the stack in allAddressesStacks (${namesOrNone(allowed)})`,
        );
    }),
};

export const policies = [
    pinnedImages,
    digestPinnedBaseImages,
    digestPinnedPulledImages,
    dockerSocketOnlyInProxy,
    onlyGatewayPublic,
    egressLimited,
    hardenedInstances,
    strongCredentials,
    oddConsulServers,
    containerLogLimits,
    consulSecured,
    replicasContained,
    replicasPidsLimited,
    replicasIsolated,
    edgeTls,
    publishedPortsClosed,
];
