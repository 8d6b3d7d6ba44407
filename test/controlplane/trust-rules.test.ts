// Trust rules of the gateway's template (docs/security.md, "Trust rules"): well-formed values used as an
// attacker would, here the check path, the caps, the forwarding headers and the gateway's own
// configuration (the server addresses are in trust-rules-addresses.test.ts). Each test registers
// the attack with the harness's helpers (the tokens the stack gives Registrator and Pulumi), waits
// until the gateway has rendered it, and asserts that the attack never becomes a server or a
// setting, that the real instances keep serving, and that the skip is logged once (not on every
// render) with its reason.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { Gateway, Harness, NODE_ADDRESS, waitFor, type Backend, type Registration } from "./harness";
import { servers, startServer, TrustRig } from "./harness/trust-rules";

describe("trust rules", { timeout: 300_000 }, () => {
    let rig: TrustRig;
    let h: Harness;
    let realA: Backend;

    before(
        async () => {
            rig = await TrustRig.start();
            ({ h, realA } = rig);
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await rig?.stop();
    });

    afterEach(async () => {
        await rig?.cleanup();
    });

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
        rig.undo.push(() => h.consul.kvDelete("service/haproxy/services/strict-v1/check"));
        await h.consul.kvPut("service/haproxy/services/strict-v1/check", "/health");
        await h.consul.register(reg(strict[0]!, ["rest", "check=/health"]));
        await h.consul.register(reg(strict[1]!, ["rest", "check=/health"]));
        // The rogue instance: a well-formed tag that would check everyone on a path they fail.
        await h.consul.register(reg(strict[2]!, ["rest", "check=/x"]));
        const cfg = await h.waitForConfig((c) => servers(c, "svc_strict-v1").length === 3, "three strict-v1 servers");
        assert.match(cfg, /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/);
        // Every instance stays UP (a check on /x would take them all DOWN) and serves.
        const allUp = async (n: number) => {
            const states = Object.values(await rig.serverStates("svc_strict-v1"));
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
        await rig.waitLogged(line);
        await h.waitForConfig((c) => /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/\n/.test(c), "check path / for strict-v1");
        await h.consul.deregister("trust:strict-rogue");
        await h.waitForConfig((c) => /backend svc_strict-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/.test(c), "agreed check path /health");
        await waitFor(() => allUp(2), { timeoutMs: 8000, message: "strict-v1 UP again" });
        assert.equal(rig.logged(line), 1, "the disagreement was logged once");
        await rig.realKeepServing();
    });

    it("a KV check path that is not a path is rejected, logged, and the instances' agreed path runs", async () => {
        rig.undo.push(() => h.consul.kvDelete("service/haproxy/services/real-v1/check"));
        await h.consul.kvPut("service/haproxy/services/real-v1/check", "/health\n    stats uri /pwn");
        await rig.rerender();
        const cfg = h.gateway.readRenderedConfig("live");
        assert.ok(!cfg.includes("/pwn"), "the value never reaches the config");
        assert.match(cfg, /backend svc_real-v1\n(.*\n)*? {4}http-check send meth GET uri \/health\n/);
        assert.ok(
            rig
                .stderr()
                .split("\n")
                .some((l) => /^gateway: rejected: KV service\/haproxy\/services\/real-v1\/check: value \(sha256 [0-9a-f]{8}\) is not a path/.test(l)),
            rig.stderr().slice(-2000),
        );
        await h.consul.kvDelete("service/haproxy/services/real-v1/check");
        await rig.realKeepServing();
    });

    describe("caps", () => {
        it("writes at most service/haproxy/limits/instances servers per service and logs the others once", async () => {
            const third = await h.startBackend("real", "real-c", "v1");
            rig.undo.push(
                () => h.consul.kvDelete("service/haproxy/limits/instances"),
                () => h.consul.deregister(third.id),
            );
            await h.consul.kvPut("service/haproxy/limits/instances", "2");
            await h.consul.register(third.registration("real-v1", { status: "passing" }));
            await rig.waitLogged(
                `skipped: real-v1 instance ${third.serverName}: over the cap of 2 instances per service (KV service/haproxy/limits/instances)`,
            );
            const written = servers(h.gateway.readRenderedConfig("live"), "svc_real-v1");
            assert.equal(written.length, 2, written.join(","));
            await rig.rerender();
            assert.equal(
                rig.logged(`skipped: real-v1 instance ${third.serverName}: over the cap of 2 instances per service (KV service/haproxy/limits/instances)`),
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
            for (const name of extra) rig.undo.push(() => h.consul.deregister(`trust:${name}`));
            rig.undo.push(
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
                await rig.waitLogged(`skipped: service ${name}: over the cap of 4 routed services (KV service/haproxy/limits/services)`);
                await h.waitForRoute(`/${name.replace(/-(v[0-9]+)$/, "/$1")}/x`, { status: 404 });
            }
            await rig.rerender();
            assert.equal(rig.logged("skipped: service capc-v1: over the cap of 4 routed services (KV service/haproxy/limits/services)"), 1, "logged once");
            await rig.realKeepServing();
            // A cap that is not a number is rejected, logged, and the default (5000) runs.
            await h.consul.kvPut("service/haproxy/limits/services", "many");
            await h.waitForConfig((c) => all.every((n) => c.includes(`backend svc_${n}\n`)), "every service routed under the default cap");
            await waitFor(
                () =>
                    rig
                        .stderr()
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
                    rig
                        .stderr(gw)
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
            await rig.waitLogged(`skipped: real-v1 instance ${realA.serverName}: an address of the gateway itself (GATEWAY_OWN_ADDRESSES)`, gw);
            assert.deepEqual(servers(gw.readRenderedConfig("live"), "svc_real-v1"), []);
        });

        it("routes nothing when the declared networks are missing or invalid, and says so", async () => {
            const gw = await Gateway.start(h.tools, h.consul, { env: { GATEWAY_BACKEND_NETWORKS: "198.18.0.0/33 everything" } });
            h.onStop(() => gw.destroy());
            await rig.waitLogged("rejected: GATEWAY_BACKEND_NETWORKS declares no network: no instance is routed", gw);
            assert.equal(
                rig
                    .stderr(gw)
                    .split("\n")
                    .filter((l) => /^gateway: rejected: GATEWAY_BACKEND_NETWORKS entry \(sha256 [0-9a-f]{8}\) is not an IPv4 CIDR block/.test(l)).length,
                2,
            );
            assert.deepEqual(servers(gw.readRenderedConfig("live"), "svc_real-v1"), []);
            assert.equal((await gw.get("/real/v1/x")).status, 503, "the route exists but has no server");
        });
    });
});
