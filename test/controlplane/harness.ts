// Control-plane test harness: real Consul, the real gateway entrypoint (HAProxy master-worker +
// consul-template, exactly as in the image) and real HTTP backends (hello.py), all on free
// loopback ports, each in its own process group and temp dir. Everything started here is
// stopped again: by stop()/after hooks, and by a process 'exit' safety net if a test dies.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { AGENT_TOKEN_SCRIPT, agentConfig, CONSUL_HOST, serverTlsName } from "../../components/consul-agent-config";
import { ANONYMOUS_TOKEN_ACCESSOR_ID, POLICIES, type Role } from "../../components/consul-policies";
import type { HelloResponse } from "../support/hello";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const GATEWAY_CONF_DIR = path.join(REPO_ROOT, "components", "images", "gateway");
export const HELLO_PY = path.join(REPO_ROOT, "components", "images", "hello", "hello.py");

// ---------------------------------------------------------------------------------------------
// The tests' node network. The gateway never routes to loopback (127.0.0.0/8), so backends
// listen and are registered on addresses of the benchmarking range 198.18.0.0/15 (RFC 2544),
// added to the loopback interface: reachable from this machine only. The gateway is told
// TEST_NETWORK is the network the stack declares, NODE_ADDRESS its node, GATEWAY_OWN_ADDRESS its
// own address (components/gateway.ts computes the same variables for a stack).
export const TEST_NETWORK = "198.18.0.0/24";
/** The node: backends listen and are registered here, as Registrator registers a node address. */
export const NODE_ADDRESS = "198.18.0.1";
/** The gateway's own address, as far as its trust rules know: nothing is ever routed there. */
export const GATEWAY_OWN_ADDRESS = "198.18.0.2";
/** Outside TEST_NETWORK: a backend may listen here but is never routed to. */
export const OUTSIDE_ADDRESS = "198.18.1.1";
const TEST_ADDRESSES = [NODE_ADDRESS, GATEWAY_OWN_ADDRESS, OUTSIDE_ADDRESS];
let testAddressesReady = false;

/** Puts the test addresses on the loopback interface when missing (as test/tools/install.sh does). */
export function ensureTestAddresses(): void {
    if (testAddressesReady) return;
    const present = new Set(Object.values(os.networkInterfaces()).flat().map((a) => a?.address));
    for (const address of TEST_ADDRESSES.filter((a) => !present.has(a))) {
        const r = process.getuid?.() === 0
            ? spawnSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { encoding: "utf8" })
            : undefined;
        if (!r || (r.status !== 0 && !/exists/i.test(r.stderr))) {
            throw new Error(`the control-plane tests need ${address} on the loopback interface: run bash test/tools/install.sh, or: sudo ip addr add ${address}/32 dev lo${r ? ` (${r.stderr.trim()})` : ""}`);
        }
    }
    testAddressesReady = true;
}

// ---------------------------------------------------------------------------------------------
// Tools

export interface Tools {
    CONSUL_BIN: string;
    CONSUL_TEMPLATE_BIN: string;
    HAPROXY_BIN: string;
    WRK_BIN: string;
    PYTHON_BIN: string;
}

/** Reads the tools.env written by test/tools/install.sh; variables in the environment win. */
export function readTools(): Tools {
    const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
    const file = path.join(cache, "service-discovery", "tools.env");
    const fromFile: Record<string, string> = {};
    if (fs.existsSync(file)) {
        for (const line of fs.readFileSync(file, "utf8").split("\n")) {
            const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
            if (m) fromFile[m[1]!] = m[2]!;
        }
    }
    const pick = (k: string, fallback?: string): string => {
        const v = process.env[k] || fromFile[k] || fallback;
        if (!v) throw new Error(`${k} is not set: run bash test/tools/install.sh (it writes ${file})`);
        return v;
    };
    return {
        CONSUL_BIN: pick("CONSUL_BIN"),
        CONSUL_TEMPLATE_BIN: pick("CONSUL_TEMPLATE_BIN"),
        HAPROXY_BIN: pick("HAPROXY_BIN"),
        WRK_BIN: pick("WRK_BIN"),
        PYTHON_BIN: pick("PYTHON_BIN", "python3"),
    };
}

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
        for (const pid of daemonPids) killPid(pid, "SIGKILL");
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

function killPid(pid: number, signal: NodeJS.Signals): boolean {
    try {
        process.kill(pid, signal);
        return true;
    } catch {
        return false;
    }
}

/** Tracks a process that left our process groups (a daemon), so that it is stopped at exit too. */
export function trackDaemon(pid: number): void {
    installSafetyNet();
    daemonPids.add(pid);
}

