// Rules every stack must pass before `pulumi up`. Each is a plain Pulumi policy object
// (mandatory); the tests feed them resources that pass and resources that fail.
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import { ResourceValidationPolicy, StackValidationPolicy, validateResourceOfType } from "@pulumi/policy";

/** Config the pack accepts (`pulumi preview --policy-pack-config`): the one public port. */
export interface ServiceDiscoveryPolicyConfig {
    gatewayPort: number;
}

const DOCKER_SOCKETS = ["/var/run/docker.sock", "/run/docker.sock"];
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
            if (typeof c.image === "string" && !isPinnedImage(c.image)) report(`container ${c.name ?? ""} runs image "${c.image}" without a pinned tag or digest`);
        }),
        validateResourceOfType(docker.RemoteImage, (img, _args, report) => {
            if (!isPinnedImage(img.name)) report(`image "${img.name}" is pulled without a pinned tag or digest`);
        }),
        validateResourceOfType(dockerBuild.Image, (img, _args, report) => {
            for (const tag of img.tags ?? []) if (!isPinnedImage(tag)) report(`built image is tagged "${tag}" (no tag, or latest)`);
        }),
    ],
};

const readOnlyDockerSocket: ResourceValidationPolicy = {
    name: "docker-socket-read-only",
    description: "The Docker socket is only ever mounted read-only.",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(docker.Container, (c, _args, report) => {
        for (const v of c.volumes ?? []) {
            if (v.hostPath && DOCKER_SOCKETS.includes(v.hostPath) && v.readOnly !== true) report(`container ${c.name ?? ""} mounts ${v.hostPath} writable`);
        }
        for (const m of c.mounts ?? []) {
            if (m.source && DOCKER_SOCKETS.includes(m.source) && m.readOnly !== true) report(`container ${c.name ?? ""} mounts ${m.source} writable`);
        }
    }),
};

function worldOpen(cidr4?: string, cidr6?: string): boolean {
    return cidr4 === "0.0.0.0/0" || cidr6 === "::/0";
}

const onlyGatewayPublic: ResourceValidationPolicy = {
    name: "only-gateway-port-public",
    description: "No security-group rule opens anything but the gateway port (TCP) to 0.0.0.0/0 or ::/0.",
    enforcementLevel: "mandatory",
    configSchema: { properties: { gatewayPort: { type: "integer", default: 80 } } },
    validateResource: [
        validateResourceOfType(aws.vpc.SecurityGroupIngressRule, (r, args, report) => {
            const port = args.getConfig<ServiceDiscoveryPolicyConfig>().gatewayPort;
            if (worldOpen(r.cidrIpv4, r.cidrIpv6) && !(r.ipProtocol === "tcp" && r.fromPort === port && r.toPort === port)) {
                report(`ingress ${r.ipProtocol} ${r.fromPort ?? "all"}-${r.toPort ?? "all"} is open to the world; only tcp ${port} may be`);
            }
        }),
        validateResourceOfType(aws.ec2.SecurityGroupRule, (r, args, report) => {
            const port = args.getConfig<ServiceDiscoveryPolicyConfig>().gatewayPort;
            const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
            if (r.type === "ingress" && open && !(r.protocol === "tcp" && r.fromPort === port && r.toPort === port)) {
                report(`ingress ${r.protocol} ${r.fromPort}-${r.toPort} is open to the world; only tcp ${port} may be`);
            }
        }),
        validateResourceOfType(aws.ec2.SecurityGroup, (sg, args, report) => {
            const port = args.getConfig<ServiceDiscoveryPolicyConfig>().gatewayPort;
            for (const r of sg.ingress ?? []) {
                const open = (r.cidrBlocks ?? []).includes("0.0.0.0/0") || (r.ipv6CidrBlocks ?? []).includes("::/0");
                if (open && !(r.protocol === "tcp" && r.fromPort === port && r.toPort === port)) {
                    report(`inline ingress ${r.protocol} ${r.fromPort}-${r.toPort} is open to the world; only tcp ${port} may be`);
                }
            }
        }),
    ],
};

const hardenedInstances: ResourceValidationPolicy = {
    name: "ec2-imdsv2-encrypted-volumes",
    description: "EC2 instances require IMDSv2 and encrypt every volume.",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(aws.ec2.Instance, (i, _args, report) => {
        if (i.metadataOptions?.httpTokens !== "required") report("instance does not require IMDSv2 (metadataOptions.httpTokens must be \"required\")");
        if (i.rootBlockDevice?.encrypted !== true) report("instance root volume is not encrypted (rootBlockDevice.encrypted must be true)");
        for (const v of i.ebsBlockDevices ?? []) if (v.encrypted !== true) report(`EBS volume ${v.deviceName} is not encrypted`);
    }),
};

/** `KEY=value` env entries as a map. */
function envMap(envs: string[] | undefined): Map<string, string> {
    return new Map((envs ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
}

const strongCredentials: ResourceValidationPolicy = {
    name: "credentials-strong",
    description: "The gateway's stats password and Consul's gossip key are set, strong and never a known default. " +
        "(Policies see secrets unwrapped; that they are Pulumi secrets is asserted by the program's graph tests.)",
    enforcementLevel: "mandatory",
    validateResource: validateResourceOfType(docker.Container, (c, _args, report) => {
        const env = envMap(c.envs);
        if (env.has("STATS_USER") || env.has("STATS_PASSWORD")) {
            const password = env.get("STATS_PASSWORD") ?? "";
            if (password.length < 16 || WEAK_PASSWORDS.has(password.toLowerCase())) {
                report(`container ${c.name ?? ""}: STATS_PASSWORD must be at least 16 characters and not a known default`);
            }
        }
        const command = c.command ?? [];
        if (command[0] === "agent") {
            const key = command.find((a) => a.startsWith("-encrypt="))?.slice("-encrypt=".length);
            if (!key || Buffer.from(key, "base64").length !== 32) report(`Consul agent ${c.name ?? ""} runs without a 32-byte gossip encryption key (-encrypt)`);
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
            .map((r) => (r.props.command ?? []) as string[])
            .filter((cmd) => cmd[0] === "agent" && cmd.includes("-server"));
        if (servers.length === 0) return;
        if (servers.length % 2 === 0) report(`${servers.length} Consul servers: an even number loses quorum as easily as one fewer`);
        for (const cmd of servers) {
            const expect = cmd.find((a) => a.startsWith("-bootstrap-expect="));
            if (expect !== `-bootstrap-expect=${servers.length}`) report(`a Consul server has ${expect ?? "no -bootstrap-expect"} but ${servers.length} servers exist`);
        }
    },
};

export const policies = [pinnedImages, readOnlyDockerSocket, onlyGatewayPublic, hardenedInstances, strongCredentials, oddConsulServers];
