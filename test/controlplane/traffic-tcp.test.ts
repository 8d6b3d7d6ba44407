// TCP services (docs/traffic-control.md): a service declared by the KV key
// services/<name>/listen gets a gateway listener on that port that balances TCP connections over
// the instances registered under <name> with the tag tcp. Proved with real PostgreSQL servers
// and psql through the gateway: new connections reach both instances; an instance that leaves
// gets no new connection while an open session to the other keeps working; it comes back
// without a reload; a session opened before a reload outlives it by more than 30 s (with a TCP
// service, old workers may stay 1 h); a hostile registration is skipped and a bad listen value
// rejected (logged), the other routes serving on.
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import {
    GATEWAY_OWN_ADDRESS,
    Harness,
    NODE_ADDRESS,
    PostgresServer,
    PsqlSession,
    freePort,
    gatewayTcpTarget,
    sleep,
    startProgrammableBackend,
    waitFor,
    whichInstance,
    type PsqlTarget,
    type Registration,
} from "./harness";
import { serviceKey, sha8 } from "./harness/traffic";

/** The section of a rendered config that starts with `header` (up to the next section). */
function section(cfg: string, header: string): string | undefined {
    return cfg.split(/\n(?=backend |frontend |defaults|userlist |global)/).find((s) => s.startsWith(`${header}\n`) || s.startsWith(`${header} `));
}

/** Names of the servers of a backend section (routed and panic twins). */
function serverNames(sectionText: string | undefined): string[] {
    return [...(sectionText ?? "").matchAll(/^ {4}server (\S+) /gm)].map((m) => m[1]!).sort();
}

