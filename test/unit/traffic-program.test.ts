// Traffic control as the program declares it under mocks (docs/traffic-control.md): the KV keys
// the gateways read, a tcp service's registration, the gateway's tcp listeners and the security
// group rules that open them on AWS.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Declared } from "../support/mocks";
import { devWith, envOf, evaluate, shippedAws, Program, TEST_SSH_KEY } from "../support/program";

const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const ADMIN = "203.0.113.7/32";
const hello = { name: "hello", build: "components/images/hello" };

/** The services of the local stack below: a sticky 90/10 split with a replica in maintenance, and two tcp services. */
const LOCAL_SERVICES = [
    { ...hello, version: "v1", replicas: 2, weight: 90, sticky: true, maintenance: [2] },
    { ...hello, version: "v2", weight: 10, sticky: true },
    { name: "pg", image: "example/postgres:16.4", protocol: "tcp", containerPort: 5432, listenPort: 5432, replicas: 2, maintenance: [1] },
    { name: "mail", version: "v1", image: "example/smtp:1.0", protocol: "tcp", containerPort: 2525, listenPort: 25, maintenance: true },
];

type Port = { internal: number; external?: number; ip: string; protocol: string };

describe("traffic program: local stack with weighted versions and tcp services", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(devWith({ services: LOCAL_SERVICES }));
        assert.equal(p.error, null, String(p.error));
    });

    it("writes each service's keys under service/haproxy/, Pulumi-managed and deleted with the stack", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string; delete: boolean }[];
        assert.deepEqual(
            keys.filter((k) => /^service\/haproxy\/(services|routes)\//.test(k.path)),
            [
                { path: "service/haproxy/services/hello-v1/check", value: "/health", delete: true },
                { path: "service/haproxy/services/hello-v1/replicas", value: "dev-hello-v1-1 dev-hello-v1-2", delete: true },
                { path: "service/haproxy/services/hello-v1/weight", value: "90", delete: true },
                { path: "service/haproxy/services/hello-v1/maintenance", value: "dev-hello-v1-2", delete: true },
                { path: "service/haproxy/services/hello-v2/check", value: "/health", delete: true },
                { path: "service/haproxy/services/hello-v2/replicas", value: "dev-hello-v2-1", delete: true },
                { path: "service/haproxy/services/hello-v2/weight", value: "10", delete: true },
                { path: "service/haproxy/services/pg/listen", value: "5432", delete: true },
                { path: "service/haproxy/services/pg/replicas", value: "dev-pg-1 dev-pg-2", delete: true },
                { path: "service/haproxy/services/pg/maintenance", value: "dev-pg-1", delete: true },
                { path: "service/haproxy/services/mail-v1/listen", value: "25", delete: true },
                { path: "service/haproxy/services/mail-v1/replicas", value: "dev-mail-v1-1", delete: true },
                { path: "service/haproxy/services/mail-v1/maintenance", value: "all", delete: true },
                { path: "service/haproxy/routes/hello/sticky", value: "true", delete: true },
            ],
        );
        // The other keys are still there, each once.
        assert.deepEqual(
            keys.map((k) => k.path).filter((k) => !/^service\/haproxy\/(services|routes)\//.test(k)),
            [
                "service/haproxy/maxconn",
                "service/haproxy/timeouts/connect",
                "service/haproxy/timeouts/client",
                "service/haproxy/timeouts/server",
                "service/haproxy/timeouts/http-request",
                "service/haproxy/timeouts/http-keep-alive",
                "service/haproxy/timeouts/tcp-idle",
                "service/haproxy/limits/services",
                "service/haproxy/limits/instances",
                "service/haproxy/limits/client-connections",
                "service/haproxy/limits/client-rate",
                "service/haproxy/limits/body-size",
                "service/haproxy/limits/server-maxconn",
                "service/haproxy/routing/undeclared",
                "service/haproxy/networks/backends",
                "service/haproxy/networks/nodes",
            ],
        );
    });

    it("names in maintenance are containers the program runs for that service", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        for (const k of keys.filter((x) => x.path.endsWith("/maintenance") && x.value !== "all")) {
            for (const name of k.value.split(" ")) {
                const c = p.replica(name);
                const consulName = /services\/([^/]+)\/maintenance$/.exec(k.path)![1];
                assert.equal(envOf(c).env.SERVICE_NAME, consulName, `${name} is an instance of ${consulName}`);
            }
        }
    });

    it("registers a tcp service for a TCP check, without the HTTP check or rest tag", () => {
        for (const [name, consulName, port] of [
            ["dev-pg-1", "pg", "5432"],
            ["dev-pg-2", "pg", "5432"],
            ["dev-mail-v1-1", "mail-v1", "2525"],
        ] as const) {
            const { env, secret } = envOf(p.replica(name));
            assert.equal(secret, false);
            assert.deepEqual(env, {
                SERVICE_NAME: consulName,
                SERVICE_TAGS: "tcp",
                [`SERVICE_${port}_NAME`]: consulName,
                [`SERVICE_${port}_TAGS`]: "tcp",
                SERVICE_CHECK_TCP: "true",
                SERVICE_CHECK_INTERVAL: "5s",
                SERVICE_CHECK_TIMEOUT: "2s",
                PORT: port,
                APP_SERVICE: consulName.replace(/-v1$/, ""),
                APP_VERSION: consulName.endsWith("-v1") ? "v1" : "",
                DRAIN_SECONDS: "10",
            });
        }
        // http services are registered as before.
        const { env } = envOf(p.replica("dev-hello-v1-2"));
        assert.equal(env.SERVICE_TAGS, "rest,check=/health");
        assert.equal(env.SERVICE_CHECK_HTTP, "/health");
        assert.equal(env.SERVICE_CHECK_TCP, undefined);
    });

    it("publishes each listenPort on the gateway's bind address (local: the loopback) at the same port, and binds the lowest without privileges", () => {
        const gw = p.container("dev-gateway");
        assert.deepEqual(gw.inputs.ports as Port[], [
            { internal: 80, external: 80, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 443, external: 443, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 1936, external: 1936, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 5432, external: 5432, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 25, external: 25, ip: "127.0.0.1", protocol: "tcp" },
        ]);
        assert.deepEqual(gw.inputs.sysctls, { "net.ipv4.ip_unprivileged_port_start": "25" }, "port 25 is below 80");
        assert.deepEqual(gw.inputs.capabilities, { drops: ["ALL"] }, "still no capability");
        const { env } = envOf(gw);
        assert.equal(env.GATEWAY_NODE_PORTS, "80 443 1936 8501 8600 22 5432 25", "its listeners are never a backend");
        assert.equal(env.SERVICE_5432_IGNORE, "true", "its listeners are not registered as services");
        assert.equal(env.SERVICE_25_IGNORE, "true");
        assert.equal(env.SERVICE_80_NAME, "gateway");
    });

    it("exports http URLs for http services and host:port for tcp services", () => {
        assert.deepEqual(p.outputs.serviceUrls, { "hello-v1": "http://127.0.0.1/hello/v1/", "hello-v2": "http://127.0.0.1/hello/v2/" });
        assert.deepEqual(p.outputs.tcpEndpoints, { pg: "127.0.0.1:5432", "mail-v1": "127.0.0.1:25" });
    });

    it("a gateway bound to every address (the opt-in) publishes its listeners there", async () => {
        const q = await evaluate(devWith({ gateway: { bindAddress: "0.0.0.0" }, services: [LOCAL_SERVICES[2]] }));
        assert.equal(q.error, null, String(q.error));
        const gw = q.container("dev-gateway");
        assert.deepEqual((gw.inputs.ports as Port[]).slice(2), [{ internal: 5432, external: 5432, ip: "0.0.0.0", protocol: "tcp" }]);
        assert.deepEqual(gw.inputs.sysctls, { "net.ipv4.ip_unprivileged_port_start": "80" }, "5432 is above 80");
        assert.deepEqual(q.outputs.tcpEndpoints, { pg: "127.0.0.1:5432" });
    });
});

