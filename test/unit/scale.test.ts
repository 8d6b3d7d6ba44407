// Horizontal scale under mocks: for each target and node counts 1, 2, 3, 5 and 10 the graph
// has one Consul agent and one Registrator per node, an odd number of servers, a gateway per
// edge node, and on AWS exactly the documented network rules. Adding nodes only adds resources.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Declared } from "../support/mocks";
import { agentConfigOf, devWith, envOf, evaluate, isSecret, Program, secretValue, TEST_SSH_KEY as SSH_KEY } from "../support/program";

const ADMIN = "203.0.113.7/32";
const COUNTS = [1, 2, 3, 5, 10];

function hostList(n: number) {
    return Array.from({ length: n }, (_, i) =>
        i % 2 === 0
            ? { name: `h${i + 1}`, host: `ssh://ops@10.1.0.${i + 1}`, address: `10.1.0.${i + 1}` }
            : { name: `h${i + 1}`, host: `tcp://10.1.0.${i + 1}:2376`, address: `10.1.0.${i + 1}`, certPath: `certs/h${i + 1}` },
    );
}

function configFor(target: string, n: number): Record<string, string> {
    switch (target) {
        case "virtualbox":
            return devWith({ target, nodeCount: n });
        case "hosts":
            return devWith({ target, nodeCount: undefined, hosts: hostList(n) });
        case "aws":
            return devWith({ target, nodeCount: n, aws: { adminCidr: ADMIN, publicKey: SSH_KEY, availabilityZones: 3 } });
        default:
            return devWith({});
    }
}

/** The node a docker resource runs on: its provider's name. */
function nodeOf(r: Declared): string {
    const m = /pulumi:providers:docker::([^:]+)::/.exec(r.provider);
    assert.ok(m, `${r.type}/${r.name} has a docker provider (${r.provider})`);
    return m[1];
}

function command(c: Declared): string[] {
    return (isSecret(c.inputs.command) ? secretValue(c.inputs.command) : c.inputs.command) as string[];
}

const isConsul = (c: Declared) => c.inputs.name === "dev-consul" || String(c.inputs.name).endsWith("-consul");
const isRegistrator = (c: Declared) => String(c.inputs.name).endsWith("-registrator");

const evaluations = new Map<string, Program>();
async function graph(target: string, n: number): Promise<Program> {
    const key = `${target}/${n}`;
    if (!evaluations.has(key)) {
        const p = await evaluate(configFor(target, n), target === "local" ? "dev" : "dev");
        assert.equal(p.error, null, `${key}: ${p.error}`);
        evaluations.set(key, p);
    }
    return evaluations.get(key)!;
}