/** Whether something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const s = net.connect({ host, port });
        s.setTimeout(1000, () => {
            s.destroy();
            resolve(false);
        });
        s.once("connect", () => {
            s.destroy();
            resolve(true);
        });
        s.once("error", () => resolve(false));
    });
}

describe("TCP services: PostgreSQL through the gateway", { timeout: 300_000 }, () => {
    let h: Harness;
    let pgA: PostgresServer;
    let pgB: PostgresServer;
    let listenPort: number;
    let gw: PsqlTarget;
    const NAME = "db";

    /** `n` new psql connections through the gateway, one after the other: the instance each reached (all must succeed). */
    async function reached(n: number): Promise<string[]> {
        const out: string[] = [];
        for (let i = 0; i < n; i++) out.push(await whichInstance(gw));
        return out;
    }

    before(
        async () => {
            h = await Harness.start();
            pgA = await PostgresServer.start("sd-db-1");
            h.onStop(() => pgA.stop());
            pgB = await PostgresServer.start("sd-db-2");
            h.onStop(() => pgB.stop());
            listenPort = await freePort();
            gw = gatewayTcpTarget(h.gateway, listenPort);
            await h.consul.kvPut(serviceKey(NAME, "listen"), String(listenPort));
            await h.consul.register(pgA.registration(NAME));
            await h.consul.register(pgB.registration(NAME));
            // An HTTP route beside it, and an HTTP instance under the TCP service's name.
            await h.addInstance("web-v1", "web-a");
            const impostor = await startProgrammableBackend("db-http");
            h.onStop(impostor.close);
            await h.consul.register(impostor.registration(NAME));
            await h.waitForRoute("/web/v1/");
            await waitFor(async () => (await whichInstance(gw, 3000).catch(() => "")) !== "", { timeoutMs: 20_000, message: "psql through the gateway" });
        },
        { timeout: 90_000 },
    );

    after(async () => {
        if (process.env.DEBUG_TRAFFIC) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("renders a TCP listener on the listen port and a tcp backend of the tcp-tagged instances; the name is no HTTP route", async () => {
        const cfg = h.gateway.readRenderedConfig("live");
        const fe = section(cfg, `frontend tcp_${NAME}`);
        assert.ok(fe, `no frontend tcp_${NAME}:\n${cfg}`);
        assert.match(fe, new RegExp(`^\\s+bind "\\$\\{GATEWAY_BIND\\}:${listenPort}"$`, "m"));
        assert.match(fe, new RegExp(`^\\s+default_backend svc_${NAME}$`, "m"));
        const be = section(cfg, `backend svc_${NAME}`);
        assert.ok(be && !/http-check|httpchk|replace-path/.test(be), `backend svc_${NAME} is not a TCP backend:\n${be}`);
        // The instances tagged tcp (each with its panic twin), not the one tagged rest.
        assert.deepEqual(serverNames(be), [pgA.serverName, pgB.serverName, `panic-${pgA.serverName}`, `panic-${pgB.serverName}`].sort());
        assert.match(be, new RegExp(`^\\s+server ${pgA.serverName} ${pgA.serverName} check inter 2s fastinter 500ms downinter 2s rise 1 fall 2`, "m"));
        // TCP mode and idle database sessions kept 1 h (the defaults section TCP services take).
        assert.ok(/^\s+mode tcp$/m.test(cfg) && /^\s+timeout client 1h$/m.test(cfg) && /^\s+timeout server 1h$/m.test(cfg), "tcp defaults");
        // Old workers left by a reload may hold those sessions as long.
        assert.deepEqual(
            cfg.match(/^\s+hard-stop-after .*$/gm)?.map((l) => l.trim()),
            ["hard-stop-after 1h"],
        );
        const res = await h.gateway.get(`/${NAME}/`);
        assert.deepEqual([res.status, res.body], [404, "no route\n"], "a name with a listen key is never an HTTP route");
        assert.deepEqual(Object.keys(await h.gateway.serverStates(`svc_${NAME}`)).sort(), serverNames(be));
    });

    it("psql through the gateway reaches both instances, connection after connection", async () => {
        const names = await reached(12);
        assert.deepEqual(new Set(names), new Set([pgA.instance, pgB.instance]));
        // Round robin: each gets about half.
        for (const x of [pgA, pgB]) assert.ok(names.filter((n) => n === x.instance).length >= 4, names.join(" "));
    });

    it("an instance deregistered: every new connection reaches the other, an open session to it keeps working; back without a reload", async () => {
        const reloads0 = await h.gateway.masterReloads();
        const session = await PsqlSession.open(gw);
        h.onStop(() => session.close());
        const survivorName = await session.query("SELECT name FROM instance");
        const [survivor, leaving] = survivorName === pgA.instance ? [pgA, pgB] : [pgB, pgA];
        assert.equal(survivor.instance, survivorName);

        await h.consul.deregister(leaving.id);
        await h.waitForConfig(
            (cfg) => !serverNames(section(cfg, `backend svc_${NAME}`)).some((s) => s.endsWith(leaving.serverName)),
            "leaving instance removed",
        );
        await waitFor(async () => (await h.gateway.serverStates(`svc_${NAME}`))[leaving.serverName] === undefined, {
            timeoutMs: 5000,
            message: "leaving instance deleted from HAProxy",
        });
        // The instance still runs and answers directly: only the gateway keeps connections away.
        assert.equal(await whichInstance(leaving.target), leaving.instance);
        assert.deepEqual(new Set(await reached(10)), new Set([survivor.instance]));
        assert.equal(await session.query("SELECT name FROM instance"), survivor.instance);
        assert.equal(await session.query("SELECT 40 + 2"), "42");

        await h.consul.register(leaving.registration(NAME));
        await waitFor(async () => new Set(await reached(4)).size === 2, { timeoutMs: 15_000, intervalMs: 100, message: "both instances in rotation again" });
        assert.deepEqual(new Set(await reached(10)), new Set([pgA.instance, pgB.instance]));
        assert.equal(await session.query("SELECT name FROM instance"), survivor.instance, "the open session outlived both changes");
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
        await session.close();
    });

    it("maintenance of one instance by container name: no new connection to it, its open session goes on; back without a reload", async () => {
        const reloads0 = await h.gateway.masterReloads();
        // Sessions on both instances (round robin: two in a row reach both).
        const sessions = [await PsqlSession.open(gw), await PsqlSession.open(gw)];
        for (const s of sessions) h.onStop(() => s.close());
        const on = await Promise.all(sessions.map((s) => s.query("SELECT name FROM instance")));
        assert.deepEqual(on.sort(), [pgA.instance, pgB.instance]);
        await h.consul.kvPut(serviceKey(NAME, "maintenance"), pgB.instance);
        await waitFor(async () => new Set(await reached(4)).size === 1, { timeoutMs: 10_000, intervalMs: 100, message: `${pgB.instance} drained` });
        assert.deepEqual(new Set(await reached(10)), new Set([pgA.instance]));
        for (const s of sessions) assert.ok([pgA.instance, pgB.instance].includes(await s.query("SELECT name FROM instance")), "open session goes on");
        await h.consul.kvDelete(serviceKey(NAME, "maintenance"));
        await waitFor(async () => new Set(await reached(4)).size === 2, { timeoutMs: 10_000, intervalMs: 100, message: `${pgB.instance} back` });
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
        for (const s of sessions) await s.close();
    });

    it("a reload does not cut an open session: psql opened before it still answers more than 30 s after it (hard-stop-after 1h)", async () => {
        const session = await PsqlSession.open(gw);
        h.onStop(() => session.close());
        const pid = await session.query("SELECT pg_backend_pid()");
        const reloads0 = await h.gateway.masterReloads();
        // A brand-new HTTP service: a new route, so a new config and a reload; the session stays
        // with the old worker.
        const late = await startProgrammableBackend("sd-late-v1-1");
        h.onStop(late.close);
        await h.consul.register(late.registration("late-v1"));
        await h.waitForRoute("/late/v1/", { instance: late.instance });
        await waitFor(async () => (await h.gateway.masterReloads()) > reloads0, { timeoutMs: 10_000, message: "the HAProxy master reloaded" });
        const reloadedAt = Date.now();
        // Past the 30 s an old worker gets without TCP services.
        await sleep(32_000);
        assert.equal(await session.query("SELECT pg_backend_pid()"), pid, "the same connection to the same server process");
        assert.equal(await session.query("SELECT 40 + 2"), "42");
        assert.ok(Date.now() - reloadedAt > 30_000);
        await session.close();
        await h.consul.deregister(late.registration("late-v1").ID);
    });

    it("skips hostile tcp registrations (loopback, Consul's port, a node's control ports, the gateway itself); the others serve on", async () => {
        // Each with the reason the trust rules give (docs/security.md, "Trust rules").
        const hostile: Array<{ reg: Registration; why: RegExp }> = [
            // Consul's HTTPS API really listens on loopback: a connection would reach it.
            { reg: { ID: "hostile:loopback-consul:1", Name: NAME, Tags: ["tcp"], Address: "127.0.0.1", Port: h.consul.ports.https }, why: /loopback/ },
            { reg: { ID: "hostile:consul-port:1", Name: NAME, Tags: ["tcp"], Address: NODE_ADDRESS, Port: 8500 }, why: /port 8500 is Consul's/ },
            { reg: { ID: "hostile:node-port:1", Name: NAME, Tags: ["tcp"], Address: NODE_ADDRESS, Port: h.consul.ports.https }, why: /GATEWAY_NODE_PORTS/ },
            { reg: { ID: "hostile:gateway:1", Name: NAME, Tags: ["tcp"], Address: GATEWAY_OWN_ADDRESS, Port: listenPort }, why: /gateway itself/ },
        ];
        for (const { reg } of hostile) await h.consul.register(reg);
        const line = (r: Registration): string => `skipped: ${NAME} instance ${r.Address}:${r.Port}: `;
        const cfg = await h.waitForConfig((c) => hostile.every(({ reg }) => c.includes(`# ${line(reg)}`)), "every hostile instance listed as skipped");
        assert.deepEqual(
            serverNames(section(cfg, `backend svc_${NAME}`)),
            [pgA.serverName, pgB.serverName, `panic-${pgA.serverName}`, `panic-${pgB.serverName}`].sort(),
        );
        const log = h.gateway.proc!.stderr.toString();
        for (const { reg, why } of hostile) {
            const note = cfg.split("\n").find((l) => l.startsWith(`# ${line(reg)}`))!;
            assert.match(note, why, `${reg.ID}: ${note}`);
            assert.ok(log.includes(`gateway: ${note.slice(2)}`), `${reg.ID} logged`);
        }
        assert.deepEqual(new Set(await reached(10)), new Set([pgA.instance, pgB.instance]));
        for (const { reg } of hostile) await h.consul.deregister(reg.ID);
    });

    it("rejects a bad listen value (logged, no listener) while the other routes keep working", async () => {
        // Declared after "db", so a port already taken by db stays db's ("first by name").
        const BAD = "x-bad";
        // An instance for it, so that a listener would have somewhere to send connections.
        await h.consul.register({ ...pgA.registration(BAD), ID: `${pgA.id}:${BAD}` });
        // The gateway's own HTTP and stats ports are these in the harness (80 and 1936 in the image).
        const badValues = [
            "abc",
            "8500",
            "0",
            "65536",
            String(h.gateway.httpPort),
            String(h.gateway.statsPort),
            String(listenPort),
            `${listenPort + 1}\n    bind :1`,
        ];
        for (const value of badValues) {
            await h.consul.kvPut(serviceKey(BAD, "listen"), value);
            const note = `# rejected: KV service/haproxy/services/${BAD}/listen: value (sha256 ${sha8(value)})`;
            const cfg = await h
                .waitForConfig((c) => c.includes(note), `listen ${JSON.stringify(value)} rejected`)
                .catch((e: Error) => {
                    throw new Error(
                        `${e.message}\n${h.gateway
                            .readRenderedConfig("new")
                            .split("\n")
                            .filter((l) => l.startsWith("# ") || l.includes(BAD))
                            .join("\n")}`,
                    );
                });
            assert.ok(!cfg.includes(`frontend tcp_${BAD}`) && !cfg.includes(`backend svc_${BAD}`), `${JSON.stringify(value)}: a listener for ${BAD}`);
            assert.ok(!cfg.includes(`use_backend svc_${BAD} `), `${JSON.stringify(value)}: ${BAD} became an HTTP route`);
            await waitFor(() => h.gateway.proc!.stderr.toString().includes(`gateway: ${note.slice(2)}`), {
                timeoutMs: 5000,
                message: `${JSON.stringify(value)} logged`,
            });
            // db's listener and the HTTP route serve on.
            assert.ok([pgA.instance, pgB.instance].includes(await whichInstance(gw)));
            assert.equal((await h.gateway.get("/web/v1/")).status, 200);
        }
        const bindLines = h.gateway.readRenderedConfig("live").match(/^\s+bind .*$/gm) ?? [];
        assert.equal(bindLines.filter((l) => l.includes(`:${listenPort}"`)).length, 1, bindLines.join("\n"));
        // A good value: the listener comes (the key is what declares it).
        const good = await freePort();
        await h.consul.kvPut(serviceKey(BAD, "listen"), String(good));
        await waitFor(async () => (await whichInstance(gatewayTcpTarget(h.gateway, good), 3000).catch(() => "")) === pgA.instance, {
            timeoutMs: 15_000,
            message: `${BAD} listening on ${good}`,
        });
        await h.consul.kvDelete(serviceKey(BAD, "listen"));
        await waitFor(async () => !(await accepts("127.0.0.1", good)), { timeoutMs: 15_000, message: `${BAD}'s listener gone with its key` });
        assert.ok([pgA.instance, pgB.instance].includes(await whichInstance(gw)));
        await h.consul.deregister(`${pgA.id}:${BAD}`);
    });

    // Last: it takes db's listener away.
    it("without a TCP service old workers get 30 s again: hard-stop-after 30s once db's listen key is deleted", async () => {
        await h.consul.kvDelete(serviceKey(NAME, "listen"));
        const cfg = await h.waitForConfig((c) => !c.includes(`frontend tcp_${NAME}`), `tcp_${NAME} gone with its listen key`);
        assert.deepEqual(
            cfg.match(/^\s+hard-stop-after .*$/gm)?.map((l) => l.trim()),
            ["hard-stop-after 30s"],
        );
        await waitFor(async () => !(await accepts("127.0.0.1", listenPort)), { timeoutMs: 15_000, message: `${NAME}'s listener gone with its key` });
        assert.equal((await h.gateway.get("/web/v1/")).status, 200);
    });
});
