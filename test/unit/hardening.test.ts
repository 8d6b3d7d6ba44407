// Limits that hold on every shipped stack, under Pulumi's mocks: every container has log
// rotation, a preview never builds an image on a remote node, and on AWS containers cannot
// reach the instance metadata unless Consul's cloud auto-join is chosen.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { parseSettings } from "../../components/config";
import { LOG_LIMITS } from "../../components/container-defaults";
import { devWith, evaluate, shippedAws, Program, stackConfig, TEST_SSH_KEY } from "../support/program";

const BUILD = "docker-build:index:Image";
const INSTANCE = "aws:ec2/instance:Instance";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
const ADMIN = "203.0.113.7/32";

const STACKS: { title: string; stack: string; remote: boolean; config: () => Record<string, string> }[] = [
    { title: "Pulumi.dev.yaml (local)", stack: "dev", remote: false, config: () => stackConfig("dev") },
    { title: "Pulumi.aws.yaml", stack: "aws", remote: true, config: () => shippedAws() },
    { title: "virtualbox, 3 nodes", stack: "vbox", remote: true, config: () => devWith({ target: "virtualbox", nodeCount: 3 }) },
    {
        title: "hosts (ssh and tcp)",
        stack: "hosts",
        remote: true,
        config: () =>
            devWith({
                target: "hosts",
                nodeCount: undefined,
                hosts: [
                    { name: "a", host: "ssh://ops@10.1.0.1", address: "10.1.0.1" },
                    { name: "b", host: "tcp://10.1.0.2:2376", address: "10.1.0.2", certPath: "certs/b" },
                ],
            }),
    },
];

for (const s of STACKS) {
    describe(`hardening: ${s.title}`, () => {
        let p: Program;
        before(async () => {
            p = await evaluate(s.config(), s.stack);
            assert.equal(p.error, null);
        });

        it("every container has log rotation (json-file, max-size, max-file)", () => {
            const containers = p.containers();
            // Not vacuous: the agents, Registrators, gateways and replicas are all there.
            for (const kind of [/-consul$/, /-registrator$/, /-gateway$/, /-hello-v1-1-[0-9a-f]{8}$/]) {
                assert.ok(
                    containers.some((c) => kind.test(String(c.inputs.name))),
                    `a container matching ${kind}`,
                );
            }
            for (const c of containers) {
                assert.equal(c.inputs.logDriver, "json-file", `${c.inputs.name}: logDriver`);
                assert.deepEqual(c.inputs.logOpts, { "max-size": "10m", "max-file": "3" }, `${c.inputs.name}: logOpts`);
                assert.deepEqual({ logDriver: c.inputs.logDriver, logOpts: c.inputs.logOpts }, LOG_LIMITS, `${c.inputs.name}: the shared definition`);
            }
        });

        it(
            s.remote
                ? "a preview never builds an image on a remote node (buildOnPreview false)"
                : "a preview builds on this machine's engine, which already runs the program (buildOnPreview true)",
            () => {
                const builds = p.ofType(BUILD);
                assert.ok(
                    builds.some((b) => b.name.startsWith("gateway-")) && builds.some((b) => b.name.startsWith("service-hello-")),
                    `builds: ${builds.map((b) => b.name)}`,
                );
                for (const b of builds) {
                    assert.equal(b.inputs.buildOnPreview, !s.remote, `${b.name}: buildOnPreview`);
                    assert.equal(
                        b.provider.includes("pulumi:providers:docker-build::"),
                        s.remote,
                        `${b.name}: remote builds use the node's build provider (${b.provider})`,
                    );
                }
            },
        );
    });
}

describe("hardening: AWS instance metadata and Consul join", () => {
    /** An aws stack needs a certificate source (docs/security.md, "TLS at the edge"). */
    const SELF_SIGNED = JSON.stringify({ tls: { source: "self-signed" } });
    it("consul.join defaults to static on every target; aws-tags is accepted on aws", () => {
        for (const target of ["local", "virtualbox", "aws"]) {
            assert.equal(
                parseSettings({ target, aws: JSON.stringify({ adminCidr: ADMIN, publicKey: TEST_SSH_KEY }), gateway: SELF_SIGNED }, "x").consul.join,
                "static",
                target,
            );
        }
        const s = parseSettings(
            {
                target: "aws",
                aws: JSON.stringify({ adminCidr: ADMIN, publicKey: TEST_SSH_KEY }),
                consul: JSON.stringify({ join: "aws-tags" }),
                gateway: SELF_SIGNED,
            },
            "x",
        );
        assert.equal(s.consul.join, "aws-tags");
    });

    it("outbound: aws.egress adds one rule each, to what the nodes already reach", async () => {
        const config = shippedAws();
        const aws = JSON.parse(config["service-discovery:aws"]!);
        config["service-discovery:aws"] = JSON.stringify({
            ...aws,
            egress: [
                { cidr: "10.1.0.0/16", port: 5432 },
                { cidr: "198.51.100.0/24", port: 514, protocol: "udp" },
            ],
        });
        const p = await evaluate(config, "aws");
        assert.equal(p.error, null);
        const rules = p
            .ofType("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
            .map((e) => `${e.inputs.ipProtocol} ${e.inputs.fromPort ?? "all"} ${e.inputs.cidrIpv4 ?? "nodes"}`)
            .sort();
        assert.deepEqual(rules, ["-1 all nodes", "tcp 443 0.0.0.0/0", "tcp 5432 10.1.0.0/16", "tcp 80 0.0.0.0/0", "udp 514 198.51.100.0/24"]);
    });

    it("static (Pulumi.aws.yaml): hop limit 1, so no container reaches IMDS, and the role cannot list instances", async () => {
        const p = await evaluate(shippedAws(), "aws");
        assert.equal(p.error, null);
        const instances = p.ofType(INSTANCE);
        assert.equal(instances.length, 3);
        for (const i of instances) {
            assert.deepEqual(i.inputs.metadataOptions, { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 }, i.name);
        }
        assert.deepEqual(
            p.ofType(ROLE_POLICY).map((r) => r.name),
            [],
        );
        assert.ok(!JSON.stringify(p.resources.map((r) => r.inputs)).includes("ec2:DescribeInstances"), "no resource grants ec2:DescribeInstances");
        // SSM access stays (the agent runs on the instance itself, hop 1).
        assert.equal(
            p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "hosts-aws-ssm").inputs.policyArn,
            "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
        );
    });

    it("aws-tags: hop limit 2 and the describe-instances role, as cloud auto-join needs from its container", async () => {
        const shipped = JSON.parse(stackConfig("aws")["service-discovery:consul"] ?? "{}");
        const p = await evaluate(shippedAws({ consul: { ...shipped, join: "aws-tags" } }), "aws");
        assert.equal(p.error, null);
        for (const i of p.ofType(INSTANCE)) assert.equal((i.inputs.metadataOptions as { httpPutResponseHopLimit: number }).httpPutResponseHopLimit, 2, i.name);
        const policies = p.ofType(ROLE_POLICY);
        assert.deepEqual(
            policies.map((r) => r.name),
            ["hosts-aws-consul-auto-join"],
        );
        assert.deepEqual(JSON.parse(String(policies[0].inputs.policy)).Statement, [{ Effect: "Allow", Action: ["ec2:DescribeInstances"], Resource: "*" }]);
        assert.equal(policies[0].inputs.role, "hosts-aws-node-id", "on the nodes' role");
    });
});
