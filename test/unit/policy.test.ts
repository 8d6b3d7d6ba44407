// The policy pack: each rule with resources that pass and resources that fail, called the way
// the policy server calls it (type, props, isType, getConfig, reportViolation), and the whole
// pack against the graphs the program declares for the shipped stacks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unknownCheckingProxy, UnknownValueError } from "@pulumi/policy";
import * as policyProxy from "@pulumi/policy/proxy";
import { SOCKET_PROXY_IMAGE_REPOSITORY as PROGRAM_SOCKET_PROXY_REPOSITORY } from "../../components/socket-proxy";
import { policies, SOCKET_PROXY_IMAGE_REPOSITORY } from "../../policy/policies";
import { devWith, evaluate, stackConfig, TEST_SSH_KEY } from "../support/program";

type Props = Record<string, any>;
interface Res {
    type: string;
    name: string;
    props: Props;
}

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
        policy.validateStack(
            {
                resources: resources.map((r) => ({
                    type: r.type,
                    name: r.name,
                    urn: `urn:${r.name}`,
                    props: r.props,
                    isType: isTypeOf(r.type),
                    asType: (c: any) => (isTypeOf(r.type)(c) ? r.props : undefined),
                })),
                getConfig: () => config,
            },
            report,
        );
        return found;
    }
    const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
    for (const r of resources) {
        for (const v of validations) {
            v(
                {
                    type: r.type,
                    name: r.name,
                    urn: `urn:${r.name}`,
                    props: r.props,
                    opts: {},
                    isType: isTypeOf(r.type),
                    asType: (c: any) => (isTypeOf(r.type)(c) ? r.props : undefined),
                    getConfig: () => config,
                    notApplicable: () => undefined,
                },
                report,
            );
        }
    }
    return found;
}

const container = (props: Props): Res => ({ type: CONTAINER, name: "c", props: { name: "c", image: "example/app:1.0", ...props } });

describe("policy: pinned-image-tags", () => {
    it("passes tags, digests and image IDs", () => {
        assert.deepEqual(
            violations("pinned-image-tags", [
                container({ image: "example/app:1.0" }),
                container({ image: `example/app@sha256:${"a".repeat(64)}` }),
                container({ image: `sha256:${"b".repeat(64)}` }),
                { type: REMOTE_IMAGE, name: "i", props: { name: "registry.example.com:5000/team/app:2.3" } },
                { type: BUILD, name: "b", props: { tags: ["service-discovery/gateway:dev"] } },
            ]),
            [],
        );
    });
    it("fails floating and missing tags", () => {
        assert.equal(violations("pinned-image-tags", [container({ image: "nginx" })]).length, 1);
        assert.equal(violations("pinned-image-tags", [container({ image: "nginx:latest" })]).length, 1);
        assert.equal(violations("pinned-image-tags", [{ type: REMOTE_IMAGE, name: "i", props: { name: "registry.example.com:5000/app" } }]).length, 1);
        assert.equal(violations("pinned-image-tags", [{ type: BUILD, name: "b", props: { tags: ["gateway:latest", "gateway"] } }]).length, 2);
    });
});

