// The gateway's trust rules as the program declares them (docs/security.md, "Trust rules"): the networks,
// node ports and trusted proxies its template is given, per target; the KV keys of the caps and
// of each service's check path; a non-root gateway with no-new-privileges that still binds 80;
// and the template and the config agreeing on the limits.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { devWith, envOf, evaluate, Program, ROOT, TEST_SSH_KEY } from "../support/program";

const DOCKERFILE = fs.readFileSync(path.join(ROOT, "components/images/gateway/Dockerfile"), "utf8");

function gatewayEnv(p: Program, name = "dev-gateway"): Record<string, string> {
    return envOf(p.container(name)).env;
}

/** The networks the gateways are given, as Pulumi-managed KV keys (service/haproxy/networks/*). */
function networks(p: Program): { backends: string; nodes: string } {
    const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: unknown }[];
    const value = (path: string) => {
        const v = keys.find((k) => k.path === path)?.value;
        return String(v && typeof v === "object" && "$secret" in (v as object) ? (v as { $secret: unknown }).$secret : v);
    };
    return { backends: value("service/haproxy/networks/backends"), nodes: value("service/haproxy/networks/nodes") };
}

describe("trust rules: what the gateway is given", () => {
    let dev: Program;

    before(async () => {
        dev = await evaluate(devWith({}));
        assert.equal(dev.error, null, String(dev.error));
    });

    it("local: servers lie in the Docker network's subnet; the host's address there is the node", () => {
        const env = gatewayEnv(dev);
        // The node network's subnet and each service network's, as the engine picked it (the mocks: 10.200.x.0/24).
        assert.deepEqual(networks(dev), { backends: "172.28.0.0/24 10.200.26.0/24 10.200.217.0/24", nodes: "172.28.0.1/32" });
        assert.equal(env.GATEWAY_BACKEND_NETWORKS, undefined, "a KV key, so that adding nodes never replaces a gateway");
        // The ports the stack publishes on a node: gateway, stats, Consul HTTPS and DNS; and SSH.
        assert.equal(env.GATEWAY_NODE_PORTS, "80 443 1936 8501 8600 22");
        assert.equal(env.GATEWAY_TRUSTED_PROXIES, "", "no proxy trusted by default");
        assert.equal(env.GATEWAY_OWN_ADDRESSES, undefined, "the entrypoint reads the container's own addresses");
    });

    it("follows the configured subnet, ports and trusted proxies", async () => {
        const p = await evaluate(
            devWith({
                network: { name: "sd", subnet: "10.77.0.0/16" },
                gateway: { httpPort: 8080, statsPort: 9090, trustedProxies: ["10.0.0.0/8", "192.168.1.0/24"] },
                consul: { httpsPort: 18501, dnsPort: 18600 },
            }),
        );
        assert.equal(p.error, null, String(p.error));
        const env = gatewayEnv(p);
        assert.deepEqual(networks(p), { backends: "10.77.0.0/16 10.200.26.0/24 10.200.217.0/24", nodes: "10.77.0.1/32" });
        assert.equal(env.GATEWAY_NODE_PORTS, "8080 9090 18501 18600 22");
        assert.equal(env.GATEWAY_TRUSTED_PROXIES, "10.0.0.0/8 192.168.1.0/24");
    });

    it("hosts and virtualbox: every node's address, and nothing else, on every gateway", async () => {
        const hosts = await evaluate(
            devWith({
                target: "hosts",
                nodeCount: undefined,
                hosts: [
                    { name: "a", host: "ssh://ops@10.1.0.1", address: "10.1.0.1" },
                    { name: "b", host: "ssh://ops@10.9.3.7", address: "10.9.3.7" },
                ],
            }),
        );
        assert.equal(hosts.error, null, String(hosts.error));
        for (const node of ["dev-node-1", "dev-node-2"]) {
            assert.ok(
                hosts.containers().find((c) => c.name === `gateway-${node}`),
                `gateway on ${node}`,
            );
        }
        assert.deepEqual(networks(hosts), { backends: "10.1.0.1/32 10.9.3.7/32", nodes: "10.1.0.1/32 10.9.3.7/32" });
        const vbox = await evaluate(devWith({ target: "virtualbox", nodeCount: 2 }));
        assert.equal(vbox.error, null, String(vbox.error));
        assert.equal(networks(vbox).backends, "192.168.99.101/32 192.168.99.102/32");
    });

    it("aws: the VPC, where every instance address is a node's", async () => {
        const p = await evaluate(
            devWith({ target: "aws", nodeCount: 3, aws: { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY, vpcCidr: "10.60.0.0/16" } }),
        );
        assert.equal(p.error, null, String(p.error));
        const gateways = p.containers().filter((c) => String(c.inputs.name).endsWith("-gateway"));
        assert.equal(gateways.length, 3);
        assert.deepEqual(networks(p), { backends: "10.60.0.0/16", nodes: "10.60.0.0/16" });
    });

    it("writes the caps and each declared service's check path and replicas to KV", async () => {
        const keysOf = (p: Program) =>
            Object.fromEntries(
                (p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string; delete: boolean }[]).map((k) => {
                    assert.equal(k.delete, true, `${k.path} is removed on destroy`);
                    return [k.path, k.value];
                }),
            );
        const keys = keysOf(dev);
        assert.equal(keys["service/haproxy/limits/services"], "5000");
        assert.equal(keys["service/haproxy/limits/instances"], "100");
        assert.equal(keys["service/haproxy/services/hello-v1/check"], "/health");
        assert.equal(keys["service/haproxy/services/hello-v2/check"], "/health");
        const p = await evaluate(
            devWith({
                haproxy: { maxServices: 300, maxInstancesPerService: 7 },
                services: [
                    { name: "api", version: "v2", image: "example/api:2.0", healthCheckPath: "/ready" },
                    { name: "web", image: "example/web:1.0" },
                ],
            }),
        );
        assert.equal(p.error, null, String(p.error));
        const custom = keysOf(p);
        assert.equal(custom["service/haproxy/limits/services"], "300");
        assert.equal(custom["service/haproxy/limits/instances"], "7");
        assert.equal(custom["service/haproxy/services/api-v2/check"], "/ready");
        assert.equal(custom["service/haproxy/services/web/check"], "/health");
        assert.equal(custom["service/haproxy/services/api-v2/replicas"], "dev-api-v2-1");
        assert.equal(custom["service/haproxy/services/web/replicas"], "dev-web-1");
        assert.equal(custom["service/haproxy/routing/undeclared"], "false");
        assert.equal(Object.keys(custom).filter((k) => k.startsWith("service/haproxy/services/")).length, 4, "two keys per declared service, no other");
    });
});

