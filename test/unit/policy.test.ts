// The policy pack: each rule with resources that pass and resources that fail, called the way
// the policy server calls it (type, props, isType, getConfig, reportViolation), and the whole
// pack against the graphs the program declares for the shipped stacks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { policies } from "../../policy/policies";
import { devWith, evaluate, stackConfig, TEST_SSH_KEY } from "../support/program";

type Props = Record<string, any>;
interface Res { type: string; name: string; props: Props }

const CONTAINER = "docker:index/container:Container";
const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
const BUILD = "docker-build:index:Image";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule";
const SG = "aws:ec2/securityGroup:SecurityGroup";
const INSTANCE = "aws:ec2/instance:Instance";
const KEY = Buffer.alloc(32, 9).toString("base64");

function isTypeOf(type: string) {
    return (cls: any) => cls.__pulumiType === type;
}

/** Violations of one policy for one resource, or for a stack of resources. */
function violations(policyName: string, resources: Res[], config: Record<string, unknown> = { gatewayPort: 80 }): string[] {
    const policy: any = policies.find((p) => p.name === policyName);
    assert.ok(policy, `policy ${policyName} exists`);
    const found: string[] = [];
    const report = (message: string) => found.push(message);
    if (policy.validateStack) {
        policy.validateStack({
            resources: resources.map((r) => ({ type: r.type, name: r.name, urn: `urn:${r.name}`, props: r.props, isType: isTypeOf(r.type), asType: (c: any) => (isTypeOf(r.type)(c) ? r.props : undefined) })),
            getConfig: () => config,
        }, report);
        return found;
    }
    const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
    for (const r of resources) {
        for (const v of validations) {
            v({ type: r.type, name: r.name, urn: `urn:${r.name}`, props: r.props, opts: {}, isType: isTypeOf(r.type), asType: (c: any) => (isTypeOf(r.type)(c) ? r.props : undefined), getConfig: () => config, notApplicable: () => undefined }, report);
        }
    }
    return found;
}

const container = (props: Props): Res => ({ type: CONTAINER, name: "c", props: { name: "c", image: "example/app:1.0", ...props } });

describe("policy: pinned-image-tags", () => {
    it("passes tags, digests and image IDs", () => {
        assert.deepEqual(violations("pinned-image-tags", [
            container({ image: "example/app:1.0" }),
            container({ image: `example/app@sha256:${"a".repeat(64)}` }),
            container({ image: `sha256:${"b".repeat(64)}` }),
            { type: REMOTE_IMAGE, name: "i", props: { name: "registry.example.com:5000/team/app:2.3" } },
            { type: BUILD, name: "b", props: { tags: ["service-discovery/gateway:dev"] } },
        ]), []);
    });
    it("fails floating and missing tags", () => {
        assert.equal(violations("pinned-image-tags", [container({ image: "nginx" })]).length, 1);
        assert.equal(violations("pinned-image-tags", [container({ image: "nginx:latest" })]).length, 1);
        assert.equal(violations("pinned-image-tags", [{ type: REMOTE_IMAGE, name: "i", props: { name: "registry.example.com:5000/app" } }]).length, 1);
        assert.equal(violations("pinned-image-tags", [{ type: BUILD, name: "b", props: { tags: ["gateway:latest", "gateway"] } }]).length, 2);
    });
});

describe("policy: docker-socket-read-only", () => {
    it("passes a read-only socket and unrelated mounts", () => {
        assert.deepEqual(violations("docker-socket-read-only", [container({
            volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/tmp/docker.sock", readOnly: true }, { volumeName: "data", containerPath: "/data" }],
        })]), []);
    });
    it("fails a writable socket, as a volume or a mount", () => {
        assert.equal(violations("docker-socket-read-only", [container({ volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/tmp/docker.sock" }] })]).length, 1);
        assert.equal(violations("docker-socket-read-only", [container({ mounts: [{ source: "/run/docker.sock", target: "/var/run/docker.sock", type: "bind", readOnly: false }] })]).length, 1);
    });
});

describe("policy: only-gateway-port-public", () => {
    const ingress = (props: Props): Res => ({ type: INGRESS, name: "r", props: { securityGroupId: "sg", ...props } });
    it("passes the gateway port from anywhere and anything from a narrow CIDR or the group itself", () => {
        assert.deepEqual(violations("only-gateway-port-public", [
            ingress({ ipProtocol: "tcp", fromPort: 80, toPort: 80, cidrIpv4: "0.0.0.0/0" }),
            ingress({ ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv4: "203.0.113.7/32" }),
            ingress({ ipProtocol: "udp", fromPort: 8301, toPort: 8301, referencedSecurityGroupId: "sg" }),
            { type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 80, toPort: 80, cidrBlocks: ["0.0.0.0/0"] }] } },
        ]), []);
        assert.deepEqual(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 8080, toPort: 8080, cidrIpv4: "0.0.0.0/0" })], { gatewayPort: 8080 }), []);
    });
    it("fails any other port open to the world, in every rule form", () => {
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 1936, toPort: 1936, cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv6: "::/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "-1", cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 0, toPort: 65535, cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [{ type: SG_RULE, name: "r", props: { type: "ingress", protocol: "tcp", fromPort: 8500, toPort: 8500, cidrBlocks: ["0.0.0.0/0"] } }]).length, 1);
        assert.equal(violations("only-gateway-port-public", [{ type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] }] } }]).length, 1);
    });
});

