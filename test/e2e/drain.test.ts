// Graceful drain on a real engine (docs/services.md, "Graceful drain"): a new image for hello-v1 of the dev
// stack's config, applied under wrk load as `pulumi up` applies it: the program declares both
// replicas anew (a new generation, so new container names) and the engine replaces them at once,
// create-before-delete (the resource option): the new containers are created first, then the old
// ones are deleted together, each stopped with its destroyGraceSeconds as the timeout (the stop
// signal starts hello.py's grace) and removed. No request may fail. The control applies the next
// image the same way but deletes the old containers as the provider did before the program
// declared destroyGraceSeconds: removed with force (SIGKILL) at once.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { DEFAULT_DRAIN_SECONDS, stopTimings } from "../../components/drain";
import { PROJECT, ROOT, stackConfig } from "../support/program";
import { readTool } from "../support/tools";
import { type Replacement, replacementMode } from "./applier";
import { DockerError } from "./harness/docker";
import { skipReason } from "./harness/engine";
import { localBaseBuildArgs } from "./harness/images";
import { consulGet, hostnameOf, replicasOf, rotationIs } from "./harness/scenario";
import { e2eName, eventually, type Stack, stackForSuite } from "./harness/stack";

/** hello-v1 runs a pulled image (of components/images/hello): two of them, different only in a label. */
const IMAGE = "service-discovery/hello";
const TAGS = { a: "e2e-drain-a", b: "e2e-drain-b" } as const;

/** The dev stack's services, hello-v1 on `IMAGE:tag` instead of its build. */
function servicesWith(tag: string): Record<string, unknown>[] {
    const services = JSON.parse(stackConfig("dev")[`${PROJECT}:services`]) as Record<string, unknown>[];
    return services.map((s) => (s.name === "hello" && s.version === "v1" ? { ...s, build: undefined, image: `${IMAGE}:${tag}` } : s));
}

interface Load {
    requests: number;
    non2xx: number;
    socketErrors: string;
    failed: number;
    raw: string;
}

/**
 * wrk (2 threads, 64 keep-alive connections) on `url` until stop() (SIGINT: wrk prints its
 * summary). POST requests: the gateway retries a GET that met a closing instance on another one,
 * never a POST, so only a POST shows what the drain protects.
 */
