// Fail open under overload. An overloaded instance misses its health checks while it still
// serves; when all instances of a service do so at once, answering 503 turns slow into down.
// The gateway routes by the catalog and checks instances itself, so Consul's check status does
// not take instances out; and when none passes the gateway's own checks, every instance still
// gets requests (panic routing, unchecked backup servers) until one passes again.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, startProgrammableBackend, waitFor, type ProgrammableBackend } from "./harness";

describe("panic routing", { timeout: 120_000 }, () => {
    let h: Harness;
    let p1: ProgrammableBackend;
    let p2: ProgrammableBackend;

    before(
        async () => {
            h = await Harness.start();
            p1 = await startProgrammableBackend("panic-p1");
            p2 = await startProgrammableBackend("panic-p2");
            h.onStop(p1.close);
            h.onStop(p2.close);
            // Both critical in Consul from the start (their Consul check probes a closed port).
            await h.consul.register(p1.registration("overload-v1", { consulCheck: "critical" }));
            await h.consul.register(p2.registration("overload-v1", { consulCheck: "critical" }));
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    async function answering(n: number): Promise<Set<string>> {
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
            const res = await h.gateway.get("/overload/v1/work");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
            seen.add((JSON.parse(res.body) as { hostname: string }).hostname);
        }
        return seen;
    }

    async function routedStates(): Promise<Record<string, string>> {
        const all = await h.gateway.serverStates("svc_overload-v1");
        return Object.fromEntries(Object.entries(all).filter(([name]) => !name.startsWith("panic-")));
    }

    it("routes instances that are critical in Consul but pass the gateway's checks", async () => {
        assert.equal(await h.consul.checkStatus(p1.registration("overload-v1").ID), "critical");
        await h.waitForRoute("/overload/v1/", { instance: "panic-p1" });
        await h.waitForRoute("/overload/v1/", { instance: "panic-p2" });
        assert.deepEqual(await answering(20), new Set(["panic-p1", "panic-p2"]));
    });

    it("when no instance passes the gateway's checks, still sends requests to all of them", async () => {
        p1.setHealth(503);
        p2.setHealth(503);
        await waitFor(async () => Object.values(await routedStates()).every((s) => s === "DOWN"), { timeoutMs: 10_000, message: "both DOWN" });
        // Without panic routing every request here would be a 503.
        assert.deepEqual(await answering(40), new Set(["panic-p1", "panic-p2"]));
    });

    it("leaves panic as soon as one instance passes again: only that one serves", async () => {
        p1.setHealth(200);
        await waitFor(async () => (await routedStates())[p1.serverName] === "UP", { timeoutMs: 10_000, message: "p1 UP" });
        assert.deepEqual(await answering(20), new Set(["panic-p1"]));
        p2.setHealth(200);
        await waitFor(async () => (await routedStates())[p2.serverName] === "UP", { timeoutMs: 10_000, message: "p2 UP" });
        assert.deepEqual(await answering(20), new Set(["panic-p1", "panic-p2"]));
    });
});
