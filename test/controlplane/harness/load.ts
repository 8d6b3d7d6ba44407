// Load: wrk runs (tracked like every other process) and the statistics the tests and bench read.
import type { Tools } from "../../support/tools";
import { Proc } from "./processes";

export interface WrkResult {
    requests: number;
    non2xx: number;
    socketErrors: { connect: number; read: number; write: number; timeout: number };
    failed: number;
    requestsPerSec: number;
    raw: string;
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
    return {
        requests: Number(requests[1]),
        non2xx,
        socketErrors,
        failed: non2xx + socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout,
        requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
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
}

/** Runs wrk (tracked like every other process) and parses its summary. */
export async function runWrk(tools: Tools, opts: WrkOptions): Promise<WrkResult> {
    const args = ["-t", String(opts.threads ?? 2), "-c", String(opts.connections ?? 64), "-d", `${opts.durationSec}s`, "--timeout", `${opts.timeoutSec ?? 5}s`];
    for (const h of opts.headers ?? []) args.push("-H", h);
    args.push(opts.url);
    const proc = new Proc("wrk", tools.WRK_BIN, args);
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
