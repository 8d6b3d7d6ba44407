// Graceful drain (docs/services.md, "Graceful drain") on real processes: hello.py instances behind the
// gateway under wrk load, replaced one after the other as `pulumi up` replaces a container
// (delete before replace): the old one stopped as `docker stop` stops it (SIGTERM, SIGKILL after
// the stack's stop timeout, then Registrator deregisters it on `die`), a new one started and
// registered, and once it is in rotation the next. With the drain, no request fails. The control
// replaces them without a grace period (DRAIN_SECONDS=0; requests in flight still finish): the
// failures the drain prevents.
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { DEFAULT_DRAIN_SECONDS, stopTimings } from "../../components/drain";
import { DrainingBackend, describeRun, rollingReplace } from "./harness/draining-backend";
import { Harness, httpRequest, sleep, waitFor } from "./harness";

/** As the stack sets them: grace 10 s, stop timeout 40 s. */
const TIMINGS = stopTimings();
const INSTANCES = 3;

describe("graceful drain", { timeout: 300_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it(`a rolling replace of every instance under load with the ${DEFAULT_DRAIN_SECONDS} s drain fails no request`, { timeout: 180_000 }, async (t) => {
        // hello.py's default grace: what the stack passes as DRAIN_SECONDS.
        const r = await rollingReplace(h, {
            service: "drain",
            instances: INSTANCES,
            rounds: 1,
            stopTimeoutSeconds: TIMINGS.stopTimeoutSeconds,
            expectedDrainSeconds: DEFAULT_DRAIN_SECONDS,
        });
        t.diagnostic(describeRun("with drain", r));
        assert.ok(r.coveredByLoad, "every replacement happened under load");
        assert.ok(r.wrk.requests > 10_000, `wrk made only ${r.wrk.requests} requests`);
        assert.equal(r.wrk.failed, 0, `${describeRun("with drain", r)}\n${r.wrk.raw}\n${h.diagnostics()}`);
        assert.equal(r.replacements.length, INSTANCES);
        for (const x of r.replacements) {
            assert.deepEqual({ code: x.stop.code, killed: x.stop.killed }, { code: 0, killed: false }, x.instance);
            // Served through the grace, stopped right after it, far within the stop timeout.
            assert.ok(
                x.stop.ms >= DEFAULT_DRAIN_SECONDS * 1000 && x.stop.ms < DEFAULT_DRAIN_SECONDS * 1000 + 3000,
                `${x.instance} exited ${x.stop.ms} ms after the signal`,
            );
            // It kept answering after the signal (the gateway had not noticed yet), and the gateway
            // stopped sending it requests with time to spare before the grace ended.
            assert.ok(x.servedAfterStop > 0, `${x.instance} answered requests during the grace`);
            assert.ok(x.lastRequestMs < (DEFAULT_DRAIN_SECONDS - 2) * 1000, `${x.instance}: last request ${x.lastRequestMs} ms after the signal`);
        }
    });

    it("control: the same rolling replace without a grace period (DRAIN_SECONDS=0) fails requests", { timeout: 120_000 }, async (t) => {
        // Each replacement without the grace fails a few requests, sometimes none (measured: 0-7
        // per stop, none in about 1 of 4): two rounds make a run without failures very unlikely.
        const r = await rollingReplace(h, {
            service: "nodrain",
            instances: INSTANCES,
            rounds: 2,
            drainSeconds: "0",
            stopTimeoutSeconds: TIMINGS.stopTimeoutSeconds,
            expectedDrainSeconds: 0,
        });
        t.diagnostic(describeRun("without drain", r));
        assert.ok(r.coveredByLoad, "every replacement happened under load");
        assert.ok(r.wrk.requests > 5000, `wrk made only ${r.wrk.requests} requests`);
        for (const x of r.replacements) {
            assert.equal(x.stop.code, 0, `${x.instance} still exits cleanly: only the grace is missing`);
            assert.ok(x.stop.ms < 3000, `${x.instance} exited after ${x.stop.ms} ms`);
        }
        assert.ok(r.wrk.failed > 0, `no request failed without the drain: ${describeRun("without drain", r)}`);
    });

    it("stopping: health 503 during the grace, a second signal ends it, requests in flight finish, idle connections close", async () => {
        const b = await DrainingBackend.start(h.tools, { service: "solo", version: "v1", instance: "solo-a", drainSeconds: "60" });
        h.onStop(() => b.stop());
        const [host, port] = [b.url.slice("http://".length).split(":")[0]!, b.port];
        const connect = (): Promise<net.Socket> =>
            new Promise((resolve, reject) => {
                const s = net.connect(port, host, () => resolve(s));
                s.once("error", reject);
            });
        /** What a connection received so far, and all of it once the server closed it. */
        const reader = (s: net.Socket): { text: () => string; closed: Promise<string> } => {
            let text = "";
            s.setEncoding("utf8");
            s.on("data", (d: string) => (text += d));
            return { text: () => text, closed: new Promise((resolve) => s.on("close", () => resolve(text))) };
        };

        // A keep-alive connection with one answered request, then idle.
        const idle = await connect();
        const idleRead = reader(idle);
        idle.write(`GET /first HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        await waitFor(() => idleRead.text().includes('"path": "/first"'), { timeoutMs: 5000, message: "first answer" });

        b.proc.killGroup("SIGTERM");
        await waitFor(async () => (await httpRequest(`${b.url}/health`, { timeoutMs: 1000 })).status === 503, {
            timeoutMs: 5000,
            message: "/health 503 while draining",
        });
        const served = await httpRequest(`${b.url}/during-grace`, { timeoutMs: 2000 });
        assert.equal(served.status, 200, "everything but /health is still served");

        // A request in flight: the request line and a header sent, the end of the headers not yet.
        const inflight = await connect();
        const inflightRead = reader(inflight);
        inflight.write(`GET /inflight HTTP/1.1\r\nHost: ${host}\r\n`);
        await sleep(300);

        const t0 = Date.now();
        b.proc.killGroup("SIGTERM"); // the second signal: the 60 s grace ends now
        // It stops accepting, but waits for the request in flight.
        await waitFor(
            async () => {
                try {
                    await httpRequest(`${b.url}/health`, { timeoutMs: 500 });
                    return false;
                } catch (err) {
                    return /ECONNREFUSED/.test((err as Error).message);
                }
            },
            { timeoutMs: 5000, message: "listener closed after the second signal" },
        );
        assert.ok(Date.now() - t0 < 5000);
        assert.match(await idleRead.closed, /"path": "\/first"/, "the idle keep-alive connection was closed by the server");
        await sleep(500);
        assert.equal(b.proc.running, true, "still running: a request is in flight");

        inflight.write("\r\n");
        const answer = await inflightRead.closed;
        assert.match(answer, /^HTTP\/1\.1 200 /, answer);
        assert.match(answer, /"path": "\/inflight"/);
        const end = await b.proc.exited;
        assert.deepEqual(end, { code: 0, signal: null }, b.proc.output());
        assert.match(b.proc.stdout.toString(), /second signal: grace period ended early/);
    });
});