/** Stops tracked daemons: SIGTERM, then SIGKILL after graceMs. */
export async function stopDaemons(pids: number[], graceMs = 2000): Promise<void> {
    for (const pid of pids) killPid(pid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    const alive = (pid: number): boolean => {
        try {
            process.kill(pid, 0);
            return true;
        } catch {
            return false;
        }
    };
    while (pids.some(alive) && Date.now() < deadline) await sleep(20);
    for (const pid of pids) {
        killPid(pid, "SIGKILL");
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

    constructor(readonly name: string, cmd: string, args: string[], opts: SpawnOptions = {}) {
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
    killGroup(signal: NodeJS.Signals): void {
        if (this.pid <= 0) return;
        try {
            process.kill(-this.pid, signal);
        } catch {
            /* group already gone */
        }
    }

    /** Whether a process of the group still runs; zombies (left for init to reap) do not count. */
    groupAlive(): boolean {
        if (this.pid <= 0) return false;
        try {
            process.kill(-this.pid, 0);
        } catch {
            return false;
        }
        let entries: string[];
        try {
            entries = fs.readdirSync("/proc").filter((e) => /^[0-9]+$/.test(e));
        } catch {
            return true; // no /proc: trust kill(0)
        }
        for (const e of entries) {
            let stat: string;
            try {
                stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
            } catch {
                continue;
            }
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
            if (Number(fields[2]) === this.pid && fields[0] !== "Z") return true;
        }
        return false;
    }

    /** SIGTERM to the group, SIGKILL after graceMs; waits (bounded) until the group is gone. */
    async stop(graceMs = 3000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
        if (!liveProcs.has(this)) return;
        this.killGroup(signal);
        let timer: NodeJS.Timeout | undefined;
        const leaderExited = await Promise.race([
            this.exited.then(() => true),
            new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
        ]);
        clearTimeout(timer);
        if (!leaderExited) this.killGroup("SIGKILL");
        await this.exited;
        // Members that outlive the leader (HAProxy workers, consul-template) get SIGKILL too.
        const deadline = Date.now() + 2000;
        while (this.groupAlive() && Date.now() < deadline) {
            this.killGroup("SIGKILL");
            await sleep(20);
        }
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

// ---------------------------------------------------------------------------------------------
// Small utilities

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
    timeoutMs?: number;
    intervalMs?: number;
    message?: string;
}

/** Polls `predicate` until it returns a truthy value (returned) or the timeout expires (throws). */
export async function waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const intervalMs = opts.intervalMs ?? 25;
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
        try {
            const v = await predicate();
            if (v) return v as NonNullable<T>;
            lastError = undefined;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() >= deadline) {
            const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message ?? "condition"}${why}`);
        }
        await sleep(intervalMs);
    }
}

const handedOut = new Set<number>();

async function tcpFree(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
            const p = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(p));
        });
    });
}

async function udpFree(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const s = dgram.createSocket("udp4");
        s.once("error", () => resolve(false));
        s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
}

/** A free loopback port (bound to port 0 and released); `udp` also checks the UDP port. */
export async function freePort(udp = false): Promise<number> {
    for (let i = 0; i < 50; i++) {
        const p = await tcpFree(0);
        if (handedOut.has(p)) continue;
        if (udp && !(await udpFree(p))) continue;
        handedOut.add(p);
        return p;
    }
    throw new Error("no free port found");
}

export interface HttpResult {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

export interface HttpOptions {
    method?: string;
    body?: string | Buffer;
    headers?: http.OutgoingHttpHeaders;
    timeoutMs?: number;
    /** Default: a new connection per request (false), so each request sees the current worker. */
    agent?: http.Agent | false;
    /** https:// URLs: the CA to verify the server with (PEM). */
    ca?: string;
    /** Send the request over this UNIX socket (the URL's host is then only the Host header). */
    socketPath?: string;
}

export function httpRequest(url: string, opts: HttpOptions = {}): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
        const request = url.startsWith("https:") ? https.request : http.request;
        const req = request(
            url,
            { method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false, ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.socketPath ? { socketPath: opts.socketPath } : {}) },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () =>
                    resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
                );
                res.on("error", reject);
            },
        );
        req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 5000} ms: ${url}`)));
        req.on("error", reject);
        if (opts.body !== undefined) req.write(opts.body);
        req.end();
    });
}

/** Sends one command to an HAProxy CLI socket (admin or master) and returns the answer. */
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

// ---------------------------------------------------------------------------------------------
// Consul

export interface ConsulPorts {
    /** Plain HTTP, loopback only (as in the container). */
    http: number;
    https: number;
    dns: number;
    serfLan: number;
    serfWan: number;
    server: number;
}

export interface Check {
    HTTP?: string;
    Interval?: string;
    Timeout?: string;
    Status?: "passing" | "warning" | "critical";
}