describe("policy: ec2-imdsv2-encrypted-volumes", () => {
    const good = { metadataOptions: { httpTokens: "required" }, rootBlockDevice: { encrypted: true }, ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: true }] };
    it("passes IMDSv2 with encrypted volumes", () => {
        assert.deepEqual(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: good }]), []);
    });
    it("fails IMDSv1, an unencrypted root and an unencrypted data volume", () => {
        assert.equal(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: { ...good, metadataOptions: { httpTokens: "optional" } } }]).length, 1);
        assert.equal(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: { ...good, rootBlockDevice: {} } }]).length, 1);
        assert.equal(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: { ...good, ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: false }] } }]).length, 1);
    });
});

describe("policy: credentials-strong", () => {
    it("passes a generated password and a 32-byte gossip key", () => {
        assert.deepEqual(violations("credentials-strong", [
            container({ envs: ["STATS_USER=stats", "STATS_PASSWORD=Zq8XbW3kP0tLm2Rv9sYc4HnJ"] }),
            container({ command: ["agent", "-server", `-encrypt=${KEY}`] }),
        ]), []);
    });
    it("fails a short or default password, and a Consul agent without a proper key", () => {
        assert.equal(violations("credentials-strong", [container({ envs: ["STATS_USER=stats", "STATS_PASSWORD=admin"] })]).length, 1);
        assert.equal(violations("credentials-strong", [container({ envs: ["STATS_USER=stats"] })]).length, 1);
        assert.equal(violations("credentials-strong", [container({ command: ["agent", "-server"] })]).length, 1);
        assert.equal(violations("credentials-strong", [container({ command: ["agent", "-encrypt=c2hvcnQ="] })]).length, 1);
    });
});

describe("policy: consul-servers-odd", () => {
    const server = (n: number) => container({ command: ["agent", "-server", `-bootstrap-expect=${n}`, `-encrypt=${KEY}`] });
    const agent = container({ command: ["agent", `-encrypt=${KEY}`] });
    it("passes 1 or 3 servers with agents", () => {
        assert.deepEqual(violations("consul-servers-odd", [server(1)]), []);
        assert.deepEqual(violations("consul-servers-odd", [server(3), server(3), server(3), agent, agent]), []);
    });
    it("fails an even count and a mismatched bootstrap-expect", () => {
        assert.ok(violations("consul-servers-odd", [server(2), server(2)]).length >= 1);
        assert.equal(violations("consul-servers-odd", [server(3), server(3), server(1)]).length, 1);
    });
});

describe("policy: the shipped stacks pass", () => {
    const unwrap = (v: any): any => (v && typeof v === "object" && "$secret" in v ? unwrap(v.$secret)
        : Array.isArray(v) ? v.map(unwrap) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)])) : v);
    for (const [title, config] of [
        ["dev", () => stackConfig("dev")],
        ["aws with 5 nodes", () => devWith({ target: "aws", nodeCount: 5, aws: { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY } })],
    ] as const) {
        it(title, async () => {
            const p = await evaluate(config());
            assert.equal(p.error, null);
            // As the policy server sees them: secrets unwrapped, generated values as a provider would make them.
            const resources = p.resources.map((r) => ({ type: r.type, name: r.name, props: unwrap(r.inputs) }));
            for (const r of resources) {
                if (r.name === "secrets-stats-password") continue;
                const env: string[] | undefined = r.props.envs;
                if (env) r.props.envs = env.map((e) => (e.startsWith("STATS_PASSWORD=generated") ? "STATS_PASSWORD=Zq8XbW3kP0tLm2Rv9sYc4HnJaB7d" : e));
            }
            for (const policy of policies) {
                assert.deepEqual(violations(policy.name, resources), [], `${policy.name} on ${title}`);
            }
        });
    }
});
