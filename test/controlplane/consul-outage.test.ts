// Consul stopped and started again: the gateway keeps serving the routes it has throughout the
// outage, and follows changes again once Consul is back.
//
// Consul runs here as the stack deploys it: a server whose state lives in its data dir, kept
// across the restart (same data dir, same ports). With a dev agent, which loses its state, the
// restarted Consul starts its index from zero again: consul-template's blocking queries, which
// carry the old index, then wait until the new index passes it or for up to their 60 s wait, so
// changes resume only after that (measured: 3 runs out of 4 still stalled 20 s after the restart).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, hello, sleep, waitFor } from "./harness";

interface Sample {
    t: number;
    status: number | string;
    phase: string;
}

describe("Consul outage", { timeout: 120_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start({ persistentConsul: true });
            await h.addInstance("steady-v1", "st-a");
            await h.addInstance("steady-v1", "st-b");
            await h.waitForRoute("/steady/v1/", { instance: "st-a" });
            await h.waitForRoute("/steady/v1/", { instance: "st-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("keeps routes up while Consul is down and resumes changes after it restarts", async () => {
        const samples: Sample[] = [];
        let phase = "before";
        let polling = true;
        const poller = (async () => {
            while (polling) {
                let status: number | string;
                try {
                    const res = await h.gateway.get("/steady/v1/p", { timeoutMs: 2000 });
                    status = res.status === 200 && hello(res).version === "v1" ? 200 : res.status;
                } catch (err) {
                    status = (err as Error).message;
                }
                samples.push({ t: Date.now(), status, phase });
                await sleep(20);
            }
        })();
        try {
            await sleep(300);
            phase = "outage";
            const reloadsBefore = h.gateway.reloads();
            await h.consul.stop();
            await sleep(5000);
            assert.ok(h.gateway.proc?.running, `gateway exited while Consul was down:\n${h.diagnostics()}`);
            assert.equal(h.gateway.reloads(), reloadsBefore, "no reload while Consul is down");

            phase = "restart";
            await h.consul.restart();
            // The restarted server still has its catalog and KV: nothing to register again.
            const ids = await h.consul.api("GET", "/v1/agent/services");
            assert.match(ids.body, /"Service": ?"steady-v1"/, "the registrations survived the restart");
            phase = "after";
            const c = await h.addInstance("later-v1", "later-a");
            await h.waitForRoute("/later/v1/x", { instance: c.instance, timeoutMs: 20_000 }).catch((err: Error) => {
                throw new Error(`${err.message}\n${h.diagnostics()}`);
            });
            await h.consul.kvPut("service/haproxy/maxconn", "3210");
            await h.waitForConfig((cfg) => /^\s+maxconn 3210$/m.test(cfg), "KV change after the restart");
            await waitFor(async () => (await h.gateway.showInfo()).Maxconn === "3210", { timeoutMs: 5000, message: "Maxconn 3210 running" });
            await sleep(300);
        } finally {
            polling = false;
            await poller;
        }

        const byPhase = (p: string): Sample[] => samples.filter((s) => s.phase === p);
        const bad = (ss: Sample[]): Sample[] => ss.filter((s) => s.status !== 200);
        const outage = byPhase("outage");
        assert.ok(outage.length > 50, `polled during the outage (${outage.length} requests)`);
        assert.deepEqual(bad(outage), [], "every request during the outage answered 200");
        assert.deepEqual(bad(byPhase("before")), []);
        assert.deepEqual(bad(byPhase("restart")), [], "every request while Consul restarted answered 200");
        assert.deepEqual(bad(byPhase("after")), [], "every request after the restart answered 200");
        assert.equal(h.gateway.rejections(), 0);
    });
});