/** A service registration in Registrator's shape. */
export interface Registration {
    ID: string;
    Name: string;
    Tags?: string[];
    Address?: string;
    Port?: number;
    Check?: Check;
}

/** The tokens of a Consul agent started here, one per role as the stack creates them. */
export interface ConsulTokens {
    management: string;
    registrator: string;
    gateway: string;
    kvWriter: string;
}

/** What a client process needs to reach the agent: the variables Consul's clients read. */
export interface ConsulClientEnv {
    CONSUL_HTTP_ADDR: string;
    CONSUL_HTTP_SSL: "true";
    CONSUL_CACERT: string;
    CONSUL_HTTP_TOKEN: string;
}

/**
 * A real Consul server configured by the stack's own agentConfig() (ACLs default deny, TLS with
 * verify_incoming/outgoing/server_hostname, encrypted gossip, HTTP on loopback, API over HTTPS),
 * bootstrapped with the stack's own policies (components/consul-policies.ts) and its agent token
 * set by the stack's own script. Only ports and file locations differ from a deployment.
 */
export class ConsulAgent {
    proc: Proc | undefined;
    readonly dir: string;
    readonly tls: TestPki;
    readonly nodeName = "controlplane-test";
    readonly encryptKey = randomBytes(32).toString("base64");
    tokens: ConsulTokens;

    private constructor(
        private readonly tools: Tools,
        readonly ports: ConsulPorts,
        private readonly extraHcl: string[],
    ) {
        this.dir = makeTempDir("consul");
        fs.mkdirSync(path.join(this.dir, "data"));
        fs.mkdirSync(path.join(this.dir, "tmp"));
        this.tls = testPki();
        this.tokens = { management: randomUUID(), registrator: "", gateway: "", kvWriter: "" };
    }

    /**
     * Starts a single server (bootstrap_expect 1, state in its data dir as deployed) on free
     * loopback ports, and creates the ACL policies and tokens. `hcl` adds settings on top.
     * `persistent` is accepted for compatibility: every agent keeps its state across restart().
     */
    static async start(tools: Tools, opts: { hcl?: string[]; persistent?: boolean } = {}): Promise<ConsulAgent> {
        const ports: ConsulPorts = {
            http: await freePort(),
            https: await freePort(),
            dns: await freePort(true),
            serfLan: await freePort(true),
            serfWan: await freePort(true),
            server: await freePort(),
        };
        const agent = new ConsulAgent(tools, ports, opts.hcl ?? []);
        agent.writeConfig();
        await agent.launch();
        await agent.bootstrapAcls();
        return agent;
    }

    /** host:port of the HTTPS API. */
    get addr(): string {
        return `127.0.0.1:${this.ports.https}`;
    }

    get url(): string {
        return `https://${this.addr}`;
    }

    /** The agent's HTTP socket: how Registrator reaches it (components/registrator.ts). */
    get socketPath(): string {
        return path.join(this.dir, "http.sock");
    }

    get configFile(): string {
        return path.join(this.dir, "agent.json");
    }

    /** The environment a client of `role` gets in the stack (gateway, Registrator, ...). */
    clientEnv(role: keyof ConsulTokens = "gateway"): ConsulClientEnv {
        return { CONSUL_HTTP_ADDR: this.addr, CONSUL_HTTP_SSL: "true", CONSUL_CACERT: this.tls.caFile, CONSUL_HTTP_TOKEN: this.tokens[role] };
    }

