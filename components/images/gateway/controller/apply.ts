// Applies a model to the running HAProxy. A bad model never replaces a good config:
// - only servers changed (instances came, went or moved; a weight, a maintenance, a server's
//   maxconn): the runtime API, over one persistent connection, no reload;
// - anything else (a route, a setting): the new file is checked with `haproxy -c`, the servers'
//   health and maintenance states are saved, and the master reloads (listeners handed over). A
//   reload that fails is tried once more; if it fails again the previous file is put back, so
//   the live file always is the running config.
// While the latest model is not running (rejected, or its reload failed) the server
// gateway_config/latest-render-running is in maintenance (stats page, /metrics), the metric
// gateway_controller_latest_render_running is 0 and the reason is logged; the next change tries again.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { addCommand, certificateSlots, DEFAULT_SLOT, planChange, type HostOp, type ProbeTarget, type RuntimeOp, type TlsOp } from "./diff";
import { checkConfig, saveServerState, withPayload, type HaproxyMaster, type RuntimeApi } from "./haproxy";
import type { ControllerMetrics } from "./metrics";
import type { Model } from "./model";
import { ACME_MAP, CRT_LIST, HOSTS_MAP, hostsMapText, renderConfig, SNI_MAP, sniMapText } from "./render";

export interface ApplierOptions {
    readonly runDir: string;
    readonly haproxyBin: string;
    readonly haproxyEnv: NodeJS.ProcessEnv;
    readonly master: HaproxyMaster;
    readonly api: RuntimeApi;
    readonly metrics: ControllerMetrics;
    readonly log: (line: string) => void;
    /** What the HTTPS listener serves while no certificate is valid: a self-signed certificate and its key, PEM (placeholder.ts). */
    readonly placeholderPem?: string;
}

export type Outcome = "none" | "runtime" | "reload" | "rejected" | "failed";

/** New servers are probed once before they get requests, but not in a bulk registration (their checks decide). */
const PROBE_LIMIT = 50;
const PROBE_TIMEOUT_MS = 1000;

export class Applier {
    /** The model HAProxy runs; undefined while it runs the bootstrap config. */
    running: Model | undefined;
    private logged = new Set<string>();
    private pending = new Set<string>();
    private notRunning = false;
    private readonly live: string;

    constructor(private readonly o: ApplierOptions) {
        this.live = path.join(o.runDir, "haproxy.cfg");
    }

    private file(name: string): string {
        return path.join(this.o.runDir, name);
    }

    private write(file: string, text: string): void {
        fs.writeFileSync(`${file}.tmp`, text);
        fs.renameSync(`${file}.tmp`, file);
    }

    /** Trust rules: each note is logged once, when it first appears. */
    private report(model: Model): void {
        const now = new Set(model.notes);
        for (const n of model.notes) if (!this.logged.has(n)) this.o.log(`gateway: ${n}`);
        this.logged = now;
        this.o.metrics.skipped = model.notes.filter((n) => n.startsWith("skipped:")).length;
        this.o.metrics.rejected = model.notes.length - this.o.metrics.skipped;
        this.o.metrics.quarantined = model.quarantined.length;
        this.o.metrics.foreignInstances = model.foreignInstances;
    }

    /** Applies `next`. Its notes are logged as it becomes the live file (or when it is set aside). */
    async apply(next: Model): Promise<Outcome> {
        const outcome = await this.applyModel(next);
        if (outcome === "rejected" || outcome === "failed") this.report(next);
        return outcome;
    }

    /** The notes, then the live file, in one go: whoever sees one sees the other. */
    private install(next: Model, text: string): void {
        this.report(next);
        this.write(this.live, text);
    }