describe("policy: docker-socket-proxy-only", () => {
    const NETWORK = "docker:index/network:Network";
    const apiNet: Res = { type: NETWORK, name: "n", props: { name: "sd-dev-docker-api", driver: "bridge", internal: true } };
    const nodeNet: Res = { type: NETWORK, name: "m", props: { name: "sd-dev", driver: "bridge" } };
    const socket = { hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock", readOnly: true };
    const proxy = (props: Props = {}): Res =>
        container({
            name: "dev-node-1-docker-socket-proxy",
            image: `${SOCKET_PROXY_IMAGE_REPOSITORY}:dev@sha256:${"0".repeat(64)}`,
            volumes: [socket],
            networksAdvanced: [{ name: "sd-dev-docker-api", aliases: ["docker-socket-proxy"] }],
            securityOpts: ["no-new-privileges:true"],
            ...props,
        });
    const check = (...containers: Res[]) => violations("docker-socket-proxy-only", [apiNet, nodeNet, ...containers]);

    it("passes the proxy alone on an internal network, and containers without the socket", () => {
        assert.deepEqual(
            check(
                proxy(),
                proxy({ volumes: undefined, mounts: [{ type: "bind", source: "/run/user/1000/docker.sock", target: "/var/run/docker.sock" }] }),
                container({ envs: ["DOCKER_HOST=tcp://docker-socket-proxy:2375"], networksAdvanced: [{ name: "sd-dev" }, { name: "sd-dev-docker-api" }] }),
                container({
                    volumes: [
                        { volumeName: "data", containerPath: "/data" },
                        { hostPath: "/srv/app", containerPath: "/app" },
                    ],
                }),
                container({ mounts: [{ type: "volume", source: "docker.sock", target: "/x" }] }),
            ),
            [],
        );
    });

    it("fails any other container that mounts the socket, read-only or not, a rootless one's, or a folder holding it", () => {
        for (const hostPath of ["/var/run/docker.sock", "/run/docker.sock", "/run/user/1000/docker.sock", "/var/run", "/run/", "/", "//var//run", "/var"]) {
            for (const readOnly of [true, false]) {
                const found = check(
                    container({
                        name: "dev-node-1-registrator",
                        image: "gliderlabs/registrator:v7",
                        volumes: [{ hostPath, containerPath: "/tmp/docker.sock", readOnly }],
                    }),
                );
                assert.equal(found.length, 1, `${hostPath} readOnly=${readOnly}: ${found}`);
                assert.match(found[0], /container dev-node-1-registrator mounts .*only the Docker socket proxy/);
            }
        }
        assert.equal(check(container({ mounts: [{ type: "bind", source: "/run/docker.sock", target: "/var/run/docker.sock", readOnly: true }] })).length, 1);
        // The proxy's name is no pass: the image decides.
        assert.equal(check(proxy({ image: "example/socat:1.7" })).length, 1);
        assert.equal(check(proxy({ image: `${SOCKET_PROXY_IMAGE_REPOSITORY}-fork:dev` })).length, 1);
    });

    it("fails the proxy when anything but its internal network reaches it, or it can gain privileges", () => {
        assert.match(check(proxy({ ports: [{ internal: 2375, external: 2375 }] })).join(), /publishes ports/);
        assert.match(check(proxy({ networksAdvanced: [{ name: "sd-dev" }] })).join(), /joins network sd-dev, which is not .* internal/);
        assert.match(check(proxy({ networksAdvanced: [{ name: "sd-dev-docker-api" }, { name: "sd-dev" }] })).join(), /joins network sd-dev/);
        assert.match(check(proxy({ networksAdvanced: [{ name: "undeclared" }] })).join(), /joins network undeclared/);
        assert.match(check(proxy({ networksAdvanced: undefined })).join(), /joins no network/);
        assert.match(check(proxy({ networkMode: "host" })).join(), /networkMode "host"/);
        assert.match(check(proxy({ networkMode: "bridge" })).join(), /networkMode "bridge"/);
        assert.match(check(proxy({ securityOpts: undefined })).join(), /no-new-privileges/);
        assert.match(check(proxy({ securityOpts: ["no-new-privileges:false"] })).join(), /no-new-privileges/);
        assert.match(check(proxy({ privileged: true })).join(), /is privileged/);
    });

    it("still checks the rest when a preview does not know the proxy's image yet", () => {
        // The policy server's marker of a value unknown during preview (not in the typings).
        const unknownStringValue: unknown = (policyProxy as Record<string, unknown>).unknownStringValue;
        assert.equal(typeof unknownStringValue, "string");
        const unknownImage = (props: Props = {}): Res => {
            const r = proxy(props);
            return { ...r, props: unknownCheckingProxy({ ...r.props, image: unknownStringValue }) };
        };
        assert.throws(() => unknownImage().props.image, UnknownValueError, "the image reads as unknown, as in a preview");
        assert.deepEqual(check(unknownImage()), []);
        assert.match(check(unknownImage({ ports: [{ internal: 2375 }] })).join(), /publishes ports/);
    });

    it("knows the image the program builds for the proxy", () => {
        assert.equal(SOCKET_PROXY_IMAGE_REPOSITORY, PROGRAM_SOCKET_PROXY_REPOSITORY);
    });
});

describe("policy: only-gateway-port-public", () => {
    const ingress = (props: Props): Res => ({ type: INGRESS, name: "r", props: { securityGroupId: "sg", ...props } });
    it("passes the gateway port from anywhere and anything from a narrow CIDR or the group itself", () => {
        assert.deepEqual(
            violations("only-gateway-port-public", [
                ingress({ ipProtocol: "tcp", fromPort: 80, toPort: 80, cidrIpv4: "0.0.0.0/0" }),
                ingress({ ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv4: "203.0.113.7/32" }),
                ingress({ ipProtocol: "udp", fromPort: 8301, toPort: 8301, referencedSecurityGroupId: "sg" }),
                { type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 80, toPort: 80, cidrBlocks: ["0.0.0.0/0"] }] } },
            ]),
            [],
        );
        assert.deepEqual(
            violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 8080, toPort: 8080, cidrIpv4: "0.0.0.0/0" })], {
                gatewayPort: 8080,
            }),
            [],
        );
    });
    it("fails any other port open to the world, in every rule form", () => {
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 1936, toPort: 1936, cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv6: "::/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "-1", cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(violations("only-gateway-port-public", [ingress({ ipProtocol: "tcp", fromPort: 0, toPort: 65535, cidrIpv4: "0.0.0.0/0" })]).length, 1);
        assert.equal(
            violations("only-gateway-port-public", [
                { type: SG_RULE, name: "r", props: { type: "ingress", protocol: "tcp", fromPort: 8500, toPort: 8500, cidrBlocks: ["0.0.0.0/0"] } },
            ]).length,
            1,
        );
        assert.equal(
            violations("only-gateway-port-public", [
                { type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] }] } },
            ]).length,
            1,
        );
    });
});

