// Control-plane benchmark (not a test): convergence and removal latency, requests failed during
// reloads under load (our master-worker reload next to the 2015 `-sf` reload), and the reload
// time with 200 services x 5 instances, and requests failed during a rolling replace with and
// without the graceful drain, and the accuracy of a weighted split of versions. Uses the test
// harness: real Consul, the real gateway (the controller bundle the image ships), hello.py backends. Writes bench/results.json
// and bench/results.md, and the charts of docs/performance.md into docs/images/ (bench/charts.ts).
// BENCH_ONLY=drain runs only the rolling replace and updates the `drain` field of results.json;
// BENCH_ONLY=weights the weight-split accuracy (bench/weights.ts) and its `weights` field;
// BENCH_ONLY=edge HTTPS next to HTTP and the certificates (bench/edge.ts), and its `edge` field;
// BENCH_ONLY=cluster the cluster scenarios of test/cluster (bench/cluster.ts), and its `cluster` field
// (only then: they take minutes and need root).
// This file runs the measures and writes the results; the measures are in the modules beside it,
// their sizes in settings.ts.
import * as fs from "node:fs";
import * as path from "node:path";
import { Harness, Gateway, type StaticBackend } from "../test/controlplane/harness";
import { readTool } from "../test/support/tools";
import { CHARTS_DIR, writeCharts } from "./charts";
import { convergence } from "./convergence";
import {
    allBigLive,
    BIG_INSTANCES,
    BIG_SERVICES,
    BIG_TRIALS,
    measureBig,
    overloadRun,
    PREVIOUS_DESIGN_COMMIT,
    previousDesignDir,
    registerBig,
    stats,
    type BigResult,
    type OverloadRun,
} from "./dataplane";
import { clusterOnly } from "./cluster";
import { drain, drainMarkdown, drainOnly, drainSummary } from "./drain";
import { edge, edgeMarkdown, edgeOnly, edgeSummary } from "./edge";
import { weights, weightsMarkdown, weightsOnly, weightsSummary } from "./weights";
import { MODES, reloadOurs, reloadSeedStyle, type LoadRun, type Target } from "./reloads";
import { dataplaneMarkdown, log, machine, versionOf, type BigPrevious } from "./report";
import { scale, type ScaleResult } from "./scale";
import {
    DRAIN_INSTANCES,
    LOAD_SEC,
    OVERLOAD_RUNS,
    PREVIOUS_TRIALS,
    RELOAD_ROUNDS,
    RELOADS,
    SCALE_INSTANCES,
    SCALE_SERVICES,
    SCALE_TRIALS,
    TRIALS,
} from "./settings";

/** The `cluster` field of an earlier results.json (BENCH_ONLY=cluster), which a full run does not measure. */
function keptCluster(file: string): { cluster?: unknown } {
    if (!fs.existsSync(file)) return {};
    const previous = JSON.parse(fs.readFileSync(file, "utf8")) as { cluster?: unknown };
    return previous.cluster === undefined ? {} : { cluster: previous.cluster };
}

