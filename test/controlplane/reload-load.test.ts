// Reloads under load: wrk drives a route for ~12 s while another route comes and goes and a KV
// timeout toggles, each change forcing a render and a master-worker reload (instance changes of an
// existing route do not reload: runtime.test.ts). No request may fail.
// The route's instances are static backends (HAProxy answering by itself, ~30k req/s with
// keep-alive here): behind hello.py (~1.5k req/s) even the 2015 `-sf` reload loses next to
// nothing, so the test could not tell a broken reload from a good one (see bench/results.md).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, runWrk, sleep, waitFor, type StaticBackend, type WrkResult } from "./harness";

const DURATION_SEC = 12;
const MIN_RELOADS = 20;

describe("reloads under load", { timeout: 150_000 }, () => {
    let h: Harness;
    let extra: StaticBackend;

    before(
        async () => {
            h = await Harness.start();
            for (const name of ["load-a", "load-b"]) {
                await h.consul.register((await h.startStaticBackend(name)).registration("load-v1"));
            }
            // Registered and deregistered during the runs; it keeps running all along.
            extra = await h.startStaticBackend("load-extra");
            await h.waitForRoute("/load/v1/", { instance: "load-a" });
            await h.waitForRoute("/load/v1/", { instance: "load-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    /** Forces `count` reloads, alternating route changes and KV changes, while wrk runs. */
    let extraOn = false;
    let kvOn = false;
    async function churn(count: number, spacingMs: number): Promise<void> {
        // A service of its own: registering it adds a route, deregistering removes it.
        const extraReg = extra.registration("churn-v1");
        for (let i = 0; i < count; i++) {
            const before = h.gateway.reloads();
            if (i % 2 === 0) {
                if (extraOn) await h.consul.deregister(extraReg.ID);
                else await h.consul.register(extraReg);
                extraOn = !extraOn;
            } else {
                if (kvOn) await h.consul.kvDelete("service/haproxy/timeouts/client");
                else await h.consul.kvPut("service/haproxy/timeouts/client", "31s");
                kvOn = !kvOn;
            }
            // Wait for this change's reload (reload.sh reports it once the new worker runs)
            // before the next change, so that none is coalesced away.
            const t0 = Date.now();
            while (h.gateway.reloads() === before && Date.now() - t0 < 3000) await sleep(10);
            await sleep(Math.max(0, spacingMs - (Date.now() - t0)));
        }
    }

    async function loadWithReloads(headers: string[]): Promise<{ wrk: WrkResult; reloads: number; loaded: number }> {
        const reloads0 = h.gateway.reloads();
        const loaded0 = h.gateway.loadingSuccesses();
        const wrk = runWrk(h.tools, { url: h.gateway.url("/load/v1/bench"), durationSec: DURATION_SEC, headers });
        await sleep(1000);
        // 22 changes in ~10 s, inside the 12 s run.
        await churn(22, 450);
        const result = await wrk;
        const reloads = h.gateway.reloads() - reloads0;
        // The master's "Loading success" may reach us just after reload.sh's line.
        await waitFor(() => h.gateway.loadingSuccesses() - loaded0 >= reloads, { timeoutMs: 2000 }).catch(() => undefined);
        return { wrk: result, reloads, loaded: h.gateway.loadingSuccesses() - loaded0 };
    }

    function report(name: string, r: { wrk: WrkResult; reloads: number; loaded: number }): string {
        const e = r.wrk.socketErrors;
        return (
            `${name}: ${r.wrk.requests} requests (${r.wrk.requestsPerSec} req/s), non-2xx ${r.wrk.non2xx}, ` +
            `socket errors connect ${e.connect} read ${e.read} write ${e.write} timeout ${e.timeout}, ` +
            `reloads ${r.reloads} (master "Loading success" ${r.loaded})`
        );
    }

    for (const [name, headers] of [
        ["keep-alive", []],
        ["Connection: close", ["Connection: close"]],
    ] as Array<[string, string[]]>) {
        it(`loses no request over ${MIN_RELOADS}+ reloads (${name})`, async (t) => {
            const r = await loadWithReloads(headers);
            t.diagnostic(report(name, r));
            assert.ok(r.reloads >= MIN_RELOADS, `${r.reloads} reloads happened, want >= ${MIN_RELOADS}`);
            assert.equal(r.loaded, r.reloads, `master loaded ${r.loaded} configs for ${r.reloads} reloads`);
            // Requests in flight at every reload: at least 200 per reload (one every 450 ms). Not a
            // throughput figure (that is the benchmark's): npm test runs this beside other layers.
            assert.ok(r.wrk.requests >= 200 * r.reloads, `wrk made only ${r.wrk.requests} requests for ${r.reloads} reloads`);
            assert.equal(r.wrk.non2xx, 0, `non-2xx responses: ${report(name, r)}\n${r.wrk.raw}`);
            assert.deepEqual(r.wrk.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 }, `socket errors: ${report(name, r)}\n${r.wrk.raw}`);
            assert.equal(h.gateway.rejections(), 0);
        });
    }
});
