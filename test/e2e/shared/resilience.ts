// The dev stack's config on a real Docker engine (see ../routing.test.ts), disturbed: a service replica
// stopped and started again, the Consul container restarted, the gateway container restarted.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { consulGet, hello, hostnameOf, hostnames, kvValue, replicasOf, rotationIs, startedAt } from "../harness/scenario";
import { E2E_STACK, e2eName, eventually, get, type Stack } from "../harness/stack";

const GATEWAY = e2eName("gateway");
const CONSUL = e2eName("consul");

export function resilienceSuite(up: () => Stack): void {
    describe("the dev stack's config on a real engine (stack e2e): failures and restarts", () => {
        let stack: Stack;
        let v1: string[];

        before(
            async () => {
                stack = up();
                v1 = replicasOf(stack, "hello-v1");
                assert.equal(v1.length, 2, "the dev stack runs two hello v1 replicas");
                await rotationIs(
                    stack,
                    "/hello/v1/",
                    v1.map((c) => hostnameOf(stack, c)),
                );
            },
            { timeout: 20 * 60_000 },
        );

        test("a stopped replica leaves the rotation; started again it is back, with no gateway restart", async () => {
            const [stopped, other] = v1;
            const gatewayStart = await startedAt(stack, GATEWAY);

            await stack.docker.request("POST", `/containers/${stopped}/stop?t=5`);
            await stack.registratorSettled();
            await rotationIs(stack, "/hello/v1/", [hostnameOf(stack, other)]);
            // Settled: every request now goes to the other replica, none fails.
            assert.deepEqual(new Set(await hostnames(stack, "/hello/v1/", 10)), new Set([hostnameOf(stack, other)]));
            // Registrator deregisters it on the container's `die` event; with the graceful drain it
            // left rotation before that, while it still ran, so the event may still be on its way.
            const ours = await eventually(
                "the stopped replica deregistered",
                async () => {
                    const registered = await consulGet<any[]>(stack, "/v1/catalog/service/hello-v1");
                    // A real Registrator also registers other stacks' containers of the engine (never passing
                    // here: they are on another network); only this stack's are asserted.
                    const ids = registered.map((s) => String(s.ServiceID)).filter((id) => id.split(":")[1]?.startsWith(`${E2E_STACK}-`));
                    return ids.length < 2 ? ids : undefined;
                },
                15_000,
            );
            assert.deepEqual(ours, [`${e2eName("node-1")}:${other}:8080`], "deregistered from Consul");

            await stack.docker.request("POST", `/containers/${stopped}/start`);
            await stack.registratorSettled();
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
            );
            const order = await hostnames(stack, "/hello/v1/", 6);
            assert.equal(order.filter((h) => h === hostnameOf(stack, stopped)).length, 3, `back in round robin: ${order.join(" ")}`);

            const g = await stack.docker.inspectContainer(GATEWAY);
            assert.equal(g.State.StartedAt, gatewayStart, "the gateway was not restarted");
            assert.equal(g.RestartCount, 0);
        });

        test("the Consul container restarted: its KV data survives on its volume, routing continues", async () => {
            const c = await stack.docker.inspectContainer(CONSUL);
            const volume = stack.applied.containers.get(CONSUL)!.volumes[0];
            const mount = c.Mounts.find((m: any) => m.Destination === volume.containerPath);
            assert.equal(mount?.Type, "volume");
            assert.equal(mount?.Name, volume.volumeName, "Consul's data dir is the declared volume");

            const before_ = await consulGet<any[]>(stack, "/v1/kv/service/haproxy/?recurse");
            const maxconn = await kvValue(stack, "service/haproxy/maxconn");
            assert.equal(maxconn, String(stack.configValue("haproxy").maxconn));
            const declared = [...stack.applied.state.values()].filter((r) => r.type === "consul:index/keys:Keys").flatMap((r) => r.inputs.keys as unknown[]);
            assert.equal(before_.length, declared.length, "the keys GatewaySettings declares (settings, caps, each service's check path)");

            const started = await startedAt(stack, CONSUL);
            await stack.docker.request("POST", `/containers/${CONSUL}/restart?t=10`);
            assert.notEqual(await startedAt(stack, CONSUL), started, "restarted");
            await eventually("Consul leader after the restart", async () => ((await consulGet<string>(stack, "/v1/status/leader")) ? true : undefined), 60_000);

            assert.equal(await kvValue(stack, "service/haproxy/maxconn"), maxconn, "service/haproxy/maxconn survived");
            const after_ = await consulGet<any[]>(stack, "/v1/kv/service/haproxy/?recurse");
            assert.deepEqual(
                after_.map((k) => [k.Key, k.Value, k.ModifyIndex]),
                before_.map((k) => [k.Key, k.Value, k.ModifyIndex]),
                "every key, unchanged",
            );

            // The gateway keeps (or regains) its routes through the Consul restart.
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
                60_000,
            );
            assert.equal((await hello(stack, "/hello/v2/x")).path, "/x");
        });

        // A restart keeps the container's own file system; only a new container shows the volume matters.
        test("the Consul container removed and created again from its declaration: KV data survives on the volume", async () => {
            const before_ = await consulGet<any[]>(stack, "/v1/kv/service/haproxy/?recurse");
            const oldId = (await stack.docker.inspectContainer(CONSUL)).Id;
            const newId = await stack.applied.replaceContainer(CONSUL);
            assert.notEqual(newId, oldId, "a new container");
            await eventually(
                "Consul leader in the new container",
                async () => ((await consulGet<string>(stack, "/v1/status/leader")) ? true : undefined),
                60_000,
            );
            const after_ = await consulGet<any[]>(stack, "/v1/kv/service/haproxy/?recurse");
            assert.deepEqual(
                after_.map((k) => [k.Key, k.Value]),
                before_.map((k) => [k.Key, k.Value]),
                "every key survived",
            );
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
                60_000,
            );
        });

        test("the gateway container restarted: routes come back", async () => {
            const before_ = await startedAt(stack, GATEWAY);
            await stack.docker.request("POST", `/containers/${GATEWAY}/restart?t=10`);
            assert.notEqual(await startedAt(stack, GATEWAY), before_, "restarted");
            await stack.registratorSettled();
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
                20_000,
            );
            assert.equal((await eventually("v2 after the restart", () => hello(stack, "/hello/v2/"))).version, "v2");
            assert.equal((await get(`${stack.outputs.gatewayUrl}/hello/v3/`)).status, 404);
        });
    });
}