describe("policy: only-gateway-port-public and public tcp services (publicTcpPorts)", () => {
    const ingress = (props: Props): Res => ({ type: INGRESS, name: "r", props: { securityGroupId: "sg", ...props } });
    const world = (port: number, props: Props = {}) => ingress({ ipProtocol: "tcp", fromPort: port, toPort: port, cidrIpv4: "0.0.0.0/0", ...props });
    const named = { gatewayPort: 80, publicTcpPorts: [5432, 1883] };

    it("passes a tcp port open to the world once publicTcpPorts names it, in every rule form", () => {
        assert.deepEqual(
            violations(
                "only-gateway-port-public",
                [
                    world(80),
                    world(5432),
                    world(1883, { cidrIpv4: undefined, cidrIpv6: "::/0" }),
                    { type: SG_RULE, name: "r", props: { type: "ingress", protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: ["0.0.0.0/0"] } },
                    { type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 1883, toPort: 1883, cidrBlocks: ["0.0.0.0/0"] }] } },
                ],
                named,
            ),
            [],
        );
    });

    it("fails the same port when the config does not name it (the default is none)", () => {
        assert.deepEqual(violations("only-gateway-port-public", [world(5432)]), ["ingress tcp 5432-5432 is open to the world; only tcp 80 may be"]);
        assert.deepEqual(violations("only-gateway-port-public", [world(5432)], { gatewayPort: 80, publicTcpPorts: [] }), [
            "ingress tcp 5432-5432 is open to the world; only tcp 80 may be",
        ]);
    });

    it("still fails anything else open to the world: another port, udp, a range, all protocols", () => {
        const message = (what: string) => `${what} is open to the world; only tcp 80, 5432, 1883 may be (gatewayPort, publicTcpPorts)`;
        assert.deepEqual(violations("only-gateway-port-public", [world(5433)], named), [message("ingress tcp 5433-5433")]);
        assert.deepEqual(violations("only-gateway-port-public", [world(5432, { ipProtocol: "udp" })], named), [message("ingress udp 5432-5432")]);
        assert.deepEqual(violations("only-gateway-port-public", [world(5432, { toPort: 5433 })], named), [message("ingress tcp 5432-5433")]);
        assert.deepEqual(violations("only-gateway-port-public", [world(1882, { toPort: 1884 })], named), [message("ingress tcp 1882-1884")]);
        assert.deepEqual(violations("only-gateway-port-public", [ingress({ ipProtocol: "-1", cidrIpv4: "0.0.0.0/0" })], named), [
            message("ingress -1 all-all"),
        ]);
        assert.deepEqual(
            violations(
                "only-gateway-port-public",
                [{ type: SG_RULE, name: "r", props: { type: "ingress", protocol: "udp", fromPort: 1883, toPort: 1883, cidrBlocks: ["0.0.0.0/0"] } }],
                named,
            ),
            [message("ingress udp 1883-1883")],
        );
        assert.deepEqual(
            violations(
                "only-gateway-port-public",
                [{ type: SG, name: "sg", props: { ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] }] } }],
                named,
            ),
            [message("inline ingress tcp 22-22")],
        );
    });

    it("declares publicTcpPorts in its config schema, a list of ports defaulting to none", () => {
        const policy: any = policies.find((p) => p.name === "only-gateway-port-public");
        assert.deepEqual(policy.configSchema.properties.publicTcpPorts, { type: "array", items: { type: "integer", minimum: 1, maximum: 65535 }, default: [] });
        assert.deepEqual(policy.configSchema.properties.gatewayPort, { type: "integer", default: 80 });
    });

    it("on the program's aws graph: a tcp service open to 0.0.0.0/0 is a violation until publicTcpPorts names its listenPort", async () => {
        const p = await evaluate(
            devWith({
                target: "aws",
                nodeCount: 3,
                aws: { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY },
                services: [
                    {
                        name: "mqtt",
                        image: "example/mqtt:2.0",
                        protocol: "tcp",
                        containerPort: 1883,
                        listenPort: 1883,
                        allowedCidrs: ["0.0.0.0/0", "10.9.0.0/16"],
                    },
                    { name: "pg", image: "example/postgres:16.4", protocol: "tcp", containerPort: 5432, listenPort: 5432, allowedCidrs: ["203.0.113.0/24"] },
                ],
            }),
        );
        assert.equal(p.error, null);
        const resources = p.resources.map((r) => ({ type: r.type, name: r.name, props: r.inputs }));
        assert.deepEqual(violations("only-gateway-port-public", resources), ["ingress tcp 1883-1883 is open to the world; only tcp 80 may be"]);
        assert.deepEqual(violations("only-gateway-port-public", resources, { gatewayPort: 80, publicTcpPorts: [1883] }), []);
        // Naming another port does not open this one.
        assert.equal(violations("only-gateway-port-public", resources, { gatewayPort: 80, publicTcpPorts: [5432] }).length, 1);
    });
});

