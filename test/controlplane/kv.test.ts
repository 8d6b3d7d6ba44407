// HAProxy settings from Consul KV: maxconn and timeouts reach the rendered file and the running
// HAProxy (admin socket `show info`, and a backend that never answers to see `timeout server`);
// invalid values and deleted keys fall back to the defaults.
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, before, describe, it } from "node:test";
import { Harness, httpDefaults, listenOnTestNode, NODE_ADDRESS, sleep, waitFor } from "./harness";

const KEYS = {
    maxconn: "service/haproxy/maxconn",
    connect: "service/haproxy/timeouts/connect",
    client: "service/haproxy/timeouts/client",
    server: "service/haproxy/timeouts/server",
};

/** A backend that passes health checks and never answers anything else. */
async function startSilentBackend(): Promise<{ port: number; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
        if (req.url === "/health") res.end("ok\n");
        // Any other request is left hanging.
    });
    return listenOnTestNode(server);
}

describe("KV settings", { timeout: 120_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
            await h.addInstance("kv-v1", "kv-a");
            const silent = await startSilentBackend();
            h.onStop(silent.close);
            await h.consul.register({
                ID: "controlplane:silent:1",
                Name: "silent",
                Tags: ["rest", "check=/health"],
                Address: NODE_ADDRESS,
                Port: silent.port,
                Check: { HTTP: `http://${NODE_ADDRESS}:${silent.port}/health`, Interval: "1s", Status: "passing" },
            });
            await h.waitForConfig((cfg) => cfg.includes("backend svc_silent\n") && cfg.includes("backend svc_kv-v1\n"), "routes");
            await h.waitForRoute("/kv/v1/");
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    function settings(cfg: string): Record<string, string | undefined> {
        const defaults = httpDefaults(cfg);
        return {
            maxconn: /^\s+maxconn (\S+)$/m.exec(cfg)?.[1],
            connect: /^\s+timeout connect (\S+)$/m.exec(defaults)?.[1],
            client: /^\s+timeout client (\S+)$/m.exec(defaults)?.[1],
            server: /^\s+timeout server (\S+)$/m.exec(defaults)?.[1],
            queue: /^\s+timeout queue (\S+)$/m.exec(defaults)?.[1],
        };
    }

    const DEFAULTS = { maxconn: "4096", connect: "5s", client: "30s", server: "30s", queue: "5s" };

    /** Time until the gateway answers a request to the silent backend (504 once timeout server hits). */
    async function silentRequest(timeoutMs: number): Promise<{ status: number | "pending"; ms: number }> {
        const t0 = Date.now();
        try {
            const res = await h.gateway.get("/silent/x", { timeoutMs });
            return { status: res.status, ms: Date.now() - t0 };
        } catch {
            return { status: "pending", ms: Date.now() - t0 };
        }
    }

    it("renders and runs the defaults while the keys are absent", async () => {
        assert.deepEqual(settings(h.gateway.readRenderedConfig("new")), DEFAULTS);
        assert.deepEqual(settings(h.gateway.readRenderedConfig("live")), DEFAULTS);
        assert.equal((await h.gateway.showInfo()).Maxconn, "4096");
    });

    it("applies maxconn and timeouts from KV to the rendered file and the running HAProxy", async () => {
        const pidBefore = (await h.gateway.showInfo()).Pid;
        // maxconn last: a worker running Maxconn 1234 then runs a render made after every write
        // (the writes may be rendered in two steps, 5 ms of quiet apart).
        await h.consul.kvPut(KEYS.connect, "3s");
        await h.consul.kvPut(KEYS.client, "20s");
        await h.consul.kvPut(KEYS.server, "400ms");
        await h.consul.kvPut(KEYS.maxconn, "1234");
        const want = { maxconn: "1234", connect: "3s", client: "20s", server: "400ms", queue: "3s" };
        await h.waitForConfig((cfg) => JSON.stringify(settings(cfg)) === JSON.stringify(want), "KV values live");
        assert.deepEqual(settings(h.gateway.readRenderedConfig("new")), want);
        assert.ok(h.gateway.haproxyCheck(h.gateway.liveConfigPath).ok);
        const info = await waitFor(
            async () => {
                const i = await h.gateway.showInfo();
                return i.Maxconn === "1234" ? i : undefined;
            },
            { timeoutMs: 5000, message: "running worker with Maxconn 1234" },
        );
        assert.notEqual(info.Pid, pidBefore, "a new worker runs the new config");
        // timeout server 400ms is live: the silent backend now yields a 504 quickly. (The four
        // keys may arrive in two renders; the worker with Maxconn 1234 may be the first one's.)
        const r = await waitFor(
            async () => {
                const x = await silentRequest(3000);
                return x.status === 504 ? x : undefined;
            },
            { timeoutMs: 15_000, message: "a 504 from timeout server 400ms" },
        );
        assert.equal(r.status, 504);
        assert.ok(r.ms >= 350 && r.ms < 2000, `504 after ${r.ms} ms`);
        assert.equal((await h.gateway.get("/kv/v1/")).status, 200);
    });

    it("falls back to the default for an invalid value", async () => {
        await h.consul.kvPut(KEYS.maxconn, "0");
        await h.consul.kvPut(KEYS.server, "400 ms");
        await h.waitForConfig((cfg) => settings(cfg).maxconn === "4096" && settings(cfg).server === "30s", "defaults for invalid values");
        await waitFor(async () => (await h.gateway.showInfo()).Maxconn === "4096", { timeoutMs: 5000, message: "Maxconn 4096" });
        assert.equal(settings(h.gateway.readRenderedConfig("live")).connect, "3s", "valid keys keep their value");
    });

    it("runs the last value after a burst of changes (no reload lost)", async () => {
        // Changes 40-90 ms apart: each render reloads while the previous reload may still run.
        for (let i = 1; i <= 12; i++) {
            await h.consul.kvPut(KEYS.maxconn, String(1000 + i));
            await sleep(40 + (i % 3) * 25);
        }
        await h.waitForConfig((cfg) => settings(cfg).maxconn === "1012", "maxconn 1012 rendered");
        await waitFor(async () => (await h.gateway.showInfo()).Maxconn === "1012", {
            timeoutMs: 5000,
            message: "the running worker has Maxconn 1012",
        }).catch(async (err: Error) => {
            throw new Error(`${err.message}: running Maxconn ${(await h.gateway.showInfo()).Maxconn}\n${h.diagnostics()}`);
        });
    });

    it("restores the defaults when the keys are deleted", async () => {
        await h.consul.kvPut(KEYS.server, "300ms");
        await h.consul.kvPut(KEYS.maxconn, "2222");
        await h.waitForConfig((cfg) => settings(cfg).maxconn === "2222", "maxconn 2222");
        await waitFor(async () => (await h.gateway.showInfo()).Maxconn === "2222", { timeoutMs: 5000, message: "Maxconn 2222" });
        // maxconn last, as above: Maxconn 4096 running means every delete is.
        for (const k of [KEYS.connect, KEYS.client, KEYS.server, KEYS.maxconn]) await h.consul.kvDelete(k);
        await h.waitForConfig((cfg) => JSON.stringify(settings(cfg)) === JSON.stringify(DEFAULTS), "defaults live");
        await waitFor(async () => (await h.gateway.showInfo()).Maxconn === "4096", { timeoutMs: 5000, message: "Maxconn 4096" });
        // timeout server is back to 30s: the silent backend's request is still pending after 1.5 s.
        const r = await silentRequest(1500);
        assert.equal(r.status, "pending", `silent request answered ${r.status} after ${r.ms} ms`);
        assert.equal(h.gateway.rejections(), 0, "no render was rejected");
    });
});
