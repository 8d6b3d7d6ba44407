// The gateway as the image runs it: the bundled controller (dist/controller.js, which supervises
// HAProxy master-worker and follows Consul) with the image's own config dir, on free loopback
// ports, with the trust-rule variables the stack sets. The benchmark's previous design (an older
// checkout of the image folder with entrypoint.sh and consul-template) runs through `confDir`.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { httpRequest, type HttpOptions, type HttpResult } from "../../support/http";
import { bundleController } from "../../../components/images/gateway/bundle";
import { ROOT } from "../../support/paths";
import { freePort } from "../../support/ports";
import { readTool, type Tools } from "../../support/tools";
import { waitFor } from "../../support/wait";
import { ConsulAgent, type ConsulClientEnv } from "./consul";
import { ensureTestAddresses, GATEWAY_OWN_ADDRESS, NODE_ADDRESS, TEST_NETWORK } from "./network";
import { makeTempDir, Proc, removeTempDir } from "./processes";

export const GATEWAY_CONF_DIR = path.join(ROOT, "components", "images", "gateway");

/** Sends one command to an HAProxy CLI socket (admin or master) and returns the answer. */
/** The rendered file's anonymous `defaults` section, the one HTTP proxies take (TCP services take
 * the named `defaults tcp_services` before it). */
export function httpDefaults(cfg: string): string {
    const start = cfg.search(/^defaults$/m);
    if (start < 0) throw new Error("the rendered file has no anonymous defaults section");
    const rest = cfg.slice(start + "defaults".length);
    const end = rest.search(/^\S/m);
    return end < 0 ? rest : rest.slice(0, end);
}

export function unixSocketCommand(socketPath: string, command: string, timeoutMs = 3000): Promise<string> {
    return new Promise((resolve, reject) => {
        const sock = net.createConnection(socketPath);
        const chunks: Buffer[] = [];
        const timer = setTimeout(() => sock.destroy(new Error(`timeout on ${command}`)), timeoutMs);
        sock.on("connect", () => sock.end(`${command}\n`));
        sock.on("data", (c: Buffer) => chunks.push(c));
        sock.on("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        sock.on("close", () => {
            clearTimeout(timer);
            resolve(Buffer.concat(chunks).toString("utf8"));
        });
    });
}

/**
 * The image's way with secrets: the stats password and the Consul token in files only the
 * gateway's user reads (the stack uploads them, mode 0400), named by STATS_PASSWORD_FILE and
 * CONSUL_HTTP_TOKEN_FILE; the controller refuses them in its environment. A token or password
 * given as a variable (an agent's client variables, a test's own) is written to such a file
 * and removed from the environment. The previous design (entrypoint.sh) read them from variables.
 */
export function secretsAsFiles(env: NodeJS.ProcessEnv, dir: string): NodeJS.ProcessEnv {
    const out = { ...env };
    for (const [variable, name] of [
        ["CONSUL_HTTP_TOKEN", "consul.token"],
        ["STATS_PASSWORD", "stats.password"],
    ] as const) {
        const value = out[variable];
        delete out[variable];
        if (value === undefined || value === "") continue;
        const file = path.join(dir, "secrets", name);
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        fs.rmSync(file, { force: true });
        fs.writeFileSync(file, value, { mode: 0o400 });
        out[`${variable}_FILE`] = file;
    }
    return out;
}

export class Gateway {
    proc: Proc | undefined;
    readonly runDir: string;
    /** The controller's environment (no secret in it but with the previous design: the files' names). */
    readonly env: NodeJS.ProcessEnv;
    /** The stats page's login (the password is in the file STATS_PASSWORD_FILE names). */
    readonly statsUser = "stats";
    readonly statsPassword: string;
    static readonly RELOADED = /gateway: config reloaded/;
    static readonly REJECTED = /gateway: rendered config rejected/;
    static readonly LOADING_SUCCESS = /Loading success/;

