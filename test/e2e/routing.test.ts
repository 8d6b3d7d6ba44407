// The dev stack on a real Docker engine: the containers, images, network, volume and Consul
// keys that index.ts declares for Pulumi.dev.yaml, applied for real (test/e2e/harness), then
// driven from outside through the published ports, as a user of `pulumi up` would.
// Scenarios: the gateway starts from its built image, renders from Consul and answers; routing
// by version with the prefix stripped and round robin; the stats page's credentials; a KV
// setting changed by a second apply reaches the running HAProxy.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PROJECT } from "../support/program";
import { skipReason } from "./harness/engine";
import {
    consulGet, healthy, hello, hostnameOf, hostnames, kvValue, metric, processes, replicasOf, rotationIs, startedAt,
} from "./harness/scenario";
import { eventually, get, Stack } from "./harness/stack";

const GATEWAY = "dev-gateway";

describe("dev stack on a real engine: gateway and routing", { skip: skipReason() }, () => {
    let stack: Stack;

    before(async () => {
        stack = await Stack.up();
    }, { timeout: 20 * 60_000 });

    after(async () => {
        await stack?.down();
    }, { timeout: 120_000 });

    test("the containers that run are the program's declarations, inputs applied", async () => {
        const declared = stack.declaredContainers().filter((n) => !stack.applied.emulated.includes(n));
        assert.deepEqual(declared.sort(), ["dev-consul", "dev-gateway", "dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"]);
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
        assert.equal((await stack.docker.inspectContainer("dev-consul")).Image, consulImage.Id);
    });

    test("the gateway runs the image built from components/images/gateway, renders its config from Consul and answers", async () => {
        const build = stack.buildOf(GATEWAY);
        const c = await stack.docker.inspectContainer(GATEWAY);
        assert.equal(c.Config.Image, build.outputs.ref, "the container runs the build's ref");
        assert.equal(c.Image, build.outputs.digest, "…which is the image just built");
        const procs = await processes(stack, GATEWAY);
        assert.ok(procs.includes("haproxy") && procs.includes("consul-template"), `haproxy and consul-template run: ${procs.join(" ")}`);

        const health = await eventually("gateway /-/health", async () => {
            const r = await get(`${stack.outputs.gatewayUrl}/-/health`);
            return r.status === 200 ? r : undefined;
        });
        assert.equal(health.status, 200);

        // The live config is consul-template's rendering of what Consul holds right now.
        const instances = await eventually("two hello-v1 instances registered and passing in Consul", async () => {
            const passing = await consulGet<any[]>(stack, "/v1/health/service/hello-v1?passing");
            return passing.length === 2 ? passing : undefined;
        });
        const cfg = await eventually("rendered haproxy.cfg with both hello-v1 servers", async () => {
            const text = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
            return instances.every((i) => text.includes(`server ${i.Service.Address}:${i.Service.Port} `)) ? text : undefined;
        });
        assert.match(cfg, /^# Rendered by consul-template/m);
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
        assert.deepEqual(v1, ["dev-hello-v1-1", "dev-hello-v1-2"]);
        assert.deepEqual(v2, ["dev-hello-v2-1"]);
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
        await eventually("HAProxy runs with the first maxconn", async () => ((await metric(stack, "haproxy_process_max_connections")) === haproxy.maxconn ? true : undefined));
        const gatewayStart = await startedAt(stack, GATEWAY);
        const gatewayId = stack.containerResource(GATEWAY).id;

        // `pulumi config set haproxy …` then `pulumi up`: the program evaluated again, the diff applied.
        await stack.update({ haproxy: { ...haproxy, maxconn: 2345, timeouts: { ...haproxy.timeouts, server: "31s" } } });
        assert.equal(stack.containerResource(GATEWAY).id, gatewayId, "the gateway container is not replaced");
        assert.equal(await kvValue(stack, "service/haproxy/maxconn"), "2345");
        assert.equal(await kvValue(stack, "service/haproxy/timeouts/server"), "31s");

        const cfg = await eventually("haproxy.cfg rendered with the new settings", async () => {
            const text = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
            return /^\s+maxconn 2345$/m.test(text) ? text : undefined;
        });
        assert.match(cfg, /^\s+timeout server 31s$/m);
        // The running HAProxy (not just the file) uses it: reloaded in place.
        await eventually("HAProxy runs with maxconn 2345", async () => ((await metric(stack, "haproxy_process_max_connections")) === 2345 ? true : undefined));
        assert.equal(await startedAt(stack, GATEWAY), gatewayStart, "no gateway restart");
        assert.equal((await hello(stack, "/hello/v2/")).version, "v2", "still routing");
        assert.equal(stack.config[`${PROJECT}:haproxy`], JSON.stringify(haproxy), "the first config is untouched");
    });
});