    private async applyModel(next: Model): Promise<Outcome> {
        const started = performance.now();
        const plan = this.running === undefined ? ({ kind: "reload", why: "first configuration from Consul" } as const) : planChange(this.running, next);
        // Servers only: HAProxy first, the files after (rendering 10,000 servers is not on the way
        // of a new instance's first request).
        if (plan.kind === "runtime") {
            const failed =
                (await this.runtime(plan.ops, started)) ??
                (await this.runtimeTls(next, plan.tls ?? [])) ??
                (await this.runtimeHosts(next, plan.hosts ?? [])) ??
                (await this.runtimeHosts(next, plan.sni ?? [], "sni"));
            if (failed === undefined) {
                // The live file is what runs: written once HAProxy has taken every command.
                const text = renderConfig(next);
                this.write(this.file("haproxy.cfg.new"), text);
                this.install(next, text);
                this.running = next;
                this.o.metrics.changes.runtime++;
                this.o.metrics.lastApplySeconds.runtime = (performance.now() - started) / 1000;
                this.count(next);
                await this.renderRunning();
                return "runtime";
            }
            this.o.log(`gateway: runtime API did not apply the change (${failed}); reloading instead`);
        }
        const text = renderConfig(next);
        this.write(this.file("haproxy.cfg.new"), text);
        if (plan.kind === "none") {
            // Only comments changed (the list of what was skipped): nothing to apply.
            this.install(next, text);
            this.running = next;
            await this.renderRunning();
            return "none";
        }
        return this.reload(next, text, started, plan.kind === "reload" ? plan.why : "runtime API failed");
    }

    private count(model: Model): void {
        this.o.metrics.certificates = model.certificates;
        this.o.metrics.backends = model.backends.length;
        this.o.metrics.servers = model.backends.reduce((n, b) => n + b.servers.length, 0);
    }

    private async reload(next: Model, text: string, started: number, why: string): Promise<Outcome> {
        const rendered = this.file("haproxy.cfg.new");
        // The certificates, ACME answers and host routes the new worker loads (haproxy -c loads them too).
        this.writeTlsFiles(next);
        this.write(this.file(HOSTS_MAP), hostsMapText(next));
        this.write(this.file(SNI_MAP), sniMapText(next));
        const check = await checkConfig(this.o.haproxyBin, rendered, this.o.haproxyEnv);
        if (!check.ok) {
            fs.copyFileSync(rendered, this.file("haproxy.cfg.rejected"));
            this.o.metrics.rejectedRenders++;
            await this.renderNotRunning(`rendered config rejected by haproxy -c, keeping the running one: ${check.output.trim().replace(/\n/g, " ")}`);
            return "rejected";
        }
        fs.copyFileSync(this.live, this.file("haproxy.cfg.previous"));
        this.install(next, text);
        let result = await this.reloadOnce();
        if (!result.ok) result = await this.reloadOnce();
        if (!result.ok) {
            // The old worker still runs the previous config: the live file says so again.
            fs.copyFileSync(rendered, this.file("haproxy.cfg.failed"));
            this.write(this.live, fs.readFileSync(this.file("haproxy.cfg.previous"), "utf8"));
            this.o.metrics.reloadFailures++;
            await this.renderNotRunning(
                `reload of haproxy master ${this.o.master.pid} failed twice (${result.why}); still running the previous config (see the master's log; the render is kept as haproxy.cfg.failed)`,
            );
            return "failed";
        }
        // The new worker has none of the servers that were waiting to be deleted.
        this.pending.clear();
        this.running = next;
        this.o.metrics.changes.reload++;
        const ms = performance.now() - started;
        this.o.metrics.lastApplySeconds.reload = ms / 1000;
        this.count(next);
        this.o.log(`gateway: config reloaded in ${Math.round(ms)} ms (${why})`);
        // A new worker starts with every server ready; the status server keeps its saved state.
        await this.renderRunning(true);
        return "reload";
    }

    private async reloadOnce(): Promise<{ ok: true } | { ok: false; why: string }> {
        // The servers' health and maintenance states, for the new worker (server-state-file).
        // While the bootstrap config runs there is nothing worth keeping.
        if (this.running !== undefined) {
            await saveServerState(this.o.api, this.file("server-state")).catch((err: Error) =>
                this.o.log(`gateway: could not save the servers' state before a reload: ${err.message}`),
            );
        }
        const result = await this.o.master.reload();
        // The admin socket now belongs to the new worker (or, after a failure, still to the old one).
        this.o.api.reconnect();
        return result;
    }

