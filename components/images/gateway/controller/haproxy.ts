// HAProxy processes and sockets: the master-worker process (start, reload, soft stop), its
// runtime API over one persistent connection, `haproxy -c`, and the server state saved for a
// reload. Routing decisions live elsewhere; this module only knows how to talk to HAProxy 2.6.
// Linux only: readiness is read from /proc.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

export interface HaproxyOptions {
    bin: string;
    configFile: string;
    runDir: string;
    env: NodeJS.ProcessEnv;
    log: (line: string) => void;
}

/** Every wait on HAProxy is bounded: a stuck master or worker must not stall the controller. */
const WAIT_MS = 10_000;
const POLL_MS = 10;
const SIGUSR1_BIT = 9n; // signal 10: bit 9 of SigCgt
const SIGUSR2_BIT = 11n; // signal 12: bit 11 of SigCgt

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls test every POLL_MS until it holds (true) or ms have passed (false). */
async function waitFor(ms: number, test: () => boolean): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
        if (test()) return true;
        if (Date.now() >= deadline) return false;
        await delay(POLL_MS);
    }
}

/** `haproxy -c -f file`: ok, and HAProxy's alerts and warnings (newlines kept). */
export function checkConfig(bin: string, file: string, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; output: string }> {
    return new Promise((resolve) => {
        let output = "";
        // Not -q: with it, HAProxy 2.6 says nothing at all about a config it rejects. Its version
        // notices and the success line are dropped instead.
        const child = spawn(bin, ["-c", "-f", file], { env, stdio: ["ignore", "pipe", "pipe"] });
        child.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
        child.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
        child.once("error", (err) => resolve({ ok: false, output: `cannot run ${bin}: ${err.message}` }));
        child.once("close", (code) => {
            const kept = output.split("\n").filter((l) => l !== "" && !l.startsWith("[NOTICE]") && l !== "Configuration file is valid");
            resolve({ ok: code === 0, output: kept.map((l) => `${l}\n`).join("") });
        });
    });
}