    private writeConfig(): void {
        const config = agentConfig({
            datacenter: "dc1",
            nodeName: this.nodeName,
            server: true,
            bootstrapExpect: 1,
            encryptKey: this.encryptKey,
            initialManagementToken: this.tokens.management,
            retryJoin: [],
            maxConnsPerClient: PRODUCTION_MAX_CONNS_PER_CLIENT,
            paths: { dataDir: path.join(this.dir, "data"), caFile: this.tls.caFile, certFile: this.tls.serverCert, keyFile: this.tls.serverKey, httpSocket: this.socketPath },
            ports: this.ports,
            clientAddr: "127.0.0.1",
            bindAddr: "127.0.0.1",
            advertiseAddr: "127.0.0.1",
        });
        fs.writeFileSync(this.configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    }

    private async launch(): Promise<void> {
        const args = ["agent", "-config-file", this.configFile, "-log-level", "warn", "-hcl", "performance { raft_multiplier = 1 }"];
        for (const h of this.extraHcl) args.push("-hcl", h);
        const env = { ...process.env, TMPDIR: path.join(this.dir, "tmp") };
        this.proc = new Proc("consul", this.tools.CONSUL_BIN, args, { env });
        this.proc.stdout.watch(ConsulAgent.ACL_BLOCKED);
        const proc = this.proc;
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`consul exited:\n${proc.output()}`);
                const leader = await this.api("GET", "/v1/status/leader", undefined, "", 1000).catch(() => undefined);
                if (!leader || leader.status !== 200 || leader.body.trim() === '""') return false;
                const nodes = await this.api("GET", "/v1/catalog/nodes", undefined, this.tokens.management, 1000).catch(() => undefined);
                return nodes?.status === 200 && nodes.body.includes(this.nodeName);
            },
            { timeoutMs: 30_000, intervalMs: 50, message: "Consul leader" },
        );
    }

    /** As components/consul-acl.ts does with the management token, through the same API. */
    private async bootstrapAcls(): Promise<void> {
        const m = this.tokens.management;
        for (const role of Object.keys(POLICIES) as Role[]) {
            const p = POLICIES[role];
            await this.ok("PUT", "/v1/acl/policy", { Name: p.name, Description: p.description, Rules: p.rules, Datacenters: ["dc1"] }, m);
        }
        await this.ok("PUT", `/v1/acl/token/${ANONYMOUS_TOKEN_ACCESSOR_ID}`, { Policies: [{ Name: POLICIES.anonymous.name }] }, m);
        const create = async (body: unknown): Promise<string> => JSON.parse((await this.ok("PUT", "/v1/acl/token", body, m)).body).SecretID as string;
        this.tokens.registrator = await create({ Description: "registrator", Policies: [{ Name: POLICIES.registrator.name }] });
        this.tokens.gateway = await create({ Description: "gateway", Policies: [{ Name: POLICIES.gateway.name }] });
        this.tokens.kvWriter = await create({ Description: "kv writer", Policies: [{ Name: POLICIES.kvWriter.name }] });
        const agentToken = await create({ Description: "agent", NodeIdentities: [{ NodeName: this.nodeName, Datacenter: "dc1" }] });
        // The stack's own script sets it, with the management token from the environment.
        const r = spawnSync(process.execPath, [path.join(REPO_ROOT, AGENT_TOKEN_SCRIPT)], {
            env: { ...process.env, CONSUL_HTTP_ADDR: this.url, CONSUL_CACERT_PEM: fs.readFileSync(this.tls.caFile, "utf8"), CONSUL_HTTP_TOKEN: m, CONSUL_AGENT_TOKEN: agentToken, CONSUL_NODE: this.nodeName, TIMEOUT_SECONDS: "30" },
            encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`setting the agent token failed: ${r.stdout}${r.stderr}`);
        this.aclBlocksBeforeToken = this.proc?.stdout.count(ConsulAgent.ACL_BLOCKED) ?? 0;
    }

    /** The agent's own updates refused by ACLs: expected until its agent token is set, never after. */
    static readonly ACL_BLOCKED = /blocked by ACLs/;
    private aclBlocksBeforeToken = 0;

    /** "… blocked by ACLs" warnings the agent logged since its agent token was set. */
    aclBlocksSinceToken(): number {
        return (this.proc?.stdout.count(ConsulAgent.ACL_BLOCKED) ?? 0) - this.aclBlocksBeforeToken;
    }

    /** Stops the agent (its data dir and ports stay reserved for restart()). */
    async stop(): Promise<void> {
        await this.proc?.stop(5000, "SIGINT");
        this.proc = undefined;
    }

    /** Starts the agent again on the same ports and data dir; ACLs and tokens persist. */
    async restart(): Promise<void> {
        if (this.proc) await this.stop();
        await this.launch();
    }

    /** Stops the agent and removes its temp dir. */
    async destroy(): Promise<void> {
        await this.stop();
        removeTempDir(this.dir);
    }

    /** One request to the HTTPS API; `token` defaults to the management token ("" for none). */
    async api(method: string, apiPath: string, body?: unknown, token: string = this.tokens.management, timeoutMs = 5000): Promise<HttpResult> {
        const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
        return httpRequest(`${this.url}${apiPath}`, {
            method, body: payload, timeoutMs, ca: this.tls.caPem,
            headers: token ? { "X-Consul-Token": token } : {},
        });
    }

    private async ok(method: string, apiPath: string, body?: unknown, token?: string): Promise<HttpResult> {
        const res = await this.api(method, apiPath, body, token);
        if (res.status !== 200) throw new Error(`${method} ${apiPath}: HTTP ${res.status}: ${res.body}`);
        return res;
    }

    /** One request as Registrator makes it: over the agent's UNIX socket, with Registrator's token. */
    async registratorApi(method: string, apiPath: string, body?: unknown): Promise<HttpResult> {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        return httpRequest(`http://consul${apiPath}`, { method, body: payload, timeoutMs: 5000, socketPath: this.socketPath, headers: { "X-Consul-Token": this.tokens.registrator } });
    }

    /** Registers through the agent API as Registrator does (its socket, its token); throws on a non-200 answer. */
    async register(reg: Registration): Promise<void> {
        const res = await this.registratorApi("PUT", "/v1/agent/service/register", reg);
        if (res.status !== 200) throw new Error(`register ${reg.ID}: HTTP ${res.status}: ${res.body}`);
    }

    /** Like register() but returns the HTTP status (Consul rejects some hostile input). */
    async tryRegister(reg: Registration, token: string = this.tokens.registrator): Promise<HttpResult> {
        return this.api("PUT", "/v1/agent/service/register", reg, token);
    }

    async deregister(id: string): Promise<void> {
        const res = await this.registratorApi("PUT", `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
        if (res.status !== 200) throw new Error(`deregister ${id}: HTTP ${res.status}: ${res.body}`);
    }

    /** Writes a KV key with the token Pulumi uses for the gateway settings. */
    async kvPut(key: string, value: string): Promise<void> {
        const res = await this.ok("PUT", `/v1/kv/${key}`, value, this.tokens.kvWriter);
        if (res.body.trim() !== "true") throw new Error(`KV put ${key} failed: ${res.body}`);
    }

    async kvDelete(key: string): Promise<void> {
        await this.ok("DELETE", `/v1/kv/${key}`, undefined, this.tokens.kvWriter);
    }

    /** Health state of one service instance in the catalog ("passing", "critical", ...). */
    async checkStatus(serviceId: string): Promise<string | undefined> {
        const res = await this.api("GET", `/v1/agent/health/service/id/${encodeURIComponent(serviceId)}?format=text`);
        return res.status === 404 ? undefined : res.body.trim();
    }
}

// ---------------------------------------------------------------------------------------------
// TLS material for the tests: a CA and a server certificate made with openssl, once per process.

/** A test CA made with openssl, issuing certificates the way components/consul-tls.ts does. */
export class TestCa {
    readonly caFile: string;
    readonly caPem: string;
    private serial = 0;

    constructor(readonly dir: string, name: string) {
        this.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca-key.pem"]);
        this.run(["req", "-x509", "-new", "-key", "ca-key.pem", "-sha256", "-days", "2", "-subj", `/CN=${name}`, "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]);
        this.caFile = path.join(dir, "ca.pem");
        this.caPem = fs.readFileSync(this.caFile, "utf8");
    }

    private run(args: string[]): void {
        const r = spawnSync("openssl", args, { cwd: this.dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
    }

    /** A key and certificate for `dnsNames` (the first is the CN) and 127.0.0.1; file paths. */
    issue(dnsNames: string[]): { cert: string; key: string } {
        const n = ++this.serial;
        this.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `agent-${n}-key.pem`]);
        this.run(["req", "-new", "-key", `agent-${n}-key.pem`, "-subj", `/CN=${dnsNames[0]}`, "-out", `agent-${n}.csr`]);
        fs.writeFileSync(path.join(this.dir, `agent-${n}.cnf`), [
            `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(",")},IP:127.0.0.1`,
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
        ].join("\n"));
        this.run(["x509", "-req", "-in", `agent-${n}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2", "-sha256", "-extfile", `agent-${n}.cnf`, "-out", `agent-${n}.pem`]);
        fs.chmodSync(path.join(this.dir, `agent-${n}-key.pem`), 0o600);
        return { cert: path.join(this.dir, `agent-${n}.pem`), key: path.join(this.dir, `agent-${n}-key.pem`) };
    }
}