describe("trust rules: the gateway container", () => {
    let dev: Program;

    before(async () => {
        dev = await evaluate(devWith({}));
    });

    it("runs without privileges and still binds port 80 in its network namespace", () => {
        const gw = dev.container("dev-gateway");
        assert.deepEqual(gw.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.deepEqual(gw.inputs.capabilities, { drops: ["ALL"] });
        // The controller is the main process and HAProxy its child: a minimal init reaps what a dead master leaves.
        assert.equal(gw.inputs.init, true);
        const internal = (gw.inputs.ports as { internal: number; external: number }[]).find((p) => p.external === 80)!.internal;
        assert.equal(internal, 80);
        // Unprivileged ports start at the one it binds: no capability is needed for it.
        assert.deepEqual(gw.inputs.sysctls, { "net.ipv4.ip_unprivileged_port_start": String(internal) });
        assert.equal(gw.inputs.user, undefined, "the image sets its user");
        assert.equal(gw.deleteBeforeReplace, true, "a fixed name: replaced by removing the old container first");
    });

    it("the image's user is not root, by number, and owns only the run directory", () => {
        const user = /^USER ([0-9]+):([0-9]+)$/m.exec(DOCKERFILE);
        assert.ok(user, "USER uid:gid in the Dockerfile");
        assert.notEqual(user[1], "0");
        assert.notEqual(user[2], "0");
        assert.match(DOCKERFILE, new RegExp(`useradd --system --uid ${user[1]} `));
        assert.match(DOCKERFILE, /chown gateway:gateway \/run\/gateway/);
        // The last USER wins: nothing after it switches back.
        assert.equal(DOCKERFILE.slice(DOCKERFILE.indexOf(user[0])).match(/^USER /gm)?.length, 1);
    });
});