/** One command on a CLI socket in its default mode: HAProxy answers, then closes the connection. */
function cliOnce(socketPath: string, command: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
        let answer = "";
        const socket = net.createConnection(socketPath);
        socket.setEncoding("utf8");
        socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${socketPath}: no answer to "${command}" within ${timeoutMs} ms`)));
        socket.on("data", (s: string) => (answer += s));
        socket.once("error", reject);
        socket.once("close", (hadError) => hadError || resolve(answer));
        // The master answers once the client has said all it will (end of input), then closes.
        socket.end(`${command}\n`);
    });
}

export class HaproxyMaster {
    readonly pid: number;
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    private readonly masterSocket: string;
    private hasExited = false;
    private stopping = false;
    private queue: Promise<unknown> = Promise.resolve();

    private constructor(
        child: ChildProcess,
        private readonly opts: HaproxyOptions,
    ) {
        this.pid = child.pid!;
        this.masterSocket = path.join(opts.runDir, "master.sock");
        this.exited = new Promise((resolve) => {
            child.once("exit", (code, signal) => {
                this.hasExited = true;
                resolve({ code, signal });
            });
        });
    }

    /** Spawns `haproxy -W -db -f configFile -p runDir/haproxy.pid -S runDir/master.sock`, resolves once the master catches SIGUSR2 and a worker runs. */
    static async start(opts: HaproxyOptions): Promise<HaproxyMaster> {
        fs.mkdirSync(opts.runDir, { recursive: true });
        // -W master-worker: the master re-executes itself on SIGUSR2 and hands the listening
        // sockets to the new worker, so reloads lose no connection. -db keeps it in the
        // foreground, as our child. Its log lines go straight to our stderr.
        const args = ["-W", "-db", "-f", opts.configFile, "-p", path.join(opts.runDir, "haproxy.pid"), "-S", path.join(opts.runDir, "master.sock")];
        const child = spawn(opts.bin, args, { env: opts.env, stdio: ["ignore", "inherit", "inherit"] });
        await new Promise<void>((resolve, reject) => {
            child.once("spawn", resolve);
            child.once("error", (err) => reject(new Error(`cannot run ${opts.bin}: ${err.message}`)));
        });
        const master = new HaproxyMaster(child, opts);
        // A reload signalled before the master installs its handlers would be lost: "started"
        // means it catches SIGUSR2 and its first worker runs.
        const ready = await waitFor(WAIT_MS, () => master.hasExited || (master.catches(SIGUSR2_BIT) && master.workers().length > 0));
        if (master.hasExited) {
            const { code, signal } = await master.exited;
            throw new Error(`haproxy exited while starting (${signal ?? `code ${code}`}); its messages are above`);
        }
        if (!ready) {
            master.killAll();
            throw new Error(`haproxy master ${master.pid} had no running worker within ${WAIT_MS / 1000} s; killed`);
        }
        return master;
    }

    /** Master-worker reload of configFile: ok only when a new worker runs. Serialised. */
    reload(): Promise<{ ok: true } | { ok: false; why: string }> {
        const result = this.queue.then(() => this.reloadNow());
        this.queue = result.catch(() => undefined);
        return result;
    }

    /** How many reloads the master performed (failed ones included), and how many failed since the last one that loaded (2.6 resets that count on success). */
    async reloadCounts(): Promise<{ reloads: number; failed: number }> {
        const answer = await cliOnce(this.masterSocket, "show proc", 2000);
        // "<pid>  master  <reloads> [failed: <n>]  <uptime>  <version>"
        const m = /^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/m.exec(answer);
        if (!m) throw new Error(`unexpected "show proc" answer from the master: ${answer.trim().split("\n")[0] ?? ""}`);
        return { reloads: Number(m[1]), failed: Number(m[2]) };
    }

    /**
     * Soft stop: SIGUSR1 (workers finish in-flight requests, then the master exits), SIGKILL after
     * graceMs. The default ends before Docker's default stop timeout (10 s): we exit on our own terms.
     */
    async stop(graceMs = 8000): Promise<void> {
        this.stopping = true;
        if (this.hasExited) return;
        // While the master re-executes (a reload in progress) its handlers are not installed and a
        // signal is lost: wait until it catches SIGUSR1 again, briefly.
        await waitFor(Math.min(graceMs, 2000), () => this.hasExited || this.catches(SIGUSR1_BIT));
        this.signal(this.pid, "SIGUSR1");
        const done = await Promise.race([this.exited.then(() => true), delay(graceMs).then(() => false)]);
        if (done) return;
        this.opts.log(`gateway: haproxy master ${this.pid} still running ${graceMs} ms after the soft stop; killing it and its workers`);
        this.killAll();
        await this.exited;
    }

    private async reloadNow(): Promise<{ ok: true } | { ok: false; why: string }> {
        if (this.hasExited) return { ok: false, why: "the master is not running" };
        if (this.stopping) return { ok: false, why: "the master is stopping" };
        // The 2.6 master ignores SIGUSR2 while it starts and while it re-executes for a reload
        // (~30 ms): a signal sent then is lost and the new config never runs. Reloads are
        // serialised and each one returns only once the master is back, so this wait is short.
        if (!(await waitFor(WAIT_MS, () => this.hasExited || this.catches(SIGUSR2_BIT)))) {
            this.opts.log(`gateway: haproxy master ${this.pid} does not catch SIGUSR2 yet; signalling anyway`);
        }
        if (this.hasExited) return { ok: false, why: "the master is not running" };
        const before = new Set(this.workers());
        const failedBefore = await this.reloadCounts().then(
            (c) => c.failed,
            () => null,
        );
        this.signal(this.pid, "SIGUSR2");

        // A new worker is the proof. HAProxy's count of failed reloads only ends the wait early
        // (the master answers on its CLI again once it is back in wait mode). The CLI is asked in
        // the background so that the worker check keeps its pace.
        const newWorker = () => this.workers().some((w) => !before.has(w));
        let failedSeen = false;
        let asking = false;
        let askedAt = 0;
        const failed = () => {
            if (!asking && failedBefore !== null && Date.now() - askedAt >= 100) {
                asking = true;
                askedAt = Date.now();
                this.reloadCounts()
                    .then((c) => (failedSeen ||= c.failed > failedBefore))
                    .catch(() => undefined) // refused while the master re-executes
                    .finally(() => (asking = false));
            }
            return failedSeen;
        };
        await waitFor(WAIT_MS, () => this.hasExited || newWorker() || failed());
        // After a counted failure the worker still gets a second to show up.
        if (!newWorker() && !(await waitFor(1000, () => this.hasExited || newWorker()))) {
            if (this.hasExited) return { ok: false, why: "the master exited during the reload" };
            return { ok: false, why: `no new worker (${failedSeen ? "HAProxy counts a failed reload" : `none within ${WAIT_MS / 1000} s`})` };
        }
        if (!(await waitFor(WAIT_MS, () => this.hasExited || this.catches(SIGUSR2_BIT))) || this.hasExited) {
            return { ok: false, why: "the master did not come back after the new worker started" };
        }
        return { ok: true };
    }

    /** Whether the master has a handler for the signal (SigCgt in /proc/<pid>/status). */
    private catches(bit: bigint): boolean {
        try {
            const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${this.pid}/status`, "utf8"));
            return m !== null && ((BigInt(`0x${m[1]}`) >> bit) & 1n) === 1n;
        } catch {
            return false;
        }
    }

    /** The master's children: its workers, old ones still finishing their connections included. */
    private workers(): number[] {
        try {
            return fs.readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number);
        } catch {
            return [];
        }
    }

    private killAll(): void {
        // Workers exit when their master dies, but one busy with a connection could take its
        // time: they go too. The master first, so that it never reports a worker's death as its own.
        const workers = this.workers();
        this.signal(this.pid, "SIGKILL");
        for (const w of workers) this.signal(w, "SIGKILL");
    }

    private signal(pid: number, sig: NodeJS.Signals): void {
        try {
            process.kill(pid, sig);
        } catch {
            /* already gone */
        }
    }
}

