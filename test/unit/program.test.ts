// The resource graph the program declares, evaluated under Pulumi's mocks with the shipped
// Pulumi.dev.yaml: what a user relies on when they run `pulumi up`. (The same program with
// variations of that config: program-variations.test.ts.)
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { agentConfigOf, envOf, evaluate, GENERATION_SUFFIX, Program, stackConfig, uploadsOf, withoutGeneration } from "../support/program";
import { BUILD, REMOTE_IMAGE } from "./program-support";

describe("program: the dev stack as shipped", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(stackConfig("dev"));
        assert.equal(p.error, null);
    });

    it("declares one component per concept, with children parented to them", () => {
        const components = p.resources
            .filter((r) => !r.custom && r.type.startsWith("service-discovery:"))
            .map((r) => `${r.type}/${r.name}`)
            .sort();
        assert.deepEqual(components, [
            "service-discovery:consul:ConsulAcl/consul-acl",
            "service-discovery:consul:ConsulCluster/consul",
            "service-discovery:consul:ConsulTls/consul-tls",
            "service-discovery:gateway:Gateway/gateway-dev-node-1",
            "service-discovery:gateway:GatewayKv/haproxy-settings",
            "service-discovery:gateway:GatewayTls/gateway-tls",
            "service-discovery:network:ServiceNetworks/service-networks",
            "service-discovery:nodes:Nodes/hosts",
            "service-discovery:registrator:DockerSocketProxy/registrator-dev-node-1-docker-socket-proxy",
            "service-discovery:registrator:Registrator/registrator-dev-node-1",
            "service-discovery:secrets:StackSecrets/secrets",
            "service-discovery:service:VersionedService/service-hello-v1",
            "service-discovery:service:VersionedService/service-hello-v2",
        ]);
        for (const r of p.resources.filter((x) => x.custom)) {
            assert.match(
                r.parent,
                /service-discovery:(nodes|network|consul|registrator|gateway|service|secrets):/,
                `${r.type}/${r.name} has no component parent`,
            );
        }
    });

    it("keeps the URNs of stacks created before the nodes component was renamed (Hosts → Nodes)", () => {
        const nodes = p.resources.find((r) => r.type === "service-discovery:nodes:Nodes")!;
        assert.deepEqual(nodes.aliases, [{ name: "", type: "service-discovery:hosts:Hosts" }]);
        assert.equal(nodes.name, "hosts", "its children are named after it: a new name would replace them");
    });

    it("runs exactly the expected containers", () => {
        assert.deepEqual(
            p
                .containers()
                .map((c) => withoutGeneration(String(c.inputs.name)))
                .sort(),
            ["dev-consul", "dev-gateway", "dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1", "dev-node-1-docker-socket-proxy", "dev-node-1-registrator"],
        );
        // Replicas carry their generation (test/unit/rolling-replace.test.ts); nothing else does.
        assert.deepEqual(
            p
                .containers()
                .filter((c) => GENERATION_SUFFIX.test(String(c.inputs.name)))
                .map((c) => c.inputs.hostname)
                .sort(),
            ["dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"],
        );
        // The Docker API network holds the socket proxy and Registrator, nothing else.
        const v1 = "service-discovery-dev-svc-hello-v1";
        const v2 = "service-discovery-dev-svc-hello-v2";
        const networks: Record<string, string[]> = {
            "dev-node-1-docker-socket-proxy": ["service-discovery-dev-docker-api"],
            // Consul through its socket: Registrator is on no network a service container is on.
            "dev-node-1-registrator": ["service-discovery-dev-docker-api"],
            // Each replica on its service's network alone; the gateway (routes) and the Consul agent
            // (checks) on every one, the node network first.
            "dev-hello-v1-1": [v1],
            "dev-hello-v1-2": [v1],
            "dev-hello-v2-1": [v2],
            "dev-gateway": ["service-discovery-dev", v1, v2],
            "dev-consul": ["service-discovery-dev", v1, v2],
        };
        for (const c of p.containers()) {
            assert.equal(c.inputs.restart, "unless-stopped", `${c.inputs.name} restarts with the engine`);
            assert.deepEqual(
                (c.inputs.networksAdvanced as { name: string }[]).map((n) => n.name),
                networks[withoutGeneration(String(c.inputs.name))],
                `${c.inputs.name} networks`,
            );
        }
    });

    it("gives each service a network of its own, which only its replicas, the gateway and the Consul agent join", () => {
        for (const consulName of ["hello-v1", "hello-v2"]) {
            const net = p.one("docker:index/network:Network", `dev-node-1-svc-${consulName}-network`);
            assert.equal(net.inputs.name, `service-discovery-dev-svc-${consulName}`);
            assert.equal(net.inputs.driver, "bridge");
            assert.equal(net.inputs.internal, false, "an internal network hides the replicas' ports from Registrator v7 (the engine lists none)");
            assert.equal(net.inputs.ipamConfigs, undefined, "the engine picks its subnet");
            assert.match(net.parent, /service-discovery:network:ServiceNetworks/);
            assert.ok(
                net.dependencies.some((d) => d.endsWith("docker:index/network:Network::dev-node-1-network")),
                "…once the node network holds its fixed one",
            );
            const members = p
                .containers()
                .filter((c) => (c.inputs.networksAdvanced as { name: string }[]).some((n) => n.name === net.inputs.name))
                .map((c) => withoutGeneration(String(c.inputs.name)))
                .sort();
            const replicas = consulName === "hello-v1" ? ["dev-hello-v1-1", "dev-hello-v1-2"] : ["dev-hello-v2-1"];
            assert.deepEqual(members, ["dev-consul", "dev-gateway", ...replicas].sort(), `on ${net.inputs.name}`);
            // Neither the gateway nor the agent is named there: a replica finds them by no name.
            for (const c of [p.container("dev-gateway"), p.container("dev-consul")]) {
                const on = (c.inputs.networksAdvanced as { name: string; aliases?: string[] }[]).find((n) => n.name === net.inputs.name)!;
                assert.equal(on.aliases, undefined, `${c.inputs.name} has no alias on ${net.inputs.name}`);
            }
        }
    });

    it("puts every container on a bridge network with a fixed subnet", () => {
        const net = p.one("docker:index/network:Network", "dev-node-1-network");
        assert.equal(net.inputs.name, "service-discovery-dev");
        assert.deepEqual(net.inputs.ipamConfigs, [{ subnet: "172.28.0.0/24", gateway: "172.28.0.1" }]);
    });

    it("runs a Consul server with UI, HTTPS API, DNS, a data volume, ACLs, TLS and gossip encryption from a config file", () => {
        const consul = p.container("dev-consul");
        const image = p.one(REMOTE_IMAGE, "consul-dev-node-1-image");
        assert.equal(image.inputs.name, "hashicorp/consul:1.16.3");
        assert.equal(consul.inputs.image, `hashicorp/consul:1.16.3@sha256:${"1".repeat(64)}`);
        assert.deepEqual(consul.inputs.command, ["agent"], "no secret on the command line: everything is in the config file");
        const files = uploadsOf(consul);
        const config = files.get("/consul/config/agent.json")!;
        assert.ok(config.secret, "the config file holds the gossip key and the management token: secret");
        assert.deepEqual([config.permissions, config.owner, config.group], ["0600", "100", "1000"], "readable by the consul user only");
        const key = files.get("/consul/tls/agent-key.pem")!;
        assert.ok(key.secret);
        assert.deepEqual([key.permissions, key.owner], ["0600", "100"]);
        assert.equal(files.get("/consul/tls/ca.pem")!.content, "-----BEGIN CERTIFICATE-----\nmock-consul-tls-ca\n-----END CERTIFICATE-----\n");
        const cfg = agentConfigOf(consul);
        assert.equal(cfg.server, true);
        assert.equal(cfg.bootstrap_expect, 1);
        assert.equal(cfg.datacenter, "dc1");
        assert.deepEqual(cfg.ui_config, { enabled: true });
        assert.equal(Buffer.from(cfg.encrypt, "base64").length, 32, "gossip key is 32 bytes, base64");
        assert.deepEqual(cfg.acl, {
            enabled: true,
            default_policy: "deny",
            down_policy: "extend-cache",
            enable_token_persistence: true,
            tokens: { initial_management: "00000000-0000-4000-8000-000000000000" },
        });
        assert.equal(cfg.tls.defaults.verify_incoming, true);
        assert.equal(cfg.tls.defaults.verify_outgoing, true);
        assert.equal(cfg.tls.internal_rpc.verify_server_hostname, true);
        // It joins the services' networks to check their replicas: it listens on its node-network address only.
        const nodeNetworkOnly = '{{ GetAllInterfaces | include "network" "172.28.0.0/24" | attr "address" }}';
        assert.deepEqual(
            cfg.addresses,
            { http: "127.0.0.1 unix:///consul/run/http.sock", https: nodeNetworkOnly, dns: nodeNetworkOnly },
            "plain HTTP on the agent's loopback and its socket only",
        );
        assert.equal(cfg.client_addr, nodeNetworkOnly);
        assert.equal(cfg.bind_addr, nodeNetworkOnly, "gossip and RPC on the node network only");
        assert.deepEqual(cfg.unix_sockets, { mode: "0600" });
        const run = p.one("docker:index/volume:Volume", "consul-dev-node-1-run");
        assert.deepEqual(run.inputs.driverOpts, { type: "tmpfs", device: "tmpfs", o: "uid=100,gid=1000,mode=0750" }, "in memory, the consul user's");
        assert.equal(cfg.limits.http_max_conns_per_client, 200);
        assert.deepEqual(consul.inputs.ports, [
            { internal: 8501, external: 8501, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 8600, external: 8600, ip: "127.0.0.1", protocol: "udp" },
        ]);
        const volume = p.one("docker:index/volume:Volume", "consul-dev-node-1-data");
        assert.equal(volume.inputs.name, "dev-consul-data");
        assert.deepEqual(consul.inputs.volumes, [
            { volumeName: "dev-consul-data", containerPath: "/consul/data" },
            { volumeName: "dev-consul-run", containerPath: "/consul/run" },
        ]);
        assert.deepEqual((consul.inputs.networksAdvanced as { aliases: string[] }[])[0].aliases, ["consul"]);
        assert.equal(envOf(consul).env.SERVICE_IGNORE, "true", "Registrator must not register Consul as a service");
        assert.equal(envOf(consul).secret, false, "no secret in the agent's environment");
        assert.equal(consul.inputs.wait, true, "pulumi up waits for a healthy Consul before writing KV");
        assert.deepEqual((consul.inputs.healthcheck as { tests: string[] }).tests, ["CMD", "consul", "catalog", "nodes"], "healthy only with a leader");
    });

    it("generates the gossip key and the stats password as secrets", () => {
        assert.equal(p.one("random:index/randomId:RandomId", "secrets-consul-gossip-key").inputs.byteLength, 32);
        const password = p.one("random:index/randomPassword:RandomPassword", "secrets-stats-password");
        assert.equal(password.inputs.length, 32);
        assert.equal(password.inputs.special, false);
        assert.deepEqual(p.outputs.statsPassword, { $secret: "generated-password-secrets-stats-password" });
    });

    it("runs Registrator through the Docker socket proxy, container addresses (-internal), resync and cleanup", () => {
        const r = p.container("dev-node-1-registrator");
        assert.equal(p.one(REMOTE_IMAGE, "registrator-dev-node-1-image").inputs.name, "gliderlabs/registrator:v7");
        // No Docker socket; only the Consul agent's socket volume, read-only.
        assert.deepEqual(r.inputs.volumes, [{ volumeName: "dev-consul-run", containerPath: "/consul/run", readOnly: true }]);
        assert.equal(r.inputs.mounts, undefined, "no Docker socket in Registrator");
        assert.equal(envOf(r).env.DOCKER_HOST, "tcp://docker-socket-proxy:2375", "Docker through the proxy");
        assert.ok(
            r.dependencies.some((d) => d.endsWith("docker:index/container:Container::registrator-dev-node-1-docker-socket-proxy")),
            "starts after the proxy is healthy",
        );
        assert.deepEqual(r.inputs.command, ["-internal", "-resync=30", "-cleanup", "-deregister=always", "consul-unix:///consul/run/http.sock"]);
        assert.equal(r.inputs.hostname, "dev-node-1", "Registrator's service IDs start with the node name");
        assert.ok(
            r.dependencies.some((d) => d.endsWith("::consul-dev-node-1")),
            "starts after Consul",
        );
    });

    it("runs the Docker socket proxy, built from its folder, as the only container with the socket, alone with Registrator on an internal network", () => {
        const image = p.one(BUILD, "registrator-dev-node-1-docker-socket-proxy-image");
        assert.deepEqual(image.inputs.context, { location: "components/images/socket-proxy" });
        assert.deepEqual(image.inputs.dockerfile, { location: "components/images/socket-proxy/Dockerfile" });
        assert.deepEqual(image.inputs.tags, ["service-discovery/docker-socket-proxy:dev"]);
        assert.equal(image.inputs.push, false);
        assert.equal(image.inputs.load, true);

        const proxy = p.container("dev-node-1-docker-socket-proxy");
        assert.equal(proxy.inputs.image, `service-discovery/docker-socket-proxy:dev@sha256:${"0".repeat(64)}`);
        assert.deepEqual(proxy.inputs.volumes, [{ hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock", readOnly: true }]);
        assert.equal(proxy.inputs.ports, undefined, "nothing published");
        assert.deepEqual(proxy.inputs.networksAdvanced, [{ name: "service-discovery-dev-docker-api", aliases: ["docker-socket-proxy"] }]);
        assert.deepEqual(proxy.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.deepEqual(proxy.inputs.capabilities, { drops: ["ALL"], adds: ["SETUID", "SETGID", "SETPCAP"] });
        assert.equal(proxy.inputs.readOnly, true);
        assert.equal(proxy.inputs.wait, true, "healthy (the engine answers through it) before Registrator starts");
        const { env } = envOf(proxy);
        assert.equal(env.SERVICE_IGNORE, "true", "never registered as a service");
        assert.equal(env.IMAGE_DIGEST, `sha256:${"0".repeat(64)}`, "a rebuilt image replaces the container");

        const net = p.one("docker:index/network:Network", "registrator-dev-node-1-docker-socket-proxy-network");
        assert.equal(net.inputs.name, "service-discovery-dev-docker-api");
        assert.equal(net.inputs.internal, true, "no route out of the Docker API network");
        assert.equal(net.inputs.ipamConfigs, undefined, "the engine picks a free subnet");
        assert.ok(
            net.dependencies.some((d) => d.endsWith("docker:index/network:Network::dev-node-1-network")),
            "…once the node network holds its fixed one",
        );

        // Only the proxy mounts anything that holds the socket; only it and Registrator share its network.
        for (const c of p.containers()) {
            const sources = [
                ...((c.inputs.volumes ?? []) as { hostPath?: string }[]).map((v) => v.hostPath),
                ...((c.inputs.mounts ?? []) as { source?: string }[]).map((m) => m.source),
            ];
            if (c.inputs.name !== "dev-node-1-docker-socket-proxy") {
                assert.ok(!sources.some((s) => s !== undefined && /docker\.sock$|^\/(var\/)?run\/?$/.test(s)), `${c.inputs.name} mounts ${sources}`);
            }
            const onApi = ((c.inputs.networksAdvanced ?? []) as { name: string }[]).some((n) => n.name === "service-discovery-dev-docker-api");
            assert.equal(
                onApi,
                ["dev-node-1-docker-socket-proxy", "dev-node-1-registrator"].includes(c.inputs.name as string),
                `${c.inputs.name} on the Docker API network`,
            );
        }
    });

    it("builds the gateway image from its folder and runs it with the secret credentials", () => {
        const image = p.one(BUILD, "gateway-dev-node-1-image");
        assert.deepEqual(image.inputs.context, { location: "components/images/gateway" });
        assert.deepEqual(image.inputs.dockerfile, { location: "components/images/gateway/Dockerfile" });
        assert.deepEqual(image.inputs.buildArgs, { NODE_SOURCE: "release" });
        assert.deepEqual(image.inputs.tags, ["service-discovery/gateway:dev"]);
        assert.equal(image.inputs.push, false);
        assert.equal(image.inputs.load, true, "the image must land in the local engine the containers run on");

        const gw = p.container("dev-gateway");
        assert.equal(gw.inputs.image, `service-discovery/gateway:dev@sha256:${"0".repeat(64)}`);
        const { env, secret } = envOf(gw);
        assert.equal(secret, false, "no secret in the gateway's environment: the password and the token are files");
        assert.equal(env.STATS_USER, "stats");
        assert.equal(env.STATS_PASSWORD, undefined);
        assert.equal(env.STATS_PASSWORD_FILE, "/etc/gateway/secrets/stats.password");
        assert.equal(uploadsOf(gw).get("/etc/gateway/secrets/stats.password")!.content, "generated-password-secrets-stats-password");
        assert.equal(env.CONSUL_HTTP_ADDR, "consul:8501");
        assert.equal(env.CONSUL_HTTP_SSL, "true");
        assert.equal(env.CONSUL_CACERT, "/etc/gateway/consul-ca.pem");
        assert.equal(env.CONSUL_HTTP_TOKEN, undefined);
        assert.equal(env.CONSUL_HTTP_TOKEN_FILE, "/etc/gateway/secrets/consul.token");
        assert.equal(uploadsOf(gw).get("/etc/gateway/secrets/consul.token")!.content, "secret-of-consul-acl-gateway-id", "the gateway's own read-only token");
        assert.equal(uploadsOf(gw).get("/etc/gateway/consul-ca.pem")!.content, "-----BEGIN CERTIFICATE-----\nmock-consul-tls-ca\n-----END CERTIFICATE-----\n");
        assert.equal(env.IMAGE_DIGEST, `sha256:${"0".repeat(64)}`, "a rebuilt image replaces the container");
        assert.equal(env.SERVICE_80_NAME, "gateway", "the gateway registers itself in Consul");
        assert.equal(env.SERVICE_1936_NAME, "gateway-stats");
        assert.equal(env.SERVICE_TAGS, undefined, "the gateway is never routed (no rest tag)");
        assert.equal(env.SERVICE_80_CHECK_HTTP, "/-/health", "registered with its container address, which Consul checks on the stack's network");
        assert.deepEqual(gw.inputs.ports, [
            { internal: 80, external: 80, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 443, external: 443, ip: "127.0.0.1", protocol: "tcp" },
            { internal: 1936, external: 1936, ip: "127.0.0.1", protocol: "tcp" },
        ]);
        for (const dep of ["::consul-dev-node-1", "::registrator-dev-node-1"]) {
            assert.ok(
                gw.dependencies.some((d) => d.endsWith(dep)),
                `gateway depends on ${dep}: ${gw.dependencies}`,
            );
        }
    });

    it("runs each service version's replicas with the environment Registrator reads", () => {
        const expected: [string, string, string][] = [
            ["dev-hello-v1-1", "hello-v1", "v1"],
            ["dev-hello-v1-2", "hello-v1", "v1"],
            ["dev-hello-v2-1", "hello-v2", "v2"],
        ];
        for (const [name, consulName, version] of expected) {
            const c = p.replica(name);
            const { env, secret } = envOf(c);
            assert.equal(secret, false);
            assert.deepEqual(env, {
                IMAGE_DIGEST: `sha256:${"0".repeat(64)}`,
                SERVICE_NAME: consulName,
                SERVICE_TAGS: "rest,check=/health",
                // Per port too: an image's own SERVICE_8080_NAME cannot take the port elsewhere.
                SERVICE_8080_NAME: consulName,
                SERVICE_8080_TAGS: "rest,check=/health",
                SERVICE_CHECK_HTTP: "/health",
                SERVICE_CHECK_INTERVAL: "5s",
                SERVICE_CHECK_TIMEOUT: "2s",
                PORT: "8080",
                APP_SERVICE: "hello",
                APP_VERSION: version,
                // The grace period of the graceful drain (test/unit/drain.test.ts).
                DRAIN_SECONDS: "10",
            });
            // One node: nothing published; the gateway reaches the container on the shared network.
            assert.equal(c.inputs.ports, undefined, `${name} publishes no port`);
            assert.equal(c.inputs.hostname, name, "the hostname is what the example service answers with");
            assert.equal(c.inputs.image, `service-discovery/hello:${version}-dev@sha256:${"0".repeat(64)}`);
            assert.ok(
                c.dependencies.some((d) => d.endsWith("::registrator-dev-node-1")),
                "starts after Registrator, so it is registered",
            );
        }
        const build = p.one(BUILD, "service-hello-v1-dev-node-1-image");
        assert.deepEqual(build.inputs.context, { location: "components/images/hello" });
        assert.equal(build.inputs.push, false);
    });

    it("keeps the HAProxy settings in Consul KV through a provider pointed at the stack's Consul", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings");
        assert.deepEqual(keys.inputs.keys, [
            { path: "service/haproxy/maxconn", value: "4096", delete: true },
            { path: "service/haproxy/timeouts/connect", value: "5s", delete: true },
            { path: "service/haproxy/timeouts/client", value: "30s", delete: true },
            { path: "service/haproxy/timeouts/server", value: "30s", delete: true },
            { path: "service/haproxy/timeouts/http-request", value: "5s", delete: true },
            { path: "service/haproxy/timeouts/http-keep-alive", value: "10s", delete: true },
            { path: "service/haproxy/timeouts/tcp-idle", value: "1h", delete: true },
            { path: "service/haproxy/limits/services", value: "5000", delete: true },
            { path: "service/haproxy/limits/instances", value: "100", delete: true },
            { path: "service/haproxy/limits/client-connections", value: "100", delete: true },
            { path: "service/haproxy/limits/client-rate", value: "0", delete: true },
            { path: "service/haproxy/limits/body-size", value: "10485760", delete: true },
            { path: "service/haproxy/limits/server-maxconn", value: "1000", delete: true },
            { path: "service/haproxy/routing/undeclared", value: "false", delete: true },
            { path: "service/haproxy/services/hello-v1/check", value: "/health", delete: true },
            { path: "service/haproxy/services/hello-v1/replicas", value: "dev-hello-v1-1 dev-hello-v1-2", delete: true },
            { path: "service/haproxy/services/hello-v2/check", value: "/health", delete: true },
            { path: "service/haproxy/services/hello-v2/replicas", value: "dev-hello-v2-1", delete: true },
            // The node network (sharedNetwork services) and each service network, as the engine picked it (mocks: 10.200.x.0/24).
            { path: "service/haproxy/networks/backends", value: "172.28.0.0/24 10.200.26.0/24 10.200.217.0/24", delete: true },
            { path: "service/haproxy/networks/nodes", value: "172.28.0.1/32", delete: true },
        ]);
        const provider = p.one("pulumi:providers:consul", "consul-acl-kv-provider");
        assert.equal(provider.inputs.address, "https://127.0.0.1:8501");
        assert.equal(provider.inputs.scheme, "https");
        assert.deepEqual(
            provider.inputs.token,
            { $secret: "secret-of-consul-acl-gateway-settings-writer-id" },
            "the KV writer's token, not the management token",
        );
        assert.ok(keys.provider.includes("pulumi:providers:consul::consul-acl-kv-provider"), `keys use ${keys.provider}`);
        const management = p.one("pulumi:providers:consul", "consul-provider");
        assert.deepEqual(management.inputs.token, { $secret: "00000000-0000-4000-8000-000000000000" });
        assert.ok(
            management.dependencies.some((d) => d.endsWith("docker:index/container:Container::consul-dev-node-1")),
            "provider waits for the Consul container",
        );
    });

    it("writes each service's replicas to KV: exactly the containers it runs for that service, by replica name", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        const inKv = new Map(
            keys
                .filter((k) => k.path.endsWith("/replicas"))
                .map((k) => [k.path.replace(/^service\/haproxy\/services\/(.*)\/replicas$/, "$1"), k.value.split(" ")]),
        );
        // The service containers the program declares, grouped by the name Registrator registers
        // their port under; the gateway matches a container by its name without the generation.
        const running = new Map<string, string[]>();
        for (const c of p.containers()) {
            const { env } = envOf(c);
            const name = env[`SERVICE_${env.PORT}_NAME`];
            if (name === undefined || !GENERATION_SUFFIX.test(String(c.inputs.name))) continue;
            running.set(name, [...(running.get(name) ?? []), withoutGeneration(String(c.inputs.name))]);
        }
        assert.deepEqual([...running.keys()].sort(), ["hello-v1", "hello-v2"]);
        assert.deepEqual([...inKv].map(([svc, names]) => [svc, [...names].sort()]).sort(), [...running].map(([svc, names]) => [svc, [...names].sort()]).sort());
    });

    it("exports the gateway, service, stats and Consul UI URLs", () => {
        assert.equal(p.outputs.gatewayUrl, "http://127.0.0.1");
        assert.deepEqual(p.outputs.serviceUrls, { "hello-v1": "http://127.0.0.1/hello/v1/", "hello-v2": "http://127.0.0.1/hello/v2/" });
        assert.equal(p.outputs.statsUrl, "http://127.0.0.1:1936/");
        assert.equal(p.outputs.consulUiUrl, "https://127.0.0.1:8501/ui/");
        assert.equal(p.outputs.statsUser, "stats");
        assert.deepEqual(p.outputs.consulManagementToken, { $secret: "00000000-0000-4000-8000-000000000000" });
    });
});