function startLoad(url: string): { stop: () => Promise<Load> } {
    const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sd-wrk-")), "post.lua");
    fs.writeFileSync(script, 'wrk.method = "POST"\nwrk.body = "load"\nwrk.headers["Content-Type"] = "text/plain"\n');
    const args = ["-t", "2", "-c", "64", "-d", "600s", "--timeout", "5s", "-s", script, url];
    const child = spawn(readTool("WRK_BIN"), args, { stdio: ["ignore", "pipe", "pipe"] });
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
    const up = stackForSuite({
        beforeApply: async (docker) => {
            await docker.cli(
                ["build", "--network", "host", ...localBaseBuildArgs(), "--tag", `${IMAGE}:${TAGS.a}`, path.join(ROOT, "components/images/hello")],
                { timeoutMs: 900_000 },
            );
            await docker.cli(["build", "--tag", `${IMAGE}:${TAGS.b}`, "-"], {
                input: `FROM ${IMAGE}:${TAGS.a}\nLABEL io.service-discovery.e2e-drain=b\n`,
                timeoutMs: 300_000,
            });
        },
        config: { services: servicesWith(TAGS.a) },
    });
    let stack: Stack;
    let v1: string[];
    let hostnames: string[];
    let url: string;

    before(async () => {
        stack = up();
        v1 = replicasOf(stack, "hello-v1");
        assert.equal(v1.length, 2, "the dev stack runs two hello v1 replicas");
        hostnames = v1.map((c) => hostnameOf(stack, c));
        assert.deepEqual(hostnames, [e2eName("hello-v1-1"), e2eName("hello-v1-2")]);
        const [a, b] = await Promise.all([stack.docker.imageExists(`${IMAGE}:${TAGS.a}`), stack.docker.imageExists(`${IMAGE}:${TAGS.b}`)]);
        assert.notEqual(a.Id, b.Id, "two different images");
        url = `${stack.outputs.gatewayUrl}/hello/v1/load`;
        await rotationIs(stack, "/hello/v1/", hostnames, 60_000);
    });

    /** For a failure message: the gateway's log lines of requests that did not end well, and of its own changes. */
    async function gatewayTrouble(): Promise<string> {
        const r = await stack.docker.cli(["logs", "--timestamps", e2eName("gateway")], { allowFailure: true });
        const lines = `${r.stdout}${r.stderr}`.split("\n").filter((l) => !/ 200 [0-9]+ - - ---- /.test(l));
        return `--- gateway log, requests that failed and everything else (last 80 lines) ---\n${lines.slice(-80).join("\n")}`;
    }

    /** The container names in Consul's catalog of hello-v1 (Registrator's IDs: <host>:<container>:<port>). */
    async function registered(): Promise<string[]> {
        return (await consulGet<any[]>(stack, "/v1/catalog/service/hello-v1")).map((s) => String(s.ServiceID).split(":")[1]).sort();
    }

    interface Rollout {
        load: Load;
        before: string[];
        after: string[];
        replacements: Replacement[];
        report: string;
    }

    /**
     * Under load: hello-v1 moved to `tag` by a second evaluation of the program, applied as the
     * engine applies it; done once Consul has exactly the new containers and they answer.
     */
    async function rollout(tag: string, ignoreGrace: boolean): Promise<Rollout> {
        const before_ = replicasOf(stack, "hello-v1");
        const from = stack.applied.replacements.length;
        const load = startLoad(url);
        try {
            await new Promise((r) => setTimeout(r, 2000));
            stack.applied.ignoreDestroyGrace = ignoreGrace;
            const t0 = Date.now();
            await stack.update({ services: servicesWith(tag) });
            const applied = Date.now() - t0;
            const after_ = replicasOf(stack, "hello-v1");
            await stack.registratorSettled();
            await eventually(
                `Consul has exactly ${after_.join(", ")}`,
                async () => ((await registered()).join(",") === after_.join(",") ? true : undefined),
                60_000,
            );
            await rotationIs(stack, "/hello/v1/", hostnames, 60_000);
            await new Promise((r) => setTimeout(r, 2000));
            const replacements = stack.applied.replacements.slice(from);
            const report = [
                `applied in ${applied} ms`,
                ...replacements.map(
                    (r) => `${r.old} -> ${r.new} (${r.mode}): created +${r.created! - t0} ms, delete +${r.deleteStarted! - t0} ms to +${r.deleted! - t0} ms`,
                ),
            ].join("; ");
            return { load: await load.stop(), before: before_, after: after_, replacements, report };
        } catch (e) {
            await load.stop().catch(() => undefined);
            throw e;
        } finally {
            stack.applied.ignoreDestroyGrace = false;
        }
    }

    /** What the engine does for a new image of hello-v1: both replicas at once, create-before-delete, new names, same hostnames. */
    async function assertRollingReplace(r: Rollout): Promise<void> {
        assert.equal(r.after.length, 2);
        assert.deepEqual(
            r.after.map((c) => hostnameOf(stack, c)),
            hostnames,
            "the hostnames stay the replicas' names",
        );
        for (const c of r.after) assert.match(c, /^e2e-hello-v1-[12]-[0-9a-f]{8}$/);
        for (const c of r.before) assert.ok(!r.after.includes(c), `${c}: a new generation`);
        assert.deepEqual(
            r.replacements.map((x) => [x.old, x.new, x.mode]),
            r.before.map((c, i) => [c, r.after[i], "create-before-delete"]),
            "both hello-v1 replicas replaced create-before-delete, nothing else",
        );
        const created = Math.max(...r.replacements.map((x) => x.created!));
        const deleting = Math.min(...r.replacements.map((x) => x.deleteStarted!));
        assert.ok(created <= deleting, `every new container runs before an old one is stopped: ${r.report}`);
        assert.ok(
            Math.max(...r.replacements.map((x) => x.deleteStarted!)) < Math.min(...r.replacements.map((x) => x.deleted!)),
            `the old ones drain at the same time: ${r.report}`,
        );
        for (const c of r.before) {
            await assert.rejects(stack.docker.inspectContainer(c), (e: unknown) => e instanceof DockerError && e.status === 404, `${c} is removed`);
        }
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

    test("the harness replaces as the engine does: the resource option decides, else the provider's default (delete-first for containers)", () => {
        const container = "docker:index/container:Container";
        assert.equal(replacementMode(container, undefined), "delete-before-replace");
        assert.equal(replacementMode(container, true), "delete-before-replace");
        assert.equal(replacementMode(container, false), "create-before-delete");
        assert.equal(replacementMode("docker:index/remoteImage:RemoteImage", undefined), "create-before-delete");
        assert.equal(replacementMode("docker:index/remoteImage:RemoteImage", true), "delete-before-replace");
    });

    test("a new image for hello-v1, applied under load (both replicas at once, create-before-delete), fails no request", { timeout: 300_000 }, async (t) => {
        const v2 = replicasOf(stack, "hello-v2");
        const r = await rollout(TAGS.b, false);
        t.diagnostic(`with drain: ${r.load.requests} requests, non-2xx ${r.load.non2xx}, socket errors ${r.load.socketErrors}; ${r.report}`);
        await assertRollingReplace(r);
        assert.deepEqual(replicasOf(stack, "hello-v2"), v2, "hello-v2 is not replaced");
        assert.ok(r.load.requests > 2000, `wrk made only ${r.load.requests} requests`);
        assert.equal(r.load.failed, 0, `${r.report}\n${r.load.raw}\n${await gatewayTrouble()}`);
        // Each old container served out its grace and then exited by itself, long before SIGKILL.
        for (const x of r.replacements) {
            const ms = x.deleted! - x.deleteStarted!;
            assert.ok(ms >= DEFAULT_DRAIN_SECONDS * 1000 && ms < (DEFAULT_DRAIN_SECONDS + 8) * 1000, r.report);
        }
    });

    test("control: the same rollout removing the old containers with force (no drain) fails requests", { timeout: 300_000 }, async (t) => {
        const r = await rollout(TAGS.a, true);
        t.diagnostic(`without drain: ${r.load.requests} requests, non-2xx ${r.load.non2xx}, socket errors ${r.load.socketErrors}; ${r.report}`);
        await assertRollingReplace(r);
        for (const x of r.replacements) assert.ok(x.deleted! - x.deleteStarted! < DEFAULT_DRAIN_SECONDS * 1000, `removed at once: ${r.report}`);
        assert.ok(r.load.requests > 2000, `wrk made only ${r.load.requests} requests`);
        assert.ok(r.load.failed > 0, `no request failed without the drain:\n${r.load.raw}`);
    });
});