    /** Runs the operations; undefined when HAProxy accepted all of them, else what went wrong. */
    private async runtime(ops: readonly RuntimeOp[], started: number): Promise<string | undefined> {
        const adds = ops.filter((o): o is Extract<RuntimeOp, { op: "add" }> => o.op === "add");
        // A new server starts UP when added. One that does not answer its health path yet (a
        // container registered when it starts, before its process listens) must not get requests:
        // probe it once, as HAProxy's check would; if it fails, it starts DOWN and enters on its
        // first passing check.
        const ready = new Map<string, boolean>();
        if (adds.length <= PROBE_LIMIT) {
            await Promise.all(
                adds.map(async (a) => {
                    if (a.probe !== undefined) ready.set(`${a.backend}/${a.server.name}`, await probe(a.server.addr, a.probe));
                }),
            );
        }
        type Expect = "empty" | "added" | "deleted";
        const cmds: { cmd: string; expect: Expect; server?: string }[] = [];
        // Deletions that waited for connections to end: try again (gone already is fine).
        for (const s of this.pending) cmds.push({ cmd: `del server ${s}`, expect: "deleted", server: s });
        let added = 0;
        let removed = 0;
        let weights = 0;
        let maxconns = 0;
        let notReady = 0;
        for (const o of ops) {
            const key = `${o.backend}/${o.op === "add" ? o.server.name : o.server}`;
            if (o.op === "del") {
                cmds.push({ cmd: `set server ${key} state maint`, expect: "empty" }, { cmd: `del server ${key}`, expect: "deleted", server: key });
                removed++;
            } else if (o.op === "weight") {
                cmds.push({ cmd: `set server ${key} weight ${o.weight}`, expect: "empty" });
                weights++;
            } else if (o.op === "maxconn") {
                // Requests waiting in the queue are served as soon as the new value allows.
                cmds.push({ cmd: `set maxconn server ${key} ${o.maxconn}`, expect: "empty" });
                maxconns++;
            } else {
                cmds.push({ cmd: addCommand(o), expect: "added", server: key });
                if (o.server.check) cmds.push({ cmd: `enable health ${key}`, expect: "empty" });
                cmds.push({ cmd: `enable server ${key}`, expect: "empty" });
                // After "enable server" (leaving maintenance resets the health to UP): DOWN until
                // its first passing check, ~2 s (inter) later.
                if (ready.get(key) === false) {
                    cmds.push({ cmd: `set server ${key} health down`, expect: "empty" });
                    notReady++;
                }
                added++;
            }
        }
        if (cmds.length === 0) return undefined;
        let answers: string[];
        try {
            answers = await this.o.api.run(cmds.map((c) => c.cmd));
        } catch (err) {
            return (err as Error).message;
        }
        const stillPending = new Set<string>();
        const readded = new Set<string>();
        for (let i = 0; i < cmds.length; i++) {
            const c = cmds[i]!;
            const a = (answers[i] ?? "").trim();
            if (c.expect === "empty" && a !== "") return `${c.cmd}: ${a}`;
            if (c.expect === "added") {
                // Still there, in maintenance, waiting for its connections: the enable commands
                // that follow bring it back into rotation.
                if (/Already exists/.test(a)) readded.add(c.server!);
                else if (a !== "New server registered.") return `${c.cmd}: ${a}`;
            }
            if (c.expect === "deleted") {
                if (/connections|still/.test(a)) stillPending.add(c.server!);
                else if (a !== "Server deleted." && a !== "No such server.") return `${c.cmd}: ${a}`;
            }
        }
        for (const s of readded) stillPending.delete(s);
        this.pending = stillPending;
        this.o.log(
            `gateway: runtime API: ${added} server(s) added (${notReady} not answering their health path yet: in on their first passing check), ${removed} removed, ${weights} weight(s) set${maxconns > 0 ? `, ${maxconns} maxconn(s) set` : ""}, no reload (${Math.round(performance.now() - started)} ms)`,
        );
        return undefined;
    }

    /** A certificate slot's file, as the crt-list and the runtime API name it. */
    private slotFile(slot: string): string {
        return this.file(`tls/${slot}.pem`);
    }