export interface TestPki {
    ca: TestCa;
    caFile: string;
    caPem: string;
    serverCert: string;
    serverKey: string;
}

let pki: TestPki | undefined;

/** The tests' CA and a certificate for server.dc1.consul (+ consul, localhost, 127.0.0.1), as ConsulTls issues; once per process. */
export function testPki(): TestPki {
    if (pki) return pki;
    const ca = new TestCa(makeTempDir("pki"), "Consul CA controlplane-test");
    const server = ca.issue([serverTlsName("dc1"), CONSUL_HOST, "localhost"]);
    pki = { ca, caFile: ca.caFile, caPem: ca.caPem, serverCert: server.cert, serverKey: server.key };
    return pki;
}

// ---------------------------------------------------------------------------------------------
// Gateway

export class Gateway {
    proc: Proc | undefined;
    readonly runDir: string;
    readonly env: NodeJS.ProcessEnv;
    static readonly RELOADED = /gateway: config reloaded/;
    static readonly REJECTED = /gateway: rendered config rejected/;
    static readonly LOADING_SUCCESS = /Loading success/;

    private constructor(
        readonly tools: Tools,
        readonly httpPort: number,
        readonly statsPort: number,
        consul: ConsulClientEnv,
        extraEnv: NodeJS.ProcessEnv = {},
    ) {
        this.runDir = makeTempDir("gateway");
        this.env = {
            ...process.env,
            GATEWAY_CONF_DIR,
            GATEWAY_RUN_DIR: this.runDir,
            GATEWAY_HTTP_PORT: String(httpPort),
            GATEWAY_STATS_PORT: String(statsPort),
            GATEWAY_BIND: "127.0.0.1",
            ...consul,
            HAPROXY_BIN: tools.HAPROXY_BIN,
            CONSUL_TEMPLATE_BIN: tools.CONSUL_TEMPLATE_BIN,
            STATS_USER: "stats",
            STATS_PASSWORD: `pw-${process.pid}-${Date.now()}`,
            // Trust rules: the test network is the node network (as on target hosts); Consul's
            // published port and SSH are refused on the node, as the stack passes them.
            GATEWAY_BACKEND_NETWORKS: TEST_NETWORK,
            GATEWAY_NODE_NETWORKS: `${NODE_ADDRESS}/32`,
            GATEWAY_NODE_PORTS: `22 ${consul.CONSUL_HTTP_ADDR.split(":").pop()}`,
            GATEWAY_OWN_ADDRESSES: GATEWAY_OWN_ADDRESS,
            GATEWAY_TRUSTED_PROXIES: "",
            ...extraEnv,
        };
    }

