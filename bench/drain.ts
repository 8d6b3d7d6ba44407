// Graceful drain: a rolling replace under load, with the stack's grace and without one
// BENCH_ONLY=drain runs only this measure (drainOnly) and updates the `drain` field of results.json.
import { Harness } from "../test/controlplane/harness";
import { stopTimings } from "../components/drain";
import { describeRun, rollingReplace, type RollingRun } from "../test/controlplane/harness/draining-backend";
import { log, machine, writeField } from "./report";
import { DRAIN_INSTANCES } from "./settings";

export interface DrainResult {
    drainSeconds: number;
    with: RollingRun;
    without: RollingRun;
}

export async function drain(): Promise<DrainResult> {
    const timings = stopTimings(); // the stack's
    const common = { instances: DRAIN_INSTANCES, rounds: 1, stopTimeoutSeconds: timings.stopTimeoutSeconds };
    const h = await Harness.start();
    try {
        const withDrain = await rollingReplace(h, {
            ...common,
            service: "drain",
            drainSeconds: String(timings.drainSeconds),
            expectedDrainSeconds: timings.drainSeconds,
        });
        log(describeRun("with drain", withDrain));
        const without = await rollingReplace(h, { ...common, service: "nodrain", drainSeconds: "0", expectedDrainSeconds: 0 });
        log(describeRun("without drain", without));
        return { drainSeconds: timings.drainSeconds, with: withDrain, without };
    } finally {
        await h.stop();
    }
}

export function drainSummary(d: DrainResult): { with: { requests: number; failed: number }; without: { requests: number; failed: number } } {
    return {
        with: { requests: d.with.wrk.requests, failed: d.with.wrk.failed },
        without: { requests: d.without.wrk.requests, failed: d.without.wrk.failed },
    };
}

export function drainMarkdown(d: DrainResult): string[] {
    const row = (name: string, r: RollingRun): string => {
        const e = r.wrk.socketErrors;
        const last = r.replacements.map((x) => x.lastRequestMs);
        return `| ${name} | ${r.replacements.length} | ${r.wrk.requests} | ${r.wrk.non2xx} | ${e.connect}/${e.read}/${e.write}/${e.timeout} | **${r.wrk.failed}** | ${Math.min(...last)}–${Math.max(...last)} ms |`;
    };
    return [
        "## Requests failed during a rolling replace (graceful drain)",
        "",
        `wrk, 2 threads × 64 keep-alive connections of POST requests (the gateway replays a GET that met a closing instance on`,
        `another one, never a POST: a POST shows what the grace protects), against ${DRAIN_INSTANCES} hello.py instances replaced one after the other as`,
        "`pulumi up` replaces a container: stopped as `docker stop` stops it (SIGTERM, SIGKILL only after the stack's stop",
        "timeout; deregistered once it exited, as Registrator does), its successor started and registered, the next once",
        `that one is in rotation, the load running until the last successor is in rotation. With drain: the stack's grace (DRAIN_SECONDS=${d.drainSeconds}); without: DRAIN_SECONDS=0 (requests in`,
        "flight still finish, only the grace is missing).",
        "",
        "| Grace | Replacements | Requests | Non-2xx | Socket errors (connect/read/write/timeout) | Failed | Last request to a stopping instance, after its signal |",
        "|---|---|---|---|---|---|---|",
        row("with drain", d.with),
        row("without drain", d.without),
        "",
    ];
}

/** BENCH_ONLY=drain: the rolling replace alone; its field replaces `drain` in results.json. */
export async function drainOnly(): Promise<void> {
    log(`machine: ${machine()}`);
    log(`graceful drain: rolling replace of ${DRAIN_INSTANCES} instances under load, with and without the grace`);
    const d = await drain();
    writeField("drain", drainSummary(d), drainMarkdown(d));
}
