// The gateway controller: supervises HAProxy (master-worker) and follows Consul.
//   watch  (watch.ts)   blocking queries on the catalog and the KV settings, a bounded number of connections
//   model  (model.ts)   pure: what Consul holds + the stack's settings -> the routing model and its notes
//   render (render.ts)  the model as haproxy.cfg
//   apply  (apply.ts)   the difference of two models: runtime API, or a validated reload
// HAProxy starts at once on a bootstrap config (every route answers 503 until Consul is read),
// so the gateway listens even while Consul is down.
import * as fs from "node:fs";
import * as path from "node:path";
import { AcmeManager } from "./acme";
import { Applier, writeBootstrapTls } from "./apply";
import { EnvError, readEnv } from "./env";
import { HaproxyMaster, RuntimeApi, checkConfig } from "./haproxy";
import { newMetrics, serveMetrics } from "./metrics";
import { routeTable } from "./routes";
import { planChange } from "./diff";
import { buildModel, type Model } from "./model";
import { PLACEHOLDER_NAME, selfSignedCertificate } from "./placeholder";
import { gatewayTerminatesTls, KV_PREFIX } from "./rules";
import { ConsulWatch, connectionFromEnv, type ChangeEvent } from "./watch";

/** Coalesce bursts (a deploy of many containers): wait this long without a change, at most MAX. */
const QUIET_MS = 2;
const QUIET_MAX_MS = 200;
/**
 * Settings arrive as several KV writes (`pulumi up` writes one key after another): a change that
 * needs a reload waits until KV has been quiet this long, so one apply is one reload. Changes the
 * runtime API applies (weights, maintenance, instances) do not wait.
 */
const KV_SETTLE_MS = 100;
const KV_SETTLE_MAX_MS = 2000;

const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
};

function fail(message: string, code: number): never {
    log(`gateway: ${message}`);
    process.exit(code);
}