    private constructor(
        readonly tools: Tools,
        readonly httpPort: number,
        readonly statsPort: number,
        consul: ConsulClientEnv,
        extraEnv: NodeJS.ProcessEnv = {},
        legacy = false,
    ) {
        this.runDir = makeTempDir("gateway");
        this.statsPassword = extraEnv.STATS_PASSWORD ?? `pw-${process.pid}-${Date.now()}`;
        const env: NodeJS.ProcessEnv = {
            ...process.env,
            GATEWAY_CONF_DIR,
            GATEWAY_RUN_DIR: this.runDir,
            GATEWAY_HTTP_PORT: String(httpPort),
            GATEWAY_STATS_PORT: String(statsPort),
            GATEWAY_BIND: "127.0.0.1",
            ...consul,
            HAPROXY_BIN: tools.HAPROXY_BIN,
            STATS_USER: this.statsUser,
            // Trust rules: the test network is the node network (as on target hosts); Consul's
            // published port and SSH are refused on the node, as the stack passes them.
            GATEWAY_BACKEND_NETWORKS: TEST_NETWORK,
            GATEWAY_NODE_NETWORKS: `${NODE_ADDRESS}/32`,
            GATEWAY_NODE_PORTS: `22 ${consul.CONSUL_HTTP_ADDR.split(":").pop()}`,
            GATEWAY_OWN_ADDRESSES: GATEWAY_OWN_ADDRESS,
            GATEWAY_TRUSTED_PROXIES: "",
            ...extraEnv,
            STATS_PASSWORD: this.statsPassword,
        };
        this.env = legacy ? env : secretsAsFiles(env, this.runDir);
    }