    /**
     * Runs entrypoint.sh with bash, as the image does, and waits for the first rendered config.
     * `consul`: an agent (the gateway gets its token, as the stack gives it) or explicit client
     * variables (another token, a wrong CA...). `waitForRender: false` returns once it serves the bootstrap config.
     */
    static async start(tools: Tools, consul: ConsulAgent | ConsulClientEnv, opts: { readyTimeoutMs?: number; waitForRender?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Gateway> {
        const env = consul instanceof ConsulAgent ? consul.clientEnv("gateway") : consul;
        ensureTestAddresses();
        const gw = new Gateway(tools, await freePort(), await freePort(), env, opts.env);
        const proc = new Proc("gateway", "bash", [path.join(GATEWAY_CONF_DIR, "entrypoint.sh")], {
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
        const r = spawnSync(this.tools.HAPROXY_BIN, ["-c", "-f", file], { env: this.env, encoding: "utf8" });
        return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
    }

    /** One command on the running worker's admin socket. */
    admin(command: string): Promise<string> {
        return unixSocketCommand(path.join(this.runDir, "admin.sock"), command);
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

    async stop(): Promise<void> {
        await this.proc?.stop(5000);
        this.proc = undefined;
    }

    async destroy(): Promise<void> {
        await this.stop();
        removeTempDir(this.runDir);
    }
}

// ---------------------------------------------------------------------------------------------
// Backends

export type { HelloResponse } from "../support/hello";

export class Backend {
    private constructor(
        readonly proc: Proc,
        readonly port: number,
        readonly instance: string,
        readonly address: string,
    ) {}

    /** Starts hello.py on a free port of `address` (default NODE_ADDRESS); `instance` is the name it answers with. */
    static async start(tools: Tools, opts: { service: string; version?: string; instance: string; address?: string }): Promise<Backend> {
        ensureTestAddresses();
        const port = await freePort();
        const address = opts.address ?? NODE_ADDRESS;
        const env = {
            ...process.env,
            PORT: String(port),
            BIND: address,
            HELLO_SERVICE: opts.service,
            HELLO_VERSION: opts.version ?? "",
            HELLO_INSTANCE: opts.instance,
            PYTHONUNBUFFERED: "1",
        };
        const proc = new Proc(`hello ${opts.instance}`, tools.PYTHON_BIN, [HELLO_PY], { env });
        const b = new Backend(proc, port, opts.instance, address);
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`backend exited:\n${proc.output()}`);
                return (await httpRequest(`http://${address}:${port}/health`, { timeoutMs: 500 })).status === 200;
            },
            { timeoutMs: 10_000, intervalMs: 25, message: `backend ${opts.instance}` },
        );
        return b;
    }

    /** The ID Registrator would give this container: <host>:<container>:<port>. */
    get id(): string {
        return `${os.hostname()}:${this.instance}:${this.port}`;
    }

    get serverName(): string {
        return `${this.address}:${this.port}`;
    }

    /** The registration Registrator would make for it (tags rest + check=/health, HTTP check). */
    registration(name: string, opts: { tags?: string[]; interval?: string; status?: Check["Status"] } = {}): Registration {
        const check: Check = {
            HTTP: `http://${this.address}:${this.port}/health`,
            Interval: opts.interval ?? "1s",
            Timeout: "1s",
        };
        if (opts.status) check.Status = opts.status;
        return {
            ID: this.id,
            Name: name,
            Tags: opts.tags ?? ["rest", "check=/health"],
            Address: this.address,
            Port: this.port,
            Check: check,
        };
    }

    async stop(): Promise<void> {
        await this.proc.stop(2000);
    }
}

/**
 * A backend that answers from HAProxy itself (`http-request return`), ~20x the request rate of
 * hello.py: for load tests, where hello.py's ~1.5k req/s leave reload races almost no room.
 * Same contract as hello.py for what the tests read: GET /health -> "ok", else JSON with hostname.
 */
export class StaticBackend {
    private constructor(
        readonly proc: Proc,
        readonly port: number,
        readonly instance: string,
        private readonly dir: string,
    ) {}

    static async start(tools: Tools, instance: string): Promise<StaticBackend> {
        ensureTestAddresses();
        const port = await freePort();
        const dir = makeTempDir("static");
        // Formatted as hello.py's json.dumps, which waitForRoute() matches.
        const body = `{"service": "static", "version": "", "hostname": "${instance}"}`.replace(/"/g, '\\"');
        const cfg = [
            "global",
            "    maxconn 2000",
            "defaults",
            "    mode http",
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend static",
            `    bind ${NODE_ADDRESS}:${port}`,
            '    http-request return status 200 content-type text/plain string "ok" if { path /health }',
            `    http-request return status 200 content-type application/json string "${body}"`,
            "",
        ].join("\n");
        const file = path.join(dir, "static.cfg");
        fs.writeFileSync(file, cfg);
        const proc = new Proc(`static ${instance}`, tools.HAPROXY_BIN, ["-db", "-f", file], { stdout: "ignore" });
        const b = new StaticBackend(proc, port, instance, dir);
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`static backend exited:\n${proc.output()}`);
                return (await httpRequest(`http://${NODE_ADDRESS}:${port}/health`, { timeoutMs: 500 })).status === 200;
            },
            { timeoutMs: 10_000, message: `static backend ${instance}` },
        );
        return b;
    }

