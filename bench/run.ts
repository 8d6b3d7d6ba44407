// Control-plane benchmark (not a test): convergence and removal latency, requests failed during
// reloads under load (our master-worker reload next to the 2015 `-sf` reload), and the reload
// time with 200 services x 5 instances. Uses the test harness: real Consul, the real gateway
// entrypoint, hello.py backends. Writes bench/results.json and bench/results.md.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
    Harness,
    Proc,
    freePort,
    hello,
    httpRequest,
    makeTempDir,
    percentile,
    removeTempDir,
    runWrk,
    sleep,
    stopDaemons,
    trackDaemon,
    waitFor,
    type Backend,
    type Registration,
    type WrkResult,
} from "../test/controlplane/harness";

const TRIALS = Number(process.env.BENCH_TRIALS ?? 60);
const SCALE_TRIALS = Number(process.env.BENCH_SCALE_TRIALS ?? 15);
const RELOADS = 20;
const LOAD_SEC = 12;
const SCALE_SERVICES = 200;
const SCALE_INSTANCES = 5;

function log(msg: string): void {
    process.stderr.write(`[bench] ${msg}\n`);
}

function machine(): string {
    const cpus = os.cpus();
    const model = (cpus[0]?.model ?? "unknown CPU").replace(/\s+/g, " ").trim();
    const ram = (os.totalmem() / 1024 ** 3).toFixed(1);
    return `${model}, ${cpus.length} cores, ${ram} GiB RAM, ${os.type()} ${os.release()} (${os.arch()})`;
}

/** First line of `<bin> <args>` (version strings for the report). */
function versionOf(bin: string, args: string[], re: RegExp): string {
    const r = spawnSync(bin, args, { encoding: "utf8" });
    return re.exec(`${r.stdout}${r.stderr}`)?.[1] ?? "?";
}

function stats(values: number[]): { p50: number; p99: number } {
    const r = (n: number): number => Math.round(n * 10) / 10;
    return { p50: r(percentile(values, 50)), p99: r(percentile(values, 99)) };
}

/** Which instance answers a path (one new connection per request: always the current worker). */
async function who(h: Harness, p: string): Promise<string | undefined> {
    try {
        const res = await h.gateway.get(p, { timeoutMs: 2000 });
        return res.status === 200 ? hello(res).hostname : `status ${res.status}`;
    } catch {
        return undefined;
    }
}

// ---------------------------------------------------------------------------------------------
// Convergence and removal

async function convergence(h: Harness): Promise<{ up: number[]; down: number[] }> {
    await h.addInstance("conv-v1", "conv-base");
    const extra = await h.startBackend("conv", "conv-new", "v1");
    await h.waitForRoute("/conv/v1/", { instance: "conv-base" });
    const reg = extra.registration("conv-v1", { status: "passing" });
    const up: number[] = [];
    const down: number[] = [];
    for (let i = 0; i < TRIALS + 2; i++) {
        // Registered with Status passing -> first 200 from the new instance through the gateway.
        const t0 = performance.now();
        await h.consul.register(reg);
        for (;;) {
            if ((await who(h, "/conv/v1/c")) === "conv-new") break;
            if (performance.now() - t0 > 10_000) throw new Error("convergence: instance never served");
        }
        const tUp = performance.now() - t0;
        await sleep(150);
        // Deregistered -> no longer served: the first of 20 answers in a row from the others
        // (round robin over two instances would have given it every other request).
        const t1 = performance.now();
        await h.consul.deregister(reg.ID);
        let runStart = -1;
        let run = 0;
        for (;;) {
            const t = performance.now();
            const w = await who(h, "/conv/v1/c");
            if (w === "conv-base") {
                if (run === 0) runStart = t;
                if (++run >= 20) break;
            } else {
                run = 0;
            }
            if (t - t1 > 10_000) throw new Error("removal: instance still served");
        }
        const tDown = runStart - t1;
        // The first two trials warm up caches and connections; they are not counted.
        if (i >= 2) {
            up.push(tUp);
            down.push(tDown);
        }
        await sleep(150);
    }
    return { up, down };
}

// ---------------------------------------------------------------------------------------------
// Reloads under load: ours (Consul change -> consul-template -> reload.sh -> master-worker)
// and the 2015 way (a new `haproxy -f cfg -p pid -sf <old pids>` process per reload)

interface LoadRun {
    backend: string;
    mode: string;
    wrk: WrkResult;
    reloads: number;
}

/** A route under load and the extra instance whose registration toggles for our reloads. */
interface Target {
    backend: string;
    path: string;
    extra: Registration;
}