async function main(): Promise<void> {
    let env;
    let conn;
    try {
        env = readEnv(process.env, log);
        conn = connectionFromEnv(process.env);
    } catch (err) {
        fail((err as Error).message, err instanceof EnvError ? err.exitCode : 64);
    }
    if (!conn.token && !conn.tokenFile) {
        log("gateway: no Consul ACL token (CONSUL_HTTP_TOKEN_FILE): with ACLs on, Consul answers with an empty catalog and every route 404s");
    }
    const { runDir } = env;
    fs.mkdirSync(runDir, { recursive: true });
    const live = path.join(runDir, "haproxy.cfg");
    fs.copyFileSync(path.join(env.confDir, "bootstrap.cfg"), live);
    // Whatever the HAProxy that ran before left: its renders, state, bookkeeping.
    for (const f of ["haproxy.cfg.new", "server-state", "latest-render-not-running", "tls", "hosts.map", "sni.map", "https.sock"])
        fs.rmSync(path.join(runDir, f), { force: true, recursive: true });
    // HTTPS cannot listen without a certificate: a placeholder until the real ones are read from Consul.
    let placeholderPem: string | undefined;
    if (gatewayTerminatesTls(env.stack.tlsSource ?? "none")) {
        const p = selfSignedCertificate({ name: PLACEHOLDER_NAME, days: 365 });
        placeholderPem = `${p.certPem}${p.keyPem}`;
        writeBootstrapTls(runDir, placeholderPem);
    }
    const boot = await checkConfig(env.haproxyBin, live, env.haproxyEnv);
    if (!boot.ok) fail(`the bootstrap config does not pass haproxy -c: ${boot.output.trim()}`, 70);

    const master = await HaproxyMaster.start({ bin: env.haproxyBin, configFile: live, runDir, env: env.haproxyEnv, log });
    const api = new RuntimeApi(path.join(runDir, "admin.sock"));
    const watch = new ConsulWatch(conn, { kvPrefix: `${KV_PREFIX}/`, log });
    const applied = new Map<string, number>();
    const metrics = newMetrics(
        () => watch.statuses().map((s) => ({ ...s, applied: applied.get(s.name) ?? 0 })),
        () => watch.connections(),
    );
    const applier = new Applier({
        runDir,
        haproxyBin: env.haproxyBin,
        haproxyEnv: env.haproxyEnv,
        master,
        api,
        metrics,
        log,
        ...(placeholderPem !== undefined ? { placeholderPem } : {}),
    });
    // The route table HAProxy runs (undefined while it runs the bootstrap config): /routes on the stats port.
    const metricsServer = await serveMetrics(path.join(runDir, "controller.sock"), metrics, () => (applier.running ? routeTable(applier.running) : undefined));

    // ---- Scheduling: one apply at a time; changes that arrive meanwhile are applied together after it.
    let kvChangedAt = 0;
    let kvPendingSince = 0;
    /** The KV data the running model was made from. */
    let appliedKv: ReadonlyMap<string, string> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let firstChangeAt = 0;
    let busy = false;
    let again = false;
    let stopping = false;

    /** `settle`: a wait for KV to be quiet, not bounded by QUIET_MAX_MS (KV_SETTLE_MAX_MS bounds it). */
    const schedule = (delayMs = QUIET_MS, settle = false): void => {
        const now = Date.now();
        if (firstChangeAt === 0) firstChangeAt = now;
        const wait = settle ? Math.max(0, delayMs) : Math.max(0, Math.min(delayMs, firstChangeAt + QUIET_MAX_MS - now));
        if (timer) clearTimeout(timer);
        timer = setTimeout(run, wait);
    };

    const modelOf = (kv: ReadonlyMap<string, string>): Model =>
        buildModel({
            kv,
            nodes: watch.state().nodes.values(),
            settings: env.stack,
            ...(applier.running ? { previous: applier.running } : {}),
            ...(env.sealingKey ? { sealingKey: env.sealingKey } : {}),
        });

    const run = async (): Promise<void> => {
        timer = undefined;
        firstChangeAt = 0;
        if (stopping || !watch.ready) return;
        if (busy) {
            again = true;
            return;
        }
        busy = true;
        try {
            const seen = new Map(watch.statuses().map((s) => [s.name, s.index]));
            const state = watch.state();
            const next = modelOf(state.kv);
            const now = Date.now();
            if (
                applier.running &&
                state.kv !== appliedKv &&
                now - kvChangedAt < KV_SETTLE_MS &&
                now - kvPendingSince < KV_SETTLE_MAX_MS &&
                planChange(applier.running, next).kind === "reload"
            ) {
                // Settings still arriving, and they need a reload: wait until KV is quiet, so one
                // apply is one reload. Changes that arrive meanwhile wait with them (in order).
                schedule(kvChangedAt + KV_SETTLE_MS - now, true);
                return;
            }
            const outcome = await applier.apply(next);
            if (outcome !== "rejected" && outcome !== "failed") {
                appliedKv = state.kv;
                kvPendingSince = 0;
                for (const [name, index] of seen) applied.set(name, index);
            }
        } catch (err) {
            log(`gateway: could not apply a change: ${(err as Error).stack ?? String(err)}`);
        } finally {
            busy = false;
        }
        if (again) {
            again = false;
            schedule();
        }
    };

    watch.on("change", (ev: ChangeEvent) => {
        if (ev.kv) {
            kvChangedAt = Date.now();
            if (kvPendingSince === 0) kvPendingSince = kvChangedAt;
        }
        schedule();
    });
    // ACME: the gateways order and renew the certificate themselves (acme.ts), once Consul has been read.
    const acmeManager =
        env.acme && env.sealingKey
            ? new AcmeManager({
                  settings: env.acme,
                  sealingKey: env.sealingKey,
                  consul: conn,
                  name: env.name,
                  metrics,
                  log,
                  served: () => new Set((applier.running?.challenges ?? []).map(([token]) => token)),
              })
            : undefined;
    watch.on("ready", () => {
        schedule(0);
        acmeManager?.start(1000);
    });
    watch.start();

    const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        if (timer) clearTimeout(timer);
        log(`gateway: ${signal}: stopping (in-flight requests finish)`);
        await acmeManager?.stop();
        await watch.stop().catch(() => undefined);
        api.close();
        metricsServer.close();
        await master.stop();
        process.exit(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));

    // If HAProxy dies, the controller exits non-zero so the container restarts.
    const exit = await master.exited;
    if (!stopping) {
        log(`gateway: haproxy master exited (code ${exit.code}, signal ${exit.signal}); stopping`);
        await watch.stop().catch(() => undefined);
        process.exit(1);
    }
}

main().catch((err: Error) => fail(`controller failed: ${err.stack ?? err.message}`, 70));
