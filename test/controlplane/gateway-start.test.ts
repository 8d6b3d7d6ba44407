// Start-up: the gateway starts on its bootstrap config and must then apply the first model,
// even when Consul answers at once and the controller reloads within milliseconds of HAProxy
// starting (a reload signal the master receives while it starts is lost). Started repeatedly
// because the race is a matter of milliseconds.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
    Backend,
    ConsulAgent,
    freePort,
    Gateway,
    httpRequest,
    makeTempDir,
    PRODUCTION_CONSUL_LIMITS,
    readTools,
    removeTempDir,
    waitFor,
    type Tools,
} from "./harness";
import { HaproxyMaster } from "../../components/images/gateway/controller/haproxy";

function minimalConfig(port: number, body: string): string {
    return [
        "global",
        "    maxconn 100",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 5s",
        "    timeout server 5s",
        "frontend http",
        `    bind 127.0.0.1:${port}`,
        `    http-request return status 200 content-type text/plain string "${body}"`,
        "",
    ].join("\n");
}

const STARTS = Number(process.env.GATEWAY_STARTS ?? 20);
const EARLY_RELOADS = 10;

describe("gateway start-up", { timeout: 120_000 }, () => {
    let tools: Tools;
    let consul: ConsulAgent;
    let backend: Backend;

    before(
        async () => {
            tools = readTools();
            consul = await ConsulAgent.start(tools, { hcl: [PRODUCTION_CONSUL_LIMITS] });
            backend = await Backend.start(tools, { service: "boot", version: "v1", instance: "boot-a" });
            await consul.register(backend.registration("boot-v1", { status: "passing" }));
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await backend?.stop();
        await consul?.destroy();
    });

    it(`a reload right after the master started applies the new config (${EARLY_RELOADS} times)`, async () => {
        // The master ignores SIGUSR2 until it is up: the controller's first reload, which comes
        // as soon as Consul answers, must still get the new config running.
        const failures: string[] = [];
        for (let i = 0; i < EARLY_RELOADS; i++) {
            const dir = makeTempDir("early");
            const port = await freePort();
            const env = { ...process.env, GATEWAY_RUN_DIR: dir };
            const live = path.join(dir, "haproxy.cfg");
            fs.writeFileSync(live, minimalConfig(port, "bootstrap"));
            let master: HaproxyMaster | undefined;
            const log: string[] = [];
            try {
                master = await HaproxyMaster.start({ bin: tools.HAPROXY_BIN, configFile: live, runDir: dir, env, log: (l) => log.push(l) });
                fs.writeFileSync(live, minimalConfig(port, "rendered"));
                const result = await master.reload();
                assert.deepEqual(result, { ok: true });
                await waitFor(async () => (await httpRequest(`http://127.0.0.1:${port}/`, { timeoutMs: 500 })).body === "rendered", {
                    timeoutMs: 3000,
                    message: "the rendered config to run",
                });
            } catch (err) {
                failures.push(`run ${i}: ${(err as Error).message}\n${log.join("\n")}`);
            } finally {
                await master?.stop();
                removeTempDir(dir);
            }
        }
        assert.deepEqual(failures, [], failures.join("\n"));
    });

    it(`applies the first render on each of ${STARTS} starts`, async (t) => {
        const failures: string[] = [];
        for (let i = 0; i < STARTS; i++) {
            let gw: Gateway | undefined;
            const t0 = Date.now();
            try {
                // Below the controller's 10 s wait for a reload's new worker (haproxy.ts, WAIT_MS): a
                // lost reload signal, noticed only after it and then retried, still fails here. The
                // rest is headroom for a busy machine (npm test runs its layers at once: starts took
                // up to 4.6 s there).
                gw = await Gateway.start(tools, consul, { readyTimeoutMs: 9000 });
                const g = gw;
                // Ready means the new worker answered once; the bootstrap worker may still take a
                // connection or two while it leaves (rarely: 1 start in ~100 here), so the route
                // must come within a moment, and a lost render never brings it.
                await waitFor(async () => (await g.get("/boot/v1/x")).status === 200, {
                    timeoutMs: 2000,
                    message: `start ${i}: the route of the first render`,
                });
                await waitFor(() => g.reloads() === 1, { timeoutMs: 2000, message: `start ${i}: "config reloaded" once` });
                t.diagnostic(`start ${i}: ${Date.now() - t0} ms`);
            } catch (err) {
                failures.push(`start ${i}: ${(err as Error).message.split("\n").slice(0, 8).join("\n")}`);
            } finally {
                await gw?.destroy();
            }
        }
        assert.deepEqual(failures, [], failures.join("\n"));
    });
});
