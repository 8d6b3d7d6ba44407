// hello.py as a container runs it for the drain tests: DRAIN_SECONDS set, registered the way
// Registrator registers a service container (the stack's check interval), and stopped the way
// `docker stop` stops one (the stop signal, SIGKILL after the stop timeout, then Registrator
// deregisters it on the container's `die`); and the rolling replace under load that the drain
// test and the benchmark run.
import * as os from "node:os";
import {
    HELLO_PY,
    NODE_ADDRESS,
    Proc,
    ensureTestAddresses,
    freePort,
    httpRequest,
    registratorRegistration,
    runWrk,
    sleep,
    waitFor,
    type ConsulAgent,
    type Harness,
    type Registration,
    type Tools,
    type WrkResult,
} from "./index";

/** What components/service.ts gives Registrator: SERVICE_CHECK_INTERVAL / SERVICE_CHECK_TIMEOUT. */
export const STACK_CHECK_INTERVAL = "5s";
export const STACK_CHECK_TIMEOUT = "2s";

export interface StopResult {
    /** How the process ended: its exit code, or the signal that killed it. */
    code: number | null;
    signal: NodeJS.Signals | null;
    /** Whether the stop timeout ran out and SIGKILL ended it. */
    killed: boolean;
    /** From the stop signal to the process's exit. */
    ms: number;
}

export class DrainingBackend {
    /** Date.now() when the stop signal was sent. */
    stoppedAt?: number;
    /** Requests hello.py answered (it logs each, /health excepted), in all and after the stop signal. */
    requests = 0;
    requestsAfterStop = 0;
    /** Date.now() when it logged its last request. */
    lastRequestAt?: number;
    private partial = "";

    private constructor(
        readonly proc: Proc,
        readonly port: number,
        readonly instance: string,
        readonly drainSeconds: string | undefined,
    ) {
        proc.child.stdout?.on("data", (chunk: string) => {
            const lines = (this.partial + chunk).split("\n");
            this.partial = lines.pop() ?? "";
            for (const line of lines) {
                if (!/ "(GET|POST) /.test(line)) continue;
                this.requests++;
                this.lastRequestAt = Date.now();
                if (this.stoppedAt !== undefined) this.requestsAfterStop++;
            }
        });
    }

    /** Starts hello.py; `drainSeconds` undefined leaves DRAIN_SECONDS unset (hello.py's default). */
    static async start(tools: Tools, opts: { service: string; version: string; instance: string; drainSeconds?: string }): Promise<DrainingBackend> {
        ensureTestAddresses();
        const port = await freePort();
        const env: NodeJS.ProcessEnv = {
            ...process.env,
            PORT: String(port),
            BIND: NODE_ADDRESS,
            HELLO_SERVICE: opts.service,
            HELLO_VERSION: opts.version,
            HELLO_INSTANCE: opts.instance,
            PYTHONUNBUFFERED: "1",
        };
        delete env.DRAIN_SECONDS;
        if (opts.drainSeconds !== undefined) env.DRAIN_SECONDS = opts.drainSeconds;
        const proc = new Proc(`hello ${opts.instance}`, tools.PYTHON_BIN, [HELLO_PY], { env });
        const b = new DrainingBackend(proc, port, opts.instance, opts.drainSeconds);
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`backend exited:\n${proc.output()}`);
                return (await httpRequest(`${b.url}/health`, { timeoutMs: 500 })).status === 200;
            },
            { timeoutMs: 10_000, intervalMs: 25, message: `backend ${opts.instance}` },
        );
        return b;
    }

    get url(): string {
        return `http://${NODE_ADDRESS}:${this.port}`;
    }

    get serverName(): string {
        return `${NODE_ADDRESS}:${this.port}`;
    }

    /** The ID Registrator would give this container: <host>:<container>:<port>. */
    get id(): string {
        return `${os.hostname()}:${this.instance}:${this.port}`;
    }

    /** Registrator's registration with the stack's check settings; passing at once, so the test need not wait a check interval. */
    registration(name: string): Registration {
        return registratorRegistration({
            instance: this.instance,
            name,
            port: this.port,
            interval: STACK_CHECK_INTERVAL,
            timeout: STACK_CHECK_TIMEOUT,
            status: "passing",
        });
    }

    /**
     * `docker stop -t <stopTimeoutSec>`: the stop signal, SIGKILL when the timeout runs out; then
     * Registrator deregisters the instance (`-deregister always`, on `die`) when `consul` is given.
     */
    async dockerStop(stopTimeoutSec: number, consul?: ConsulAgent, signal: NodeJS.Signals = "SIGTERM"): Promise<StopResult> {
        this.stoppedAt = Date.now();
        this.proc.killGroup(signal);
        let timer: NodeJS.Timeout | undefined;
        const exited = await Promise.race([
            this.proc.exited.then(() => true),
            new Promise<boolean>((r) => (timer = setTimeout(() => r(false), stopTimeoutSec * 1000))),
        ]);
        clearTimeout(timer);
        if (!exited) this.proc.killGroup("SIGKILL");
        const end = await this.proc.exited;
        const ms = Date.now() - this.stoppedAt;
        await this.proc.stop();
        if (consul) await consul.deregister(this.id);
        return { code: end.code, signal: end.signal, killed: !exited, ms };
    }

    async stop(): Promise<void> {
        await this.proc.stop(2000);
    }
}

