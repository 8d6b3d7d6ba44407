// Trust rules of the gateway's template (README, "Trust rules"): well-formed values used as an
// attacker would. Each test registers the attack with the harness's helpers (the tokens the stack
// gives Registrator and Pulumi), waits until the gateway has rendered it, and asserts that the
// attack never becomes a server or a setting, that the real instances keep serving, and that the
// skip is logged once (not on every render) with its reason.
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, afterEach, before, describe, it } from "node:test";
import {
    Gateway,
    GATEWAY_OWN_ADDRESS,
    Harness,
    hello,
    listenOnTestNode,
    NODE_ADDRESS,
    OUTSIDE_ADDRESS,
    waitFor,
    type Backend,
    type Registration,
} from "./harness";

/** An HTTP server on the test node: /health 200, `fail` paths 404, else `answer(req)` as JSON. */
async function startServer(
    address: string,
    answer: (req: http.IncomingMessage) => unknown,
    fail: (path: string) => boolean = () => false,
): Promise<{ port: number; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
        const status = req.url === "/health" ? 200 : fail(req.url ?? "") ? 404 : 200;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(req.url === "/health" ? "ok\n" : `${JSON.stringify(answer(req))}\n`);
    });
    return listenOnTestNode(server, address);
}

describe("trust rules", { timeout: 300_000 }, () => {
    let h: Harness;
    let realA: Backend;
    let realB: Backend;
    let seq = 0;

    before(
        async () => {
            h = await Harness.start();
            realA = await h.addInstance("real-v1", "real-a");
            realB = await h.addInstance("real-v1", "real-b");
            await h.waitForRoute("/real/v1/", { instance: "real-a" });
            await h.waitForRoute("/real/v1/", { instance: "real-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await cleanup();
        await h?.stop();
    });

    afterEach(async () => {
        await cleanup();
    });

    function stderr(gw: Gateway = h.gateway): string {
        return gw.proc?.stderr.toString() ?? "";
    }

    /** How many times the gateway logged `line` ("gateway: <line>"). */
    function logged(line: string, gw: Gateway = h.gateway): number {
        return stderr(gw)
            .split("\n")
            .filter((l) => l === `gateway: ${line}`).length;
    }

    async function waitLogged(line: string, gw: Gateway = h.gateway): Promise<void> {
        await waitFor(() => logged(line, gw) > 0, { timeoutMs: 10_000, message: `log line "gateway: ${line}"` }).catch((err: Error) => {
            throw new Error(
                `${err.message}\n--- gateway stderr ---\n${stderr(gw).slice(-4000)}\n--- rendered ---\n${gw.readRenderedConfig("new").slice(-3000)}`,
            );
        });
    }

    /** Waits until no reload has happened for 500 ms (reload.sh logs a reload once the new worker runs). */
    async function settled(): Promise<number> {
        let last = -1;
        let since = Date.now();
        return waitFor(
            async () => {
                const now = h.gateway.reloads();
                if (now !== last) {
                    last = now;
                    since = Date.now();
                }
                return Date.now() - since >= 500 ? String(now) : undefined;
            },
            { timeoutMs: 15_000, intervalMs: 50, message: "no reload for 500 ms" },
        ).then(Number);
    }

    /** Cleanup that must run even when an assertion fails (KV keys would change later tests). */
    const undo: Array<() => Promise<void>> = [];
    async function cleanup(): Promise<void> {
        for (const fn of undo.splice(0).reverse()) await fn().catch(() => undefined);
    }

    /** A change the gateway must render (a canary route appears), so earlier changes were rendered too. */
    async function rerender(): Promise<void> {
        seq++;
        await h.consul.register({ ...realA.registration(`canary${seq}`, { status: "passing" }), ID: `canary-${seq}` });
        await h.waitForRoute(`/canary${seq}/`, { instance: "real-a" });
        await h.consul.deregister(`canary-${seq}`);
        await h.waitForRoute(`/canary${seq}/`, { status: 404 });
    }

    /** Both real instances, and only they, answer /real/v1/ through the gateway. */
    async function realKeepServing(): Promise<void> {
        const seen = new Set<string>();
        for (let i = 0; i < 8; i++) {
            const res = await h.gateway.get("/real/v1/x");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
            seen.add(hello(res).hostname);
        }
        assert.deepEqual([...seen].sort(), ["real-a", "real-b"]);
    }

    /** HAProxy's view of a backend's routed servers (not the panic copies): name -> status (UP, DOWN, ...). */
    async function serverStates(backend: string, gw: Gateway = h.gateway): Promise<Record<string, string>> {
        return Object.fromEntries(Object.entries(await gw.serverStates(backend)).filter(([name]) => !name.startsWith("panic-")));
    }

    function servers(cfg: string, backend: string): string[] {
        const section = cfg.split(/\n(?=backend |frontend |userlist )/).find((s) => s.startsWith(`backend ${backend}\n`)) ?? "";
        // Routed servers: not the unchecked backup copies used only for panic routing.
        return [...section.matchAll(/^ {4}server (\S+) /gm)].map((m) => m[1]!).filter((s) => !s.startsWith("panic-"));
    }

    it("one instance cannot change how the others are checked: the stack's KV path wins", async () => {
        // Backends that fail any path but /health and their app paths: checked on /x they go DOWN.
        const strict = await Promise.all(
            ["strict-a", "strict-b", "strict-rogue"].map(async (name) => {
                const s = await startServer(
                    NODE_ADDRESS,
                    () => ({ hostname: name }),
                    (p) => !p.startsWith("/app"),
                );
                h.onStop(s.close);
                return { name, ...s };
            }),
        );
        const reg = (s: (typeof strict)[number], tags: string[]): Registration => ({
            ID: `trust:${s.name}`,
            Name: "strict-v1",
            Tags: tags,
            Address: NODE_ADDRESS,
            Port: s.port,
            Check: { HTTP: `http://${NODE_ADDRESS}:${s.port}/health`, Interval: "1s", Status: "passing" },
        });
        undo.push(() => h.consul.kvDelete("service/haproxy/services/strict-v1/check"));
        await h.consul.kvPut("service/haproxy/services/strict-v1/check", "/health");
        await h.consul.register(reg(strict[0]!, ["rest", "check=/health"]));
        await h.consul.register(reg(strict[1]!, ["rest", "check=/health"]));
        // The rogue instance: a well-formed tag that would check everyone on a path they fail.
        await h.consul.register(reg(strict[2]!, ["rest", "check=/x"]));
        const cfg = await h.waitForConfig((c) => servers(c, "svc_strict-v1").length === 3, "three strict-v1 servers");
        assert.match(cfg, /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/);
        // Every instance stays UP (a check on /x would take them all DOWN) and serves.
        const allUp = async (n: number) => {
            const states = Object.values(await serverStates("svc_strict-v1"));
            return states.length === n && states.every((s) => s === "UP");
        };
        await waitFor(() => allUp(3), { timeoutMs: 8000, message: "the three strict-v1 servers UP" });
        const seen = new Set<string>();
        for (let i = 0; i < 9; i++) {
            const res = await h.gateway.get("/strict/v1/app");
            assert.equal(res.status, 200, res.body);
            seen.add((JSON.parse(res.body) as { hostname: string }).hostname);
        }
        assert.deepEqual([...seen].sort(), ["strict-a", "strict-b", "strict-rogue"]);
        // Not declared in KV: only a path every instance agrees on is used, else "/"; never the rogue's.
        await h.consul.kvDelete("service/haproxy/services/strict-v1/check");
        const line =
            "rejected: check= tags of strict-v1: its instances do not all carry the same valid one; checking / (declare its healthCheckPath in the stack)";
        await waitLogged(line);
        await h.waitForConfig((c) => /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/\n/.test(c), "check path / for strict-v1");
        await h.consul.deregister("trust:strict-rogue");
        await h.waitForConfig((c) => /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/.test(c), "agreed check path /health");
        await waitFor(() => allUp(2), { timeoutMs: 8000, message: "strict-v1 UP again" });
        assert.equal(logged(line), 1, "the disagreement was logged once");
        await realKeepServing();
    });

    it("a KV check path that is not a path is rejected, logged, and the instances' agreed path runs", async () => {
        undo.push(() => h.consul.kvDelete("service/haproxy/services/real-v1/check"));
        await h.consul.kvPut("service/haproxy/services/real-v1/check", "/health\n    stats uri /pwn");
        await rerender();
        const cfg = h.gateway.readRenderedConfig("live");
        assert.ok(!cfg.includes("/pwn"), "the value never reaches the config");
        assert.match(cfg, /backend svc_real-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/);
        assert.ok(
            stderr()
                .split("\n")
                .some((l) => /^gateway: rejected: KV service\/haproxy\/services\/real-v1\/check: value \(sha256 [0-9a-f]{8}\) is not a path/.test(l)),
            stderr().slice(-2000),
        );
        await h.consul.kvDelete("service/haproxy/services/real-v1/check");
        await realKeepServing();
    });

    describe("server addresses", () => {
        const attacks: Array<{ what: string; address: () => string; port: () => number; reason: RegExp }> = [
            {
                what: "the gateway itself on loopback (a loop filling maxconn)",
                address: () => "127.0.0.1",
                port: () => h.gateway.httpPort,
                reason: /loopback address \(127\.0\.0\.0\/8\)/,
            },
            { what: "Consul's API on loopback", address: () => "127.0.0.1", port: () => h.consul.ports.https, reason: /loopback address/ },
            {
                what: "the cloud metadata service",
                address: () => "169.254.169.254",
                port: () => 80,
                reason: /link-local address \(169\.254\.0\.0\/16, cloud metadata\)/,
            },
            { what: "an unspecified address", address: () => "0.1.2.3", port: () => 80, reason: /unspecified address \(0\.0\.0\.0\/8\)/ },
            { what: "a multicast address", address: () => "224.0.0.1", port: () => 80, reason: /multicast or reserved address \(224\.0\.0\.0\/3\)/ },
            { what: "a reserved address", address: () => "240.0.0.1", port: () => 80, reason: /multicast or reserved address/ },
            { what: "the broadcast address", address: () => "255.255.255.255", port: () => 80, reason: /multicast or reserved address/ },
            {
                what: "the gateway's published port on the node",
                address: () => NODE_ADDRESS,
                port: () => h.gateway.httpPort,
                reason: /port \d+ of a node is the gateway's, Consul's or SSH/,
            },
            { what: "the stats port on the node", address: () => NODE_ADDRESS, port: () => h.gateway.statsPort, reason: /port \d+ of a node is/ },
            { what: "Consul's published port on the node", address: () => NODE_ADDRESS, port: () => h.consul.ports.https, reason: /port \d+ of a node is/ },
            { what: "SSH on the node", address: () => NODE_ADDRESS, port: () => 22, reason: /port 22 of a node is/ },
            {
                what: "Consul's API port on another address of the network",
                address: () => "198.18.0.9",
                port: () => 8500,
                reason: /port 8500 is Consul's or the Docker API's/,
            },
            { what: "Consul's server RPC port", address: () => "198.18.0.9", port: () => 8300, reason: /port 8300 is Consul's/ },
            { what: "the Docker API (socket proxy)", address: () => "198.18.0.9", port: () => 2375, reason: /port 2375 is Consul's or the Docker API's/ },
            { what: "a port that is not a TCP port", address: () => NODE_ADDRESS, port: () => 70000, reason: /not a TCP port/ },
        ];

        for (const attack of attacks) {
            it(`never routes to ${attack.what}`, async () => {
                seq++;
                const id = `trust:addr:${seq}`;
                const address = attack.address();
                const port = attack.port();
                const reloads = await settled();
                undo.push(() => h.consul.deregister(id));
                await h.consul.register({ ID: id, Name: "real-v1", Tags: ["rest", "check=/health"], Address: address, Port: port });
                const line = `skipped: real-v1 instance ${address}:${port}: `;
                await waitFor(
                    () =>
                        stderr()
                            .split("\n")
                            .some((l) => l.startsWith(`gateway: ${line}`)),
                    { timeoutMs: 10_000, message: `"${line}" logged` },
                );
                const logLine = stderr()
                    .split("\n")
                    .find((l) => l.startsWith(`gateway: ${line}`))!;
                assert.match(logLine, attack.reason);
                const cfg = h.gateway.readRenderedConfig("live");
                assert.deepEqual(servers(cfg, "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort(), "only the real instances are servers");
                assert.equal(await settled(), reloads, "a skipped instance changes only the list: no reload");
                await rerender();
                await rerender();
                assert.equal(
                    stderr()
                        .split("\n")
                        .filter((l) => l === logLine).length,
                    1,
                    "logged once, not on every render",
                );
                await realKeepServing();
                await h.consul.deregister(id);
            });
        }

        it("never routes to 0.0.0.0 (Linux connects it to the gateway's own host)", async () => {
            undo.push(() => h.consul.deregister("trust:zero"));
            const res = await h.consul.tryRegister({
                ID: "trust:zero",
                Name: "real-v1",
                Tags: ["rest", "check=/health"],
                Address: "0.0.0.0",
                Port: h.gateway.httpPort,
            });
            if (res.status === 200) {
                await waitLogged(`skipped: real-v1 instance 0.0.0.0:${h.gateway.httpPort}: unspecified address (0.0.0.0/8)`);
            } else {
                assert.equal(res.status, 400, `Consul refuses it or the gateway skips it: ${res.status} ${res.body}`);
                await rerender();
            }
            assert.deepEqual(servers(h.gateway.readRenderedConfig("live"), "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort());
            await realKeepServing();
        });

        it("never routes outside the declared networks, nor to the gateway's own address, even where a server answers", async () => {
            const outsideServer = await startServer(OUTSIDE_ADDRESS, () => ({ hostname: "decoy-outside" }));
            h.onStop(outsideServer.close);
            const own = await startServer(GATEWAY_OWN_ADDRESS, () => ({ hostname: "decoy-own" }));
            h.onStop(own.close);
            undo.push(
                () => h.consul.deregister("trust:outside"),
                () => h.consul.deregister("trust:own"),
            );
            await h.consul.register({
                ID: "trust:outside",
                Name: "real-v1",
                Tags: ["rest", "check=/health"],
                Address: OUTSIDE_ADDRESS,
                Port: outsideServer.port,
            });
            await h.consul.register({ ID: "trust:own", Name: "real-v1", Tags: ["rest", "check=/health"], Address: GATEWAY_OWN_ADDRESS, Port: own.port });
            await waitLogged(
                `skipped: real-v1 instance ${OUTSIDE_ADDRESS}:${outsideServer.port}: address outside the networks the stack declares (GATEWAY_BACKEND_NETWORKS)`,
            );
            await waitLogged(`skipped: real-v1 instance ${GATEWAY_OWN_ADDRESS}:${own.port}: an address of the gateway itself (GATEWAY_OWN_ADDRESSES)`);
            assert.deepEqual(servers(h.gateway.readRenderedConfig("live"), "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort());
            for (let i = 0; i < 10; i++) {
                const res = await h.gateway.get("/real/v1/x");
                assert.ok(!res.body.includes("decoy"), `a decoy answered: ${res.body}`);
            }
            await realKeepServing();
            await h.consul.deregister("trust:outside");
            await h.consul.deregister("trust:own");
        });

        it("routes an ordinary service listening on 80 in its own container (an address that is not a node)", async () => {
            undo.push(() => h.consul.deregister("trust:port80"));
            await h.consul.register({ ID: "trust:port80", Name: "web-v1", Tags: ["rest", "check=/health"], Address: "198.18.0.7", Port: 80 });
            const cfg = await h.waitForConfig((c) => servers(c, "svc_web-v1").length > 0, "web-v1 rendered");
            assert.deepEqual(servers(cfg, "svc_web-v1"), ["198.18.0.7:80"]);
            await h.consul.deregister("trust:port80");
        });
    });

    describe("caps", () => {
        it("writes at most service/haproxy/limits/instances servers per service and logs the others once", async () => {
            const third = await h.startBackend("real", "real-c", "v1");
            undo.push(
                () => h.consul.kvDelete("service/haproxy/limits/instances"),
                () => h.consul.deregister(third.id),
            );
            await h.consul.kvPut("service/haproxy/limits/instances", "2");
            await h.consul.register(third.registration("real-v1", { status: "passing" }));
            await waitLogged(`skipped: real-v1 instance ${third.serverName}: over the cap of 2 instances per service (KV service/haproxy/limits/instances)`);
            const written = servers(h.gateway.readRenderedConfig("live"), "svc_real-v1");
            assert.equal(written.length, 2, written.join(","));
            await rerender();
            assert.equal(
                logged(`skipped: real-v1 instance ${third.serverName}: over the cap of 2 instances per service (KV service/haproxy/limits/instances)`),
                1,
            );
            await h.consul.kvDelete("service/haproxy/limits/instances");
            await h.waitForConfig((c) => servers(c, "svc_real-v1").length === 3, "three servers once the cap is gone");
            await h.consul.deregister(third.id);
            await h.waitForConfig((c) => servers(c, "svc_real-v1").length === 2, "back to two servers");
        });

        it("routes the first service/haproxy/limits/services services, those the stack declares first, and logs the rest", async () => {
            const routed = () => [...h.gateway.readRenderedConfig("live").matchAll(/^backend svc_(\S+)$/gm)].map((m) => m[1]!).sort();
            const extra = ["capa-v1", "capb-v1", "capc-v1", "zcap-v1"];
            for (const name of extra) undo.push(() => h.consul.deregister(`trust:${name}`));
            undo.push(
                () => h.consul.kvDelete("service/haproxy/limits/services"),
                () => h.consul.kvDelete("service/haproxy/services/real-v1/check"),
                () => h.consul.kvDelete("service/haproxy/services/zcap-v1/check"),
            );
            for (const name of extra) await h.consul.register({ ...realA.registration(name, { status: "passing" }), ID: `trust:${name}` });
            await h.waitForConfig((c) => extra.every((n) => c.includes(`backend svc_${n}\n`)), "the extra services routed");
            const all = routed();
            assert.deepEqual(all, ["capa-v1", "capb-v1", "capc-v1", "real-v1", "strict-v1", "zcap-v1"]);
            // The stack declares real-v1 and zcap-v1 (settings.ts writes their check path): they come
            // first, then the others in catalog (name) order, up to the cap.
            await h.consul.kvPut("service/haproxy/services/real-v1/check", "/health");
            await h.consul.kvPut("service/haproxy/services/zcap-v1/check", "/health");
            await h.consul.kvPut("service/haproxy/limits/services", "4");
            await h.waitForConfig((c) => (c.match(/^backend svc_/gm) ?? []).length === 4, "4 services routed");
            assert.deepEqual(routed(), ["capa-v1", "capb-v1", "real-v1", "zcap-v1"]);
            for (const name of ["capc-v1", "strict-v1"]) {
                await waitLogged(`skipped: service ${name}: over the cap of 4 routed services (KV service/haproxy/limits/services)`);
                await h.waitForRoute(`/${name.replace(/-(v[0-9]+)$/, "/$1")}/x`, { status: 404 });
            }
            await rerender();
            assert.equal(logged("skipped: service capc-v1: over the cap of 4 routed services (KV service/haproxy/limits/services)"), 1, "logged once");
            await realKeepServing();
            // A cap that is not a number is rejected, logged, and the default (5000) runs.
            await h.consul.kvPut("service/haproxy/limits/services", "many");
            await h.waitForConfig((c) => all.every((n) => c.includes(`backend svc_${n}\n`)), "every service routed under the default cap");
            await waitFor(
                () =>
                    stderr()
                        .split("\n")
                        .some((l) =>
                            /^gateway: rejected: KV service\/haproxy\/limits\/services: value \(sha256 [0-9a-f]{8}\) is not an integer from 1 to 100000; running 5000$/.test(
                                l,
                            ),
                        ),
                { timeoutMs: 10_000, message: "rejected cap logged" },
            );
            await h.consul.kvDelete("service/haproxy/limits/services");
            await h.consul.kvDelete("service/haproxy/services/real-v1/check");
            await h.consul.kvDelete("service/haproxy/services/zcap-v1/check");
            for (const name of extra) await h.consul.deregister(`trust:${name}`);
        });
    });

    describe("forwarding headers", () => {
        let echo: { port: number; close: () => Promise<void> };

        before(async () => {
            echo = await startServer(NODE_ADDRESS, (req) => ({
                xff: req.headersDistinct["x-forwarded-for"] ?? [],
                xfp: req.headersDistinct["x-forwarded-prefix"] ?? [],
                forwarded: req.headersDistinct.forwarded ?? [],
                realIp: req.headersDistinct["x-real-ip"] ?? [],
            }));
            h.onStop(echo.close);
            await h.consul.register({
                ID: "trust:echo",
                Name: "echo-v1",
                Tags: ["rest", "check=/health"],
                Address: NODE_ADDRESS,
                Port: echo.port,
                Check: { HTTP: `http://${NODE_ADDRESS}:${echo.port}/health`, Interval: "1s", Status: "passing" },
            });
            await h.waitForRoute("/echo/v1/");
        });

        const spoofed = { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Prefix": "/evil", Forwarded: "for=203.0.113.9", "X-Real-IP": "203.0.113.9" };
        type Seen = { xff: string[]; xfp: string[]; forwarded: string[]; realIp: string[] };

        it("replaces what an untrusted client says: X-Forwarded-For is the client, the prefix is the route", async () => {
            const res = await h.gateway.get("/echo/v1/x", { headers: spoofed });
            assert.equal(res.status, 200);
            const seen = JSON.parse(res.body) as Seen;
            assert.deepEqual(seen, { xff: ["127.0.0.1"], xfp: ["/echo/v1"], forwarded: [], realIp: [] });
        });

        it("keeps what a trusted proxy says and appends to it", async () => {
            const gw = await Gateway.start(h.tools, h.consul, { env: { GATEWAY_TRUSTED_PROXIES: "10.0.0.0/8 127.0.0.0/8" } });
            h.onStop(() => gw.destroy());
            await waitFor(async () => (await gw.get("/echo/v1/")).status === 200, { timeoutMs: 10_000, message: "echo-v1 on the second gateway" });
            const res = await gw.get("/echo/v1/x", { headers: { ...spoofed, "X-Forwarded-Prefix": "/edge" } });
            const seen = JSON.parse(res.body) as Seen;
            assert.deepEqual(seen.xff.join(",").split(/,\s*/), ["203.0.113.9", "127.0.0.1"], res.body);
            assert.deepEqual(seen.xfp, ["/edge/echo/v1"]);
            assert.deepEqual(seen.forwarded, ["for=203.0.113.9"]);
            // A prefix that is not a path is not kept, even from a trusted proxy.
            const odd = JSON.parse((await gw.get("/echo/v1/x", { headers: { "X-Forwarded-Prefix": "/a b" } })).body) as Seen;
            assert.deepEqual(odd.xfp, ["/echo/v1"]);
        });

        it("does not trust a client outside the configured proxies", async () => {
            const gw = await Gateway.start(h.tools, h.consul, { env: { GATEWAY_TRUSTED_PROXIES: "10.0.0.0/8, bogus" } });
            h.onStop(() => gw.destroy());
            await waitFor(async () => (await gw.get("/echo/v1/")).status === 200, { timeoutMs: 10_000, message: "echo-v1 on the third gateway" });
            const seen = JSON.parse((await gw.get("/echo/v1/x", { headers: spoofed })).body) as Seen;
            assert.deepEqual(seen, { xff: ["127.0.0.1"], xfp: ["/echo/v1"], forwarded: [], realIp: [] });
            await waitFor(
                () =>
                    stderr(gw)
                        .split("\n")
                        .some((l) => /^gateway: rejected: GATEWAY_TRUSTED_PROXIES entry \(sha256 [0-9a-f]{8}\) is not an IPv4 CIDR block/.test(l)),
                { timeoutMs: 5000, message: "bad entry logged" },
            );
        });
    });

    describe("the gateway's configuration", () => {
        it("refuses every address of its own interfaces when GATEWAY_OWN_ADDRESSES is not given", async () => {
            // entrypoint.sh reads them from the kernel: NODE_ADDRESS is on this machine's loopback.
            const gw = await Gateway.start(h.tools, h.consul, { env: { GATEWAY_OWN_ADDRESSES: "" } });
            h.onStop(() => gw.destroy());
            await waitLogged(`skipped: real-v1 instance ${realA.serverName}: an address of the gateway itself (GATEWAY_OWN_ADDRESSES)`, gw);
            assert.deepEqual(servers(gw.readRenderedConfig("live"), "svc_real-v1"), []);
        });

        it("routes nothing when the declared networks are missing or invalid, and says so", async () => {
            const gw = await Gateway.start(h.tools, h.consul, { env: { GATEWAY_BACKEND_NETWORKS: "198.18.0.0/33 everything" } });
            h.onStop(() => gw.destroy());
            await waitLogged("rejected: GATEWAY_BACKEND_NETWORKS declares no network: no instance is routed", gw);
            assert.equal(
                stderr(gw)
                    .split("\n")
                    .filter((l) => /^gateway: rejected: GATEWAY_BACKEND_NETWORKS entry \(sha256 [0-9a-f]{8}\) is not an IPv4 CIDR block/.test(l)).length,
                2,
            );
            assert.deepEqual(servers(gw.readRenderedConfig("live"), "svc_real-v1"), []);
            assert.equal((await gw.get("/real/v1/x")).status, 503, "the route exists but has no server");
        });
    });
});