/** `<command> <<`, then the payload's lines, each ended by a newline, none empty (the batch's next newline ends the payload). */
const PAYLOAD_COMMAND = /^[^\r\n]+ <<\n([^\r\n]+\n)+$/;

/** A command with a payload (`set ssl cert <file> <<`): the payload's blank lines dropped, it ends with a newline. */
export function withPayload(command: string, payload: string): string {
    const lines = payload.split(/\r?\n/).filter((l) => l.trim() !== "");
    return `${command} <<\n${lines.join("\n")}\n`;
}

/** A command batch whose connection closed before HAProxy answered anything. */
class ClosedUnanswered extends Error {}

/** One CLI connection in interactive mode, where every answer ends with the prompt "\n> ". */
class CliConnection {
    closed = false;
    private buffer = "";
    private scanFrom = 0;
    private bytes = 0;
    private waiters: Array<{ resolve: (answer: string) => void; reject: (err: Error) => void }> = [];

    private constructor(private readonly socket: net.Socket) {
        // The connection must not keep the process alive on its own: pending runs hold a timer.
        socket.unref();
        socket.setEncoding("utf8");
        socket.on("data", (s: string) => this.receive(s));
        socket.on("error", () => undefined); // reported by "close"
        socket.on("close", () => this.fail(new Error("the runtime API connection closed")));
    }

    static open(socketPath: string, timeoutMs: number): Promise<CliConnection> {
        return new Promise((resolve, reject) => {
            const socket = net.createConnection(socketPath);
            const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
            socket.once("error", (err) => {
                clearTimeout(timer);
                reject(new Error(`runtime API: cannot connect to ${socketPath}: ${err.message}`));
            });
            socket.once("connect", () => {
                clearTimeout(timer);
                socket.removeAllListeners("error");
                const conn = new CliConnection(socket);
                // Interactive mode keeps the connection open after each answer; the answer to
                // "prompt" itself is empty and dropped.
                conn.waiters.push({ resolve: () => undefined, reject: () => undefined });
                socket.write("prompt\n");
                resolve(conn);
            });
        });
    }

    /** Sends the batch in one write (HAProxy answers in order) and collects one answer per command; timeoutMs bounds each wait. */
    send(commands: readonly string[], timeoutMs: number): Promise<string[]> {
        return new Promise((resolve, reject) => {
            const answers: string[] = [];
            const bytesAtWrite = this.bytes;
            let timer: NodeJS.Timeout | undefined;
            const fail = (err: Error) => {
                clearTimeout(timer);
                const message = `runtime API: "${commands[answers.length]}" (${answers.length + 1} of ${commands.length}): ${err.message}`;
                const unanswered = answers.length === 0 && this.bytes === bytesAtWrite && this.closed;
                reject(unanswered ? new ClosedUnanswered(message) : new Error(message));
            };
            const arm = () => {
                clearTimeout(timer);
                timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
            };
            const answered = (answer: string) => {
                answers.push(answer);
                if (answers.length < commands.length) return arm();
                clearTimeout(timer);
                resolve(answers);
            };
            for (let i = 0; i < commands.length; i++) this.waiters.push({ resolve: answered, reject: fail });
            arm();
            this.socket.write(commands.map((c) => `${c}\n`).join(""));
        });
    }

