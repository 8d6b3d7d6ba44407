// The data plane: instance changes go through HAProxy's runtime API (no reload); a reload keeps
// the servers' health (server-state-file); a reload that fails leaves the live file on the
// running config and says so where an operator looks (log, stats, /metrics), then recovers.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { Harness, httpRequest, startProgrammableBackend, waitFor, type ProgrammableBackend } from "./harness";

describe("data plane: runtime API and reloads", { timeout: 240_000 }, () => {
    let h: Harness;
    let a1: ProgrammableBackend;
    let a2: ProgrammableBackend;

    /** Starts a programmable backend stopped with the harness. */
    async function backend(instance: string): Promise<ProgrammableBackend> {
        const b = await startProgrammableBackend(instance);
        h.onStop(b.close);
        return b;
    }

    /** The server names of a backend in the live file (routed and panic copies). */
    function fileServers(backendName: string): string[] {
        const cfg = h.gateway.readRenderedConfig("live");
        const section = cfg.split(/\n(?=backend |frontend |userlist )/).find((s) => s.startsWith(`backend ${backendName}\n`)) ?? "";
        return [...section.matchAll(/^ {4}server (\S+) /gm)].map((m) => m[1]!).sort();
    }

    /** Which instances answered `n` requests to `p` (all must be 200). */
    async function answering(p: string, n = 12): Promise<Set<string>> {
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
            const res = await h.gateway.get(p);
            assert.equal(res.status, 200, `${p}: ${res.status} ${res.body}`);
            seen.add((JSON.parse(res.body) as { hostname: string }).hostname);
        }
        return seen;
    }

    before(
        async () => {
            // The gateway believes it may use 10 million file descriptors (this machine allows far
            // fewer): a large maxconn then passes the template and `haproxy -c`, and its reload fails.
            h = await Harness.start({ gatewayEnv: { GATEWAY_FD_LIMIT: "10000000" } });
            a1 = await backend("rt-a1");
            a2 = await backend("rt-a2");
            await h.consul.register(a1.registration("rt-v1"));
            await h.consul.register(a2.registration("rt-v1"));
            const b = await backend("churn-b0");
            await h.consul.register(b.registration("churn-v1"));
            for (const x of [a1, a2]) await h.waitForRoute("/rt/v1/", { instance: x.instance });
            await h.waitForRoute("/churn/v1/", { instance: "churn-b0" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        if (process.env.DEBUG_RUNTIME) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("applies 20 instance changes of an existing route without a reload, each serving at once", async () => {
        const reloads0 = await h.gateway.masterReloads();
        let previous: ProgrammableBackend | undefined;
        for (let i = 0; i < 20; i++) {
            const c = await backend(`rt-c${i}`);
            await h.consul.register(c.registration("rt-v1"));
            await h.waitForRoute("/rt/v1/", { instance: c.instance, timeoutMs: 5000 });
            if (previous) {
                await h.consul.deregister(previous.registration("rt-v1").ID);
                const gone = previous.serverName;
                await h.waitForConfig((cfg) => !cfg.includes(` ${gone} `), `${gone} removed`);
            }
            previous = c;
        }
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
        // The live file is the render, and it is what runs: the same servers, by name.
        await waitFor(() => h.gateway.readRenderedConfig("live") === h.gateway.readRenderedConfig("new"), { timeoutMs: 5000, message: "live file = render" });
        const running = Object.keys(await h.gateway.serverStates("svc_rt-v1")).sort();
        assert.deepEqual(running, fileServers("svc_rt-v1"));
        assert.deepEqual(running, [a1, a2, previous!].flatMap((x) => [x.serverName, `panic-${x.serverName}`]).sort());
        assert.deepEqual(await answering("/rt/v1/who", 30), new Set([a1.instance, a2.instance, previous!.instance]));
        await h.consul.deregister(previous!.registration("rt-v1").ID);
        await h.waitForConfig((cfg) => !cfg.includes(` ${previous!.serverName} `), "last one removed");
        await waitFor(async () => !(await h.gateway.serverStates("svc_rt-v1"))[previous!.serverName], { timeoutMs: 5000, message: "deleted from HAProxy" });
    });

    it("a new instance that does not answer its health path yet gets no request until it does", async () => {
        const reloads0 = await h.gateway.masterReloads();
        const late = await backend("rt-late");
        late.setHealth(503);
        await h.consul.register(late.registration("rt-v1"));
        await h.waitForConfig((cfg) => cfg.includes(` ${late.serverName} `), "rt-late added");
        await waitFor(async () => (await h.gateway.serverStates("svc_rt-v1"))[late.serverName] !== undefined, {
            timeoutMs: 5000,
            message: "rt-late in HAProxy",
        });
        // It answers every other path: only its state keeps requests away.
        assert.equal((await h.gateway.serverStates("svc_rt-v1"))[late.serverName], "DOWN");
        assert.ok(!(await answering("/rt/v1/who", 30)).has("rt-late"));
        late.setHealth(200);
        await h.waitForRoute("/rt/v1/", { instance: "rt-late", timeoutMs: 10_000 });
        assert.equal(await h.gateway.masterReloads(), reloads0);
        await h.consul.deregister(late.registration("rt-v1").ID);
        await h.waitForConfig((cfg) => !cfg.includes(` ${late.serverName} `), "rt-late removed");
    });

    it("a long request to one service survives 20 instance changes of another", async () => {
        const reloads0 = await h.gateway.masterReloads();
        const long = httpRequest(h.gateway.url("/rt/v1/stream?ms=5000"), { timeoutMs: 20_000 });
        const extra: ProgrammableBackend[] = [];
        for (let i = 0; i < 20; i++) {
            if (i % 2 === 0) {
                const b = await backend(`churn-x${i}`);
                extra.push(b);
                await h.consul.register(b.registration("churn-v1"));
                await h.waitForConfig((cfg) => cfg.includes(` ${b.serverName} `), `${b.serverName} added`);
            } else {
                const b = extra.shift()!;
                await h.consul.deregister(b.registration("churn-v1").ID);
                await h.waitForConfig((cfg) => !cfg.includes(` ${b.serverName} `), `${b.serverName} removed`);
            }
        }
        const res = await long;
        assert.equal(res.status, 200);
        assert.match(res.body, /^\.+rt-a[12]\n$/, "the whole stream arrived");
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
    });

    it("keeps the servers' health across a route reload (server-state-file)", async () => {
        a2.setHealth(503);
        await waitFor(async () => (await h.gateway.serverStates("svc_rt-v1"))[a2.serverName] === "DOWN", { timeoutMs: 10_000, message: "rt-a2 DOWN" });
        const reloads0 = await h.gateway.masterReloads();
        // A new route: a reload.
        const o = await backend("other-o1");
        await h.consul.register(o.registration("other-v1"));
        await waitFor(async () => (await h.gateway.masterReloads()) > reloads0, { timeoutMs: 10_000, message: "a reload" });
        await waitFor(async () => Object.keys(await h.gateway.serverStates("svc_other-v1").catch(() => ({}))).length > 0, {
            timeoutMs: 5000,
            message: "new worker answers",
        });
        // Right after the reload, before any check of the new worker could have run (inter 2s):
        // a new worker without the saved state would start rt-a2 UP and send it requests (it
        // still answers them, so only the state shows it).
        assert.equal((await h.gateway.serverStates("svc_rt-v1"))[a2.serverName], "DOWN");
        assert.deepEqual(await answering("/rt/v1/who", 20), new Set([a1.instance]));
        a2.setHealth(200);
        await waitFor(async () => (await h.gateway.serverStates("svc_rt-v1"))[a2.serverName] === "UP", { timeoutMs: 10_000, message: "rt-a2 UP again" });
    });

    it("a reload that fails leaves the live file on the running config, shows it in stats and recovers", async () => {
        const status = async () => (await h.gateway.serverStates("gateway_config"))["latest-render-running"];
        assert.equal(await status(), "no check");
        // No reload failed before this one (a reload seen as failed that did run would leave the
        // live file on a config that is not running).
        assert.doesNotMatch(h.gateway.proc!.output(), /reload of haproxy master/, h.gateway.proc!.output().slice(-4000));
        const liveBefore = h.gateway.readRenderedConfig("live");
        const outputBefore = h.gateway.proc!.output().length;
        const since = () => h.gateway.proc!.output().slice(outputBefore);
        // Passes the template (GATEWAY_FD_LIMIT) and `haproxy -c`, but HAProxy cannot raise its
        // file descriptor limit that far: the reload fails.
        await h.consul.kvPut("service/haproxy/maxconn", "900000");
        await waitFor(() => since().includes("reload of haproxy master"), { timeoutMs: 30_000, message: "the failed reload logged" });
        assert.match(
            since(),
            /gateway: reload of haproxy master \d+ failed twice \(no new worker \(HAProxy counts a failed reload\)\); still running the previous config/,
        );
        assert.equal(await status(), "MAINT", "stats: the latest render is not running");
        const live = h.gateway.readRenderedConfig("live");
        assert.equal(live, liveBefore, "the live file is the running config");
        assert.ok(!live.includes("maxconn 900000"));
        assert.match(fs.readFileSync(path.join(h.gateway.runDir, "haproxy.cfg.failed"), "utf8"), /maxconn 900000/);
        assert.equal(Number((await h.gateway.showInfo()).Maxconn), 4096, "the worker runs the previous maxconn");
        assert.deepEqual(await answering("/rt/v1/who", 10), new Set([a1.instance, a2.instance]), "routes still served");
        // /metrics says it too.
        const auth = Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
        const metrics = await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics`, { headers: { authorization: `Basic ${auth}` } });
        assert.ok(metrics.body.includes('haproxy_server_status{proxy="gateway_config",server="latest-render-running",state="MAINT"} 1'), "metrics: MAINT");
        // Fixed in KV: the next render reloads and the status is back.
        await h.consul.kvDelete("service/haproxy/maxconn");
        await waitFor(async () => (await status()) === "no check", { timeoutMs: 15_000, message: "status back" });
        assert.match(since(), /gateway: the latest render is running again/);
        assert.equal(h.gateway.readRenderedConfig("live"), h.gateway.readRenderedConfig("new"));
    });
});
