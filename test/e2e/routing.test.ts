// The dev stack's config on a real Docker engine: the containers, images, network, volume and
// Consul keys that index.ts declares for Pulumi.dev.yaml, applied for real (test/e2e/harness) as
// stack `e2e`, then driven from outside through the published ports, as a user of `pulumi up`
// would. A `dev` stack's containers, network, volume and image tag are on the same engine the
// whole time (harness/lookalikes.ts) and must come out untouched.
// Scenarios: the gateway starts from its built image, renders from Consul and answers; routing
// by version with the prefix stripped and round robin; the stats page's credentials; a KV
// setting changed by a second apply reaches the running HAProxy.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LOG_LIMITS } from "../../components/container-defaults";
import { PROJECT, withoutGeneration } from "../support/program";
import { skipReason } from "./harness/engine";
import {
    consulGet,
    healthy,
    hello,
    hostnameOf,
    hostnames,
    kvValue,
    masterReloads,
    metric,
    processes,
    replicasOf,
    rotationIs,
    startedAt,
} from "./harness/scenario";
import { DevLookalikes } from "./harness/lookalikes";
import { E2E_STACK, e2eName, eventually, get, Stack } from "./harness/stack";

const GATEWAY = e2eName("gateway");

describe("the dev stack's config on a real engine (stack e2e): gateway and routing", { skip: skipReason() }, () => {
    let stack: Stack;
    let devStack: DevLookalikes | undefined;

    before(
        async () => {
            stack = await Stack.up({
                beforeApply: async (docker) => {
                    devStack = await DevLookalikes.create(docker);
                },
            });
        },
        { timeout: 20 * 60_000 },
    );

    after(
        async () => {
            if (!stack) {
                // The bring-up failed (and released the engine): best effort on what was made.
                await devStack?.remove().catch(() => undefined);
                return;
            }
            // The engine may be the suite's own: look at the dev stack's objects before it stops.
            try {
                await stack.down({ keepEngine: true });
            } finally {
                try {
                    if (devStack) {
                        const changes = await devStack.changes();
                        await devStack.remove();
                        assert.deepEqual(changes, [], "the suite's teardown left the dev stack's containers, network, volume and image as they were");
                    }
                } finally {
                    await stack.engine.release();
                }
            }
        },
        { timeout: 120_000 },
    );

    test("the containers that run are the program's declarations, inputs applied", async () => {
        const declared = stack.declaredContainers().filter((n) => !stack.applied.emulated.includes(n));
        assert.deepEqual(
            declared.map(withoutGeneration).sort(),
            ["consul", "gateway", "hello-v1-1", "hello-v1-2", "hello-v2-1", "node-1-docker-socket-proxy"].map(e2eName),
        );
        // The replicas' containers carry their generation (components/service.ts), their hostnames do not.
        for (const name of [...replicasOf(stack, "hello-v1"), ...replicasOf(stack, "hello-v2")]) {
            assert.match(name, /^e2e-hello-v[12]-[12]-[0-9a-f]{8}$/);
            assert.equal(stack.applied.containers.get(name)!.hostname, withoutGeneration(name));
        }
        for (const name of declared) {
            const want = stack.applied.containers.get(name)!;
            const c = await stack.docker.inspectContainer(name);
            assert.equal(c.State.Running, true, `${name} running`);
            assert.equal(c.Config.Hostname, want.hostname, `${name} hostname`);
            assert.equal(c.Config.Image, want.image, `${name} image`);
            for (const env of want.envs) assert.ok(c.Config.Env.includes(env), `${name} env ${env.replace(/=.*/, "=…")}`);
            if (want.command) assert.deepEqual(c.Config.Cmd, want.command, `${name} command`);
            assert.equal(c.HostConfig.RestartPolicy.Name, want.restart ?? "no", `${name} restart`);
            for (const port of want.ports) {
                const binding = c.NetworkSettings.Ports[`${port.internal}/${port.protocol}`]?.[0];
                assert.ok(binding, `${name} publishes ${port.internal}/${port.protocol}`);
                assert.equal(binding.HostIp, port.ip, `${name} ${port.internal} bound to ${port.ip}`);
                if (port.external !== undefined) assert.equal(binding.HostPort, String(port.external));
            }
            for (const n of want.networks) {
                const endpoint = c.NetworkSettings.Networks[n.name];
                assert.ok(endpoint, `${name} on ${n.name}`);
                for (const alias of n.aliases) assert.ok(endpoint.Aliases.includes(alias), `${name} alias ${alias}`);
            }
            for (const v of want.volumes) {
                const mount = c.Mounts.find((m: any) => m.Destination === v.containerPath);
                assert.ok(mount, `${name} mounts ${v.containerPath}`);
                if (v.volumeName) assert.equal(mount.Name, v.volumeName);
                assert.equal(mount.RW, !v.readOnly);
            }
            if (want.healthcheck) assert.deepEqual(c.Config.Healthcheck.Test, want.healthcheck.tests, `${name} healthcheck`);
        }
        // Consul runs the image the stack config names (the stand-in built from our binary).
        const consulImage = await stack.docker.imageExists(stack.configValue("consul").image);
        assert.equal((await stack.docker.inspectContainer(e2eName("consul"))).Image, consulImage.Id);
    });

    // Docker Desktop cannot publish on an address the host does not own: on one node nothing of a
    // service is published, and Registrator (-internal) registers the container's own address.
    test("no service container publishes a port: Consul has each at its address on its service's network and its container port", async () => {
        const replicas = [...replicasOf(stack, "hello-v1"), ...replicasOf(stack, "hello-v2")];
        assert.equal(replicas.length, 3);
        const expected: string[] = [];
        for (const name of replicas) {
            const c = await stack.docker.inspectContainer(name);
            assert.deepEqual(c.HostConfig.PortBindings ?? {}, {}, `${name}: no port bindings`);
            const published = Object.entries(c.NetworkSettings.Ports ?? {}).filter(([, b]) => Array.isArray(b) && b.length > 0);
            assert.deepEqual(published, [], `${name}: nothing published`);
            // One network, its service's own (components/service-networks.ts): the address is unambiguous.
            const networks = Object.entries(c.NetworkSettings.Networks as Record<string, { IPAddress: string }>);
            const consulName = name.startsWith(e2eName("hello-v1")) ? "hello-v1" : "hello-v2";
            assert.equal(networks.length, 1, `${name}: one network`);
            assert.ok(networks[0]![0].endsWith(`-${E2E_STACK}-svc-${consulName}`), `${name}: on ${networks[0]![0]}`);
            expected.push(`${name} ${networks[0]![1].IPAddress}:8080`);
        }
        const passing = await eventually("the three hello instances passing in Consul", async () => {
            const all = [
                ...(await consulGet<any[]>(stack, "/v1/health/service/hello-v1?passing")),
                ...(await consulGet<any[]>(stack, "/v1/health/service/hello-v2?passing")),
            ];
            return all.length === 3 ? all : undefined;
        });
        assert.deepEqual(passing.map((i) => `${String(i.Service.ID).split(":")[1]} ${i.Service.Address}:${i.Service.Port}`).sort(), expected.sort());
        for (const i of passing) {
            const http = i.Checks.find((k: any) => k.ServiceID === i.Service.ID);
            assert.ok(http, `${i.Service.ID} has its HTTP check`);
            assert.equal(http.Status, "passing");
        }
        const cfg = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
        for (const line of expected) assert.ok(cfg.includes(`server ${line.split(" ")[1]} `), `the gateway routes to ${line}`);
    });

    test("a dev stack's containers, network, volume and image on the same engine are left alone and never routed", async () => {
        assert.ok(devStack, "the dev stack's objects were made before the apply");
        assert.deepEqual(await devStack.changes(), [], "untouched by the apply");
        const ours = [...stack.declaredContainers(), ...stack.applied.created.map((c) => c.name)];
        for (const name of ours)
            assert.ok(!DevLookalikes.containerNames.includes(name) && !/^(dev-|service-discovery-dev$)/.test(name), `${name} is not a dev stack name`);
        assert.ok(
            stack.declaredContainers().every((n) => n.startsWith(`${E2E_STACK}-`)),
            stack.declaredContainers().join(", "),
        );
        const answered = new Set(await hostnames(stack, "/hello/v1/", 8));
        assert.deepEqual([...answered].sort(), [e2eName("hello-v1-1"), e2eName("hello-v1-2")], "only the suite's replicas answer");
    });

    test("every running container has the program's log limits, and the engine rotates its log", async () => {
        const running = stack.declaredContainers().filter((n) => !stack.applied.emulated.includes(n));
        assert.ok(running.length >= 5, `containers: ${running.join(", ")}`);
        for (const name of running) {
            const c = await stack.docker.inspectContainer(name);
            assert.deepEqual(c.HostConfig.LogConfig, { Type: LOG_LIMITS.logDriver, Config: { ...LOG_LIMITS.logOpts } }, `${name}: HostConfig.LogConfig`);
        }
        // A replica's main process writes ~3x what the limits keep: the engine keeps the newest
        // lines and drops the oldest, instead of filling the node's disk.
        const [replica] = replicasOf(stack, "hello-v2");
        const marker = `log-rotation-check-${Date.now()}`;
        const written = 48_000_000;
        await stack.exec(replica, [
            "sh",
            "-c",
            `yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop | head -c ${written} > /proc/1/fd/1 && echo ${marker} > /proc/1/fd/1`,
        ]);
        const kept = await eventually(
            "the marker line in the replica's log",
            async () => {
                const out = (await stack.docker.cli(["logs", replica], { timeoutMs: 120_000 })).stdout;
                return out.includes(marker) ? out : undefined;
            },
            60_000,
            1000,
        );
        assert.ok(kept.length < written / 2, `kept ${kept.length} of ${written} bytes written: the log is bounded`);
        assert.ok(kept.length > 1_000_000, `kept ${kept.length} bytes: the newest logs stay readable`);
        // The flood did not stop it: still running, and its service still answers.
        assert.equal((await stack.docker.inspectContainer(replica)).State.Running, true);
        const port = stack.applied.containers
            .get(replica)!
            .envs.find((e: string) => e.startsWith("PORT="))!
            .slice(5);
        await stack.exec(replica, ["python3", "-c", `import urllib.request; urllib.request.urlopen("http://127.0.0.1:${port}/health", timeout=5)`]);
    });

    test("the gateway runs the image built from components/images/gateway, renders its config from Consul and answers", async () => {
        const build = stack.buildOf(GATEWAY);
        const c = await stack.docker.inspectContainer(GATEWAY);
        assert.equal(c.Config.Image, build.outputs.ref, "the container runs the build's ref");
        assert.equal(c.Image, build.outputs.digest, "…which is the image just built");
        const procs = await processes(stack, GATEWAY);
        assert.ok(procs.includes("haproxy") && procs.includes("node"), `haproxy and the controller (node) run: ${procs.join(" ")}`);
        assert.ok(!procs.includes("consul-template"), procs.join(" "));

        const health = await eventually("gateway /-/health", async () => {
            const r = await get(`${stack.outputs.gatewayUrl}/-/health`);
            return r.status === 200 ? r : undefined;
        });
        assert.equal(health.status, 200);

        // The live config is the controller's rendering of what Consul holds right now.
        const instances = await eventually("two hello-v1 instances registered and passing in Consul", async () => {
            const passing = await consulGet<any[]>(stack, "/v1/health/service/hello-v1?passing");
            return passing.length === 2 ? passing : undefined;
        });
        const cfg = await eventually("rendered haproxy.cfg with both hello-v1 servers", async () => {
            const text = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
            return instances.every((i) => text.includes(`server ${i.Service.Address}:${i.Service.Port} `)) ? text : undefined;
        });
        assert.match(cfg, /^# Written by the gateway controller/m);
        assert.match(cfg, /^backend svc_hello-v1$/m);
        assert.match(cfg, /^backend svc_hello-v2$/m);

        const answer = await eventually("GET /hello/v1/ through the gateway", () => hello(stack, "/hello/v1/"));
        assert.equal(answer.service, "hello");
        assert.equal(answer.version, "v1");
    });

    // Docker's view of the gateway: its health check must pass once the gateway answers.
    test("the gateway container reports healthy to Docker", async () => {
        await healthy(stack, GATEWAY, 40_000);
    });

    // `wait: true` on the Consul container is there so the KV keys can be written right after.
    test("Consul accepts KV writes as soon as its container reports healthy", () => {
        assert.deepEqual(stack.applied.findings, []);
    });

    test("/hello/v1/ reaches only v1 containers and /hello/v2/ only v2, prefix stripped, round robin across v1 replicas", async () => {
        const v1 = replicasOf(stack, "hello-v1").map((c) => hostnameOf(stack, c));
        const v2 = replicasOf(stack, "hello-v2").map((c) => hostnameOf(stack, c));
        assert.deepEqual(v1, [e2eName("hello-v1-1"), e2eName("hello-v1-2")]);
        assert.deepEqual(v2, [e2eName("hello-v2-1")]);
        await rotationIs(stack, "/hello/v1/", v1);

        // Round robin: consecutive requests alternate between the two replicas.
        const order = await hostnames(stack, "/hello/v1/rr", 10);
        for (let i = 1; i < order.length; i++) assert.notEqual(order[i], order[i - 1], `round robin: ${order.join(" ")}`);
        assert.equal(order.filter((h) => h === v1[0]).length, 5, `even split: ${order.join(" ")}`);

        for (let i = 0; i < 6; i++) {
            const a = await hello(stack, "/hello/v1/some/path?q=1");
            assert.equal(a.version, "v1");
            assert.ok(v1.includes(a.hostname), `v1 answered by ${a.hostname}`);
            assert.equal(a.path, "/some/path?q=1", "prefix /hello/v1 stripped");
            assert.equal(a.forwarded_prefix, "/hello/v1");
        }
        for (let i = 0; i < 4; i++) {
            const a = await hello(stack, "/hello/v2/other");
            assert.equal(a.version, "v2");
            assert.equal(a.hostname, v2[0]);
            assert.equal(a.path, "/other");
            assert.equal(a.forwarded_prefix, "/hello/v2");
        }
        assert.equal((await hello(stack, "/hello/v1")).path, "/", "the bare prefix maps to /");
        for (const path of ["/hello/v3/", "/hello/", "/hello-v1/", "/hello/v10/"]) {
            assert.equal((await get(`${stack.outputs.gatewayUrl}${path}`)).status, 404, `${path} has no route`);
        }
        // The stack outputs name the same URLs.
        assert.equal(stack.outputs.serviceUrls["hello-v1"], `${stack.outputs.gatewayUrl}/hello/v1/`);
    });

    test("the stats page needs the generated credentials and refuses others", async () => {
        const { statsUrl, statsUser, statsPassword } = stack.outputs;
        assert.match(statsPassword, /^[A-Za-z0-9]{32}$/, "a generated 32-character password");
        const ok = await get(statsUrl, { user: statsUser, password: statsPassword });
        assert.equal(ok.status, 200);
        assert.match(ok.body, /Statistics Report/);
        assert.equal((await get(statsUrl)).status, 401, "no credentials");
        assert.equal((await get(statsUrl, { user: statsUser, password: `${statsPassword}x` })).status, 401, "wrong password");
        assert.equal((await get(statsUrl, { user: statsUser, password: "" })).status, 401, "empty password");
        assert.equal((await get(statsUrl, { user: "admin", password: statsPassword })).status, 401, "wrong user");
        assert.equal((await get(`${statsUrl.replace(/\/$/, "")}/metrics`)).status, 401, "metrics need them too");
    });

    test("a KV setting changed by a second apply (consul.Keys) reaches the running HAProxy, without a restart", async () => {
        const haproxy = stack.configValue("haproxy");
        assert.equal(await kvValue(stack, "service/haproxy/maxconn"), String(haproxy.maxconn));
        await eventually("HAProxy runs with the first maxconn", async () =>
            (await metric(stack, "haproxy_process_max_connections")) === haproxy.maxconn ? true : undefined,
        );
        const gatewayStart = await startedAt(stack, GATEWAY);
        const gatewayId = stack.containerResource(GATEWAY).id;
        const reloads = (): Promise<number> => masterReloads(stack, GATEWAY);
        const reloadsBefore = await reloads();

        // `pulumi config set haproxy …` then `pulumi up`: the program evaluated again, the diff applied.
        await stack.update({ haproxy: { ...haproxy, maxconn: 2345, timeouts: { ...haproxy.timeouts, server: "31s" } } });
        assert.equal(stack.containerResource(GATEWAY).id, gatewayId, "the gateway container is not replaced");
        assert.equal(await kvValue(stack, "service/haproxy/maxconn"), "2345");
        assert.equal(await kvValue(stack, "service/haproxy/timeouts/server"), "31s");

        // Both settings, as the test asserts them: the keys of one apply land in one reload.
        const cfg = await eventually("haproxy.cfg rendered with both new settings", async () => {
            const text = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
            return /^\s+maxconn 2345$/m.test(text) && /^\s+timeout server 31s$/m.test(text) ? text : undefined;
        });
        assert.match(cfg, /^\s+timeout server 31s$/m);
        assert.equal(await reloads(), reloadsBefore + 1, "one apply, one reload");
        // The controller's own metrics answer behind the same credentials.
        assert.equal(await metric(stack, "gateway_controller_latest_render_running", "/metrics/controller"), 1);
        // The running HAProxy (not just the file) uses it: reloaded in place.
        await eventually("HAProxy runs with maxconn 2345", async () => ((await metric(stack, "haproxy_process_max_connections")) === 2345 ? true : undefined));
        assert.equal(await startedAt(stack, GATEWAY), gatewayStart, "no gateway restart");
        assert.equal((await hello(stack, "/hello/v2/")).version, "v2", "still routing");
        assert.equal(stack.config[`${PROJECT}:haproxy`], JSON.stringify(haproxy), "the first config is untouched");
    });
});
