// 2000 services x 5 instances on one gateway (smoke run; the timings are the benchmark's): every
// route goes live, the gateway holds a handful of Consul connections, a new instance is applied
// without a reload, and a KV change runs even where the file descriptor limit is tight (with
// 10,000 checked servers and `ulimit -n` 20000, maxconn 5000 would not fit: the reload failed and
// the live file claimed a config that was not running).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { allRoutesLive, consulConnections, Harness, registerCatalog, waitFor, type StaticBackend } from "./harness";

const SERVICES = 2000;
const INSTANCES = 5;
const FD_LIMIT = 20000;

describe(`scale: ${SERVICES} services x ${INSTANCES} instances`, { timeout: 300_000 }, () => {
    let h: Harness;
    let statics: StaticBackend[];

    before(
        async () => {
            h = await Harness.start({ gatewayNofile: FD_LIMIT });
            statics = [];
            for (let i = 0; i < INSTANCES; i++) statics.push(await h.startStaticBackend(`scale-${i}`));
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("routes every service, with at most 5 Consul connections", async () => {
        const r = await registerCatalog(h.consul, statics, SERVICES, "sc");
        await allRoutesLive(h.gateway, SERVICES, "sc", r.lastAt, 120_000);
        // The gateway's own node and the INSTANCES catalog nodes: 2 + 6 blocking queries, over one
        // HTTP/2 connection (the controller's bound is 5, whatever the number of nodes).
        const connections = consulConnections(h.gateway);
        assert.ok(connections > 0 && connections <= 5, `${connections} Consul connections`);
        // Routes first (the first node's transactions), then the other nodes' instances.
        await h.waitForConfig((cfg) => (cfg.match(/^ {4}server \d/gm) ?? []).length === SERVICES * INSTANCES, "every instance a server", 120_000);
        // Each instance and its panic twin, in the running worker (the live file is written as a
        // reload starts: the new worker may still be starting).
        const running = async (): Promise<number> =>
            (await h.gateway.admin("show servers state").catch(() => "")).split("\n").filter((l) => / svc_sc\d+-v1 \d+ \S/.test(l)).length;
        await waitFor(async () => (await running()) === 2 * SERVICES * INSTANCES, { timeoutMs: 30_000, message: "every instance and its twin running" }).catch(
            async (err: Error) => {
                const log = h.gateway
                    .proc!.output()
                    .split("\n")
                    .filter((l) => /gateway: (config reloaded|runtime API)/.test(l))
                    .slice(-12);
                throw new Error(`${err.message}: ${await running()} of ${2 * SERVICES * INSTANCES}\n${log.join("\n")}`);
            },
        );
    });

    it("adds an instance of an existing service without a reload", async () => {
        const extra = await h.startStaticBackend("scale-extra");
        const reloads0 = await h.gateway.masterReloads();
        await h.consul.register({ ...extra.registration("sc0-v1"), ID: `${extra.id}:sc0` });
        await h.waitForRoute("/sc0/v1/", { instance: "scale-extra", timeoutMs: 30_000 });
        assert.equal(
            await h.gateway.masterReloads(),
            reloads0,
            h.gateway
                .proc!.output()
                .split("\n")
                .filter((l) => /gateway: config reloaded/.test(l))
                .slice(-3)
                .join("\n"),
        );
    });

    it("runs a KV change within the file descriptor budget, and says so", async () => {
        await h.consul.kvPut("service/haproxy/maxconn", "5000");
        const note =
            /gateway: rejected: KV service\/haproxy\/maxconn: 5000 is above what the file descriptor limit of this gateway \(20000\) leaves beside up to 11000 instances; running (\d+)/;
        const m = await waitFor(() => note.exec(h.gateway.proc!.output()), { timeoutMs: 60_000, message: "the budget note" });
        const capped = m[1]!;
        await waitFor(async () => (await h.gateway.showInfo()).Maxconn === capped, { timeoutMs: 60_000, message: `maxconn ${capped} running` });
        assert.ok(2 * Number(capped) + SERVICES * INSTANCES < FD_LIMIT);
        assert.equal((await h.gateway.serverStates("gateway_config"))["latest-render-running"], "no check", "the latest render runs");
        // The live file is the latest render once the controller is done with it.
        await waitFor(() => h.gateway.readRenderedConfig("live") === h.gateway.readRenderedConfig("new"), { timeoutMs: 30_000, message: "live file = render" });
        await h.consul.kvDelete("service/haproxy/maxconn");
    });
});