describe("traffic program: aws security group rules for tcp services", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(
            devWith({
                target: "aws",
                nodeCount: 3,
                edgeNodes: [1, 2],
                aws: { adminCidr: ADMIN, publicKey: TEST_SSH_KEY },
                services: [
                    { ...hello, version: "v1", weight: 100 },
                    {
                        name: "pg",
                        image: "example/postgres:16.4",
                        protocol: "tcp",
                        containerPort: 5432,
                        listenPort: 5432,
                        allowedCidrs: ["203.0.113.0/24", "198.51.100.7/32"],
                    },
                    { name: "mqtt", image: "example/mqtt:2.0", protocol: "tcp", containerPort: 1883, listenPort: 1883, allowedCidrs: ["0.0.0.0/0"] },
                    { name: "queue", image: "example/queue:3.12", protocol: "tcp", containerPort: 5672, listenPort: 5672 },
                ],
            }),
        );
        assert.equal(p.error, null, String(p.error));
    });

    const rules = () =>
        p.ofType(INGRESS).map((r: Declared) => ({
            name: r.name.replace(/^hosts-aws-/, ""),
            proto: r.inputs.ipProtocol,
            from: r.inputs.fromPort,
            to: r.inputs.toPort,
            source: r.inputs.cidrIpv4 ?? (r.inputs.referencedSecurityGroupId === "hosts-aws-nodes-id" ? "self" : r.inputs.referencedSecurityGroupId),
        }));

    it("opens each listenPort to the cluster's nodes and to each allowed CIDR block, one rule each, nothing more", () => {
        assert.deepEqual(
            rules()
                .filter((r) => r.name.startsWith("tcp-"))
                .sort((a, b) => a.name.localeCompare(b.name)),
            [
                { name: "tcp-mqtt-0-0-0-0-0", proto: "tcp", from: 1883, to: 1883, source: "0.0.0.0/0" },
                { name: "tcp-mqtt-nodes", proto: "tcp", from: 1883, to: 1883, source: "self" },
                { name: "tcp-pg-198-51-100-7-32", proto: "tcp", from: 5432, to: 5432, source: "198.51.100.7/32" },
                { name: "tcp-pg-203-0-113-0-24", proto: "tcp", from: 5432, to: 5432, source: "203.0.113.0/24" },
                { name: "tcp-pg-nodes", proto: "tcp", from: 5432, to: 5432, source: "self" },
                { name: "tcp-queue-nodes", proto: "tcp", from: 5672, to: 5672, source: "self" },
            ],
        );
        // The rules the stack has without tcp services are unchanged.
        assert.deepEqual(
            rules()
                .filter((r) => !r.name.startsWith("tcp-"))
                .map((r) => r.name)
                .sort(),
            ["consul-http-nodes", "consul-rpc", "consul-serf-tcp", "consul-serf-udp", "consul-ui", "gateway-http", "gateway-https", "services", "ssh", "stats"],
        );
        for (const r of p.ofType(INGRESS)) assert.equal(r.inputs.securityGroupId, "hosts-aws-nodes-id");
    });

    it("opens nothing to the world but the gateway port and a listenPort whose allowedCidrs name 0.0.0.0/0", () => {
        assert.deepEqual(
            rules()
                .filter((r) => r.source === "0.0.0.0/0")
                .map((r) => [Number(r.from), Number(r.to)])
                .sort((a, b) => a[0] - b[0]),
            [
                [80, 80],
                [443, 443],
                [1883, 1883],
            ],
        );
        // queue (allowedCidrs []) is reachable from no CIDR block at all.
        assert.deepEqual(
            rules().filter((r) => r.from === 5672 && r.source !== "self"),
            [],
        );
    });

    it("every edge node's gateway publishes the listeners; replicas publish their container port on their node", () => {
        const gateways = p.containers().filter((c) => c.inputs.name === "dev-gateway");
        assert.equal(gateways.length, 2, "edge nodes 1 and 2");
        for (const [i, gw] of gateways.entries()) {
            // On the node's own (private) address, which the load balancer and the public address reach.
            const own = `10.42.0.${11 + i}`;
            assert.deepEqual(
                (gw.inputs.ports as Port[]).slice(3).map((x) => [x.internal, x.external, x.ip, x.protocol]),
                [
                    [5432, 5432, own, "tcp"],
                    [1883, 1883, own, "tcp"],
                    [5672, 5672, own, "tcp"],
                ],
            );
            assert.deepEqual(gw.inputs.sysctls, { "net.ipv4.ip_unprivileged_port_start": "80" });
        }
        const replica = p.replica("dev-pg-1");
        assert.deepEqual(replica.inputs.ports as Port[], [{ internal: 5432, ip: "10.42.0.11", protocol: "tcp" }]);
        assert.equal(envOf(replica).env.SERVICE_TAGS, "tcp");
        assert.deepEqual(p.outputs.tcpEndpoints, { pg: "198.51.100.11:5432", mqtt: "198.51.100.11:1883", queue: "198.51.100.11:5672" });
    });

    it("keeps a single weighted version as the default of /hello/", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        assert.deepEqual(
            keys
                .filter((k) => k.path.startsWith("service/haproxy/services/hello-v1/") || k.path.startsWith("service/haproxy/routes/"))
                .map((k) => [k.path, k.value]),
            [
                ["service/haproxy/services/hello-v1/check", "/health"],
                ["service/haproxy/services/hello-v1/replicas", "dev-hello-v1-1"],
                ["service/haproxy/services/hello-v1/weight", "100"],
            ],
        );
    });
});