for (const target of ["local", "virtualbox", "hosts", "aws"]) {
    describe(`scale: target ${target}`, () => {
        const counts = target === "local" ? [1] : COUNTS;
        before(async () => {
            // Two evaluations at a time keeps both cores busy.
            for (let i = 0; i < counts.length; i += 2) await Promise.all(counts.slice(i, i + 2).map((n) => graph(target, n)));
        });

        for (const n of counts) {
            it(`${n} node(s): one agent and one Registrator per node, odd servers, a gateway per node`, async () => {
                const p = await graph(target, n);
                const nodes = Array.from({ length: n }, (_, i) => `dev-node-${i + 1}`);
                assert.deepEqual(
                    p
                        .ofType("pulumi:providers:docker")
                        .map((r) => r.name)
                        .sort(),
                    [...nodes].sort(),
                );
                // Per node: the node network, and the internal one of its Docker socket proxy; and a
                // network of each service on each node that runs its replicas (hello-v1: 2, hello-v2: 1,
                // round robin), components/service-networks.ts.
                const all = p.ofType("docker:index/network:Network");
                const serviceNets = all.filter((x) => /-svc-/.test(String(x.inputs.name)));
                assert.deepEqual(
                    serviceNets.map((x) => `${nodeOf(x)} ${x.inputs.name}`).sort(),
                    [
                        "dev-node-1 service-discovery-dev-svc-hello-v1",
                        "dev-node-1 service-discovery-dev-svc-hello-v2",
                        ...(n > 1 ? ["dev-node-2 service-discovery-dev-svc-hello-v1"] : []),
                    ].sort(),
                );
                const networks = all.filter((x) => !serviceNets.includes(x));
                assert.equal(networks.length, 2 * n);
                for (const node of nodes) {
                    assert.deepEqual(
                        networks
                            .filter((x) => nodeOf(x) === node)
                            .map((x) => x.inputs.internal === true)
                            .sort(),
                        [false, true],
                        `${node}: networks`,
                    );
                    const proxies = p.containers().filter((c) => nodeOf(c) === node && String(c.inputs.name).endsWith("-docker-socket-proxy"));
                    assert.deepEqual(
                        proxies.map((c) => c.inputs.name),
                        [`${node}-docker-socket-proxy`],
                        `${node}: one Docker socket proxy`,
                    );
                }

                const agents = p.containers().filter(isConsul);
                const registrators = p.containers().filter(isRegistrator);
                const gateways = p.containers().filter((c) => String(c.inputs.name).endsWith("-gateway"));
                for (const node of nodes) {
                    assert.equal(agents.filter((c) => nodeOf(c) === node).length, 1, `${node}: one Consul agent`);
                    assert.equal(registrators.filter((c) => nodeOf(c) === node).length, 1, `${node}: one Registrator`);
                    assert.equal(gateways.filter((c) => nodeOf(c) === node).length, 1, `${node}: one gateway (every node is an edge by default)`);
                }
                assert.equal(agents.length, n);
                assert.equal(p.ofType("docker:index/volume:Volume").length, 2 * n, "per node: Consul's data volume and its socket volume");

                const servers = agents.filter((c) => agentConfigOf(c).server === true);
                const expected = n >= 3 ? 3 : 1;
                assert.equal(servers.length, expected);
                assert.equal(servers.length % 2, 1);
                for (const s of servers) assert.equal(agentConfigOf(s).bootstrap_expect, expected);
                for (const a of agents) {
                    // Only servers carry the initial management token; every agent has the gossip key.
                    assert.equal(agentConfigOf(a).acl.tokens?.initial_management !== undefined, agentConfigOf(a).server === true);
                    assert.equal(Buffer.from(agentConfigOf(a).encrypt, "base64").length, 32);
                }
                // Servers are the first nodes, so adding nodes never moves them.
                assert.deepEqual(servers.map(nodeOf).sort(), nodes.slice(0, expected).sort());

                // Replicas spread round robin: hello-v1 (2 replicas) on nodes 1 and 2 when there are two.
                const v1 = p.containers().filter((c) => String(c.inputs.name).startsWith("dev-hello-v1-"));
                assert.deepEqual(v1.map(nodeOf), n === 1 ? ["dev-node-1", "dev-node-1"] : ["dev-node-1", "dev-node-2"]);
            });
        }

        if (target !== "local") {
            it("joins agents to the servers and registers each node's own address", async () => {
                const p = await graph(target, 5);
                const address = (node: string) => {
                    const i = Number(node.split("-").pop());
                    return target === "aws" ? `10.42.0.${10 + i}` : target === "virtualbox" ? `192.168.99.${100 + i}` : `10.1.0.${i}`;
                };
                for (const agent of p.containers().filter(isConsul)) {
                    const node = nodeOf(agent);
                    const cfg = agentConfigOf(agent);
                    assert.equal(cfg.advertise_addr, address(node), `${node} advertises its address`);
                    // Static join to the servers' (private) addresses on every target, aws included.
                    const servers = ["dev-node-1", "dev-node-2", "dev-node-3"].filter((s) => s !== node);
                    assert.deepEqual(
                        cfg.retry_join,
                        servers.map((s) => address(s)),
                    );
                    const ports = (agent.inputs.ports as { internal: number; ip: string; protocol: string }[]).filter((x) => [8300, 8301].includes(x.internal));
                    assert.deepEqual(
                        ports.map((x) => `${x.internal}/${x.protocol}@${x.ip}`),
                        [`8300/tcp@${address(node)}`, `8301/tcp@${address(node)}`, `8301/udp@${address(node)}`],
                    );
                }
                for (const r of p.containers().filter(isRegistrator)) {
                    assert.equal(command(r)[0], `-ip=${address(nodeOf(r))}`);
                }
                // Each agent's certificate names its node's addresses; servers carry the server name.
                for (const csr of p.ofType("tls:index/certRequest:CertRequest").filter((c) => c.name.startsWith("consul-tls-"))) {
                    const node = /consul-tls-(dev-node-[0-9]+)-csr/.exec(csr.name)![1];
                    const ips = csr.inputs.ipAddresses as string[];
                    assert.ok(ips.includes(address(node)) && ips.includes("127.0.0.1"), `${csr.name}: ${ips}`);
                    const isServer = Number(node.split("-").pop()) <= 3;
                    assert.equal((csr.inputs.dnsNames as string[])[0], isServer ? "server.dc1.consul" : "client.dc1.consul");
                }
                for (const c of p.containers().filter((x) => String(x.inputs.name).startsWith("dev-hello-"))) {
                    assert.deepEqual(
                        (c.inputs.ports as { ip: string }[]).map((x) => x.ip),
                        [address(nodeOf(c))],
                    );
                }
            });

            it("going from 3 to 5 nodes only adds resources: nothing existing changes", async () => {
                const three = await graph(target, 3);
                const five = await graph(target, 5);
                const key = (r: Declared) => `${r.type}::${r.name}`;
                const after = new Map(five.resources.map((r) => [key(r), r]));
                for (const r of three.resources) {
                    const same = after.get(key(r));
                    assert.ok(same, `${key(r)} is kept`);
                    if (r.type === "consul:index/keys:Keys") {
                        // The one change: the allowed networks gain the new nodes, a KV update in
                        // place (consul.Keys), so no gateway is replaced.
                        const list = (d: Declared) => (isSecret(d.inputs.keys) ? secretValue(d.inputs.keys) : d.inputs.keys) as { path: string }[];
                        const paths = (d: Declared) => list(d).map((k) => k.path);
                        assert.deepEqual(paths(same), paths(r));
                        continue;
                    }
                    // The load balancer's and the VPC's inputs are the same; so are every node's.
                    assert.deepEqual(same.inputs, r.inputs, `${key(r)} keeps its inputs`);
                }
                assert.ok(five.resources.length > three.resources.length);
            });
        }
    });
}

