// Load through the edge gateways while a fault is injected: one wrk per gateway, each request
// alternating between the stack's http routes, idempotent GETs on keep-alive connections. The
// wrk timeout is above the gateway's server timeout (30 s by default), so a request the gateway
// holds and then retries on another replica counts as answered (late), not as failed.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseWrk, type WrkResult } from "../../controlplane/harness/load";
import { readTool } from "../../support/tools";

export interface LoadOptions {
    /** Paths the requests go to, in turn. */
    paths: string[];
    durationSec: number;
    /** Connections per gateway (one wrk thread each); default 4. */
    connections?: number;
    /** wrk's request timeout; default 40 s. */
    timeoutSec?: number;
}

export interface GatewayLoad extends WrkResult {
    url: string;
    latencyMaxMs: number;
    latencyP99Ms: number;
}

/** wrk's latency with its unit ("1.23ms", "2.50s", "812.00us") in milliseconds. */
function ms(text: string | undefined): number {
    const m = /^([0-9.]+)(us|ms|s|m)$/.exec(text ?? "");
    if (!m) return NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as "us" | "ms" | "s" | "m"];
}

export class Load {
    private readonly runs: { url: string; child: ChildProcess; out: Promise<{ code: number | null; stdout: string; stderr: string }> }[] = [];
    private readonly dir: string;
    readonly startedAt = Date.now();

    private constructor(urls: string[], opts: LoadOptions) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-cluster-wrk-"));
        const script = path.join(this.dir, "paths.lua");
        fs.writeFileSync(
            script,
            [
                `local paths = { ${opts.paths.map((p) => JSON.stringify(p)).join(", ")} }`,
                "local i = 0",
                "request = function()",
                "    i = i + 1",
                "    return wrk.format(nil, paths[(i % #paths) + 1])",
                "end",
                "",
            ].join("\n"),
        );
        const wrk = readTool("WRK_BIN");
        for (const url of urls) {
            const args = ["-t", "1", "-c", String(opts.connections ?? 4), "-d", `${opts.durationSec}s`, "--timeout", `${opts.timeoutSec ?? 40}s`, "--latency"];
            const child = spawn(wrk, [...args, "-s", script, url], { stdio: ["ignore", "pipe", "pipe"] });
            const out = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
                let stdout = "";
                let stderr = "";
                child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
                child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
                child.on("close", (code) => resolve({ code, stdout, stderr }));
            });
            this.runs.push({ url, child, out });
        }
    }

    /** Starts wrk against each gateway URL now; they run for `durationSec`. */
    static start(urls: string[], opts: LoadOptions): Load {
        return new Load(urls, opts);
    }

    /** Seconds since the load started. */
    elapsed(): number {
        return (Date.now() - this.startedAt) / 1000;
    }

    /** Waits for every wrk to finish; their results, by gateway. */
    async results(): Promise<GatewayLoad[]> {
        try {
            const out: GatewayLoad[] = [];
            for (const r of this.runs) {
                const { code, stdout, stderr } = await r.out;
                if (code !== 0) throw new Error(`wrk against ${r.url} failed (exit ${code}):\n${stdout}${stderr}`);
                const parsed = parseWrk(stdout);
                const latency = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(stdout);
                const p99 = /^\s*99%\s+(\S+)/m.exec(stdout);
                out.push({ ...parsed, url: r.url, latencyMaxMs: ms(latency?.[3]), latencyP99Ms: ms(p99?.[1]) });
            }
            return out;
        } finally {
            fs.rmSync(this.dir, { recursive: true, force: true });
        }
    }

    /** Ends every wrk now, with its figures so far (wrk stops on SIGINT and reports): results() then returns them. */
    finish(): void {
        for (const r of this.runs) r.child.kill("SIGINT");
    }

    /** Stops every wrk at once (a failed scenario's cleanup). */
    stop(): void {
        for (const r of this.runs) r.child.kill("SIGKILL");
    }
}

/** The load's figures for a scenario: totals, and each gateway's. */
export function loadFigures(results: GatewayLoad[]): { requests: number; failed: number; gateways: Record<string, unknown>[] } {
    return {
        requests: results.reduce((n, r) => n + r.requests, 0),
        failed: results.reduce((n, r) => n + r.failed, 0),
        gateways: results.map((r) => ({
            url: r.url,
            requests: r.requests,
            failed: r.failed,
            non2xx: r.non2xx,
            socketErrors: r.socketErrors,
            requestsPerSec: r.requestsPerSec,
            latencyP99Ms: r.latencyP99Ms,
            latencyMaxMs: r.latencyMaxMs,
        })),
    };
}