describe("traffic program: the shipped Pulumi.aws.yaml", () => {
    it("splits /hello/ 90/10 and runs pg as a tcp service reachable from the cluster's nodes only", async () => {
        const p = await evaluate(shippedAws(), "aws");
        assert.equal(p.error, null, String(p.error));
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        assert.deepEqual(
            keys.filter((k) => /^service\/haproxy\/(services|routes)\//.test(k.path)).map((k) => [k.path, k.value]),
            [
                ["service/haproxy/services/hello-v1/check", "/health"],
                ["service/haproxy/services/hello-v1/replicas", "aws-hello-v1-1 aws-hello-v1-2"],
                ["service/haproxy/services/hello-v1/weight", "90"],
                ["service/haproxy/services/hello-v2/check", "/health"],
                ["service/haproxy/services/hello-v2/replicas", "aws-hello-v2-1"],
                ["service/haproxy/services/hello-v2/weight", "10"],
                ["service/haproxy/services/pg/listen", "5432"],
                ["service/haproxy/services/pg/replicas", "aws-pg-1 aws-pg-2"],
            ],
        );
        const tcpRules = p.ofType(INGRESS).filter((r) => r.inputs.fromPort === 5432);
        assert.deepEqual(
            tcpRules.map((r) => [r.name, r.inputs.cidrIpv4, r.inputs.referencedSecurityGroupId]),
            [["hosts-aws-tcp-pg-nodes", undefined, "hosts-aws-nodes-id"]],
        );
        assert.deepEqual(
            p
                .containers()
                .filter((c) => envOf(c).env.SERVICE_TAGS === "tcp")
                .map((c) => c.inputs.hostname),
            ["aws-pg-1", "aws-pg-2"],
        );
    });
});
