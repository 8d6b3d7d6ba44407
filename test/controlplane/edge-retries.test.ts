// Retries that hide a dead instance (docs/data-plane.md, "How it behaves"), on real processes: an
// instance SIGKILLed under wrk load, between two of the gateway's health checks, costs no request
// (a refused connection, an empty answer: retried on the other instance); a request a replay
// could harm (POST) is never sent twice.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, runWrk, sleep, waitFor, type Backend } from "./harness";
import { requestFrom, startRecordingBackend } from "./harness/edge";

describe("edge retries: an instance that dies costs no idempotent request", { timeout: 120_000 }, () => {
    let h: Harness;

    /** One column of the BACKEND row of `show stat`. */
    async function backendStat(backend: string, column: string): Promise<number> {
        const lines = (await h.gateway.admin("show stat")).split("\n");
        const col = lines[0]!.replace(/^# /, "").split(",").indexOf(column);
        return Number(lines.find((l) => l.startsWith(`${backend},BACKEND,`))?.split(",")[col] ?? "NaN");
    }

    before(
        async () => {
            h = await Harness.start();
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("SIGKILL of one of two instances under wrk load: 0 failed requests, the dead one's retried on the other", async () => {
        const a: Backend = await h.addInstance("kill-v1", "kill-a");
        const b: Backend = await h.addInstance("kill-v1", "kill-b");
        await h.waitForRoute("/kill/v1/", { instance: "kill-a" });
        await h.waitForRoute("/kill/v1/", { instance: "kill-b" });
        await waitFor(async () => Object.values(await h.gateway.serverStates("svc_kill-v1")).filter((s) => s.startsWith("UP")).length === 2, {
            timeoutMs: 10_000,
            message: "both instances UP",
        });
        const wrk = runWrk(h.tools, { url: h.gateway.url("/kill/v1/load"), durationSec: 6, connections: 32 });
        await sleep(2500);
        b.proc.killGroup("SIGKILL");
        const r = await wrk;
        assert.ok(r.requests > 1000, `wrk made only ${r.requests} requests`);
        // No error answer from the gateway: every request the dead instance refused or left
        // unanswered was retried. A response it was already sending when it died cannot be (its
        // client sees the connection cut: a read error): a few at most, seen in 1 run of many.
        assert.equal(r.non2xx, 0, `error answers after the kill:\n${r.raw}`);
        assert.equal(r.socketErrors.connect + r.socketErrors.write + r.socketErrors.timeout, 0, r.raw);
        assert.ok(r.socketErrors.read <= 5, `responses cut by the kill: ${r.socketErrors.read}\n${r.raw}`);
        // The gateway's checks took it out; the requests it got meanwhile were retried elsewhere.
        await waitFor(async () => (await h.gateway.serverStates("svc_kill-v1"))[b.serverName]?.startsWith("DOWN"), {
            timeoutMs: 10_000,
            message: "the killed instance DOWN",
        });
        const retried = (await backendStat("svc_kill-v1", "wretr")) + (await backendStat("svc_kill-v1", "wredis"));
        assert.ok(retried > 0, "no request was retried: the kill did not land under load");
        assert.equal((await h.gateway.get("/kill/v1/")).status, 200);
        assert.ok(a.proc.running);
    });

    it("an empty answer: a GET is retried on another instance, a POST is not replayed (502, sent once)", async () => {
        // drop-a closes every connection that brings a request (its health path answers); drop-b serves.
        const dropA = await startRecordingBackend("drop-a", (req) => {
            req.socket.destroy();
            return true;
        });
        const dropB = await startRecordingBackend("drop-b");
        h.onStop(dropA.close);
        h.onStop(dropB.close);
        await h.consul.register(dropA.registration("drop-v1"));
        await h.consul.register(dropB.registration("drop-v1"));
        await h.waitForRoute("/drop/v1/", { instance: "drop-b" });
        await waitFor(async () => Object.values(await h.gateway.serverStates("svc_drop-v1")).filter((s) => s.startsWith("UP")).length === 2, {
            timeoutMs: 10_000,
            message: "both instances UP",
        });
        const count = (seen: { method: string }[], method: string): number => seen.filter((s) => s.method === method).length;

        const gets: number[] = [];
        for (let i = 0; i < 10; i++) gets.push((await requestFrom("127.0.0.1", h.gateway.url("/drop/v1/get"))).status);
        assert.deepEqual([...new Set(gets)], [200], "every GET answered");
        assert.ok(count(dropA.seen, "GET") > 0, "round robin sent GETs to drop-a, which were retried");

        const a0 = count(dropA.seen, "POST");
        const b0 = count(dropB.seen, "POST");
        const posts: number[] = [];
        for (let i = 0; i < 10; i++)
            posts.push((await requestFrom("127.0.0.1", h.gateway.url("/drop/v1/post"), { method: "POST", body: `order ${i}` })).status);
        const toA = count(dropA.seen, "POST") - a0;
        const toB = count(dropB.seen, "POST") - b0;
        assert.equal(toA + toB, 10, `each POST sent once: ${toA} to drop-a, ${toB} to drop-b`);
        assert.ok(toA > 0, "round robin sent POSTs to drop-a");
        assert.equal(posts.filter((s) => s === 502).length, toA, `statuses ${posts.join(" ")}`);
        assert.equal(posts.filter((s) => s === 200).length, toB, `statuses ${posts.join(" ")}`);
    });
});