    /**
     * Runs the controller bundle with Node.js, as the image does, and waits for the first rendered config.
     * `consul`: an agent (the gateway gets its token, as the stack gives it) or explicit client
     * variables (another token, a wrong CA...). `waitForRender: false` returns once it serves the bootstrap config.
     */
    static async start(
        tools: Tools,
        consul: ConsulAgent | ConsulClientEnv,
        opts: {
            readyTimeoutMs?: number;
            waitForRender?: boolean;
            env?: NodeJS.ProcessEnv;
            /** An older checkout of the image folder (entrypoint.sh + consul-template: the benchmark's previous design). */
            confDir?: string;
            /** consul-template for that previous design. */
            consulTemplateBin?: string;
            nofile?: number;
            /** The CPUs the controller and its HAProxy may run on (taskset -c), as `docker run --cpuset-cpus` sets them. */
            cpus?: string;
        } = {},
    ): Promise<Gateway> {
        const env = consul instanceof ConsulAgent ? consul.clientEnv("gateway") : consul;
        ensureTestAddresses();
        // confDir: another version of the image's folder (the benchmark's previous design).
        const confDir = opts.confDir ?? GATEWAY_CONF_DIR;
        const legacy = fs.existsSync(path.join(confDir, "entrypoint.sh"));
        const extra = legacy ? { CONSUL_TEMPLATE_BIN: opts.consulTemplateBin ?? readTool("CONSUL_TEMPLATE_BIN") } : {};
        const gw = new Gateway(tools, await freePort(), await freePort(), env, { ...opts.env, ...extra, GATEWAY_CONF_DIR: confDir }, legacy);
        // The image's entry point: Node.js with source maps (stack traces name the TypeScript).
        const program = legacy ? ["bash", path.join(confDir, "entrypoint.sh")] : [process.execPath, "--enable-source-maps", bundleController()];
        // nofile: the container's file descriptor limit (soft and hard), as `docker run --ulimit` sets it.
        const limited = opts.nofile ? ["prlimit", `--nofile=${opts.nofile}:${opts.nofile}`, ...program] : program;
        const command = opts.cpus ? ["taskset", "-c", opts.cpus, ...limited] : limited;
        const proc = new Proc("gateway", command[0]!, command.slice(1), {
            env: gw.env,
            stdout: "ignore",
        });
        gw.proc = proc;
        for (const re of [Gateway.RELOADED, Gateway.REJECTED, Gateway.LOADING_SUCCESS]) proc.stderr.watch(re);
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`gateway exited:\n${proc.output()}`);
                // The bootstrap config answers 503 everywhere; the rendered one has a 404 "no route".
                const res = await gw.get("/-/controlplane-ready-probe", { timeoutMs: 1000 });
                if (opts.waitForRender === false) return res.status === 503 || res.status === 404;
                return res.status === 404 && res.body === "no route\n";
            },
            { timeoutMs: opts.readyTimeoutMs ?? 30_000, intervalMs: 25, message: "gateway to serve the rendered config" },
        ).catch(async (err: Error) => {
            const out = proc.output();
            await gw.destroy();
            throw new Error(`${err.message}\n${out}`);
        });
        return gw;
    }

    url(p: string): string {
        return `http://127.0.0.1:${this.httpPort}${p}`;
    }

    get(p: string, opts: HttpOptions = {}): Promise<HttpResult> {
        return httpRequest(this.url(p), opts);
    }

    /** Number of reloads reload.sh performed ("gateway: config reloaded" on stderr). */
    reloads(): number {
        return this.proc?.stderr.count(Gateway.RELOADED) ?? 0;
    }

    /**
     * Waits until the controller's log (stderr, from `from` characters on) has a line matching `re`:
     * it logs a change once it has seen it applied, a moment after a client can see the change itself.
     */
    async logged(re: RegExp, o: { from?: number; timeoutMs?: number } = {}): Promise<void> {
        await waitFor(() => re.test(this.proc?.stderr.toString().slice(o.from ?? 0) ?? "") || undefined, {
            timeoutMs: o.timeoutMs ?? 10_000,
            intervalMs: 50,
            message: `the gateway's log to say ${re}`,
        });
    }

    /** Number of renders reload.sh rejected (haproxy -c failed). */
    rejections(): number {
        return this.proc?.stderr.count(Gateway.REJECTED) ?? 0;
    }

    /** Number of "Loading success" lines from the master (the start, then one per reload). */
    loadingSuccesses(): number {
        return this.proc?.stderr.count(Gateway.LOADING_SUCCESS) ?? 0;
    }

    get liveConfigPath(): string {
        return path.join(this.runDir, "haproxy.cfg");
    }

    get renderedConfigPath(): string {
        return path.join(this.runDir, "haproxy.cfg.new");
    }

    get rejectedConfigPath(): string {
        return path.join(this.runDir, "haproxy.cfg.rejected");
    }

    /** The last render of consul-template ("new") or the config HAProxy was reloaded with ("live"). */
    readRenderedConfig(which: "new" | "live" = "new"): string {
        return fs.readFileSync(which === "new" ? this.renderedConfigPath : this.liveConfigPath, "utf8");
    }

    /** `haproxy -c` on a file with the gateway's environment (the config uses its variables). */
    haproxyCheck(file: string): { ok: boolean; output: string } {
        // As the controller starts HAProxy: the stats password in HAProxy's environment.
        const r = spawnSync(this.tools.HAPROXY_BIN, ["-c", "-f", file], { env: { ...this.env, STATS_PASSWORD: this.statsPassword }, encoding: "utf8" });
        return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
    }

    /** One command on the running worker's admin socket (the timeout catches a hung socket, not a slow one). */
    admin(command: string, timeoutMs?: number): Promise<string> {
        return unixSocketCommand(path.join(this.runDir, "admin.sock"), command, timeoutMs);
    }

    /** `show info` of the running worker as a map (Maxconn, Pid, Uptime_sec, ...). */
    async showInfo(): Promise<Record<string, string>> {
        const out = await this.admin("show info");
        const info: Record<string, string> = {};
        for (const line of out.split("\n")) {
            const i = line.indexOf(":");
            if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
        }
        return info;
    }

    /** HAProxy's view of a backend's servers: name -> status (UP, DOWN, MAINT, no check...), from `show stat`. */
    serverStates(backend: string): Promise<Record<string, string>> {
        return this.serverStat(backend, "status");
    }

    /** One `show stat` column for each server of a backend: server name -> value. */
    async serverStat(backend: string, column: string): Promise<Record<string, string>> {
        // With thousands of servers (scale.test.ts: 10,000) the dump takes seconds on a busy machine.
        const rows = (await this.admin("show stat", 30_000)).split("\n");
        const header = (rows[0] ?? "").replace(/^# /, "").split(",");
        const col = header.indexOf(column);
        if (col < 0) throw new Error(`show stat has no column ${column}`);
        const out: Record<string, string> = {};
        for (const row of rows.slice(1)) {
            const f = row.split(",");
            if (f[0] === backend && f[1] !== "BACKEND" && f[1] !== "FRONTEND") out[f[1]!] = f[col]!;
        }
        return out;
    }

    /**
     * How many times the HAProxy master reloaded, by the master itself (`show proc` on its CLI:
     * the master's line ends with its reload count), independent of what reload.sh logs.
     */
    async masterReloads(): Promise<number> {
        // The master re-creates its socket when it re-executes for a reload: retry briefly.
        const out = await waitFor(() => unixSocketCommand(path.join(this.runDir, "master.sock"), "show proc").catch(() => undefined), {
            timeoutMs: 5000,
            message: "the master CLI answers",
        });
        const master = out.split("\n").find((l) => /\bmaster\b/.test(l));
        const fields = master?.trim().split(/\s+/) ?? [];
        const n = Number(fields[2]);
        if (!Number.isInteger(n)) throw new Error(`no reload count in the master's "show proc": ${out}`);
        return n;
    }

    async stop(): Promise<void> {
        await this.proc?.stop(5000);
        this.proc = undefined;
    }

    async destroy(): Promise<void> {
        await this.stop();
        removeTempDir(this.runDir);
    }
}