export interface Replacement {
    instance: string;
    stop: StopResult;
    /** Requests the old instance answered after its stop signal, and when the last came (ms after it; 0 if none). */
    servedAfterStop: number;
    lastRequestMs: number;
}

export interface RollingRun {
    wrk: WrkResult;
    replacements: Replacement[];
    /** wrk was still running when the last replacement was in rotation. */
    coveredByLoad: boolean;
}

export interface RollingOptions {
    /** Routed at /<service>/v1/, registered as <service>-v1. */
    service: string;
    instances: number;
    /** Each instance is replaced this many times. */
    rounds: number;
    /** DRAIN_SECONDS of every instance; undefined: hello.py's default. */
    drainSeconds?: string;
    /** How long `docker stop` waits before SIGKILL. */
    stopTimeoutSeconds: number;
    /** The grace the instances run with, to size the load (default: hello.py's, 10 s). */
    expectedDrainSeconds: number;
    /**
     * The load's method. Default POST: the gateway retries a GET that met a closing instance on
     * another one, so only a request it must not replay shows what the grace protects.
     */
    method?: "GET" | "POST";
}

/** Starts an instance of `service` and registers it as Registrator would; stopped with the harness. */
export async function startInstance(h: Harness, service: string, instance: string, drainSeconds?: string): Promise<DrainingBackend> {
    const opts: { service: string; version: string; instance: string; drainSeconds?: string } = { service, version: "v1", instance };
    if (drainSeconds !== undefined) opts.drainSeconds = drainSeconds;
    const b = await DrainingBackend.start(h.tools, opts);
    h.onStop(() => b.stop());
    await h.consul.register(b.registration(`${service}-v1`));
    return b;
}

/**
 * A rolling replace as `pulumi up` replaces a container (delete before replace), under wrk load
 * (2 threads, 64 keep-alive connections): `instances` instances in rotation, then each in turn
 * stopped as `docker stop` stops it (waiting for its exit), its successor started, and once that
 * one is in rotation, the next.
 */
export async function rollingReplace(h: Harness, o: RollingOptions): Promise<RollingRun> {
    const live: DrainingBackend[] = [];
    for (let i = 0; i < o.instances; i++) live.push(await startInstance(h, o.service, `${o.service}-${i}`, o.drainSeconds));
    for (const b of live) await h.waitForRoute(`/${o.service}/v1/`, { instance: b.instance, timeoutMs: 15_000 });

    // The load runs until the last successor is in rotation (and 1 s more), however long the
    // replacements take on a busy machine; its duration only bounds it, at twice the estimate.
    const durationSec = 2 * (3 + o.rounds * o.instances * (o.expectedDrainSeconds + 3)) + 30;
    let replaced!: () => void;
    const done = new Promise<void>((resolve) => (replaced = resolve));
    const wrkStarted = Date.now();
    const wrk = runWrk(h.tools, { url: h.gateway.url(`/${o.service}/v1/load`), durationSec, method: o.method ?? "POST", until: done });
    await sleep(1500);
    const replacements: Replacement[] = [];
    for (let round = 1; round <= o.rounds; round++) {
        for (let i = 0; i < o.instances; i++) {
            const old = live[i]!;
            const stop = await old.dockerStop(o.stopTimeoutSeconds, h.consul);
            const lastRequestMs = old.requestsAfterStop > 0 ? old.lastRequestAt! - old.stoppedAt! : 0;
            replacements.push({ instance: old.instance, stop, servedAfterStop: old.requestsAfterStop, lastRequestMs });
            const next = await startInstance(h, o.service, `${o.service}-${i}-r${round}`, o.drainSeconds);
            live[i] = next;
            await h.waitForRoute(`/${o.service}/v1/`, { instance: next.instance, timeoutMs: 15_000 });
        }
    }
    await sleep(1000);
    const coveredByLoad = Date.now() - wrkStarted < durationSec * 1000;
    replaced();
    return { wrk: await wrk, replacements, coveredByLoad };
}

/** One line for a report. */
export function describeRun(name: string, r: RollingRun): string {
    const e = r.wrk.socketErrors;
    const stops = r.replacements.map(
        (x) =>
            `${x.instance}: exit ${x.stop.code ?? x.stop.signal} after ${x.stop.ms} ms${x.stop.killed ? " (SIGKILL)" : ""}, ` +
            `${x.servedAfterStop} requests answered after the signal, the last ${x.lastRequestMs} ms after it`,
    );
    return (
        `${name}: ${r.wrk.requests} requests (${r.wrk.requestsPerSec} req/s), non-2xx ${r.wrk.non2xx}, ` +
        `socket errors connect ${e.connect} read ${e.read} write ${e.write} timeout ${e.timeout}; ${stops.join("; ")}`
    );
}
