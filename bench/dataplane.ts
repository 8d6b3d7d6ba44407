// Data-plane measures of the benchmark (bench/run.ts): the previous design of the gateway for
// comparison, 2000 services x 5 instances (catalog helpers in the harness), and overload.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    allRoutesLive,
    consulConnections,
    Harness,
    hello,
    makeTempDir,
    NODE_ADDRESS,
    percentile,
    registerCatalog,
    runWrk,
    type Gateway,
    type StaticBackend,
    type WrkResult,
} from "../test/controlplane/harness";
import { ROOT } from "../test/support/paths";
import { sleep, waitFor } from "../test/support/wait";

/**
 * The gateway as it was before the controller: consul-template rendering a Go template, bash
 * and awk applying instance changes through the runtime API and reloading for the rest. Taken
 * from git history (the last commit of that design), so both designs run in the same benchmark
 * run; undefined outside a git checkout.
 */
export const PREVIOUS_DESIGN_COMMIT = "2a6c58f";
export function previousDesignDir(): string | undefined {
    const dir = makeTempDir("gateway-previous");
    for (const f of ["entrypoint.sh", "reload.sh", "runtime-apply.sh", "haproxy.ctmpl", "consul-template.hcl", "bootstrap.cfg"]) {
        const r = spawnSync("git", ["-C", ROOT, "show", `${PREVIOUS_DESIGN_COMMIT}:components/images/gateway/${f}`], { encoding: "utf8" });
        if (r.status !== 0) return undefined;
        fs.writeFileSync(path.join(dir, f), r.stdout, { mode: 0o755 });
    }
    return dir;
}

export function stats(values: number[]): { p50: number; p99: number } {
    const r = (n: number): number => Math.round(n * 10) / 10;
    return { p50: r(percentile(values, 50)), p99: r(percentile(values, 99)) };
}

/** Which instance answers a path (one new connection per request: always the current worker). */
export async function who(gw: Gateway, p: string): Promise<string | undefined> {
    try {
        const res = await gw.get(p, { timeoutMs: 2000 });
        return res.status === 200 ? hello(res).hostname : `status ${res.status}`;
    } catch {
        return undefined;
    }
}

/** Time until `p` is answered by `instance` (polled back to back), or Infinity after `limitMs`. */
export async function untilServedBy(gw: Gateway, p: string, instance: string, t0: number, limitMs: number): Promise<number> {
    for (;;) {
        if ((await who(gw, p)) === instance) return performance.now() - t0;
        if (performance.now() - t0 > limitMs) return Infinity;
    }
}

// ---------------------------------------------------------------------------------------------
// 2000 services x 5 instances

export const BIG_SERVICES = Number(process.env.BENCH_BIG_SERVICES ?? 2000);
export const BIG_INSTANCES = 5;
const BIG_TRIALS = Number(process.env.BENCH_BIG_TRIALS ?? 10);

export interface BigResult {
    services: number;
    instances: number;
    /** Last registration -> every route in the running HAProxy and the last one answering. */
    registerToAllLiveMs: number;
    /** First to last registration. */
    registrationMs: number;
    addMs: number[];
    kvMs: number[];
    /** A maintenance KV key (weight 0 on the service's servers) until HAProxy runs it. */
    weightMs: number[];
    consulConnections: number;
    configBytes: number;
    reloadsDuringAdds: number;
    /** Resident memory of the gateway's process (the controller; the previous design's entrypoint shell). */
    rssMb: number;
    /** CPU time of the gateway's process tree per instance change (add or removal), HAProxy excluded. */
    cpuMsPerChange: number;
}

