// Traffic control (docs/traffic-control.md) on real processes: the Pulumi-managed KV keys the
// gateway reads (weights, maintenance, sticky, TCP listeners), what the running HAProxy holds
// of them, and samples of many requests counted by the version or instance that answered. For
// the traffic tests and the benchmark.
import { createHash } from "node:crypto";
import * as http from "node:http";
import { httpRequest, type HttpResult } from "../../support/http";
import { waitFor } from "../../support/wait";
import { parseWrk, Proc, type ConsulAgent, type Gateway, type Tools, type WrkResult } from "./index";

/** A key under service/haproxy/ (components/gateway-kv.ts writes them the same way). */
export const serviceKey = (consulName: string, field: "check" | "listen" | "weight" | "maintenance"): string =>
    `service/haproxy/services/${consulName}/${field}`;
export const stickyKey = (name: string): string => `service/haproxy/routes/${name}/sticky`;

/** How the template names a rejected value: its sha256, first 8 hex digits. */
export const sha8 = (value: string): string => createHash("sha256").update(value).digest("hex").slice(0, 8);

/** Sets (a number) or deletes (undefined) the weight key of each version `<name>-<version>`. */
export async function setWeights(consul: ConsulAgent, name: string, weights: Record<string, number | undefined>): Promise<void> {
    for (const [version, w] of Object.entries(weights)) {
        const key = serviceKey(`${name}-${version}`, "weight");
        if (w === undefined) await consul.kvDelete(key);
        else await consul.kvPut(key, String(w));
    }
}

/** The effective weight of every server of a backend in the running worker (`show stat`, column weight). */
export async function serverWeights(gw: Gateway, backend: string): Promise<Record<string, number>> {
    return Object.fromEntries(Object.entries(await gw.serverStat(backend, "weight")).map(([name, w]) => [name, Number(w)]));
}

/**
 * The running split of `/<name>/`: each version's share (0..1) of the summed weights of its
 * routed servers `<version>_<addr:port>` in backend svc_<name> (panic backups left out).
 */
export async function runningShares(gw: Gateway, name: string): Promise<Record<string, number>> {
    const weights = await serverWeights(gw, `svc_${name}`);
    const sums: Record<string, number> = {};
    let total = 0;
    for (const [server, w] of Object.entries(weights)) {
        const m = /^(v[0-9]+)_/.exec(server);
        if (!m) continue;
        sums[m[1]!] = (sums[m[1]!] ?? 0) + w;
        total += w;
    }
    return Object.fromEntries(Object.entries(sums).map(([v, s]) => [v, total > 0 ? s / total : 0]));
}

/**
 * Waits until the running worker splits `/<name>/` as `weights` say (each version's share of the
 * weights within 1 %); the versions not named must have no weight in the split.
 */
export async function waitForSplit(gw: Gateway, name: string, weights: Record<string, number>, timeoutMs = 10_000): Promise<Record<string, number>> {
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    let last: Record<string, number> = {};
    return waitFor(
        async () => {
            last = await runningShares(gw, name).catch(() => ({}));
            const versions = new Set([...Object.keys(weights), ...Object.keys(last)]);
            if (Object.keys(last).length === 0) return undefined;
            for (const v of versions) {
                const want = total > 0 ? (weights[v] ?? 0) / total : 0;
                if (Math.abs((last[v] ?? 0) - want) > 0.01) return undefined;
            }
            return last;
        },
        { timeoutMs, intervalMs: 50, message: `the running split of /${name}/ to be ${JSON.stringify(weights)}` },
    ).catch((e: Error) => {
        throw new Error(`${e.message}; last running shares ${JSON.stringify(last)}`);
    });
}

export interface Sample {
    /** Answers per key (the version or instance that answered), non-200 answers under "<status>". */
    counts: Record<string, number>;
    total: number;
    failed: number;
}

/**
 * `n` GET requests to `url`, `concurrency` at a time over keep-alive connections (as browsers
 * and API clients send them), each answer counted under `keyOf(answer)`.
 */
export async function sample(
    url: string,
    n: number,
    keyOf: (res: HttpResult) => string,
    opts: { concurrency?: number; headers?: http.OutgoingHttpHeaders } = {},
): Promise<Sample> {
    const concurrency = opts.concurrency ?? 16;
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const counts: Record<string, number> = {};
    let next = 0;
    let failed = 0;
    const worker = async (): Promise<void> => {
        while (next < n) {
            next++;
            let key: string;
            try {
                const res = await httpRequest(url, { agent, headers: opts.headers ?? {}, timeoutMs: 10_000 });
                key = res.status === 200 ? keyOf(res) : `<${res.status}>`;
                if (res.status !== 200) failed++;
            } catch (err) {
                key = `<error ${(err as Error).message}>`;
                failed++;
            }
            counts[key] = (counts[key] ?? 0) + 1;
        }
    };
    try {
        await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
        agent.destroy();
    }
    return { counts, total: n, failed };
}

/** The version a hello.py answer names. */
export const helloVersion = (res: HttpResult): string => (JSON.parse(res.body) as { version: string }).version;
/** The instance a hello.py or programmable backend answer names. */
export const helloInstance = (res: HttpResult): string => (JSON.parse(res.body) as { hostname: string }).hostname;

/** The share (0..1) of `key` in a sample. */
export const share = (s: Sample, key: string): number => (s.counts[key] ?? 0) / s.total;

/**
 * wrk running until stop() (SIGINT: wrk ends its run and prints its summary): load that covers
 * every change a test makes, however long the changes take on a busy machine.
 */
export function startWrk(tools: Tools, opts: { url: string; threads?: number; connections?: number; headers?: string[] }): { stop: () => Promise<WrkResult> } {
    const args = ["-t", String(opts.threads ?? 2), "-c", String(opts.connections ?? 16), "-d", "600s", "--timeout", "5s"];
    for (const hdr of opts.headers ?? []) args.push("-H", hdr);
    const proc = new Proc("wrk", tools.WRK_BIN, [...args, opts.url]);
    return {
        stop: async () => {
            if (!proc.running) throw new Error(`wrk ended early:\n${proc.output()}`);
            proc.killGroup("SIGINT");
            const { code } = await proc.exited;
            await proc.stop();
            if (code !== 0) throw new Error(`wrk failed (${code}):\n${proc.output()}`);
            return parseWrk(proc.stdout.toString());
        },
    };
}