    /**
     * The certificate files, the crt-list (the default slot first) and the ACME answers' map of a
     * model, written whole then renamed, readable by this user only; files of slots it no longer
     * has are removed. The placeholder fills the default slot while no certificate is valid.
     */
    writeTlsFiles(model: Model): void {
        if (!model.tls || model.tls.offload) return;
        fs.mkdirSync(this.file("tls/certs"), { recursive: true, mode: 0o700 });
        const slots = certificateSlots(model);
        for (const [slot, pem] of slots) this.writePrivate(this.slotFile(slot), pem === "" ? this.placeholder() : pem);
        this.write(this.file(CRT_LIST), [...slots.keys()].map((slot) => `${this.slotFile(slot)}\n`).join(""));
        for (const f of fs.readdirSync(this.file("tls/certs"))) {
            if (f.endsWith(".pem") && !slots.has(`certs/${f.slice(0, -4)}`)) fs.rmSync(this.file(`tls/certs/${f}`), { force: true });
        }
        this.write(this.file(ACME_MAP), model.challenges.map(([token, answer]) => `${token} ${answer}\n`).join(""));
    }

    private placeholder(): string {
        if (this.o.placeholderPem === undefined) throw new Error("no placeholder certificate: the HTTPS listener needs one");
        return this.o.placeholderPem;
    }

    private writePrivate(file: string, text: string): void {
        fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
        fs.renameSync(`${file}.tmp`, file);
    }