const MODES: Array<[string, string[]]> = [
    ["keep-alive", []],
    ["Connection: close", ["Connection: close"]],
];

async function reloadOurs(h: Harness, target: Target, mode: [string, string[]]): Promise<LoadRun> {
    const reg = target.extra;
    let on = false;
    const r0 = h.gateway.reloads();
    const wrk = runWrk(h.tools, { url: h.gateway.url(target.path), durationSec: LOAD_SEC, headers: mode[1] });
    await sleep(1000);
    for (let i = 0; i < RELOADS; i++) {
        const t0 = Date.now();
        const before = h.gateway.reloads();
        if (on) await h.consul.deregister(reg.ID);
        else await h.consul.register(reg);
        on = !on;
        while (h.gateway.reloads() === before && Date.now() - t0 < 3000) await sleep(5);
        await sleep(Math.max(0, 500 - (Date.now() - t0)));
    }
    const result = await wrk;
    const reloads = h.gateway.reloads() - r0;
    if (on) {
        await h.consul.deregister(reg.ID);
        await waitFor(() => h.gateway.reloads() > r0 + reloads, { timeoutMs: 3000 });
    }
    return { backend: target.backend, mode: mode[0], wrk: result, reloads };
}

async function reloadSeedStyle(h: Harness, target: Target, mode: [string, string[]]): Promise<LoadRun> {
    // The same config file the gateway runs, on its own ports and run dir (its variables).
    const dir = makeTempDir("seed");
    const cfg = path.join(dir, "haproxy.cfg");
    fs.copyFileSync(h.gateway.liveConfigPath, cfg);
    const pidFile = path.join(dir, "haproxy.pid");
    const port = await freePort();
    const env = {
        ...h.gateway.env,
        GATEWAY_RUN_DIR: dir,
        GATEWAY_HTTP_PORT: String(port),
        GATEWAY_STATS_PORT: String(await freePort()),
    };
    // The 2015 commands: `haproxy -f cfg -p pid -D`, then `... -D -sf $(cat pid)` per reload.
    const daemons = new Set<number>();
    const launch = async (args: string[]): Promise<number> => {
        const p = new Proc("haproxy -D (2015 style)", h.tools.HAPROXY_BIN, ["-f", cfg, "-p", pidFile, "-D", ...args], {
            env,
            stdout: "ignore",
        });
        const { code } = await p.exited;
        const out = p.output();
        p.release();
        if (code !== 0) throw new Error(`haproxy -D failed (${code}):\n${out}`);
        const pid = Number(fs.readFileSync(pidFile, "utf8").trim().split(/\s+/)[0]);
        trackDaemon(pid);
        daemons.add(pid);
        return pid;
    };
    try {
        await launch([]);
        await waitFor(async () => (await httpRequest(`http://127.0.0.1:${port}${target.path}`, { timeoutMs: 500 })).status === 200, {
            timeoutMs: 10_000,
            message: "2015-style haproxy",
        });
        const wrk = runWrk(h.tools, { url: `http://127.0.0.1:${port}${target.path}`, durationSec: LOAD_SEC, headers: mode[1] });
        await sleep(1000);
        for (let i = 0; i < RELOADS; i++) {
            const t0 = Date.now();
            const old = fs.readFileSync(pidFile, "utf8").trim().split(/\s+/);
            await launch(["-sf", ...old]);
            await sleep(Math.max(0, 500 - (Date.now() - t0)));
        }
        const result = await wrk;
        return { backend: target.backend, mode: mode[0], wrk: result, reloads: RELOADS };
    } finally {
        await stopDaemons([...daemons]);
        removeTempDir(dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Scale: 200 services x 5 instances

interface ScaleResult {
    registerToRoutesMs: number;
    reloadMs: number[];
    renderMs: number[];
    checkMs: number;
    configBytes: number;
}

async function scale(h: Harness): Promise<ScaleResult> {
    const backends: Backend[] = [];
    for (let i = 0; i < SCALE_INSTANCES; i++) backends.push(await h.startBackend("scale", `scale-${i}`));
    const regs = [];
    for (let s = 0; s < SCALE_SERVICES; s++) {
        for (const b of backends) {
            regs.push({
                ...b.registration(`scale${s}`, { status: "passing", interval: "30s" }),
                ID: `${b.id}:scale${s}`,
            });
        }
    }
    const t0 = performance.now();
    for (let i = 0; i < regs.length; i += 20) await Promise.all(regs.slice(i, i + 20).map((r) => h.consul.register(r)));
    const last = `scale${SCALE_SERVICES - 1}`;
    await h.waitForConfig(
        (cfg) => (cfg.match(/^backend svc_scale\d+$/gm)?.length ?? 0) === SCALE_SERVICES && (cfg.match(/^    server /gm)?.length ?? 0) >= SCALE_SERVICES * SCALE_INSTANCES,
        "all scale routes live",
        120_000,
    );
    await h.waitForRoute(`/${last}/x`, { timeoutMs: 30_000 });
    const registerToRoutesMs = performance.now() - t0;
    await sleep(2000);
    const reloadMs: number[] = [];
    const renderMs: number[] = [];
    for (let i = 0; i < SCALE_TRIALS; i++) {
        const value = String(5000 + i);
        const t1 = performance.now();
        await h.consul.kvPut("service/haproxy/maxconn", value);
        let rendered = 0;
        await waitFor(
            async () => {
                if (!rendered && h.gateway.readRenderedConfig("new").includes(`    maxconn ${value}\n`)) rendered = performance.now() - t1;
                return (await h.gateway.showInfo()).Maxconn === value;
            },
            { timeoutMs: 30_000, intervalMs: 2, message: `Maxconn ${value} running` },
        );
        reloadMs.push(performance.now() - t1);
        renderMs.push(rendered || performance.now() - t1);
        await sleep(500);
    }
    const t2 = performance.now();
    const check = h.gateway.haproxyCheck(h.gateway.liveConfigPath);
    const checkMs = performance.now() - t2;
    if (!check.ok) throw new Error(`haproxy -c failed at scale:\n${check.output}`);
    return { registerToRoutesMs, reloadMs, renderMs, checkMs, configBytes: fs.statSync(h.gateway.liveConfigPath).size };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
    const started = new Date();
    log(`machine: ${machine()}`);

    let h = await Harness.start();
    let conv: { up: number[]; down: number[] };
    const ours: LoadRun[] = [];
    const seed: LoadRun[] = [];
    try {
        log(`convergence and removal: ${TRIALS} trials`);
        conv = await convergence(h);
        log(`convergence p50 ${stats(conv.up).p50} ms, removal p50 ${stats(conv.down).p50} ms`);

        log(`reloads under load: wrk 2 threads x 64 connections, ${LOAD_SEC} s, ${RELOADS} reloads per run`);
        await h.addInstance("load-v1", "load-a");
        await h.addInstance("load-v1", "load-b");
        const extra = await h.startBackend("load", "load-extra", "v1");
        const statics = [await h.startStaticBackend("fast-a"), await h.startStaticBackend("fast-b"), await h.startStaticBackend("fast-extra")];
        await h.consul.register(statics[0]!.registration("fast-v1"));
        await h.consul.register(statics[1]!.registration("fast-v1"));
        await h.waitForRoute("/load/v1/", { instance: "load-b" });
        await h.waitForRoute("/fast/v1/", { instance: "fast-b" });
        const targets: Target[] = [
            { backend: "hello.py", path: "/load/v1/bench", extra: extra.registration("load-v1", { status: "passing" }) },
            { backend: "static", path: "/fast/v1/bench", extra: statics[2]!.registration("fast-v1") },
        ];
        for (const target of targets) {
            for (const mode of MODES) {
                const o = await reloadOurs(h, target, mode);
                ours.push(o);
                log(`ours, ${target.backend}, ${mode[0]}: ${o.wrk.requests} requests, ${o.wrk.failed} failed, ${o.reloads} reloads`);
                const s = await reloadSeedStyle(h, target, mode);
                seed.push(s);
                log(`2015 style, ${target.backend}, ${mode[0]}: ${s.wrk.requests} requests, ${s.wrk.failed} failed`);
            }
        }
    } finally {
        await h.stop();
    }

    log(`scale: ${SCALE_SERVICES} services x ${SCALE_INSTANCES} instances, ${SCALE_TRIALS} KV changes`);
    h = await Harness.start();
    let sc: ScaleResult;
    try {
        sc = await scale(h);
    } finally {
        await h.stop();
    }

    const tools = h.tools;
    const versions = {
        consul: versionOf(tools.CONSUL_BIN, ["version"], /Consul v(\S+)/),
        consulTemplate: versionOf(tools.CONSUL_TEMPLATE_BIN, ["-version"], /consul-template v(\S+)/),
        haproxy: versionOf(tools.HAPROXY_BIN, ["-v"], /HAProxy version (\S+)/),
        wrk: versionOf(tools.WRK_BIN, ["-v"], /wrk (\S+)/),
    };
    const sum = (runs: LoadRun[], f: (r: LoadRun) => number): number => runs.reduce((a, r) => a + f(r), 0);
    const scaleStats = stats(sc.reloadMs);
    const results = {
        machine: machine(),
        convergence_ms: stats(conv.up),
        removal_ms: stats(conv.down),
        reload: {
            requests: sum(ours, (r) => r.wrk.requests),
            failed_ours: sum(ours, (r) => r.wrk.failed),
            failed_seed_style: sum(seed, (r) => r.wrk.failed),
            reloads: sum(ours, (r) => r.reloads),
        },
        scale_reload_ms: scaleStats.p50,
    };
    const here = __dirname;
    fs.writeFileSync(path.join(here, "results.json"), `${JSON.stringify(results, null, 2)}\n`);

    const row = (r: LoadRun): string => {
        const e = r.wrk.socketErrors;
        return `${r.wrk.requests} | ${Math.round(r.wrk.requestsPerSec)} | ${r.wrk.non2xx} | ${e.connect}/${e.read}/${e.write}/${e.timeout} | **${r.wrk.failed}**`;
    };
    const md = [
        "# Control-plane benchmark",
        "",
        `Run ${started.toISOString()} with \`npm run bench\` on ${results.machine}.`,
        `Real Consul ${versions.consul} (one server with ACLs and TLS, as the stack configures it), the gateway image's entrypoint (HAProxy ${versions.haproxy} master-worker +`,
        `consul-template ${versions.consulTemplate}), hello.py backends, wrk ${versions.wrk}; all on loopback.`,
        "",
        "| Measure | p50 | p99 | Trials | Goal |",
        "|---|---|---|---|---|",
        `| Convergence: registered (check passing) → first 200 from the instance | ${results.convergence_ms.p50} ms | ${results.convergence_ms.p99} ms | ${conv.up.length} | p50 ≤ 250 ms, p99 ≤ 1 s |`,
        `| Removal: deregistered → no longer served | ${results.removal_ms.p50} ms | ${results.removal_ms.p99} ms | ${conv.down.length} | |`,
        `| Reload with ${SCALE_SERVICES} services × ${SCALE_INSTANCES} instances: KV change → new worker runs it | ${scaleStats.p50} ms | ${scaleStats.p99} ms | ${sc.reloadMs.length} | |`,
        "",
        `With ${SCALE_SERVICES} × ${SCALE_INSTANCES}: ${Math.round(sc.registerToRoutesMs)} ms from the first of ${SCALE_SERVICES * SCALE_INSTANCES} registrations`,
        `(20 at a time) to all routes live; rendered config ${Math.round(sc.configBytes / 1024)} KiB. The reload time is measured from`,
        "the KV PUT (service/haproxy/maxconn) until `show info` on the admin socket reports the new maxconn",
        `(render + \`haproxy -c\` + master-worker reload + new worker answering). Of that, the render (KV PUT → file`,
        `written by consul-template) took p50 ${stats(sc.renderMs).p50} ms; one \`haproxy -c\` of this config takes ${Math.round(sc.checkMs)} ms.`,
        "",
        `## Requests failed during ${RELOADS} reloads under load`,
        "",
        `wrk, 2 threads × 64 connections, ${LOAD_SEC} s per run, ${RELOADS} reloads per run ~500 ms apart, against a route with`,
        "two instances: hello.py (the example service, ~1.5k req/s here) or a static backend (an HAProxy answering",
        "by itself, ~20× faster: more requests in flight at each reload). Ours: each reload is a Consul change (an",
        "instance registered or deregistered) → consul-template → reload.sh → SIGUSR2 to the master. 2015 style:",
        "the same config file, started with `haproxy -f cfg -p pid -D` and reloaded with",
        "`haproxy -f cfg -p pid -D -sf $(cat pid)`. Failed = non-2xx + wrk socket errors; wrk reconnects at once after",
        "an error, so while nothing accepts, one connection can count many errors.",
        "",
        "| Reload | Backend | Connections | Reloads | Requests | Req/s | Non-2xx | Socket errors (connect/read/write/timeout) | Failed |",
        "|---|---|---|---|---|---|---|---|---|",
        ...ours.map((r) => `| ours (master-worker) | ${r.backend} | ${r.mode} | ${r.reloads} | ${row(r)} |`),
        ...seed.map((r) => `| 2015 (-sf) | ${r.backend} | ${r.mode} | ${r.reloads} | ${row(r)} |`),
        "",
        "results.json sums all runs of each style (both backends, both connection modes); `reload.requests` and",
        "`reload.reloads` are those of our runs.",
        "",
    ].join("\n");
    fs.writeFileSync(path.join(here, "results.md"), md);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n\n${md}`);
}

main().catch((err: unknown) => {
    process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
