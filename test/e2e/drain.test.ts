// Graceful drain on a real engine (README, "Graceful drain"): every hello-v1 container of the dev
// stack's config replaced in turn under wrk load, as the provider replaces a container with
// delete-before-replace: stopped with the declared destroyGraceSeconds as the timeout (the stop
// signal starts hello.py's grace), removed, created again; the next once it is back in rotation.
// No request may fail. The control replaces them as the provider did before the program
// declared destroyGraceSeconds: removed with force (SIGKILL) at once.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { before, describe, test } from "node:test";
import { DEFAULT_DRAIN_SECONDS, stopTimings } from "../../components/drain";
import { readTool } from "../support/tools";
import { skipReason } from "./harness/engine";
import { hostnameOf, replicasOf, rotationIs } from "./harness/scenario";
import { e2eName, type Stack, stackForSuite } from "./harness/stack";

interface Load {
    requests: number;
    non2xx: number;
    socketErrors: string;
    failed: number;
    raw: string;
}

/** wrk (2 threads, 64 keep-alive connections) on `url` until stop() (SIGINT: wrk prints its summary). */
function startLoad(url: string): { stop: () => Promise<Load> } {
    const child = spawn(readTool("WRK_BIN"), ["-t", "2", "-c", "64", "-d", "600s", "--timeout", "5s", url], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return {
        stop: async () => {
            child.kill("SIGINT");
            const code = await exited;
            const requests = /(\d+) requests in/.exec(out);
            if (code !== 0 || !requests) throw new Error(`wrk (exit ${code}):\n${out}`);
            const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
            const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
            const errors = se ? se.slice(1).map(Number) : [0, 0, 0, 0];
            return {
                requests: Number(requests[1]),
                non2xx,
                socketErrors: `connect ${errors[0]} read ${errors[1]} write ${errors[2]} timeout ${errors[3]}`,
                failed: non2xx + errors.reduce((a, b) => a + b, 0),
                raw: out,
            };
        },
    };
}

describe("the dev stack's config on a real engine (stack e2e): graceful drain", { skip: skipReason() }, () => {
    const up = stackForSuite();
    let stack: Stack;
    let v1: string[];
    let url: string;

    before(async () => {
        stack = up();
        v1 = replicasOf(stack, "hello-v1");
        assert.equal(v1.length, 2, "the dev stack runs two hello v1 replicas");
        url = `${stack.outputs.gatewayUrl}/hello/v1/load`;
        await rotationIs(
            stack,
            "/hello/v1/",
            v1.map((c) => hostnameOf(stack, c)),
            60_000,
        );
    });

    /** For a failure message: the gateway's log lines of requests that did not end well, and of its own changes. */
    async function gatewayTrouble(): Promise<string> {
        const r = await stack.docker.cli(["logs", "--timestamps", e2eName("gateway")], { allowFailure: true });
        const lines = `${r.stdout}${r.stderr}`.split("\n").filter((l) => !/ 200 [0-9]+ - - ---- /.test(l));
        return `--- gateway log, requests that failed and everything else (last 80 lines) ---\n${lines.slice(-80).join("\n")}`;
    }

    /** Replaces each hello-v1 container in turn under load; the next once all are in rotation again. */
    async function rollingReplace(ignoreGrace: boolean): Promise<{ load: Load; stops: string[]; replacedMs: number[] }> {
        const load = startLoad(url);
        const stops: string[] = [];
        const replacedMs: number[] = [];
        try {
            await new Promise((r) => setTimeout(r, 2000));
            for (const c of v1) {
                const t0 = Date.now();
                await stack.applied.replaceContainer(c, { ignoreGrace });
                const replaced = Date.now() - t0;
                replacedMs.push(replaced);
                await stack.registratorSettled();
                await rotationIs(
                    stack,
                    "/hello/v1/",
                    v1.map((x) => hostnameOf(stack, x)),
                    60_000,
                );
                stops.push(`${c}: stop sent ${new Date(t0).toISOString()}, replaced in ${replaced} ms, back in rotation after ${Date.now() - t0} ms`);
            }
        } catch (e) {
            await load.stop().catch(() => undefined);
            throw e;
        }
        return { load: await load.stop(), stops, replacedMs };
    }

    test("each replica is declared with the drain: DRAIN_SECONDS, a stop timeout on the container, the provider's destroy grace", async () => {
        const { drainSeconds, stopTimeoutSeconds } = stopTimings();
        assert.equal(drainSeconds, DEFAULT_DRAIN_SECONDS);
        for (const c of v1) {
            const declared = stack.containerResource(c).inputs;
            assert.equal(declared.destroyGraceSeconds, stopTimeoutSeconds, `${c}: destroyGraceSeconds`);
            const inspect = await stack.docker.inspectContainer(c);
            assert.equal(inspect.Config.StopTimeout, stopTimeoutSeconds, `${c}: the engine's stop timeout`);
            assert.ok((inspect.Config.Env as string[]).includes(`DRAIN_SECONDS=${drainSeconds}`), `${c}: DRAIN_SECONDS`);
        }
    });

    test("a rolling replace of every hello-v1 container under load fails no request", { timeout: 300_000 }, async (t) => {
        const { load, stops, replacedMs } = await rollingReplace(false);
        t.diagnostic(`with drain: ${load.requests} requests, non-2xx ${load.non2xx}, socket errors ${load.socketErrors}; ${stops.join("; ")}`);
        assert.ok(load.requests > 2000, `wrk made only ${load.requests} requests`);
        assert.equal(load.failed, 0, `${stops.join("\n")}\n${load.raw}\n${await gatewayTrouble()}`);
        // Each container served out its grace and then exited by itself, long before SIGKILL.
        for (const ms of replacedMs) assert.ok(ms >= DEFAULT_DRAIN_SECONDS * 1000 && ms < (DEFAULT_DRAIN_SECONDS + 8) * 1000, stops.join("; "));
    });

    test("control: the same rolling replace removing each container with force (no drain) fails requests", { timeout: 300_000 }, async (t) => {
        const { load, stops } = await rollingReplace(true);
        t.diagnostic(`without drain: ${load.requests} requests, non-2xx ${load.non2xx}, socket errors ${load.socketErrors}; ${stops.join("; ")}`);
        assert.ok(load.requests > 2000, `wrk made only ${load.requests} requests`);
        assert.ok(load.failed > 0, `no request failed without the drain:\n${load.raw}`);
    });
});
