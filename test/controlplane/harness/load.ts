// Load: wrk runs (tracked like every other process) and the statistics the tests and bench read.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Tools } from "../../support/tools";
import { makeTempDir, Proc } from "./processes";

export interface WrkResult {
    requests: number;
    non2xx: number;
    socketErrors: { connect: number; read: number; write: number; timeout: number };
    failed: number;
    requestsPerSec: number;
    /** Latency percentiles, when wrk ran with --latency. */
    latencyMs?: { p50: number; p99: number };
    raw: string;
}

/** "1.23ms", "850.00us", "1.01s" (wrk's units) in milliseconds. */
function wrkMs(value: string, unit: string): number {
    return Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? NaN);
}

export function parseWrk(out: string): WrkResult {
    const num = (re: RegExp): number => {
        const m = re.exec(out);
        return m ? Number(m[1]) : 0;
    };
    const requests = /(\d+) requests in/.exec(out);
    if (!requests) throw new Error(`cannot parse wrk output:\n${out}`);
    const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const socketErrors = se
        ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) }
        : { connect: 0, read: 0, write: 0, timeout: 0 };
    const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
    const p50 = /^\s+50%\s+([\d.]+)(us|ms|s|m)$/m.exec(out);
    const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)$/m.exec(out);
    return {
        requests: Number(requests[1]),
        non2xx,
        socketErrors,
        failed: non2xx + socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout,
        requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
        ...(p50 && p99 ? { latencyMs: { p50: wrkMs(p50[1]!, p50[2]!), p99: wrkMs(p99[1]!, p99[2]!) } } : {}),
        raw: out,
    };
}

export interface WrkOptions {
    url: string;
    durationSec: number;
    threads?: number;
    connections?: number;
    headers?: string[];
    timeoutSec?: number;
    /** wrk --latency: the percentiles in latencyMs. */
    latency?: boolean;
    /** POST: every request a POST with a small body, which the gateway never replays on another instance. Default GET. */
    method?: "GET" | "POST";
    /** The CPUs wrk may run on (taskset -c). */
    cpus?: string;
    /**
     * Ends the run early when it settles: wrk gets SIGINT, stops its connections and prints its
     * summary as at the end of `durationSec` (which then only bounds the run).
     */
    until?: Promise<unknown>;
}

/** Runs wrk (tracked like every other process) and parses its summary. */
export async function runWrk(tools: Tools, opts: WrkOptions): Promise<WrkResult> {
    const args = ["-t", String(opts.threads ?? 2), "-c", String(opts.connections ?? 64), "-d", `${opts.durationSec}s`, "--timeout", `${opts.timeoutSec ?? 5}s`];
    for (const h of opts.headers ?? []) args.push("-H", h);
    if (opts.latency) args.push("--latency");
    if (opts.method === "POST") {
        const script = path.join(makeTempDir("wrk"), "post.lua");
        fs.writeFileSync(script, 'wrk.method = "POST"\nwrk.body = "load"\nwrk.headers["Content-Type"] = "text/plain"\n');
        args.push("-s", script);
    }
    args.push(opts.url);
    const proc = opts.cpus ? new Proc("wrk", "taskset", ["-c", opts.cpus, tools.WRK_BIN, ...args]) : new Proc("wrk", tools.WRK_BIN, args);
    void opts.until?.finally(() => {
        if (proc.running) proc.killGroup("SIGINT");
    });
    const { code } = await proc.exited;
    await proc.stop();
    if (code !== 0) throw new Error(`wrk failed (${code}):\n${proc.output()}`);
    return parseWrk(proc.stdout.toString());
}

/** Percentile (nearest rank) of a list of numbers. */
export function percentile(values: number[], p: number): number {
    if (values.length === 0) return NaN;
    const sorted = [...values].sort((a, b) => a - b);
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}