/** Resident set of a process, MB (/proc/<pid>/status VmRSS). */
function rssMb(pid: number | undefined): number {
    if (pid === undefined) return NaN;
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

/** CPU seconds (user + system) of a process and its children that exited, HAProxy aside: /proc/<pid>/stat. */
function cpuMs(pid: number | undefined): number {
    if (pid === undefined) return NaN;
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command.
    const ticks = [11, 12, 13, 14].reduce((n, i) => n + Number(f[i]), 0);
    return (ticks * 1000) / 100;
}

/** Registers BIG_SERVICES x BIG_INSTANCES (harness/catalog.ts: Consul transactions, one node per instance). */
export function registerBig(h: Harness, statics: StaticBackend[]): Promise<{ registrationMs: number; lastAt: number }> {
    return registerCatalog(h.consul, statics, BIG_SERVICES, "big");
}

/** Waits until the running worker has every big route and the last one answers. */
export function allBigLive(gw: Gateway, since: number, limitMs: number): Promise<number> {
    return allRoutesLive(gw, BIG_SERVICES, "big", since, limitMs);
}

/**
 * Measures a gateway serving the big catalog: a new instance of an existing service (registered
 * on the gateway's own node as Registrator registers it) until it serves, KV changes until they
 * run, the Consul connections it holds. A trial over `limitMs` counts as Infinity (null in JSON).
 */
export async function measureBig(
    h: Harness,
    gw: Gateway,
    extra: StaticBackend,
    opts: { trials: number; limitMs: number },
): Promise<Pick<BigResult, "addMs" | "kvMs" | "weightMs" | "consulConnections" | "configBytes" | "reloadsDuringAdds" | "rssMb" | "cpuMsPerChange">> {
    // Every instance running first (the routes go live before the last nodes' instances): the
    // trials measure changes, not the end of the initial load.
    const expected = 2 * BIG_SERVICES * BIG_INSTANCES;
    await waitFor(
        async () => (await gw.admin("show servers state").catch(() => "")).split("\n").filter((l) => / svc_big\d+-v1 \d+ \S/.test(l)).length >= expected,
        { timeoutMs: 120_000, intervalMs: 200, message: `${expected} servers running` },
    ).catch(() => undefined);
    await sleep(1000);
    const consul = consulConnections(gw);
    const addMs: number[] = [];
    const reg = { ...extra.registration("big0-v1"), ID: `${extra.id}:big0` };
    const server = `${NODE_ADDRESS}:${extra.port}`;
    const reloads0 = await gw.masterReloads();
    const cpu0 = cpuMs(gw.proc?.pid);
    for (let i = 0; i < opts.trials; i++) {
        const t0 = performance.now();
        await h.consul.register(reg);
        addMs.push(await untilServedBy(gw, "/big0/v1/x", extra.instance, t0, opts.limitMs));
        await h.consul.deregister(reg.ID);
        // Gone from the running HAProxy (the live file is written only after the runtime API applied it).
        await waitFor(async () => !(await gw.admin("show servers state svc_big0-v1")).includes(` ${server} `), {
            timeoutMs: opts.limitMs,
            intervalMs: 20,
        }).catch(() => undefined);
        await sleep(300);
    }
    const reloadsDuringAdds = (await gw.masterReloads()) - reloads0;
    // Trials x (add + removal), the 300 ms pauses included (idle CPU counts too: it is what a change costs in practice).
    const cpuMsPerChange = Math.round(((cpuMs(gw.proc?.pid) - cpu0) / (2 * opts.trials)) * 10) / 10;
    // Maintenance of a service (a KV key the runtime API applies: weight 0 on its servers), until HAProxy runs it.
    const weightMs: number[] = [];
    const weights = async (): Promise<string[]> =>
        (await gw.admin("show servers state svc_big1-v1"))
            .split("\n")
            .filter((l) => /^\d+ svc_big1-v1 /.test(l))
            .map((l) => l.split(" ")[7]!);
    for (let i = 0; i < opts.trials; i++) {
        const on = i % 2 === 0;
        const t0 = performance.now();
        if (on) await h.consul.kvPut("service/haproxy/services/big1-v1/maintenance", "all");
        else await h.consul.kvDelete("service/haproxy/services/big1-v1/maintenance");
        const ok = await waitFor(async () => (await weights()).every((w) => w === (on ? "0" : "1")), { timeoutMs: opts.limitMs, intervalMs: 2 }).then(
            () => true,
            () => false,
        );
        weightMs.push(ok ? performance.now() - t0 : Infinity);
        await sleep(300);
    }
    await h.consul.kvDelete("service/haproxy/services/big1-v1/maintenance");
    const kvMs: number[] = [];
    for (let i = 0; i < Math.max(2, Math.round(opts.trials / 2)); i++) {
        const value = String(3000 + i);
        const t0 = performance.now();
        await h.consul.kvPut("service/haproxy/maxconn", value);
        const ok = await waitFor(async () => (await gw.showInfo().catch(() => ({}) as Record<string, string>)).Maxconn === value, {
            timeoutMs: opts.limitMs,
            intervalMs: 5,
        }).then(
            () => true,
            () => false,
        );
        kvMs.push(ok ? performance.now() - t0 : Infinity);
        await sleep(500);
    }
    await h.consul.kvDelete("service/haproxy/maxconn");
    return {
        addMs,
        kvMs,
        weightMs,
        consulConnections: consul,
        configBytes: fs.statSync(gw.liveConfigPath).size,
        reloadsDuringAdds,
        rssMb: rssMb(gw.proc?.pid),
        cpuMsPerChange,
    };
}

export { BIG_TRIALS };

// ---------------------------------------------------------------------------------------------
// Overload: hello.py saturated with `Connection: close`, no change anywhere

export interface OverloadRun {
    wrk: WrkResult;
}

export async function overloadRun(h: Harness, p: string, durationSec: number): Promise<OverloadRun> {
    const wrk = await runWrk(h.tools, { url: h.gateway.url(p), durationSec, headers: ["Connection: close"] });
    return { wrk };
}

export { consulConnections };