    /** Certificates and ACME answers through the runtime API: files first (a later reload loads them), then HAProxy. */
    private async runtimeTls(next: Model, ops: readonly TlsOp[]): Promise<string | undefined> {
        if (ops.length === 0) return undefined;
        const started = performance.now();
        this.writeTlsFiles(next);
        const crtList = this.file(CRT_LIST);
        const map = this.file(ACME_MAP);
        const cmds: { cmd: string; expect: RegExp }[] = [];
        const changed: string[] = [];
        let answers = 0;
        for (const o of ops) {
            if (o.op === "certificate") {
                const file = this.slotFile(o.slot);
                if (o.added) cmds.push({ cmd: `new ssl cert ${file}`, expect: /^New empty certificate store/ });
                cmds.push(
                    { cmd: withPayload(`set ssl cert ${file}`, o.pem === "" ? this.placeholder() : o.pem), expect: /^Transaction created/ },
                    { cmd: `commit ssl cert ${file}`, expect: /Success!/ },
                );
                if (o.added) cmds.push({ cmd: `add ssl crt-list ${crtList} ${file}`, expect: /Success!/ });
                changed.push(o.slot === DEFAULT_SLOT ? "the default certificate" : o.slot.replace(/^certs\//, ""));
            } else if (o.op === "uncertificate") {
                const file = this.slotFile(o.slot);
                cmds.push({ cmd: `del ssl crt-list ${crtList} ${file}`, expect: /deleted/ }, { cmd: `del ssl cert ${file}`, expect: /deleted/ });
                changed.push(`${o.slot.replace(/^certs\//, "")} removed`);
            } else if (o.op === "challenge") {
                cmds.push(
                    { cmd: `del map ${map} ${o.token}`, expect: /^$|Key not found/ },
                    { cmd: `add map ${map} ${o.token} ${o.keyAuthorization}`, expect: /^$/ },
                );
                answers++;
            } else {
                cmds.push({ cmd: `del map ${map} ${o.token}`, expect: /^$|Key not found/ });
                answers++;
            }
        }
        const failed = await this.runExpecting(cmds);
        if (failed !== undefined) {
            // A transaction left open would block the next one on that file.
            if (failed.cmd?.startsWith("set ssl cert "))
                await this.o.api.run([`abort ssl cert ${failed.cmd.slice("set ssl cert ".length, -3)}`]).catch(() => undefined);
            return failed.error;
        }
        if (changed.length > 0) this.o.metrics.certificateChanges += changed.length;
        this.o.log(
            `gateway: runtime API: ${[...(changed.length > 0 ? [`certificate(s) ${changed.join(", ")} installed`] : []), ...(answers > 0 ? [`${answers} ACME answer(s) changed`] : [])].join(", ")}, no reload (${Math.round(performance.now() - started)} ms)`,
        );
        return undefined;
    }

    /**
     * Runs runtime API commands in one go; the first whose answer is not what it expects, as the
     * error to report (the command's first line and the answer) and that command, or undefined.
     */
    private async runExpecting(cmds: readonly { cmd: string; expect: RegExp }[]): Promise<{ error: string; cmd?: string } | undefined> {
        let got: string[];
        try {
            got = await this.o.api.run(cmds.map((c) => c.cmd));
        } catch (err) {
            return { error: (err as Error).message };
        }
        for (let i = 0; i < cmds.length; i++) {
            const a = (got[i] ?? "").trim();
            if (!cmds[i]!.expect.test(a)) {
                const cmd = cmds[i]!.cmd.split("\n")[0]!;
                return { error: `${cmd}: ${a.replace(/\n/g, " ")}`, cmd };
            }
        }
        return undefined;
    }

    /** Host (or SNI) routes through the runtime API: the map file first (a later reload loads it), then HAProxy's copy. */
    private async runtimeHosts(next: Model, ops: readonly HostOp[], kind: "host" | "sni" = "host"): Promise<string | undefined> {
        if (ops.length === 0) return undefined;
        const started = performance.now();
        const map = this.file(kind === "sni" ? SNI_MAP : HOSTS_MAP);
        this.write(map, kind === "sni" ? sniMapText(next) : hostsMapText(next));
        const cmds: { cmd: string; expect: RegExp }[] = [];
        for (const o of ops) {
            cmds.push({ cmd: `del map ${map} ${o.host}`, expect: /^$|Key not found/ });
            if (o.op === "host") cmds.push({ cmd: `add map ${map} ${o.host} ${o.backend}`, expect: /^$/ });
        }
        const failed = await this.runExpecting(cmds);
        if (failed !== undefined) return failed.error;
        const added = ops.filter((o) => o.op === "host").length;
        this.o.log(
            `gateway: runtime API: ${kind === "sni" ? "SNI" : "host"} routes: ${added} set, ${ops.length - added} removed, no reload (${Math.round(performance.now() - started)} ms)`,
        );
        return undefined;
    }

    private async setStatus(state: "ready" | "maint"): Promise<void> {
        await this.o.api.run([`set server gateway_config/latest-render-running state ${state}`]).catch(() => undefined);
    }

    private async renderRunning(afterReload = false): Promise<void> {
        this.o.metrics.latestRenderRunning = true;
        if (!this.notRunning) return;
        this.notRunning = false;
        fs.rmSync(this.file("latest-render-not-running"), { force: true });
        await this.setStatus("ready");
        this.o.log(`gateway: the latest render is running again${afterReload ? "" : " (applied at runtime)"}`);
    }

    private async renderNotRunning(why: string): Promise<void> {
        this.o.log(`gateway: ${why}`);
        this.notRunning = true;
        this.o.metrics.latestRenderRunning = false;
        fs.writeFileSync(this.file("latest-render-not-running"), `${why}\n`);
        await this.setStatus("maint");
    }
}

/** Before HAProxy first starts: the bootstrap config's HTTPS listener serves the placeholder (the default slot). */
export function writeBootstrapTls(runDir: string, placeholderPem: string): void {
    const dir = path.join(runDir, "tls");
    fs.mkdirSync(path.join(dir, "certs"), { recursive: true, mode: 0o700 });
    const file = path.join(dir, `${DEFAULT_SLOT}.pem`);
    fs.writeFileSync(file, placeholderPem, { mode: 0o600 });
    fs.writeFileSync(path.join(runDir, CRT_LIST), `${file}\n`);
    fs.writeFileSync(path.join(runDir, ACME_MAP), "");
}

/** GET <path> (HTTP/1.0) within 1 s, 2xx or 3xx; for TCP a connect. */
export function probe(addr: string, target: ProbeTarget): Promise<boolean> {
    const i = addr.lastIndexOf(":");
    return new Promise((resolve) => {
        let answer = "";
        const socket = net.createConnection({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
        const done = (ok: boolean): void => {
            socket.destroy();
            resolve(ok);
        };
        socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
        socket.once("error", () => done(false));
        socket.once("connect", () => {
            if (target.kind === "tcp") return done(true);
            socket.write(`GET ${target.path} HTTP/1.0\r\nConnection: close\r\n\r\n`);
        });
        socket.on("data", (chunk: Buffer) => {
            answer += chunk.toString("latin1");
            if (answer.length >= 12) done(/^HTTP\/1\.[01] [23]/.test(answer));
        });
        socket.once("end", () => done(/^HTTP\/1\.[01] [23]/.test(answer)));
    });
}
