// Budgets no client can exhaust (docs/security.md, "Budgets"), attacked on real processes: an
// idle-connection flood on a TCP listener and a slowloris on HTTP from one client, a flood from
// many clients that fills a TCP listener's share of maxconn, a request rate over the limit, a
// body over the cap, a server at its maxconn (its queue, and a new value without a reload), a
// TCP service's idle timeout. Meanwhile /-/health, the authenticated /metrics and other clients
// answer within 1 s. Each loopback address 127.0.0.x is a client of its own.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { freePort, Harness, sleep, waitFor } from "./harness";
import { Flood, requestFrom, startEchoServer, startRecordingBackend, tcpEcho, type TimedResult } from "./harness/edge";

/** The bound: health, metrics and other clients answer within this while under attack. */
const WITHIN_MS = 1000;
const CLIENT_CAP = 10;

describe("edge budgets: no client can exhaust the gateway", { timeout: 240_000 }, () => {
    let h: Harness;
    let tcpPort: number;
    let web: Awaited<ReturnType<typeof startRecordingBackend>>;
    const floods: Flood[] = [];
    const statsAuth = (): string => `${h.gateway.statsUser}:${h.gateway.statsPassword}`;
    const httpUrl = (p: string): string => h.gateway.url(p);
    const statsUrl = (p: string): string => `http://127.0.0.1:${h.gateway.statsPort}${p}`;

    /** One column of `show stat` for a proxy's row (FRONTEND, BACKEND or a server). */
    async function stat(proxy: string, row: string, column: string): Promise<string | undefined> {
        const lines = (await h.gateway.admin("show stat")).split("\n");
        const col = lines[0]!.replace(/^# /, "").split(",").indexOf(column);
        return lines.find((l) => l.startsWith(`${proxy},${row},`))?.split(",")[col];
    }

    /** /-/health on both listeners, the authenticated /metrics and another client's request: all answer, each within WITHIN_MS. */
    async function othersAnswer(client: string, what: string): Promise<void> {
        const checks: [string, Promise<TimedResult>, number][] = [
            ["/-/health (HTTP listener)", requestFrom(client, httpUrl("/-/health"), { timeoutMs: 3000 }), 200],
            ["/-/health (stats listener)", requestFrom(client, statsUrl("/-/health"), { timeoutMs: 3000 }), 200],
            ["/metrics", requestFrom(client, statsUrl("/metrics"), { timeoutMs: 3000, auth: statsAuth() }), 200],
            ["/web/x", requestFrom(client, httpUrl("/web/x"), { timeoutMs: 3000 }), 200],
        ];
        for (const [name, p, status] of checks) {
            const r = await p.catch((err: Error) => ({ status: 0, ms: Infinity, body: err.message, headers: {} }));
            assert.equal(r.status, status, `${what}: ${name} from ${client}: ${r.status} ${r.body.slice(0, 200)}`);
            assert.ok(r.ms <= WITHIN_MS, `${what}: ${name} from ${client} took ${Math.round(r.ms)} ms`);
        }
        const echo = await tcpEcho(client, tcpPort, `hello from ${client}`, 3000);
        assert.equal(echo.echo, `hello from ${client}`);
        assert.ok(echo.ms <= WITHIN_MS, `${what}: the TCP listener answered ${client} in ${Math.round(echo.ms)} ms`);
    }

    before(
        async () => {
            h = await Harness.start();
            web = await startRecordingBackend("web-a");
            h.onStop(web.close);
            await h.consul.register(web.registration("web"));
            const echo = await startEchoServer("echo-a");
            h.onStop(echo.close);
            tcpPort = await freePort();
            await h.consul.kvPut("service/haproxy/services/echo/listen", String(tcpPort));
            await h.consul.register(echo.registration("echo"));
            // maxconn 64: the stats listener keeps 8, the HTTP and the TCP listener get 23 each.
            await h.consul.kvPut("service/haproxy/maxconn", "64");
            await h.consul.kvPut("service/haproxy/limits/client-connections", String(CLIENT_CAP));
            await h.consul.kvPut("service/haproxy/limits/body-size", "1000");
            await h.consul.kvPut("service/haproxy/timeouts/http-request", "2s");
            await h.waitForConfig(
                (cfg) => /^frontend tcp_echo from tcp_services\n.*\n {4}maxconn 23$/m.test(cfg) && cfg.includes("timeout http-request 2s"),
                "budgets live",
                20_000,
            );
            await h.waitForRoute("/web/x", { instance: "web-a" });
            await waitFor(async () => (await tcpEcho("127.0.0.1", tcpPort, "ready", 2000).catch(() => undefined))?.echo === "ready", {
                timeoutMs: 15_000,
                message: "the TCP listener echoes",
            });
        },
        { timeout: 90_000 },
    );

    after(async () => {
        for (const f of floods) f.close();
        if (process.env.DEBUG_EDGE) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("the rendered listeners have their shares of maxconn; stats and /metrics are served by the stats listener only", async () => {
        const cfg = h.gateway.readRenderedConfig("live");
        assert.match(cfg, /^frontend http\n {4}bind .*\n {4}maxconn 23$/m);
        assert.match(cfg, /^frontend stats\n {4}bind .*\n(.*\n)*? {4}maxconn 8$/m);
        const info = await h.gateway.showInfo();
        assert.equal(info.Maxconn, "64");
        // The public listener routes; HAProxy's metrics and stats page are not there.
        for (const p of ["/metrics", "/metrics/controller", "/", "/routes"]) {
            const r = await requestFrom("127.0.0.1", httpUrl(p), { auth: statsAuth() });
            assert.deepEqual([r.status, r.body], [404, "no route\n"], `${p} on the HTTP listener`);
        }
        // The stats listener: health without credentials, the rest only with them.
        assert.equal((await requestFrom("127.0.0.1", statsUrl("/-/health"))).status, 200);
        assert.equal((await requestFrom("127.0.0.1", statsUrl("/metrics"))).status, 401);
        const metrics = await requestFrom("127.0.0.1", statsUrl("/metrics"), { auth: statsAuth() });
        assert.equal(metrics.status, 200);
        assert.match(metrics.body, /haproxy_process_max_connections 64/);
    });

    it("an idle-connection flood on a TCP listener from one client: refused beyond its cap; health, /metrics and a second client answer within 1 s", async () => {
        const flood = await Flood.open({ localAddress: "127.0.0.21", port: tcpPort, count: 100 });
        floods.push(flood);
        // Every connection beyond the cap is closed by the gateway; on a busy machine the last
        // closes may take longer than a moment to arrive (once: 89 of 90 after 300 ms).
        await waitFor(() => flood.closedAt.length >= 100 - CLIENT_CAP, {
            timeoutMs: 10_000,
            message: `the ${100 - CLIENT_CAP} connections beyond the cap refused`,
        });
        assert.ok(flood.open <= CLIENT_CAP && flood.open > 0, `${flood.open} connections of the flood open (cap ${CLIENT_CAP})`);
        // The flooding client itself still reaches the HTTP listener (another listener, other counters).
        await othersAnswer("127.0.0.22", "idle flood on the TCP listener");
        const own = await requestFrom("127.0.0.21", httpUrl("/web/own"));
        assert.equal(own.status, 200);
        flood.close();
    });

    it("a slowloris on HTTP from one client: refused beyond its cap, each slow request closed after timeout http-request; the rest answer within 1 s", async () => {
        const flood = await Flood.open({ localAddress: "127.0.0.31", port: h.gateway.httpPort, count: 60, slow: 300 });
        floods.push(flood);
        await sleep(300);
        assert.ok(flood.open <= CLIENT_CAP && flood.open > 0, `${flood.open} slow connections open (cap ${CLIENT_CAP})`);
        await othersAnswer("127.0.0.32", "slowloris on the HTTP listener");
        // timeout http-request 2s: the gateway closes the slow connections that were let in (408).
        await waitFor(() => flood.open === 0, { timeoutMs: 8000, message: "slow connections closed by timeout http-request" });
        assert.ok(Math.max(...flood.closedAt) < 6000, `last slow connection closed after ${Math.round(Math.max(...flood.closedAt))} ms`);
        flood.close();
    });

    it("idle connections from many clients fill the TCP listener's share, not the HTTP or stats listener's", async () => {
        // 5 clients x 10 = 50 connections for a share of 23: the listener is full, the kernel queues the rest.
        for (let c = 41; c <= 45; c++) floods.push(await Flood.open({ localAddress: `127.0.0.${c}`, port: tcpPort, count: CLIENT_CAP }));
        await sleep(300);
        await waitFor(async () => (await stat("tcp_echo", "FRONTEND", "scur")) === "23", {
            timeoutMs: 5000,
            message: "the TCP listener full at its share, 23",
        });
        for (const client of ["127.0.0.46", "127.0.0.1"]) {
            for (const [name, url, auth] of [
                ["/-/health", httpUrl("/-/health"), undefined],
                ["/metrics", statsUrl("/metrics"), statsAuth()],
                ["/web/x", httpUrl("/web/x"), undefined],
            ] as const) {
                const r = await requestFrom(client, url, { timeoutMs: 3000, ...(auth ? { auth } : {}) });
                assert.equal(r.status, 200, `${name} from ${client} with the TCP listener full`);
                assert.ok(r.ms <= WITHIN_MS, `${name} from ${client} took ${Math.round(r.ms)} ms with the TCP listener full`);
            }
        }
        for (const f of floods.splice(0)) f.close();
        await waitFor(async () => (await tcpEcho("127.0.0.47", tcpPort, "back", 2000).catch(() => undefined))?.echo === "back", {
            timeoutMs: 10_000,
            message: "the TCP listener serves again once the flood ends",
        });
    });

    it("over the request rate a client gets 429 while another gets 200; a service's own rate counts its requests only", async () => {
        await h.consul.kvPut("service/haproxy/limits/client-rate", "20");
        await h.waitForConfig((cfg) => cfg.includes("sc0_http_req_rate gt 20"), "client rate 20 live");
        // A reload may be under way: wait until a fresh client is counted by the new worker.
        await waitFor(
            async () => {
                const statuses = [];
                for (let i = 0; i < 22; i++) statuses.push((await requestFrom("127.0.0.51", httpUrl("/web/rate"))).status);
                return statuses.includes(429) ? statuses : undefined;
            },
            { timeoutMs: 10_000, message: "429 once over 20 requests in 10 s" },
        );
        const statuses: number[] = [];
        for (let i = 0; i < 10; i++) statuses.push((await requestFrom("127.0.0.51", httpUrl("/web/rate"))).status);
        assert.deepEqual([...new Set(statuses)], [429], "the client over the rate keeps getting 429");
        const other = await requestFrom("127.0.0.52", httpUrl("/web/rate"));
        assert.equal(other.status, 200, "another client is served");
        assert.ok(other.ms <= WITHIN_MS);
        // Health checks are answered before the rate is looked at.
        assert.equal((await requestFrom("127.0.0.51", httpUrl("/-/health"))).status, 200);
        await h.consul.kvDelete("service/haproxy/limits/client-rate");

        await h.consul.kvPut("service/haproxy/services/web/rate", "5");
        await h.waitForConfig((cfg) => cfg.includes("sc1_http_req_rate gt 5") && !cfg.includes("sc0_http_req_rate"), "web's own rate 5 live");
        // A new client per attempt: one that straddled the reload would be counted by two workers.
        let attempt = 0;
        const limited = await waitFor(
            async () => {
                const client = `127.0.1.${++attempt}`;
                const s: number[] = [];
                for (let i = 0; i < 7; i++) s.push((await requestFrom(client, httpUrl("/web/own-rate"))).status);
                return s.join(" ") === "200 200 200 200 200 429 429" ? client : undefined;
            },
            { timeoutMs: 10_000, message: "five requests to /web/, then 429" },
        );
        // Another client, and the same client on another route (no rate of its own), are served.
        assert.equal((await requestFrom("127.0.0.54", httpUrl("/web/own-rate"))).status, 200);
        assert.equal((await requestFrom(limited, httpUrl("/nothing-here"))).status, 404);
        await h.consul.kvDelete("service/haproxy/services/web/rate");
        await h.waitForConfig((cfg) => !cfg.includes("sc1_http_req_rate"), "web's own rate gone");
    });

    it("a body over the cap gets 413 and never reaches the backend; one under it is served", async () => {
        const before = web.seen.length;
        const big = await requestFrom("127.0.0.61", httpUrl("/web/upload"), { method: "POST", body: "x".repeat(1001) });
        assert.equal(big.status, 413);
        assert.equal(web.seen.length, before, "the backend saw the request over the cap");
        const small = await requestFrom("127.0.0.61", httpUrl("/web/upload"), { method: "POST", body: "x".repeat(1000) });
        assert.equal(small.status, 200);
        assert.equal(web.seen.at(-1)?.method, "POST");
    });

    it("a server at its maxconn: the next request waits in the queue, not a 503; a new maxconn applies without a reload", async () => {
        const slow = await startRecordingBackend("slow-a", (req, res) => {
            if (!req.url?.startsWith("/hold")) return false;
            setTimeout(() => res.end("held\n"), 800);
            return true;
        });
        h.onStop(slow.close);
        await h.consul.kvPut("service/haproxy/services/slow/maxconn", "1");
        await h.consul.register(slow.registration("slow"));
        await h.waitForRoute("/slow/x", { instance: "slow-a" });
        assert.equal((await h.gateway.serverStat("svc_slow", "slim"))[slow.serverName], "1");
        const [a, b] = await Promise.all([requestFrom("127.0.0.71", httpUrl("/slow/hold")), requestFrom("127.0.0.72", httpUrl("/slow/hold"))]);
        assert.deepEqual([a.status, b.status], [200, 200], "both served, one after the other");
        assert.equal(await stat("svc_slow", "BACKEND", "qmax"), "1", "the second request waited in the backend's queue");
        const reloads = await h.gateway.masterReloads();
        await h.consul.kvPut("service/haproxy/services/slow/maxconn", "4");
        await waitFor(async () => (await h.gateway.serverStat("svc_slow", "slim"))[slow.serverName] === "4", {
            timeoutMs: 10_000,
            message: "maxconn 4 running",
        });
        assert.equal(await h.gateway.masterReloads(), reloads, "a maxconn change reloaded HAProxy");
        await h.gateway.logged(/gateway: runtime API: .*2 maxconn\(s\) set, no reload/);
    });

    it("a TCP service's own idle timeout closes its idle connections", async () => {
        const pid = (await h.gateway.showInfo()).Pid;
        await h.consul.kvPut("service/haproxy/services/echo/idle-timeout", "1s");
        await h.waitForConfig((cfg) => /frontend tcp_echo from tcp_services\n(.*\n)*? {4}timeout client 1s\n/.test(cfg), "echo's idle timeout live");
        // The new worker runs it (the live file is written just before the reload).
        await waitFor(async () => (await h.gateway.showInfo().catch(() => ({ Pid: pid }))).Pid !== pid, { timeoutMs: 10_000, message: "a new worker" });
        await waitFor(async () => (await tcpEcho("127.0.0.81", tcpPort, "x", 2000).catch(() => undefined))?.echo === "x", {
            timeoutMs: 10_000,
            message: "echo after the reload",
        });
        const idle = await Flood.open({ localAddress: "127.0.0.82", port: tcpPort, count: 1 });
        floods.push(idle);
        await waitFor(() => idle.open === 0, { timeoutMs: 6000, message: "the idle connection closed by the gateway" });
        assert.ok(idle.closedAt[0]! >= 900, `closed after ${Math.round(idle.closedAt[0]!)} ms`);
        await h.consul.kvDelete("service/haproxy/services/echo/idle-timeout");
    });
});