describe("scale: targets in detail", () => {
    it("virtualbox: one docker-machine VM per node, reached over TLS", async () => {
        const p = await graph("virtualbox", 3);
        const vms = p.ofType("command:local:Command").filter((c) => c.name.endsWith("-machine"));
        assert.deepEqual(
            vms.map((v) => v.name),
            ["dev-node-1-machine", "dev-node-2-machine", "dev-node-3-machine"],
        );
        assert.match(
            String(vms[0].inputs.create),
            /^docker-machine create --driver virtualbox --virtualbox-cpu-count 1 --virtualbox-memory 1024 --virtualbox-disk-size 20000 service-discovery-dev-node-1 >&2 && docker-machine ip service-discovery-dev-node-1$/,
        );
        assert.equal(vms[0].inputs.delete, "docker-machine rm -y service-discovery-dev-node-1");
        const provider = p.one("pulumi:providers:docker", "dev-node-2");
        assert.equal(provider.inputs.host, "tcp://192.168.99.102:2376");
        assert.match(String(provider.inputs.certPath), /\.docker\/machine\/machines\/service-discovery-dev-node-2$/);
        assert.ok(provider.dependencies.some((d) => d.endsWith("::dev-node-2-machine")));
    });

    it("hosts: each host's endpoint, certificates and address", async () => {
        const p = await graph("hosts", 2);
        assert.deepEqual(p.one("pulumi:providers:docker", "dev-node-1").inputs, {
            host: "ssh://ops@10.1.0.1",
            sshOpts: JSON.stringify(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]),
        });
        assert.deepEqual(p.one("pulumi:providers:docker", "dev-node-2").inputs, { host: "tcp://10.1.0.2:2376", certPath: "certs/h2" });
        assert.equal(
            p.ofType("docker-build:index:Image").filter((i) => i.name.startsWith("gateway-")).length,
            2,
            "the gateway image is built on each edge node",
        );
    });

    describe("aws", () => {
        let p: Program;
        before(async () => {
            p = await graph("aws", 3);
        });

        const rules = () =>
            p.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").map((r) => ({
                name: r.name.replace(/^hosts-aws-/, ""),
                proto: r.inputs.ipProtocol,
                from: r.inputs.fromPort,
                to: r.inputs.toPort,
                source: r.inputs.cidrIpv4 ?? (r.inputs.referencedSecurityGroupId === "hosts-aws-nodes-id" ? "self" : r.inputs.referencedSecurityGroupId),
            }));

        it("opens nothing but the gateway port to 0.0.0.0/0, and states every rule", () => {
            assert.deepEqual(
                rules().sort((a, b) => a.name.localeCompare(b.name)),
                [
                    { name: "consul-http-nodes", proto: "tcp", from: 8501, to: 8501, source: "self" },
                    { name: "consul-rpc", proto: "tcp", from: 8300, to: 8300, source: "self" },
                    { name: "consul-serf-tcp", proto: "tcp", from: 8301, to: 8301, source: "self" },
                    { name: "consul-serf-udp", proto: "udp", from: 8301, to: 8301, source: "self" },
                    { name: "consul-ui", proto: "tcp", from: 8501, to: 8501, source: ADMIN },
                    { name: "gateway-http", proto: "tcp", from: 80, to: 80, source: "0.0.0.0/0" },
                    { name: "gateway-https", proto: "tcp", from: 443, to: 443, source: "0.0.0.0/0" },
                    { name: "services", proto: "tcp", from: 32768, to: 60999, source: "self" },
                    { name: "ssh", proto: "tcp", from: 22, to: 22, source: ADMIN },
                    { name: "stats", proto: "tcp", from: 1936, to: 1936, source: ADMIN },
                ],
            );
            const world = rules().filter((r) => r.source === "0.0.0.0/0");
            assert.deepEqual(
                world.map((r) => [r.from, r.to]),
                [
                    [80, 80],
                    [443, 443],
                ],
            );
            for (const r of p.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")) {
                assert.equal(r.inputs.securityGroupId, "hosts-aws-nodes-id");
            }
            // Outbound: HTTPS and HTTP anywhere, anything between the nodes; no "all protocols to the world".
            const egress = p.ofType("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule");
            assert.deepEqual(
                egress
                    .map((e) => [e.name, e.inputs.ipProtocol, e.inputs.fromPort, e.inputs.toPort, e.inputs.cidrIpv4, e.inputs.referencedSecurityGroupId])
                    .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
                [
                    ["hosts-aws-egress", "tcp", 443, 443, "0.0.0.0/0", undefined],
                    ["hosts-aws-egress-http", "tcp", 80, 80, "0.0.0.0/0", undefined],
                    ["hosts-aws-egress-nodes", "-1", undefined, undefined, undefined, "hosts-aws-nodes-id"],
                ],
            );
            for (const e of egress) assert.equal(e.inputs.securityGroupId, "hosts-aws-nodes-id");
        });

        it("runs EC2 nodes with IMDSv2, encrypted volumes, Docker from cloud-init, tags and spread subnets", () => {
            const instances = p.ofType("aws:ec2/instance:Instance");
            assert.deepEqual(
                instances.map((i) => i.name),
                ["dev-node-1", "dev-node-2", "dev-node-3"],
            );
            instances.forEach((inst, i) => {
                assert.equal(inst.inputs.ami, "ami-0123456789abcdef0");
                assert.equal(inst.inputs.instanceType, "t3.small");
                // Hop limit 1: containers cannot reach the instance metadata (consul.join static, the default).
                assert.deepEqual(inst.inputs.metadataOptions, { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 });
                assert.deepEqual(inst.inputs.rootBlockDevice, { encrypted: true, volumeType: "gp3", volumeSize: 20, deleteOnTermination: true });
                const userData = String(secretValue(inst.inputs.userData));
                assert.match(userData, /^#cloud-config\n/);
                assert.match(userData, /packages:\n {2}- docker\.io\n/);
                assert.match(userData, /systemctl enable --now docker/);
                assert.match(userData, /usermod -aG docker admin/);
                assert.deepEqual(inst.inputs.tags, {
                    Project: "service-discovery",
                    Stack: "dev",
                    Name: `dev-node-${i + 1}`,
                    "consul-cluster": "service-discovery-dev",
                });
                assert.equal(inst.inputs.subnetId, `hosts-aws-public-${i + 1}-id`);
                assert.deepEqual(inst.inputs.vpcSecurityGroupIds, ["hosts-aws-nodes-id"]);
                assert.equal(inst.inputs.keyName, "hosts-aws-admin");
                assert.equal(inst.inputs.iamInstanceProfile, "hosts-aws-node");
            });
            assert.ok(p.evaluation.calls.includes("aws:ec2/getAmi:getAmi"));
        });

        it("reaches each node's Docker over SSH once cloud-init has finished", () => {
            const provider = p.one("pulumi:providers:docker", "dev-node-2");
            assert.equal(provider.inputs.host, "ssh://admin@198.51.100.12");
            assert.ok(provider.dependencies.some((d) => d.endsWith("::dev-node-2-docker-ready")));
            const ready = p.one("command:remote:Command", "dev-node-2-docker-ready");
            const connection = secretValue(ready.inputs.connection) as { host: string; user: string; port: number };
            assert.deepEqual([connection.host, connection.user, connection.port], ["198.51.100.12", "admin", 22]);
            assert.match(String(ready.inputs.create), /^cloud-init status --wait >\/dev\/null; sudo docker info /);
            const instance = p.one("aws:ec2/instance:Instance", "dev-node-2");
            for (const dep of ["::hosts-aws-igw", "::hosts-aws-public-1", "::hosts-aws-egress"]) {
                assert.ok(
                    instance.dependencies.some((d) => d.endsWith(dep)),
                    `instance waits for ${dep}: cloud-init needs the route out`,
                );
            }
            assert.ok(p.one("aws:lb/loadBalancer:LoadBalancer", "hosts-aws-gateway").dependencies.some((d) => d.endsWith("::hosts-aws-igw")));
        });

        it("builds a VPC with a public subnet per zone and a load balancer over the gateways", () => {
            assert.equal(p.one("aws:ec2/vpc:Vpc", "hosts-aws-vpc").inputs.cidrBlock, "10.42.0.0/16");
            const subnets = p.ofType("aws:ec2/subnet:Subnet");
            assert.deepEqual(
                subnets.map((s) => [s.inputs.cidrBlock, s.inputs.availabilityZone]),
                [
                    ["10.42.0.0/20", "eu-west-1a"],
                    ["10.42.16.0/20", "eu-west-1b"],
                    ["10.42.32.0/20", "eu-west-1c"],
                ],
            );
            assert.equal(p.one("aws:lb/loadBalancer:LoadBalancer", "hosts-aws-gateway").inputs.loadBalancerType, "network");
            const attachments = p.ofType("aws:lb/targetGroupAttachment:TargetGroupAttachment");
            for (const group of ["hosts-aws-gateway-", "hosts-aws-gateway-https-"]) {
                assert.deepEqual(
                    attachments.filter((a) => a.name.replace(/[0-9]+$/, "") === group).map((a) => a.inputs.targetId),
                    ["dev-node-1-id", "dev-node-2-id", "dev-node-3-id"],
                    `${group}: HTTP, and HTTPS (gateway.tls)`,
                );
            }
            assert.equal(p.outputs.gatewayUrl, "https://hosts-aws-gateway.elb.example.com");
            assert.equal(p.outputs.consulUiUrl, "https://198.51.100.11:8501/ui/");
            assert.deepEqual(
                p.ofType("aws:iam/rolePolicy:RolePolicy"),
                [],
                "static join: the nodes' role cannot list instances (consul.join aws-tags adds that)",
            );
        });

        it("puts gateways only on the configured edge nodes", async () => {
            const edge = await evaluate(devWith({ target: "aws", nodeCount: 5, edgeNodes: [2, 4], aws: { adminCidr: ADMIN, publicKey: SSH_KEY } }));
            assert.equal(edge.error, null);
            assert.deepEqual(
                edge
                    .containers()
                    .filter((c) => String(c.inputs.name).endsWith("-gateway"))
                    .map(nodeOf)
                    .sort(),
                ["dev-node-2", "dev-node-4"],
            );
            assert.deepEqual(
                edge
                    .ofType("aws:lb/targetGroupAttachment:TargetGroupAttachment")
                    .filter((a) => !a.name.includes("-https-"))
                    .map((a) => a.inputs.targetId),
                ["dev-node-2-id", "dev-node-4-id"],
            );
            assert.equal(
                envOf(edge.containers().find((c) => String(c.inputs.name).endsWith("-gateway"))!).env.CONSUL_HTTP_ADDR,
                "consul:8501",
                "each gateway follows the cluster through its node's agent",
            );
        });

        it("fails preview naming the key for an invalid admin CIDR", async () => {
            const bad = await evaluate(devWith({ target: "aws", nodeCount: 3, aws: { adminCidr: "0.0.0.0/0", publicKey: SSH_KEY } }));
            assert.equal(
                bad.error,
                'service-discovery:aws.adminCidr: "0.0.0.0/0" is not allowed; expected a CIDR block narrower than /0 (only the gateway port is open to the world)',
            );
            assert.deepEqual(bad.resources, []);
        });
    });
});
