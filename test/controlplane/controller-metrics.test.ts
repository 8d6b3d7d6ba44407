// The controller's metrics (/metrics/controller on the stats port, behind the stats
// credentials) through the real gateway: how far behind Consul it is, how changes were applied
// (runtime API vs reload), and a quarantined service, whose bad value leaves it on its last good
// one while every other service keeps updating.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, hello, httpRequest, waitFor } from "./harness";

describe("controller metrics and quarantine", { timeout: 120_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
            await h.addInstance("met-v1", "met-a");
            await h.addInstance("met-v2", "met-b");
            await h.waitForRoute("/met/v1/", { instance: "met-a" });
            await h.waitForRoute("/met/v2/", { instance: "met-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    const auth = (): string => Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
    async function metrics(): Promise<Map<string, number>> {
        const res = await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth()}` } });
        assert.equal(res.status, 200, res.body);
        const out = new Map<string, number>();
        for (const line of res.body.split("\n")) {
            const m = /^(gateway_controller_[a-z_]+(\{[^}]*\})?) (\S+)$/.exec(line);
            if (m) out.set(m[1]!, Number(m[3]));
        }
        return out;
    }
    const value = (m: Map<string, number>, key: string): number => {
        assert.ok(m.has(key), `${key} in ${[...m.keys()].join(", ")}`);
        return m.get(key)!;
    };

    it("needs the stats credentials", async () => {
        const res = await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`);
        assert.equal(res.status, 401);
    });

    it("counts instance changes applied at runtime and route changes applied by reload", async () => {
        const before = await metrics();
        await h.addInstance("met-v1", "met-c");
        await h.waitForRoute("/met/v1/", { instance: "met-c" });
        await waitFor(
            async () =>
                value(await metrics(), 'gateway_controller_changes_total{via="runtime"}') > value(before, 'gateway_controller_changes_total{via="runtime"}'),
            {
                timeoutMs: 5000,
                message: "a runtime change counted",
            },
        );
        const reloads = value(await metrics(), 'gateway_controller_changes_total{via="reload"}');
        await h.addInstance("met2-v1", "met-d");
        await h.waitForRoute("/met2/v1/", { instance: "met-d" });
        await waitFor(async () => value(await metrics(), 'gateway_controller_changes_total{via="reload"}') === reloads + 1, {
            timeoutMs: 5000,
            message: "a reload counted",
        });
        const m = await metrics();
        assert.equal(value(m, "gateway_controller_latest_render_running"), 1);
        assert.equal(value(m, "gateway_controller_reload_failures_total"), 0);
        assert.ok(value(m, "gateway_controller_consul_connections") >= 1 && value(m, "gateway_controller_consul_connections") <= 5);
    });

    it("exports the Consul index seen and applied per watch, and how long since Consul answered", async () => {
        const m = await metrics();
        const kvSeen = value(m, 'gateway_controller_consul_index{watch="kv"}');
        assert.ok(kvSeen > 0);
        assert.equal(value(m, 'gateway_controller_consul_index_applied{watch="kv"}'), kvSeen);
        const nodes = [...m.keys()].filter((k) => k.startsWith("gateway_controller_consul_index{"));
        assert.ok(nodes.length >= 2, nodes.join(", "));
        // Blocking queries answer at the latest after their wait: the least recent is recent.
        assert.ok(value(m, "gateway_controller_consul_staleness_seconds") < 400);
    });

    it("quarantines a service whose KV value is rejected: it keeps its last good value, the others keep updating", async () => {
        await h.consul.kvPut("service/haproxy/services/met-v1/weight", "100");
        await h.consul.kvPut("service/haproxy/services/met-v2/weight", "0");
        await waitFor(async () => hello(await h.gateway.get("/met/x")).version === "v1", { timeoutMs: 5000, message: "/met/ split to v1" });
        await h.consul.kvPut("service/haproxy/services/met-v1/weight", "100\n    stats uri /pwn");
        await waitFor(async () => value(await metrics(), "gateway_controller_quarantined_services") === 1, { timeoutMs: 5000, message: "met-v1 quarantined" });
        // Still split on the last good weight, not dropped from the split.
        for (let i = 0; i < 10; i++) assert.equal(hello(await h.gateway.get("/met/x")).version, "v1");
        assert.ok(!h.gateway.readRenderedConfig("live").includes("pwn"));
        // Another service keeps updating meanwhile.
        await h.addInstance("other-v1", "other-a");
        await h.waitForRoute("/other/v1/", { instance: "other-a" });
        assert.ok(value(await metrics(), 'gateway_controller_notes{kind="rejected"}') >= 1);
        // A good value ends the quarantine.
        await h.consul.kvPut("service/haproxy/services/met-v1/weight", "0");
        await h.consul.kvPut("service/haproxy/services/met-v2/weight", "100");
        await waitFor(async () => value(await metrics(), "gateway_controller_quarantined_services") === 0, { timeoutMs: 5000, message: "quarantine ended" });
        await waitFor(async () => hello(await h.gateway.get("/met/x")).version === "v2", { timeoutMs: 5000, message: "/met/ split to v2" });
    });
});
