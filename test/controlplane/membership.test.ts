// Instances join and leave rotation as Consul's catalog changes and as the gateway's own health
// checks see them; Consul's check status does not decide (panic.test.ts: it fails open).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, hello, waitFor, type Backend } from "./harness";

describe("membership", { timeout: 120_000 }, () => {
    let h: Harness;
    let a: Backend;
    let b: Backend;
    let c: Backend;

    before(
        async () => {
            h = await Harness.start();
            a = await h.addInstance("members-v1", "m-a");
            b = await h.addInstance("members-v1", "m-b");
            c = await h.addInstance("members-v1", "m-c");
            for (const x of [a, b, c]) await h.waitForRoute("/members/v1/", { instance: x.instance });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    /** Instances that answered `n` consecutive requests (all of which must be 200). */
    async function answering(n = 12): Promise<Set<string>> {
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
            const res = await h.gateway.get("/members/v1/who");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
            seen.add(hello(res).hostname);
        }
        return seen;
    }

    function serverLines(): string[] {
        // Routed servers: not the unchecked backup copies used only for panic routing.
        const cfg = h.gateway.readRenderedConfig("live");
        const section = cfg.split(/\n(?=backend |frontend |userlist )/).find((s) => s.startsWith("backend svc_members-v1\n")) ?? "";
        return section.split("\n").filter((l) => /^\s+server (?!panic-)/.test(l));
    }

    it("serves all registered instances", async () => {
        assert.deepEqual(await answering(), new Set(["m-a", "m-b", "m-c"]));
        assert.equal(serverLines().length, 3);
    });

    it("takes a deregistered instance out of rotation", async () => {
        await h.consul.deregister(c.id);
        await h.waitForConfig((cfg) => !cfg.includes(`server ${c.serverName} `), "m-c removed from the config");
        // The backend still runs: only the deregistration can have removed it.
        assert.equal(c.proc.running, true);
        await waitFor(async () => !(await answering()).has("m-c"), { timeoutMs: 5000, message: "m-c out of rotation" });
        assert.deepEqual(await answering(20), new Set(["m-a", "m-b"]));
    });

    it("takes an instance that stops answering out of rotation (the gateway's own checks)", async () => {
        await b.stop();
        // Still registered in Consul (critical there): the server stays in the config, and the
        // gateway's health check takes it out of rotation.
        await waitFor(async () => (await h.gateway.serverStates("svc_members-v1"))[b.serverName] === "DOWN", {
            timeoutMs: 10_000,
            message: "m-b DOWN by the gateway's check",
        });
        assert.ok(h.gateway.readRenderedConfig("live").includes(`server ${b.serverName} `));
        assert.deepEqual(await answering(20), new Set(["m-a"]));
    });

    it("adds a new instance to rotation", async () => {
        const d = await h.addInstance("members-v1", "m-d");
        await h.waitForConfig((cfg) => cfg.includes(`server ${d.serverName} ${d.serverName} check`), "m-d rendered");
        await waitFor(async () => (await answering(6)).has("m-d"), { timeoutMs: 5000, message: "m-d in rotation" });
        assert.deepEqual(await answering(20), new Set(["m-a", "m-d"]));
        // m-b is registered still (and DOWN): three servers.
        assert.equal(serverLines().length, 3);
    });
});
