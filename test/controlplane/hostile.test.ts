// Hostile input from Consul (service names, tags, addresses, KV values). Anyone who can start a
// container can pick its registration, so none of it may reach the config: after each input the
// rendered file passes `haproxy -c`, does not contain the input, existing routes still answer,
// and rendering still follows later changes (a good service registered next gets routed).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { Harness, hello, httpDefaults, type Backend, type Registration } from "./harness";

describe("hostile input", { timeout: 180_000 }, () => {
    let h: Harness;
    let safe: Backend;
    let round = 0;

    before(
        async () => {
            h = await Harness.start();
            safe = await h.addInstance("safe-v1", "safe-a");
            await h.waitForRoute("/safe/v1/", { instance: "safe-a" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    /** How the gateway names a value that failed its pattern: the first 8 hex digits of its SHA-256. */
    function sha8(value: string): string {
        return createHash("sha256").update(value, "utf8").digest("hex").slice(0, 8);
    }

    /** The gateway logged this line (reload.sh logs each skip or rejection once). */
    function assertLogged(what: string, line: string | RegExp): void {
        const lines = (h.gateway.proc?.stderr.toString() ?? "").split("\n");
        const hits = lines.filter((l) => (typeof line === "string" ? l === `gateway: ${line}` : line.test(l)));
        assert.equal(
            hits.length,
            1,
            `${what}: expected one log line ${line}, got ${hits.length}:\n${lines
                .filter((l) => l.startsWith("gateway: "))
                .slice(-20)
                .join("\n")}`,
        );
    }

    /** A marker no legitimate config line contains. */
    function marker(): string {
        return `zq${round}hostile`;
    }

    /**
     * After a hostile change: make a good change (the canary route appears or disappears, in
     * turn) and wait until the gateway follows it, so the render that includes the hostile state
     * happened; then check the config and the existing route.
     */
    let canaryUp = false;
    async function assertStillSafe(what: string, mark: string): Promise<string> {
        const canaryId = `${safe.id}:canary`;
        canaryUp = !canaryUp;
        if (canaryUp) await h.consul.register({ ...safe.registration("canary", { status: "passing" }), ID: canaryId });
        else await h.consul.deregister(canaryId);
        await h.waitForRoute("/canary/x", canaryUp ? { instance: "safe-a" } : { status: 404 }).catch((err: Error) => {
            throw new Error(`${what}: rendering stopped following changes: ${err.message}\n${h.diagnostics()}`);
        });
        const rendered = h.gateway.readRenderedConfig("new");
        const check = h.gateway.haproxyCheck(h.gateway.renderedConfigPath);
        assert.ok(check.ok, `${what}: haproxy -c failed on the rendered file:\n${check.output}`);
        assert.ok(!rendered.includes(mark), `${what}: the hostile input reached the config`);
        assert.ok(!(h.gateway.proc?.stderr.toString() ?? "").includes(mark), `${what}: the hostile input reached the gateway's log`);
        assert.equal(h.gateway.readRenderedConfig("live"), rendered, `${what}: live config is the last render`);
        assert.equal(h.gateway.rejections(), 0, `${what}: a render was rejected by haproxy -c`);
        assert.ok(!fs.existsSync(h.gateway.rejectedConfigPath), `${what}: haproxy.cfg.rejected exists`);
        assert.ok(h.gateway.proc?.running, `${what}: gateway exited`);
        const res = await h.gateway.get("/safe/v1/still");
        assert.equal(res.status, 200, `${what}: existing route broken`);
        assert.equal(hello(res).path, "/still");
        return rendered;
    }

    function hostileNames(m: string): string[] {
        return [
            `evil\nname${m}`,
            `evil-v1\n    server ${m} 127.0.0.1:1`,
            `evil name${m}`,
            `evil#${m}`,
            `evil"${m}"`,
            `evil'${m}'`,
            `evil-${m}-${"x".repeat(300)}`,
            `${m}${"y".repeat(70)}`,
            `ünïcødé-${m}`,
            `evil/${m}/v1`,
            `evil;${m}`,
            `Evil-${m}`,
            `{{ ${m} }}`,
            `evil%s$${m}`,
            `evil-${m}-v1 `,
            `evil-${m}\r`,
        ];
    }

    it("ignores hostile service names", async () => {
        const count = hostileNames("").length;
        for (let i = 0; i < count; i++) {
            round++;
            const m = marker();
            const name = hostileNames(m)[i]!;
            const reg: Registration = { ...safe.registration(name, { status: "passing" }), ID: `hostile-name-${round}` };
            const res = await h.consul.tryRegister(reg);
            assert.ok(res.status === 200 || res.status === 400, `register ${JSON.stringify(name)}: ${res.status}`);
            await assertStillSafe(`service name ${JSON.stringify(name)}`, m);
            // Skipped and said so, by a hash of the name, once.
            if (res.status === 200)
                assertLogged(`service name ${JSON.stringify(name)}`, `skipped: service (name sha256 ${sha8(name)}): the name is not a DNS label`);
        }
    });

    it("ignores hostile tags and addresses", async () => {
        const cases: Array<(m: string) => Partial<Registration>> = [
            (m) => ({ Tags: ["rest", `check=/health\n    stats uri /${m}`] }),
            (m) => ({ Tags: ["rest", `check=/he alth${m}`] }),
            (m) => ({ Tags: ["rest", `check=/"${m}"`] }),
            (m) => ({ Tags: ["rest", `check=/${m};#`] }),
            (m) => ({ Tags: ["rest", `check=/${m}${"z".repeat(200)}`] }),
            (m) => ({ Tags: ["rest", `check=/ünï${m}`] }),
            (m) => ({ Tags: ["rest", `rest\n${m}`, "check=/health"] }),
            (m) => ({ Address: `127.0.0.1\n    server ${m} 127.0.0.1:1` }),
            (m) => ({ Address: `127.0.0.1 ${m}` }),
            (m) => ({ Address: `127.0.0.1#${m}` }),
            (m) => ({ Address: `"${m}"` }),
            (m) => ({ Address: `${m}/x;y` }),
            // Well-formed but unresolvable: HAProxy would fail on it at parse time.
            (m) => ({ Address: `h${m}.invalid` }),
            () => ({ Address: "300.1.1.1" }),
        ];
        for (const make of cases) {
            round++;
            const m = marker();
            const name = `tagged-${round}`;
            const over = make(m);
            const reg: Registration = { ...safe.registration(name, { status: "passing" }), ID: `hostile-tag-${round}`, ...over };
            const res = await h.consul.tryRegister(reg);
            assert.ok(res.status === 200 || res.status === 400, `register ${JSON.stringify(over)}: ${res.status}`);
            const cfg = await assertStillSafe(`registration ${JSON.stringify(over)}`, m);
            if (over.Address !== undefined && res.status === 200) {
                assertLogged(
                    `address ${JSON.stringify(over.Address)}`,
                    `skipped: ${name} instance at an address (sha256 ${sha8(over.Address)}) that is not IPv4`,
                );
            }
            if (over.Tags && res.status === 200 && !over.Tags.includes("check=/health")) {
                assertLogged(
                    `tags ${JSON.stringify(over.Tags)}`,
                    `rejected: check= tags of ${name}: its instances do not all carry the same valid one; checking / (declare its healthCheckPath in the stack)`,
                );
            }
            if (over.Tags && res.status === 200) {
                // The service is routed; an invalid check path is replaced by "/".
                const uri = over.Tags.includes("check=/health") ? "/health" : "/";
                assert.match(cfg, new RegExp(`backend svc_${name}\\n(.*\\n)*?    http-check send meth GET uri ${uri}\\n`));
                assert.equal((await h.gateway.get(`/${name}/ok`)).status, 200);
            }
        }
    });

    it("falls back to the defaults for hostile KV values", async () => {
        const keys: Array<[string, string, RegExp]> = [
            ["service/haproxy/maxconn", "4096", /^\s+maxconn (.*)$/m],
            ["service/haproxy/timeouts/connect", "5s", /^\s+timeout connect (.*)$/m],
            ["service/haproxy/timeouts/client", "30s", /^\s+timeout client (.*)$/m],
            ["service/haproxy/timeouts/server", "30s", /^\s+timeout server (.*)$/m],
        ];
        const values = (m: string): string[] => [
            `100\n    stats uri /${m}`,
            `5s # ${m}`,
            `"5s" '${m}'`,
            `5s;${m}/x`,
            `5s ${m}`,
            `${"9".repeat(200)}${m}`,
            `5sünï${m}`,
        ];
        for (const [key, def, re] of keys) {
            for (let i = 0; i < values("").length; i++) {
                round++;
                const m = marker();
                const value = values(m)[i]!;
                await h.consul.kvPut(key, value);
                const cfg = await assertStillSafe(`${key} = ${JSON.stringify(value)}`, m);
                assert.equal(re.exec(key.endsWith("/maxconn") ? cfg : httpDefaults(cfg))?.[1], def, `${key} = ${JSON.stringify(value)} falls back to ${def}`);
                assertLogged(
                    `${key} = ${JSON.stringify(value)}`,
                    new RegExp(`^gateway: rejected: KV ${key}: value \\(sha256 ${sha8(value)}\\) is not .*; running ${def}$`),
                );
            }
            // Values that are only too large or malformed, with no marker to look for.
            // Values the pattern of a number and a unit would let through but HAProxy cannot run:
            // a zero timeout (none at all), timeouts beyond 2^31 ms, a maxconn above the FD limit.
            const tooBig = key.endsWith("maxconn") ? ["9999999"] : ["25d", "999999h", "99999m", "0", "0s"];
            for (const value of [...tooBig, "-1", "1e3", "5S", "", " 5s"]) {
                round++;
                await h.consul.kvPut(key, value);
                const cfg = await assertStillSafe(`${key} = ${JSON.stringify(value)}`, marker());
                assert.equal(re.exec(key.endsWith("/maxconn") ? cfg : httpDefaults(cfg))?.[1], def, `${key} = ${JSON.stringify(value)} falls back to ${def}`);
                // An empty value is no value for Consul: the default runs, as for a deleted key.
                if (value !== "")
                    assertLogged(
                        `${key} = ${JSON.stringify(value)}`,
                        new RegExp(`^gateway: rejected: KV ${key}: (value \\(sha256 ${sha8(value)}\\)|${value}) is .*; running ${def}$`),
                    );
            }
            await h.consul.kvDelete(key);
        }
    });

    it("rejects hostile traffic-control and budget KV values (listen, weight, maintenance, sticky, maxconn, rate, idle-timeout) and keeps serving", async () => {
        const keys: Array<[string, string]> = [
            ["service/haproxy/services/safe-v1/weight", "is not an integer from 0 to 256"],
            ["service/haproxy/services/hostile-tcp/listen", "is not a port number"],
            ["service/haproxy/services/safe-v1/maintenance", "is neither all nor container names separated by spaces"],
            ["service/haproxy/routes/safe/sticky", "is neither true nor false"],
            // A service's own budgets (docs/security.md, "Budgets").
            ["service/haproxy/services/safe-v1/maxconn", "is not an integer from 1 to 100000"],
            ["service/haproxy/services/safe-v1/rate", "is not an integer from 0 to 1000000"],
            ["service/haproxy/services/hostile-tcp/idle-timeout", "is not a duration HAProxy runs with"],
        ];
        for (const [key, why] of keys) {
            for (const make of [
                (m: string) => `1\n    stats uri /${m}`,
                (m: string) => `"${m}"`,
                (m: string) => `all;${m}#`,
                (m: string) => `ok ${m}\n    bind :1`,
            ]) {
                round++;
                const m = marker();
                const value = make(m);
                await h.consul.kvPut(key, value);
                await assertStillSafe(`${key} = ${JSON.stringify(value)}`, m);
                const rel = key.replace(/^service\/haproxy\//, "");
                assertLogged(
                    `${key} = ${JSON.stringify(value)}`,
                    new RegExp(`^gateway: rejected: KV service/haproxy/${rel}: value \\(sha256 ${sha8(value)}\\) ${why}`),
                );
                // The version the hostile value was aimed at still serves.
                assert.equal((await h.gateway.get("/safe/v1/ok")).status, 200, `${key} = ${JSON.stringify(value)}: /safe/v1/ still served`);
            }
            await h.consul.kvDelete(key);
        }
    });
});