    get id(): string {
        return `${os.hostname()}:${this.instance}:${this.port}`;
    }

    registration(name: string): Registration {
        return {
            ID: this.id,
            Name: name,
            Tags: ["rest", "check=/health"],
            Address: NODE_ADDRESS,
            Port: this.port,
            Check: { HTTP: `http://${NODE_ADDRESS}:${this.port}/health`, Interval: "1s", Timeout: "1s", Status: "passing" },
        };
    }

    async stop(): Promise<void> {
        await this.proc.stop(2000);
        removeTempDir(this.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// wrk

export interface WrkResult {
    requests: number;
    non2xx: number;
    socketErrors: { connect: number; read: number; write: number; timeout: number };
    failed: number;
    requestsPerSec: number;
    raw: string;
}

export function parseWrk(out: string): WrkResult {
    const num = (re: RegExp): number => {
        const m = re.exec(out);
        return m ? Number(m[1]) : 0;
    };
    const requests = /(\d+) requests in/.exec(out);
    if (!requests) throw new Error(`cannot parse wrk output:\n${out}`);
    const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const socketErrors = se
        ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) }
        : { connect: 0, read: 0, write: 0, timeout: 0 };
    const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
    return {
        requests: Number(requests[1]),
        non2xx,
        socketErrors,
        failed: non2xx + socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout,
        requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
        raw: out,
    };
}

export interface WrkOptions {
    url: string;
    durationSec: number;
    threads?: number;
    connections?: number;
    headers?: string[];
    timeoutSec?: number;
}

/** Runs wrk (tracked like every other process) and parses its summary. */
export async function runWrk(tools: Tools, opts: WrkOptions): Promise<WrkResult> {
    const args = [
        "-t", String(opts.threads ?? 2),
        "-c", String(opts.connections ?? 64),
        "-d", `${opts.durationSec}s`,
        "--timeout", `${opts.timeoutSec ?? 5}s`,
    ];
    for (const h of opts.headers ?? []) args.push("-H", h);
    args.push(opts.url);
    const proc = new Proc("wrk", tools.WRK_BIN, args);
    const { code } = await proc.exited;
    await proc.stop();
    if (code !== 0) throw new Error(`wrk failed (${code}):\n${proc.output()}`);
    return parseWrk(proc.stdout.toString());
}

// ---------------------------------------------------------------------------------------------
// Harness: Consul + gateway + backends, torn down together

/** As the stack configures Consul (components/consul.ts): one blocking query per routed service. */
export const PRODUCTION_MAX_CONNS_PER_CLIENT = 8192;
export const PRODUCTION_CONSUL_LIMITS = `limits { http_max_conns_per_client = ${PRODUCTION_MAX_CONNS_PER_CLIENT} }`;

export class Harness {
    readonly backends: Backend[] = [];
    private readonly extras: Array<() => Promise<void>> = [];

