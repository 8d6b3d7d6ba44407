// The resource graph the program declares, evaluated under Pulumi's mocks with variations of the
// shipped Pulumi.dev.yaml: what a user relies on when they change its config before `pulumi up`.
// (The dev stack as shipped: program.test.ts.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { agentConfigOf, devWith, envOf, evaluate, uploadsOf } from "../support/program";
import { BUILD, REMOTE_IMAGE } from "./program-support";

describe("program: config variations", () => {
    it("uses a stats password and gossip key from config, as secrets, and generates none", async () => {
        const p = await evaluate(devWith({ statsPassword: "from-config-pw", consulEncryptKey: Buffer.alloc(32, 7).toString("base64") }));
        assert.equal(p.error, null);
        assert.equal(p.ofType("random:index/randomPassword:RandomPassword").length, 0);
        assert.deepEqual(
            p.ofType("random:index/randomId:RandomId").map((r) => r.name),
            ["secrets-gateway-sealing-key"],
            'only the gateways\' sealing key, which the stack always generates (docs/security.md, "TLS at the edge")',
        );
        assert.equal(uploadsOf(p.container("dev-gateway")).get("/etc/gateway/secrets/stats.password")!.content, "from-config-pw");
        assert.deepEqual(p.outputs.statsPassword, { $secret: "from-config-pw" });
        assert.equal(agentConfigOf(p.container("dev-consul")).encrypt, Buffer.alloc(32, 7).toString("base64"));
    });

    it("puts another Docker socket behind the proxy", async () => {
        const p = await evaluate(devWith({ registrator: { dockerSocket: "/run/user/1000/docker.sock" } }));
        assert.deepEqual(p.container("dev-node-1-docker-socket-proxy").inputs.volumes, [
            { hostPath: "/run/user/1000/docker.sock", containerPath: "/var/run/docker.sock", readOnly: true },
        ]);
        assert.deepEqual(p.container("dev-node-1-registrator").inputs.volumes, [
            { volumeName: "dev-consul-run", containerPath: "/consul/run", readOnly: true },
        ]);
    });

    it("writes changed HAProxy settings to KV", async () => {
        const p = await evaluate(devWith({ haproxy: { maxconn: 20000, timeouts: { connect: "2s", client: "1m", server: "45s" } } }));
        assert.deepEqual(
            (p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { value: string }[]).map((k) => k.value),
            [
                "20000",
                "2s",
                "1m",
                "45s",
                "5s",
                "10s",
                "1h",
                "5000",
                "100",
                "100",
                "0",
                "10485760",
                "1000",
                "false",
                "/health",
                "dev-hello-v1-1 dev-hello-v1-2",
                "/health",
                "dev-hello-v2-1",
                // The node network and each service's (the mocks' engine-picked subnets: test/support/mocks.ts).
                "172.28.0.0/24 10.200.26.0/24 10.200.217.0/24",
                "172.28.0.1/32",
            ],
        );
    });

    it("gateway.routeUndeclared: true writes KV routing/undeclared true (the gateway then routes services no replica of the stack registers)", async () => {
        const p = await evaluate(devWith({ gateway: { routeUndeclared: true } }));
        assert.equal(p.error, null, String(p.error));
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        assert.deepEqual(
            keys.filter((k) => k.path === "service/haproxy/routing/undeclared").map((k) => k.value),
            ["true"],
        );
    });

    it("pulls an image service, routes an unversioned one, and scales replicas", async () => {
        const p = await evaluate(
            devWith({
                services: [{ name: "echo", image: "example/echo:1.2.3", containerPort: 5678, replicas: 3, healthCheckPath: "/ping" }],
                gateway: { httpPort: 8080 },
            }),
        );
        assert.equal(p.error, null);
        assert.deepEqual(
            p
                .ofType(BUILD)
                .map((r) => r.name)
                .sort(),
            ["gateway-dev-node-1-image", "registrator-dev-node-1-docker-socket-proxy-image"],
            "only the gateway and the Docker socket proxy are built",
        );
        assert.equal(p.one(REMOTE_IMAGE, "service-echo-dev-node-1-image").inputs.name, "example/echo:1.2.3");
        assert.deepEqual(
            p
                .containers()
                .map((c) => c.inputs.hostname)
                .filter((n) => String(n).includes("echo"))
                .sort(),
            ["dev-echo-1", "dev-echo-2", "dev-echo-3"],
        );
        const { env } = envOf(p.replica("dev-echo-2"));
        assert.equal(env.SERVICE_NAME, "echo");
        assert.equal(env.IMAGE_DIGEST, undefined, "a pulled image is referenced by its ID already");
        assert.equal(env.SERVICE_TAGS, "rest,check=/ping");
        assert.equal(p.replica("dev-echo-1").inputs.ports, undefined, "nothing published on local");
        assert.deepEqual(p.outputs.serviceUrls, { echo: "http://127.0.0.1:8080/echo/" });
        assert.equal(p.outputs.gatewayUrl, "http://127.0.0.1:8080");
    });

    it("builds Node.js into the gateway from the build context when configured", async () => {
        const p = await evaluate(devWith({ gateway: { nodeSource: "context" }, buildNetwork: "host" }));
        const image = p.one(BUILD, "gateway-dev-node-1-image");
        assert.deepEqual(image.inputs.buildArgs, { NODE_SOURCE: "context" });
        assert.equal(image.inputs.network, "host");
    });

    it("uses another Consul image, subnet and ports when configured", async () => {
        const p = await evaluate(
            devWith({
                consul: { image: "registry.example.com/consul:1.16.3", httpsPort: 18501, dnsPort: 18600 },
                network: { name: "sd", subnet: "10.77.0.0/24" },
            }),
        );
        assert.equal(p.one(REMOTE_IMAGE, "consul-dev-node-1-image").inputs.name, "registry.example.com/consul:1.16.3");
        assert.equal(p.one("pulumi:providers:consul", "consul-provider").inputs.address, "https://127.0.0.1:18501");
        assert.deepEqual(p.container("dev-node-1-registrator").inputs.command, [
            "-internal",
            "-resync=30",
            "-cleanup",
            "-deregister=always",
            "consul-unix:///consul/run/http.sock",
        ]);
        assert.equal(p.outputs.consulUiUrl, "https://127.0.0.1:18501/ui/");
    });

    it("fails the evaluation with the config error and declares nothing", async () => {
        const p = await evaluate(devWith({ services: [{ name: "hello", version: "v1", build: "components/images/hello", replicas: 0 }] }));
        assert.equal(p.error, "service-discovery:services[0].replicas: 0 is not allowed; expected an integer from 1 to 50");
        assert.deepEqual(p.resources, [], "nothing half-applied");
    });
});