    destroy(): void {
        this.socket.destroy();
        this.fail(new Error("the runtime API connection was dropped"));
    }

    private receive(s: string): void {
        this.bytes += s.length;
        this.buffer += s;
        for (;;) {
            const end = this.buffer.indexOf("\n> ", this.scanFrom);
            if (end < 0) break;
            // An answer could only be cut wrongly if it contained "\n> " itself; none of the
            // commands we send prints such a line.
            // A command with a payload is answered after one continuation prompt "+ " per payload line.
            const answer = this.buffer
                .slice(0, end)
                .replace(/\n+$/, "")
                .replace(/^(\+ )+/, "");
            this.buffer = this.buffer.slice(end + 3);
            this.scanFrom = 0;
            this.waiters.shift()?.resolve(answer);
        }
        // A long answer arrives in many chunks: search only its new part next time.
        this.scanFrom = Math.max(0, this.buffer.length - 2);
    }

    private fail(err: Error): void {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w.reject(err);
    }
}

export class RuntimeApi {
    private conn: CliConnection | null = null;
    private closedForGood = false;
    private queue: Promise<unknown> = Promise.resolve();

    constructor(private readonly socketPath: string) {}

    /** Runs commands over one persistent connection; one answer per command (trailing newlines trimmed). Serialised. timeoutMs bounds the wait for each answer. */
    run(commands: readonly string[], timeoutMs = WAIT_MS): Promise<string[]> {
        const result = this.queue.then(() => this.runNow(commands, timeoutMs));
        this.queue = result.catch(() => undefined);
        return result;
    }

    /**
     * Drops the connection; the next run() connects to whichever worker owns the socket now. Call it
     * after every reload: an old worker keeps our connection, and runs on for as long as it is open.
     */
    reconnect(): void {
        this.conn?.destroy();
        this.conn = null;
    }

    close(): void {
        this.closedForGood = true;
        this.reconnect();
    }

    private async runNow(commands: readonly string[], timeoutMs: number): Promise<string[]> {
        if (this.closedForGood) throw new Error("runtime API: closed");
        // A newline would split a command in two and shift every answer after it; only a payload
        // (`<command> <<` then its lines, none empty: an empty line ends it) may span lines.
        const bad = commands.find((c) => /[\r\n]/.test(c) && !PAYLOAD_COMMAND.test(c));
        if (bad !== undefined) throw new Error(`runtime API: a command contains a newline: ${JSON.stringify(bad)}`);
        if (commands.length === 0) return [];
        const reused = this.conn !== null && !this.conn.closed;
        try {
            return await (await this.connection(timeoutMs)).send(commands, timeoutMs);
        } catch (err) {
            this.reconnect();
            // HAProxy closes an idle CLI connection after `stats timeout`; when that crosses our
            // write, nothing was read nor answered: the batch is sent again once, on a new connection.
            if (reused && err instanceof ClosedUnanswered) return (await this.connection(timeoutMs)).send(commands, timeoutMs);
            throw err;
        }
    }

    private async connection(timeoutMs: number): Promise<CliConnection> {
        if (this.conn === null || this.conn.closed) this.conn = await CliConnection.open(this.socketPath, timeoutMs);
        return this.conn;
    }
}

/** `show servers state` written atomically to file (the server-state-file the config loads), each server's initial weight set to its current one. */
export async function saveServerState(api: RuntimeApi, file: string): Promise<void> {
    const [state = ""] = await api.run(["show servers state"]);
    const lines = state.split("\n");
    // The first line is the format version ("1"); anything else is an error message.
    if (!/^\d+$/.test(lines[0] ?? "")) throw new Error(`show servers state answered: ${lines[0]}`);
    // Fields: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
    // srv_iweight ... HAProxy restores the saved weight (srv_uweight) only when the saved initial
    // weight equals the new config's. A weight set at runtime and then changed back in the config
    // would come back from the file: with srv_iweight := srv_uweight the saved weight is restored
    // only when the config asks for that very weight, so the config's weight always wins, while
    // health and maintenance states carry over.
    const out = lines.map((line, i) => {
        if (i === 0 || line === "" || line.startsWith("#")) return line;
        const f = line.split(" ");
        if (f.length >= 9) f[8] = f[7]!;
        return f.join(" ");
    });
    const tmp = `${file}.tmp`;
    await fs.promises.writeFile(tmp, `${out.join("\n")}\n`);
    await fs.promises.rename(tmp, file);
}