describe("policy: ec2-imdsv2-encrypted-volumes", () => {
    const good = {
        metadataOptions: { httpTokens: "required" },
        rootBlockDevice: { encrypted: true },
        ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: true }],
    };
    it("passes IMDSv2 with encrypted volumes", () => {
        assert.deepEqual(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: good }]), []);
    });
    it("fails IMDSv1, an unencrypted root and an unencrypted data volume", () => {
        assert.equal(
            violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: { ...good, metadataOptions: { httpTokens: "optional" } } }]).length,
            1,
        );
        assert.equal(violations("ec2-imdsv2-encrypted-volumes", [{ type: INSTANCE, name: "i", props: { ...good, rootBlockDevice: {} } }]).length, 1);
        assert.equal(
            violations("ec2-imdsv2-encrypted-volumes", [
                { type: INSTANCE, name: "i", props: { ...good, ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: false }] } },
            ]).length,
            1,
        );
    });
});

describe("policy: credentials-strong", () => {
    it("passes a generated password and a 32-byte gossip key", () => {
        assert.deepEqual(
            violations("credentials-strong", [
                container({ envs: ["STATS_USER=stats", "STATS_PASSWORD=Zq8XbW3kP0tLm2Rv9sYc4HnJ"] }),
                container({ command: ["agent", "-server", `-encrypt=${KEY}`] }),
            ]),
            [],
        );
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

describe("policy: consul-acl-tls (and the checks above on the agent's config file)", () => {
    const agentConfig = (over: Record<string, unknown> = {}) => ({
        server: true,
        bootstrap_expect: 1,
        encrypt: KEY,
        acl: { enabled: true, default_policy: "deny" },
        tls: { defaults: { verify_incoming: true, verify_outgoing: true }, internal_rpc: { verify_server_hostname: true } },
        addresses: { http: "127.0.0.1", https: "0.0.0.0" },
        ...over,
    });
    const agent = (cfg: Record<string, unknown>) =>
        container({ command: ["agent"], uploads: [{ file: "/consul/config/agent.json", content: JSON.stringify(cfg) }] });
    it("passes an agent with ACLs default deny, verified TLS and loopback-only HTTP", () => {
        assert.deepEqual(violations("consul-acl-tls", [agent(agentConfig())]), []);
        assert.deepEqual(violations("credentials-strong", [agent(agentConfig())]), []);
        assert.deepEqual(violations("consul-servers-odd", [agent(agentConfig())]), []);
    });
    it("fails ACLs off or default allow, TLS without verification, HTTP on every address, and flags", () => {
        assert.equal(violations("consul-acl-tls", [agent(agentConfig({ acl: { enabled: true, default_policy: "allow" } }))]).length, 1);
        assert.equal(violations("consul-acl-tls", [agent(agentConfig({ acl: { enabled: false } }))]).length, 1);
        assert.equal(violations("consul-acl-tls", [agent(agentConfig({ tls: { defaults: { verify_incoming: true, verify_outgoing: true } } }))]).length, 1);
        assert.equal(violations("consul-acl-tls", [agent(agentConfig({ addresses: { http: "0.0.0.0" } }))]).length, 1);
        assert.equal(violations("consul-acl-tls", [container({ command: ["agent", "-server", `-encrypt=${KEY}`] })]).length, 1);
        assert.equal(violations("credentials-strong", [agent(agentConfig({ encrypt: "c2hvcnQ=" }))]).length, 1);
        assert.equal(violations("consul-servers-odd", [agent(agentConfig({ bootstrap_expect: 3 }))]).length, 1);
    });
});

describe("policy: container-log-limits", () => {
    it("passes json-file with max-size (and max-file), and the local driver", () => {
        assert.deepEqual(
            violations("container-log-limits", [
                container({ logDriver: "json-file", logOpts: { "max-size": "10m", "max-file": "3" } }),
                container({ logDriver: "json-file", logOpts: { "max-size": "512k" } }),
                container({ logDriver: "json-file", logOpts: { "max-size": "1.5g" } }),
                container({ logDriver: "local" }),
                container({ logDriver: "local", logOpts: { "max-size": "20m", "max-file": "5" } }),
            ]),
            [],
        );
    });
    it("fails a container without a log driver, an unbounded json-file and drivers whose size the stack does not control", () => {
        const one = (props: Props) => violations("container-log-limits", [container(props)]);
        assert.match(one({}).join(), /log driver unset/);
        assert.match(one({ logOpts: { "max-size": "10m" } }).join(), /log driver unset/, "options without a driver: the daemon default decides");
        assert.match(one({ logDriver: "json-file" }).join(), /json-file logs need a positive max-size/);
        assert.match(one({ logDriver: "json-file", logOpts: { "max-file": "3" } }).join(), /max-size null/);
        for (const size of ["-1", "0", "0m", "ten", "10x", ""]) {
            assert.equal(one({ logDriver: "json-file", logOpts: { "max-size": size } }).length, 1, `max-size ${size}`);
        }
        assert.equal(one({ logDriver: "local", logOpts: { "max-size": "-1" } }).length, 1, "local with an unlimited size");
        assert.match(one({ logDriver: "json-file", logOpts: { "max-size": "10m", "max-file": "0" } }).join(), /max-file "0"/);
        for (const driver of ["journald", "syslog", "fluentd", "none"]) {
            assert.match(one({ logDriver: driver, logOpts: { "max-size": "10m" } }).join(), new RegExp(`log driver "${driver}"`));
        }
    });
});

describe("policy: the shipped stacks pass", () => {
    const unwrap = (v: any): any =>
        v && typeof v === "object" && "$secret" in v
            ? unwrap(v.$secret)
            : Array.isArray(v)
              ? v.map(unwrap)
              : v && typeof v === "object"
                ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]))
                : v;
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