    private constructor(
        readonly tools: Tools,
        readonly consul: ConsulAgent,
        readonly gateway: Gateway,
    ) {}

    /** `gatewayEnv`: variables for the gateway on top of the test defaults (e.g. GATEWAY_TRUSTED_PROXIES). */
    static async start(opts: { consulHcl?: string[]; persistentConsul?: boolean; gatewayEnv?: NodeJS.ProcessEnv } = {}): Promise<Harness> {
        const tools = readTools();
        const consul = await ConsulAgent.start(tools, {
            hcl: opts.consulHcl ?? [PRODUCTION_CONSUL_LIMITS],
            persistent: opts.persistentConsul ?? false,
        });
        let gateway: Gateway;
        try {
            gateway = await Gateway.start(tools, consul, { env: opts.gatewayEnv ?? {} });
        } catch (err) {
            await consul.destroy();
            throw err;
        }
        return new Harness(tools, consul, gateway);
    }

    /** A StaticBackend, stopped with the harness. */
    async startStaticBackend(instance: string): Promise<StaticBackend> {
        const b = await StaticBackend.start(this.tools, instance);
        this.onStop(() => b.stop());
        return b;
    }

    async startBackend(service: string, instance: string, version?: string): Promise<Backend> {
        const opts: { service: string; version?: string; instance: string } = { service, instance };
        if (version !== undefined) opts.version = version;
        const b = await Backend.start(this.tools, opts);
        this.backends.push(b);
        return b;
    }

    /** Starts a backend and registers it under `name` (Registrator's shape, check passing). */
    async addInstance(name: string, instance: string, opts: { tags?: string[] } = {}): Promise<Backend> {
        const m = /^(.*)-(v[0-9]+)$/.exec(name);
        const b = await this.startBackend(m ? m[1]! : name, instance, m ? m[2] : undefined);
        const regOpts: { tags?: string[]; status: Check["Status"] } = { status: "passing" };
        if (opts.tags) regOpts.tags = opts.tags;
        await this.consul.register(b.registration(name, regOpts));
        return b;
    }

    /** Registers a cleanup action run by stop() (e.g. closing a server a test created). */
    onStop(fn: () => Promise<void>): void {
        this.extras.push(fn);
    }

    /** Polls the gateway until a path answers with the expected status (and instance, if given). */
    async waitForRoute(p: string, opts: { status?: number; instance?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
        const status = opts.status ?? 200;
        return waitFor(
            async () => {
                const res = await this.gateway.get(p, { timeoutMs: 2000 });
                if (res.status !== status) return undefined;
                if (opts.instance !== undefined && !res.body.includes(`"hostname": "${opts.instance}"`)) return undefined;
                return res;
            },
            {
                timeoutMs: opts.timeoutMs ?? 10_000,
                message: `GET ${p} -> ${status}${opts.instance ? ` from ${opts.instance}` : ""}`,
            },
        );
    }

    /** Waits until the rendered config (and, when live, the swapped-in one) satisfies predicate. */
    async waitForConfig(predicate: (cfg: string) => boolean, message: string, timeoutMs = 10_000): Promise<string> {
        return waitFor(
            () => {
                const cfg = this.gateway.readRenderedConfig("live");
                return predicate(cfg) ? cfg : undefined;
            },
            { timeoutMs, message },
        );
    }

    /** Diagnostics for a failed assertion: process outputs and the rendered config. */
    diagnostics(): string {
        const tail = (s: string, n: number): string => (s.length > n ? `[...]${s.slice(-n)}` : s);
        const parts = [tail(this.gateway.proc?.output() ?? "", 6000), tail(this.consul.proc?.output() ?? "", 2000)];
        try {
            parts.push(`--- haproxy.cfg ---\n${tail(this.gateway.readRenderedConfig("live"), 6000)}`);
        } catch {
            /* not rendered */
        }
        return parts.join("\n");
    }

    async stop(): Promise<void> {
        const errors: unknown[] = [];
        const attempt = async (fn: () => Promise<void>): Promise<void> => {
            try {
                await fn();
            } catch (err) {
                errors.push(err);
            }
        };
        for (const fn of this.extras.splice(0)) await attempt(fn);
        await attempt(() => this.gateway.destroy());
        await attempt(() => this.consul.destroy());
        await Promise.all(this.backends.splice(0).map((b) => attempt(() => b.stop())));
        if (errors.length) throw errors[0];
    }
}

/** Parses a hello.py JSON answer. */
export function hello(res: HttpResult): HelloResponse {
    return JSON.parse(res.body) as HelloResponse;
}

/** Percentile (nearest rank) of a list of numbers. */
export function percentile(values: number[], p: number): number {
    if (values.length === 0) return NaN;
    const sorted = [...values].sort((a, b) => a - b);
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}
