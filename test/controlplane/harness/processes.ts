// Processes and temp dirs of the control-plane tests: each process in its own process group,
// each dir under os.tmpdir(). Everything started here is stopped again: by stop()/after hooks,
// and by a process 'exit' safety net if a test dies.
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { groupAlive, pidAlive, signal } from "../../support/proc";
import { within } from "../../support/wait";

// ---------------------------------------------------------------------------------------------
// Cleanup registry and safety net

const liveProcs = new Set<Proc>();
const tempDirs = new Set<string>();
const daemonPids = new Set<number>();
let safetyNetInstalled = false;

function installSafetyNet(): void {
    if (safetyNetInstalled) return;
    safetyNetInstalled = true;
    process.on("exit", () => {
        for (const p of liveProcs) p.killGroup("SIGKILL");
        for (const pid of daemonPids) signal(pid, "SIGKILL");
        // SIGKILL is asynchronous: let the processes go before removing the dirs they write to.
        const pause = new Int32Array(new SharedArrayBuffer(4));
        for (let i = 0; i < 25 && [...liveProcs].some((p) => p.groupAlive()); i++) Atomics.wait(pause, 0, 0, 20);
        for (const d of tempDirs) {
            try {
                fs.rmSync(d, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
            } catch {
                /* best effort */
            }
        }
    });
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
        process.once(sig, () => process.exit(130));
    }
}

/** Tracks a process that left our process groups (a daemon), so that it is stopped at exit too. */
export function trackDaemon(pid: number): void {
    installSafetyNet();
    daemonPids.add(pid);
}

/** Stops tracked daemons: SIGTERM, then SIGKILL after graceMs. */
export async function stopDaemons(pids: number[], graceMs = 2000): Promise<void> {
    for (const pid of pids) signal(pid, "SIGTERM");
    await within(graceMs, () => !pids.some(pidAlive));
    for (const pid of pids) {
        signal(pid, "SIGKILL");
        daemonPids.delete(pid);
    }
}

/** A fresh temp dir under os.tmpdir(), removed by removeTempDir() or at exit. */
export function makeTempDir(prefix: string): string {
    installSafetyNet();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sd-${prefix}-`));
    tempDirs.add(dir);
    return dir;
}

export function removeTempDir(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Keeps the last `limit` characters of a stream and counts lines matching given patterns. */
class OutputTail {
    private text = "";
    private partial = "";
    private readonly counters = new Map<RegExp, number>();
    constructor(private readonly limit = 256 * 1024) {}
    watch(pattern: RegExp): void {
        if (!this.counters.has(pattern)) this.counters.set(pattern, 0);
    }
    count(pattern: RegExp): number {
        return this.counters.get(pattern) ?? 0;
    }
    push(chunk: string): void {
        this.text += chunk;
        if (this.text.length > this.limit) this.text = this.text.slice(-this.limit);
        const lines = (this.partial + chunk).split("\n");
        this.partial = lines.pop() ?? "";
        for (const line of lines) {
            for (const [re, n] of this.counters) if (re.test(line)) this.counters.set(re, n + 1);
        }
    }
    toString(): string {
        return this.text;
    }
}

export interface SpawnOptions {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    /** Keep stdout (default) or discard it (HAProxy logs every request to stdout). */
    stdout?: "keep" | "ignore";
}

/** A child process in its own process group; stop() ends the whole group. */
export class Proc {
    readonly child: ChildProcess;
    readonly stdout = new OutputTail();
    readonly stderr = new OutputTail();
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    private done = false;

    constructor(
        readonly name: string,
        cmd: string,
        args: string[],
        opts: SpawnOptions = {},
    ) {
        installSafetyNet();
        const stdio: StdioOptions = ["ignore", opts.stdout === "ignore" ? "ignore" : "pipe", "pipe"];
        this.child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio, detached: true });
        liveProcs.add(this);
        this.child.stdout?.setEncoding("utf8").on("data", (d: string) => this.stdout.push(d));
        this.child.stderr?.setEncoding("utf8").on("data", (d: string) => this.stderr.push(d));
        this.exited = new Promise((resolve) => {
            this.child.once("exit", (code, signal) => {
                this.done = true;
                resolve({ code, signal });
            });
            this.child.once("error", (err) => {
                this.stderr.push(`spawn error: ${err.message}\n`);
                this.done = true;
                resolve({ code: -1, signal: null });
            });
        });
    }

    get pid(): number {
        return this.child.pid ?? -1;
    }

    get running(): boolean {
        return !this.done;
    }

    /** Signals every process of the group (the leader's pid is the group id). */
    killGroup(sig: NodeJS.Signals): void {
        if (this.pid > 0) signal(-this.pid, sig);
    }

    /** Whether a process of the group still runs; zombies (left for init to reap) do not count. */
    groupAlive(): boolean {
        return groupAlive(this.pid);
    }

    /** SIGTERM to the group, SIGKILL after graceMs; waits (bounded) until the group is gone. */
    async stop(graceMs = 3000, sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
        if (!liveProcs.has(this)) return;
        this.killGroup(sig);
        let timer: NodeJS.Timeout | undefined;
        const leaderExited = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
        clearTimeout(timer);
        if (!leaderExited) this.killGroup("SIGKILL");
        await this.exited;
        // Members that outlive the leader (HAProxy workers, consul-template) get SIGKILL too.
        await within(2000, () => {
            if (!this.groupAlive()) return true;
            this.killGroup("SIGKILL");
            return false;
        });
        liveProcs.delete(this);
    }

    /**
     * Forgets an exited process without signalling its group: for a daemon's launcher, whose
     * child may still be leaving the group (setsid) when the launcher exits; a signal to the
     * group then would hit the daemon. Track the daemon with trackDaemon() instead.
     */
    release(): void {
        if (this.running) throw new Error(`${this.name} still runs`);
        liveProcs.delete(this);
    }

    output(): string {
        return `--- ${this.name} (pid ${this.pid}) stderr ---\n${this.stderr}\n--- stdout ---\n${this.stdout}`;
    }
}
