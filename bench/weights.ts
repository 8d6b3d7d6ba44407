// Weight-split accuracy: /hello/ split 90/10 between hello-v1 (two instances) and hello-v2 (one)
// by the KV weight keys, changed from 50/50 as a canary change is, then WEIGHT_REQUESTS requests
// counted by the version hello.py names in each answer. Reports the observed shares, their
// deviation from the weights, how long the change took to run, and whether it reloaded HAProxy.
// BENCH_ONLY=weights runs only this measure (weightsOnly) and updates the `weights` field of results.json.
import { Harness } from "../test/controlplane/harness";
import { helloVersion, sample, setWeights, waitForSplit } from "../test/controlplane/harness/traffic";
import { log, machine, writeField } from "./report";
import { WEIGHT_REQUESTS } from "./settings";

const WEIGHTS = { v1: 90, v2: 10 };

export interface WeightsResult {
    weights: Record<string, number>;
    requests: number;
    failed: number;
    /** Answers per version. */
    observed: Record<string, number>;
    /** KV PUT of the new weights -> the running worker splits by them. */
    applyMs: number;
    /** Master reloads from the KV PUT to the end of the count (HAProxy's own counter). */
    reloads: number;
    requestsPerSec: number;
}

export async function weights(): Promise<WeightsResult> {
    const h = await Harness.start();
    try {
        await h.addInstance("hello-v1", "sd-hello-v1-1");
        await h.addInstance("hello-v1", "sd-hello-v1-2");
        await h.addInstance("hello-v2", "sd-hello-v2-1");
        await setWeights(h.consul, "hello", { v1: 50, v2: 50 });
        await h.waitForRoute("/hello/v1/");
        await h.waitForRoute("/hello/v2/");
        await waitForSplit(h.gateway, "hello", { v1: 50, v2: 50 });
        const reloads0 = await h.gateway.masterReloads();
        const t0 = performance.now();
        await setWeights(h.consul, "hello", WEIGHTS);
        await waitForSplit(h.gateway, "hello", WEIGHTS);
        const applyMs = performance.now() - t0;
        const t1 = performance.now();
        const s = await sample(h.gateway.url("/hello/"), WEIGHT_REQUESTS, helloVersion);
        const seconds = (performance.now() - t1) / 1000;
        return {
            weights: WEIGHTS,
            requests: s.total,
            failed: s.failed,
            observed: s.counts,
            applyMs,
            reloads: (await h.gateway.masterReloads()) - reloads0,
            requestsPerSec: s.total / seconds,
        };
    } finally {
        await h.stop();
    }
}

/** Observed share of a version in percent, and its deviation from the weights in percentage points. */
function shares(r: WeightsResult): Array<{ version: string; weight: number; count: number; pct: number; deviation: number }> {
    const total = Object.values(r.weights).reduce((a, b) => a + b, 0);
    return Object.entries(r.weights).map(([version, weight]) => {
        const count = r.observed[version] ?? 0;
        const pct = (100 * count) / r.requests;
        return { version, weight, count, pct: Math.round(pct * 100) / 100, deviation: Math.round((pct - (100 * weight) / total) * 100) / 100 };
    });
}

export function weightsSummary(r: WeightsResult): {
    weights: Record<string, number>;
    requests: number;
    failed: number;
    observed_pct: Record<string, number>;
    max_deviation_points: number;
    apply_ms: number;
    applied_without_reload: boolean;
} {
    const s = shares(r);
    return {
        weights: r.weights,
        requests: r.requests,
        failed: r.failed,
        observed_pct: Object.fromEntries(s.map((x) => [x.version, x.pct])),
        max_deviation_points: Math.max(...s.map((x) => Math.abs(x.deviation))),
        apply_ms: Math.round(r.applyMs),
        applied_without_reload: r.reloads === 0,
    };
}

export function weightsMarkdown(r: WeightsResult): string[] {
    const sum = weightsSummary(r);
    return [
        "## Weight-split accuracy",
        "",
        `/hello/ split between hello-v1 (2 instances) and hello-v2 (1 instance) by the KV keys services/hello-v<N>/weight, changed`,
        `from 50/50 to ${r.weights.v1}/${r.weights.v2} (the canary change), then ${r.requests} requests (16 keep-alive connections,`,
        `${Math.round(r.requestsPerSec)} req/s) counted by the version hello.py names in each answer.`,
        "",
        "| Version | Weight | Requests | Observed | Deviation | Goal |",
        "|---|---|---|---|---|---|",
        ...shares(r).map(
            (x) => `| ${x.version} | ${x.weight} | ${x.count} | ${x.pct} % | ${x.deviation >= 0 ? "+" : ""}${x.deviation} points | within ±2 points |`,
        ),
        "",
        `Failed requests: ${r.failed}. The change ran ${sum.apply_ms} ms after the KV write, ${
            sum.applied_without_reload
                ? "without a reload (HAProxy's reload counter did not move: `set server ... weight`)"
                : `with ${r.reloads} reload(s) of HAProxy`
        }.`,
        "",
    ];
}

/** BENCH_ONLY=weights: the split alone; its field replaces `weights` in results.json. */
export async function weightsOnly(): Promise<void> {
    log(`machine: ${machine()}`);
    log(`weight split: ${WEIGHTS.v1}/${WEIGHTS.v2} over ${WEIGHT_REQUESTS} requests`);
    const r = await weights();
    writeField("weights", weightsSummary(r), weightsMarkdown(r));
}