async function main(): Promise<void> {
    const only = process.env.BENCH_ONLY;
    if (only !== undefined && only !== "") {
        if (only === "drain") return drainOnly();
        if (only === "weights") return weightsOnly();
        if (only === "edge") return edgeOnly();
        if (only === "cluster") return clusterOnly();
        throw new Error(`BENCH_ONLY: ${JSON.stringify(only)} is not allowed; expected drain, weights, edge or cluster, or unset for every measure`);
    }
    const started = new Date();
    log(`machine: ${machine()}`);

    let h = await Harness.start();
    let conv: { up: number[]; down: number[]; reloads: number };
    let runtimeReloads: number;
    const ours: LoadRun[] = [];
    const seed: LoadRun[] = [];
    const overload: OverloadRun[] = [];
    try {
        log(`convergence and removal (runtime API): ${TRIALS} trials`);
        conv = await convergence(h);
        runtimeReloads = conv.reloads;
        log(`convergence p50 ${stats(conv.up).p50} ms, removal p50 ${stats(conv.down).p50} ms, ${runtimeReloads} reloads`);

        log(`reloads under load: wrk 2 threads x 64 connections, ${LOAD_SEC} s, ${RELOADS} reloads per run, ${RELOAD_ROUNDS} rounds`);
        await h.addInstance("load-v1", "load-a");
        await h.addInstance("load-v1", "load-b");
        const extra = await h.startBackend("load", "load-extra", "v1");
        const statics = [await h.startStaticBackend("fast-a"), await h.startStaticBackend("fast-b"), await h.startStaticBackend("fast-extra")];
        await h.consul.register(statics[0]!.registration("fast-v1"));
        await h.consul.register(statics[1]!.registration("fast-v1"));
        await h.waitForRoute("/load/v1/", { instance: "load-b" });
        await h.waitForRoute("/fast/v1/", { instance: "fast-b" });
        // Each reload: a route added or removed (an instance of an existing route is applied
        // through the runtime API and would not reload).
        const targets: Target[] = [
            { backend: "hello.py", path: "/load/v1/bench", extra: extra.registration("loadextra-v1", { status: "passing" }) },
            { backend: "static", path: "/fast/v1/bench", extra: statics[2]!.registration("fastextra-v1") },
        ];
        for (let round = 0; round < RELOAD_ROUNDS; round++) {
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
        }

        log(`overload: ${OVERLOAD_RUNS} runs of wrk with Connection: close against hello.py, ${LOAD_SEC} s, no change`);
        for (let i = 0; i < OVERLOAD_RUNS; i++) {
            const o = await overloadRun(h, "/load/v1/overload", LOAD_SEC);
            overload.push(o);
            log(`overload: ${o.wrk.requests} requests, ${o.wrk.failed} failed`);
        }
    } finally {
        await h.stop();
    }

    // The previous design (one blocking query per service, a reload per change), same machine, same run.
    const previousDir = previousDesignDir();
    let previous: { conv: { up: number[]; down: number[] }; reloads: number; overload: OverloadRun; big?: BigPrevious } | undefined;
    if (previousDir) {
        log(`previous design (commit ${PREVIOUS_DESIGN_COMMIT}): convergence ${PREVIOUS_TRIALS} trials, overload 1 run`);
        const hp = await Harness.start({ gatewayConfDir: previousDir });
        try {
            const c = await convergence(hp, PREVIOUS_TRIALS);
            const reloads = c.reloads;
            await hp.addInstance("load-v1", "load-a");
            await hp.addInstance("load-v1", "load-b");
            await hp.waitForRoute("/load/v1/", { instance: "load-b" });
            const ov = await overloadRun(hp, "/load/v1/overload", LOAD_SEC);
            log(`previous design: convergence p50 ${stats(c.up).p50} ms, ${reloads} reloads; overload ${ov.wrk.requests} requests, ${ov.wrk.failed} failed`);
            previous = { conv: c, reloads, overload: ov };
        } finally {
            await hp.stop();
        }
    } else {
        log("previous design: not in a git checkout, skipped");
    }

    log(`scale: ${SCALE_SERVICES} services x ${SCALE_INSTANCES} instances, ${SCALE_TRIALS} KV changes`);
    h = await Harness.start();
    let sc: ScaleResult;
    try {
        sc = await scale(h);
    } finally {
        await h.stop();
    }

    log(`scale: ${BIG_SERVICES} services x ${BIG_INSTANCES} instances on ${BIG_INSTANCES} nodes, ${BIG_TRIALS} adds`);
    // Consul's per-client limit raised only so that the previous design can run on the same catalog.
    h = await Harness.start({ consulHcl: ["limits { http_max_conns_per_client = 8192 }"] });
    let big: BigResult;
    try {
        const bigStatics: StaticBackend[] = [];
        for (let i = 0; i < BIG_INSTANCES; i++) bigStatics.push(await h.startStaticBackend(`big-${i}`));
        const bigExtra = await h.startStaticBackend("big-extra");
        const reg = await registerBig(h, bigStatics);
        const live = await allBigLive(h.gateway, reg.lastAt, 120_000);
        const m = await measureBig(h, h.gateway, bigExtra, { trials: BIG_TRIALS, limitMs: 20_000 });
        big = { services: BIG_SERVICES, instances: BIG_INSTANCES, registrationMs: reg.registrationMs, registerToAllLiveMs: live, ...m };
        log(
            `${BIG_SERVICES} x ${BIG_INSTANCES}: all live ${Math.round(live)} ms after the last registration, add p50 ${stats(m.addMs).p50} ms, KV p50 ${stats(m.kvMs).p50} ms, ${m.consulConnections} Consul connections`,
        );
        if (previousDir && previous) {
            await h.gateway.stop();
            const t0 = performance.now();
            const gw = await Gateway.start(h.tools, h.consul, { confDir: previousDir, readyTimeoutMs: 120_000 });
            try {
                const startToLive = await allBigLive(gw, t0, 120_000).catch(() => Infinity);
                const pm = await measureBig(h, gw, bigExtra, { trials: 3, limitMs: 20_000 });
                previous.big = {
                    startToAllLiveMs: startToLive,
                    addMs: pm.addMs,
                    kvMs: pm.kvMs,
                    weightMs: pm.weightMs,
                    consulConnections: pm.consulConnections,
                };
                log(
                    `previous design at ${BIG_SERVICES} x ${BIG_INSTANCES}: add p50 ${stats(pm.addMs).p50} ms, KV p50 ${stats(pm.kvMs).p50} ms, ${pm.consulConnections} Consul connections`,
                );
            } finally {
                await gw.destroy();
            }
        }
    } finally {
        await h.stop();
    }

    log(`graceful drain: rolling replace of ${DRAIN_INSTANCES} instances under load, with and without the grace`);
    const dr = await drain();

    log("weight split: 90/10 between two versions, counted over many requests");
    const wt = await weights();
    log(`edge: HTTP and HTTPS through the gateway, a certificate rotation under load, first ACME certificates`);
    const ed = await edge();

    const tools = h.tools;
    const versions = {
        consul: versionOf(tools.CONSUL_BIN, ["version"], /Consul v(\S+)/),
        consulTemplate: versionOf(readTool("CONSUL_TEMPLATE_BIN"), ["-version"], /consul-template v(\S+)/),
        haproxy: versionOf(tools.HAPROXY_BIN, ["-v"], /HAProxy version (\S+)/),
        wrk: versionOf(tools.WRK_BIN, ["-v"], /wrk (\S+)/),
    };
    const sum = (runs: LoadRun[], f: (r: LoadRun) => number): number => runs.reduce((a, r) => a + f(r), 0);
    const scaleStats = stats(sc.reloadMs);
    const conversion = stats(conv.up);
    const results = {
        machine: machine(),
        convergence_ms: conversion,
        removal_ms: stats(conv.down),
        runtime: { add_p50_ms: conversion.p50, add_p99_ms: conversion.p99, remove_p50_ms: stats(conv.down).p50, reloads_during: runtimeReloads },
        reload: {
            runs: ours.length,
            requests: sum(ours, (r) => r.wrk.requests),
            failed_ours: sum(ours, (r) => r.wrk.failed),
            failed_ours_worst_run: Math.max(...ours.map((r) => r.wrk.failed)),
            failed_seed_style: sum(seed, (r) => r.wrk.failed),
            reloads: sum(ours, (r) => r.reloads),
        },
        scale_reload_ms: scaleStats.p50,
        scale2000: {
            services: big.services,
            instances: big.instances,
            register_to_all_live_ms: Math.round(big.registerToAllLiveMs),
            add_p50_ms: stats(big.addMs).p50,
            add_p99_ms: stats(big.addMs).p99,
            kv_p50_ms: stats(big.kvMs).p50,
            weight_p50_ms: stats(big.weightMs).p50,
            weight_p99_ms: stats(big.weightMs).p99,
            consul_connections: big.consulConnections,
            config_bytes: big.configBytes,
            reloads_during_adds: big.reloadsDuringAdds,
            controller_rss_mb: big.rssMb,
            cpu_ms_per_change: big.cpuMsPerChange,
        },
        overload: { runs: overload.length, requests: overload.reduce((a, o) => a + o.wrk.requests, 0), failed: overload.reduce((a, o) => a + o.wrk.failed, 0) },
        previous_design: previous
            ? {
                  commit: PREVIOUS_DESIGN_COMMIT,
                  add_p50_ms: stats(previous.conv.up).p50,
                  add_p99_ms: stats(previous.conv.up).p99,
                  remove_p50_ms: stats(previous.conv.down).p50,
                  reloads_during: previous.reloads,
                  overload: { runs: 1, requests: previous.overload.wrk.requests, failed: previous.overload.wrk.failed },
                  scale2000: previous.big
                      ? {
                            start_to_all_live_ms: Math.round(previous.big.startToAllLiveMs),
                            add_p50_ms: stats(previous.big.addMs).p50,
                            kv_p50_ms: stats(previous.big.kvMs).p50,
                            weight_p50_ms: stats(previous.big.weightMs).p50,
                            consul_connections: previous.big.consulConnections,
                        }
                      : null,
              }
            : null,
        drain: drainSummary(dr),
        weights: weightsSummary(wt),
        edge: edgeSummary(ed),
        // Measured only by BENCH_ONLY=cluster: the last such run's figures are kept.
        ...keptCluster(path.join(__dirname, "results.json")),
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
        `Real Consul ${versions.consul} (one server with ACLs and TLS, as the stack configures it), the gateway controller the image runs (HAProxy ${versions.haproxy}`,
        `master-worker; the previous design with consul-template ${versions.consulTemplate}), hello.py backends, wrk ${versions.wrk}; all on loopback.`,
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
        `written by the controller) took p50 ${stats(sc.renderMs).p50} ms; one \`haproxy -c\` of this config takes ${Math.round(sc.checkMs)} ms.`,
        "",
        `## Requests failed during ${RELOADS} reloads under load`,
        "",
        `wrk, 2 threads × 64 connections, ${LOAD_SEC} s per run, ${RELOADS} reloads per run ~500 ms apart, against a route with`,
        "two instances: hello.py (the example service, ~1.5k req/s here) or a static backend (an HAProxy answering",
        "by itself, ~20× faster: more requests in flight at each reload). Ours: each reload is a Consul change (a",
        "route registered or deregistered) → the controller → haproxy -c → SIGUSR2 to the master. 2015 style:",
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
        ...dataplaneMarkdown(results, big, previous),
        ...drainMarkdown(dr),
        ...weightsMarkdown(wt),
        ...edgeMarkdown(ed),
    ].join("\n");
    fs.writeFileSync(path.join(here, "results.md"), md);
    // The charts of docs/performance.md (`npm run bench:charts` redraws them from results.json alone).
    for (const file of writeCharts(results, CHARTS_DIR)) log(`wrote ${path.relative(process.cwd(), file)}`);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n\n${md}`);
}

// Only when run (`npm run bench`), not when imported.
if (require.main === module)
    main().catch((err: unknown) => {
        process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
    });
