// Report helpers of the benchmark: progress on stderr, the machine and tool versions, and the
// data-plane section of results.md.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PREVIOUS_DESIGN_COMMIT, stats, type BigResult, type OverloadRun } from "./dataplane";
import { LOAD_SEC } from "./settings";

export function log(msg: string): void {
    process.stderr.write(`[bench] ${msg}\n`);
}

export function machine(): string {
    const cpus = os.cpus();
    const model = (cpus[0]?.model ?? "unknown CPU").replace(/\s+/g, " ").trim();
    const ram = (os.totalmem() / 1024 ** 3).toFixed(1);
    return `${model}, ${cpus.length} cores, ${ram} GiB RAM, ${os.type()} ${os.release()} (${os.arch()})`;
}

/**
 * BENCH_ONLY=<field>: writes one measure's summary as `field` of results.json (the other fields
 * kept), and prints it with its Markdown section.
 */
export function writeField(field: string, summary: unknown, markdown: string[]): void {
    const file = path.join(__dirname, "results.json");
    const results = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
    results[field] = summary;
    fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify({ [field]: summary }, null, 2)}\n\n${markdown.join("\n")}`);
}

/** First line of `<bin> <args>` (version strings for the report). */
export function versionOf(bin: string, args: string[], re: RegExp): string {
    const r = spawnSync(bin, args, { encoding: "utf8" });
    return re.exec(`${r.stdout}${r.stderr}`)?.[1] ?? "?";
}

export interface BigPrevious {
    startToAllLiveMs: number;
    addMs: number[];
    kvMs: number[];
    weightMs: number[];
    consulConnections: number;
}

/** Milliseconds for the report; a trial that ran out of time is "not within 20 s". */
function ms(n: number | null): string {
    return n === null || !Number.isFinite(n) ? "not within 20 s" : `${Math.round(n)} ms`;
}

export function dataplaneMarkdown(
    r: {
        runtime: { add_p50_ms: number; add_p99_ms: number; remove_p50_ms: number; reloads_during: number };
        scale2000: {
            register_to_all_live_ms: number;
            add_p50_ms: number;
            kv_p50_ms: number;
            weight_p50_ms: number;
            consul_connections: number;
            config_bytes: number;
            reloads_during_adds: number;
            controller_rss_mb: number;
            cpu_ms_per_change: number;
        };
        overload: { runs: number; requests: number; failed: number };
    },
    big: BigResult,
    previous: { conv: { up: number[]; down: number[] }; reloads: number; overload: OverloadRun; big?: BigPrevious } | undefined,
): string[] {
    const p = previous;
    const pc = p ? stats(p.conv.up) : undefined;
    return [
        "## Data plane: instance changes, scale, overload",
        "",
        `Ours: the gateway controller (TypeScript, Node.js 22): blocking queries over one HTTP/2 connection, a typed model, instance, weight`,
        "and maintenance changes through HAProxy's runtime API over one open connection, settings by a validated reload. Previous design",
        `(commit ${PREVIOUS_DESIGN_COMMIT}, run here in the same run): consul-template rendering a Go template on every change, bash and awk`,
        "applying server changes through the runtime API and reloading for the rest.",
        `At ${big.services} × ${big.instances}: the catalog written by Consul transactions on ${big.instances} nodes (one instance of every`,
        "service each), static backends; a new instance is registered on the gateway's node as Registrator registers it.",
        "",
        "| Measure | Ours | Previous design | Goal |",
        "|---|---|---|---|",
        `| New instance → first 200, p50 / p99 | ${r.runtime.add_p50_ms} / ${r.runtime.add_p99_ms} ms | ${pc ? `${pc.p50} / ${pc.p99} ms` : "–"} | ≤ 15 / ≤ 40 ms |`,
        `| Reloads during the new-instance and removal trials | ${r.runtime.reloads_during} | ${p ? p.reloads : "–"} | 0 |`,
        `| Removal → no longer served, p50 | ${r.runtime.remove_p50_ms} ms | ${p ? `${stats(p.conv.down).p50} ms` : "–"} | ≤ 15 ms |`,
        `| ${big.services} × ${big.instances}: last registration → all routes live | ${ms(r.scale2000.register_to_all_live_ms)} | ${p?.big ? `${ms(p.big.startToAllLiveMs)} (from its start)` : "–"} | ≤ 1.5 s |`,
        `| ${big.services} × ${big.instances}: new instance → first 200, p50 | ${ms(r.scale2000.add_p50_ms)} | ${p?.big ? ms(stats(p.big.addMs).p50) : "–"} | ≤ 50 ms |`,
        `| ${big.services} × ${big.instances}: reloads during the new-instance trials | ${r.scale2000.reloads_during_adds} | | 0 |`,
        `| ${big.services} × ${big.instances}: KV maintenance (weight 0) → running, p50 | ${ms(r.scale2000.weight_p50_ms)} | ${p?.big ? ms(stats(p.big.weightMs).p50) : "–"} | ≤ 50 ms |`,
        `| ${big.services} × ${big.instances}: KV setting (maxconn, a reload) → running, p50 | ${ms(r.scale2000.kv_p50_ms)} | ${p?.big ? ms(stats(p.big.kvMs).p50) : "–"} | ≤ 700 ms |`,
        `| ${big.services} × ${big.instances}: Consul connections of the gateway | ${r.scale2000.consul_connections} | ${p?.big ? p.big.consulConnections : "–"} | ≤ 5 |`,
        `| ${big.services} × ${big.instances}: controller memory (RSS) | ${r.scale2000.controller_rss_mb} MB | | ≤ 200 MB |`,
        `| ${big.services} × ${big.instances}: controller CPU per instance change | ${r.scale2000.cpu_ms_per_change} ms | | reported |`,
        `| ${big.services} × ${big.instances}: rendered config | ${Math.round(r.scale2000.config_bytes / 1024)} KiB | | |`,
        `| Overload (hello.py, Connection: close, ${LOAD_SEC} s): failed of requests | ${r.overload.failed} of ${r.overload.requests} (${r.overload.runs} runs) | ${p ? `${p.overload.wrk.failed} of ${p.overload.wrk.requests} (1 run)` : "–"} | 0 |`,
        "",
        "Peers, as documented (not run here): Traefik's Consul catalog provider polls every 15 s by default; HAProxy's DNS",
        "SRV discovery resolves every 0.1–1 s without a reload; Fabio rebuilds its routing table on every change and routes",
        "only passing instances (no panic routing); none of them holds Consul's health aside when all instances fail.",
        "",
    ];
}
