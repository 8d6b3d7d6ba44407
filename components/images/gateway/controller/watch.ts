// Follows Consul through blocking queries and keeps the catalog (per node) and the gateway's KV
// settings in memory, emitting "change" when the data really changed.
//
// HTTP client: undici. Consul's HTTPS listener speaks HTTP/2, and undici (with allowH2) multiplexes
// every blocking query over one TCP connection: the number of connections to Consul stays bounded
// whatever the number of nodes and services. Clients that hold one connection per long poll
// (consul-template: one per service) run into Consul's per-client connection limit at scale.
// Over plain HTTP/1.1 a long poll holds a whole connection, so there the gateway keeps 3 blocking
// queries (KV, node list, /v1/catalog/services) and re-reads the nodes, a few at a time, when the
// catalog's index moves. Either way a pool of at most MAX_CONNECTIONS is the hard bound.
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool, buildConnector } from "undici";

export const MAX_CONNECTIONS = 5;
/** Per-node blocking queries over HTTP/2 up to this many nodes: they, the KV and the node list fit in one connection (100 streams). */
export const MAX_NODE_WATCHES = 90;
/** Node re-reads in flight at once when following /v1/catalog/services. */
export const REFETCH_CONCURRENCY = 3;
export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 5000;
/** Pause before re-issuing a blocking query that came back early with its index unchanged. */
export const SPIN_DELAY_MS = 1000;

export interface ConsulConnection {
    /** CONSUL_HTTP_ADDR: host:port, or a URL with http:// or https:// (https implies TLS). */
    addr: string;
    /** CONSUL_HTTP_SSL */
    https: boolean;
    /** CONSUL_CACERT: PEM file of the CA that signed Consul's certificate (verified always when https). */
    caFile?: string;
    /** CONSUL_TLS_SERVER_NAME: the name to verify instead of the address's host. */
    serverName?: string;
    /** CONSUL_HTTP_TOKEN */
    token?: string;
    /** CONSUL_HTTP_TOKEN_FILE: read at start and again whenever Consul answers 403 (a rotated token takes effect without a restart). */
    tokenFile?: string;
}

function readable(variable: string, file: string, what: string): void {
    try {
        fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
        throw new Error(`${variable}=${file} is not a readable ${what} (${(err as Error).message})`);
    }
}

/** The variables Consul's own clients read. Throws an Error naming the variable for a bad value. */
export function connectionFromEnv(env: NodeJS.ProcessEnv): ConsulConnection {
    const addr = env.CONSUL_HTTP_ADDR || "consul:8500";
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(addr)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
        throw new Error(`CONSUL_HTTP_ADDR=${addr}: only host:port, http:// or https:// are supported`);
    }
    const ssl = env.CONSUL_HTTP_SSL ?? "";
    if (!["", "true", "1", "false", "0"].includes(ssl)) throw new Error(`CONSUL_HTTP_SSL=${ssl} is not understood; use true or false`);
    if (["false", "0"].includes(env.CONSUL_HTTP_SSL_VERIFY ?? "")) {
        throw new Error(`CONSUL_HTTP_SSL_VERIFY=${env.CONSUL_HTTP_SSL_VERIFY}: the gateway always verifies Consul's certificate; set CONSUL_CACERT instead`);
    }
    const conn: ConsulConnection = { addr, https: scheme === "https" || ssl === "true" || ssl === "1" };
    if (env.CONSUL_CACERT) {
        readable("CONSUL_CACERT", env.CONSUL_CACERT, "CA file");
        conn.caFile = env.CONSUL_CACERT;
    }
    if (env.CONSUL_TLS_SERVER_NAME) conn.serverName = env.CONSUL_TLS_SERVER_NAME;
    if (env.CONSUL_HTTP_TOKEN) conn.token = env.CONSUL_HTTP_TOKEN;
    if (env.CONSUL_HTTP_TOKEN_FILE) {
        readable("CONSUL_HTTP_TOKEN_FILE", env.CONSUL_HTTP_TOKEN_FILE, "token file");
        conn.tokenFile = env.CONSUL_HTTP_TOKEN_FILE;
    }
    return conn;
}

/** The origin (scheme://host:port) to send requests to. */
export function consulOrigin(conn: ConsulConnection): string {
    const hostPort = conn.addr.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
    return `${conn.https ? "https" : "http"}://${hostPort}`;
}

export interface CatalogService {
    id: string;
    service: string;
    address: string;
    port: number;
    tags: string[];
}
/** A node as GET /v1/catalog/node/<node> gives it: its services (the Services map's values, sorted by ID; a service's Address as given, "" allowed). */
export interface CatalogNode {
    node: string;
    address: string;
    services: CatalogService[];
}
export interface ConsulState {
    /** Full keys under the prefix -> values (base64-decoded as UTF-8). */
    kv: ReadonlyMap<string, string>;
    nodes: ReadonlyMap<string, CatalogNode>;
}
/** One watch ("kv", "nodes", "services", "node:<name>"): its last index, when it last answered (epoch ms, 0 = never), its failures. */
export interface WatchStatus {
    name: string;
    index: number;
    lastSuccessMs: number;
    errors: number;
    stalls: number;
}
export interface WatchOptions {
    /** With its trailing slash ("service/haproxy/"): without it, "service/haproxy-x/..." would match too. */
    kvPrefix: string;
    /** Blocking wait; default 300. */
    waitSeconds?: number;
    /** Default true: any server answers (?stale), like consul-template's max_stale. */
    stale?: boolean;
    /** One line per event; default stderr. */
    log?: (line: string) => void;
}
/** What a "change" event carries: whether the KV changed, and the nodes whose services changed, appeared or disappeared. */
export interface ChangeEvent {
    kv: boolean;
    nodes: string[];
}

// ---- Pure helpers (index handling per Consul's blocking-query guide, back-off, timeouts) ----

/** The index for the next request: reset to 0 when it went backwards, never below 1 after an answer; a missing header keeps the last one. */
export function nextIndex(prev: number, header: string | string[] | undefined): number {
    const raw = Array.isArray(header) ? header[0] : header;
    const got = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : prev;
    if (got < prev) return 0;
    return Math.max(got, 1);
}

/** A blocking query that returned well before its wait with the same index waits a little before the next one. */
export function spinDelayMs(requested: number, next: number, elapsedMs: number, waitSeconds: number): number {
    return requested > 0 && next === requested && elapsedMs < (waitSeconds * 1000) / 2 ? SPIN_DELAY_MS : 0;
}

/** Exponential back-off with full jitter: uniform in [0, min(max, min * 2^attempt)). */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
    return Math.floor(random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16)));
}

/** Consul holds a blocking query up to wait + wait/16 of jitter; past this the request is presumed lost. */
export function stallTimeoutMs(waitSeconds: number): number {
    return (waitSeconds + Math.max(waitSeconds / 16, 15) + 5) * 1000;
}

/** GET /v1/kv/<prefix>?recurse -> full key -> value (base64-decoded as UTF-8; a null value is ""). */
export function parseKv(body: unknown): Map<string, string> {
    const kv = new Map<string, string>();
    if (!Array.isArray(body)) throw new Error("KV answer is not a list");
    for (const e of body as unknown[]) {
        const rec = asRecord(e);
        if (typeof rec.Key !== "string") throw new Error("KV entry without a Key");
        kv.set(rec.Key, typeof rec.Value === "string" ? Buffer.from(rec.Value, "base64").toString("utf8") : "");
    }
    return kv;
}

/** GET /v1/catalog/node/<n> -> the node with its services sorted by ID (undefined when Consul answers null). */
export function parseNode(body: unknown): CatalogNode | undefined {
    if (body === null) return undefined;
    const rec = asRecord(body);
    const node = asRecord(rec.Node);
    const services = Object.values(rec.Services === null || rec.Services === undefined ? {} : asRecord(rec.Services)).map((v): CatalogService => {
        const s = asRecord(v);
        return {
            id: String(s.ID ?? ""),
            service: String(s.Service ?? ""),
            address: String(s.Address ?? ""),
            port: Number(s.Port ?? 0),
            tags: Array.isArray(s.Tags) ? s.Tags.map(String) : [],
        };
    });
    services.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { node: String(node.Node ?? ""), address: String(node.Address ?? ""), services };
}

/** GET /v1/catalog/nodes -> name -> address. */
export function parseNodeList(body: unknown): Map<string, string> {
    if (!Array.isArray(body)) throw new Error("node list is not a list");
    return new Map((body as unknown[]).map((e) => [String(asRecord(e).Node ?? ""), String(asRecord(e).Address ?? "")]));
}

function asRecord(v: unknown): Record<string, unknown> {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("unexpected JSON from Consul");
    return v as Record<string, unknown>;
}

function sameKv(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (b.get(k) !== v) return false;
    return true;
}

function sameNode(a: CatalogNode | undefined, b: CatalogNode | undefined): boolean {
    return JSON.stringify(a) === JSON.stringify(b);
}

// ---- Plumbing ----

class StallError extends Error {}
/** The request's connection pool was replaced under it (after a stall): re-issue at once. */
class SupersededError extends Error {}

interface Reply {
    status: number;
    index: string | string[] | undefined;
    text: string;
}

/** Wakes the node re-reads when /v1/catalog/services (or the node list) moved. */
class Trigger {
    generation = 0;
    private waiters: (() => void)[] = [];
    bump(): void {
        this.generation++;
        for (const w of this.waiters.splice(0)) w();
    }
    async after(seen: number, signal: AbortSignal): Promise<number> {
        while (this.generation <= seen && !signal.aborted) await new Promise<void>((r) => this.waiters.push(r));
        return this.generation;
    }
    wakeAll(): void {
        for (const w of this.waiters.splice(0)) w();
    }
}

class Limiter {
    private free: number;
    private waiters: (() => void)[] = [];
    constructor(n: number) {
        this.free = n;
    }
    async acquire(): Promise<() => void> {
        while (this.free === 0) await new Promise<void>((r) => this.waiters.push(r));
        this.free--;
        let done = false;
        return () => {
            if (done) return;
            done = true;
            this.free++;
            this.waiters.shift()?.();
        };
    }
}

interface LoopSpec {
    name: string;
    /** Path with the query parameters other than index and wait. */
    path: string;
    blocking: boolean;
    /** Statuses other than 200 that carry an answer (the KV prefix: 404 = empty). */
    alsoOk?: number[];
    /** Re-read on a trigger instead of blocking. */
    trigger?: Trigger;
    limiter?: Limiter;
    onData(reply: Reply, moved: boolean): void;
}

/** One watch: request, hand over the answer, repeat; back-off on errors, forever until stopped. */
class Loop {
    readonly status: WatchStatus;
    answered = false;
    private index = 0;
    private seen = 0;
    private readonly abort = new AbortController();
    readonly done: Promise<void>;

    constructor(
        private readonly w: ConsulWatch,
        readonly spec: LoopSpec,
    ) {
        this.status = { name: spec.name, index: 0, lastSuccessMs: 0, errors: 0, stalls: 0 };
        this.done = this.run();
    }

    stop(): Promise<void> {
        this.abort.abort();
        this.spec.trigger?.wakeAll();
        this.w.forget(this);
        return this.done;
    }

    private async run(): Promise<void> {
        const signal = this.abort.signal;
        let failures = 0;
        while (!signal.aborted) {
            let pause = 0;
            let release: (() => void) | undefined;
            try {
                let generation = 0;
                if (this.spec.trigger) {
                    generation = await this.spec.trigger.after(this.seen, signal);
                    release = await this.spec.limiter?.acquire();
                    if (signal.aborted) return;
                }
                const requested = this.spec.blocking ? this.index : 0;
                const t0 = Date.now();
                const reply = await this.w.get(this.spec.path, requested, signal);
                if (signal.aborted) return;
                if (reply.status === 200 || this.spec.alsoOk?.includes(reply.status)) {
                    const next = nextIndex(this.index, reply.index);
                    this.spec.onData(reply, next !== this.index || !this.answered);
                    this.index = this.status.index = next;
                    this.seen = generation;
                    this.status.lastSuccessMs = Date.now();
                    this.answered = true;
                    failures = 0;
                    this.w.succeeded(this);
                    if (this.spec.blocking) pause = spinDelayMs(requested, next, Date.now() - t0, this.w.waitSeconds);
                } else {
                    this.status.errors++;
                    pause = backoffMs(failures++);
                    await this.w.refused(this, reply);
                }
            } catch (err) {
                if (signal.aborted) return;
                if (err instanceof SupersededError) continue;
                const message = err instanceof Error ? err.message : String(err);
                if (err instanceof StallError) {
                    this.status.stalls++;
                    this.w.problem(this, message, "stall");
                } else {
                    this.status.errors++;
                    pause = backoffMs(failures++);
                    this.w.problem(this, `Consul request ${this.spec.path} failed: ${message}`, message);
                }
            } finally {
                release?.();
            }
            if (pause > 0) await sleep(pause, undefined, { signal }).catch(() => undefined);
        }
    }
}

/** Emits "ready" once, then "change" (a ChangeEvent) after each real change of the data. */
export class ConsulWatch extends EventEmitter {
    readonly waitSeconds: number;
    private readonly stale: boolean;
    private readonly log: (line: string) => void;
    private readonly origin: string;
    private readonly ca: string | undefined;
    private token: string | undefined;
    private pool: Pool | undefined;
    private generation = 0;
    private readonly sockets = new Set<Socket>();
    private h2 = false;
    private protocol: string | undefined;
    private running = false;
    private isReady = false;

    private kv: ReadonlyMap<string, string> = new Map();
    private nodes: ReadonlyMap<string, CatalogNode> = new Map();
    private nodeList = new Map<string, string>();

    private kvLoop: Loop | undefined;
    private nodesLoop: Loop | undefined;
    private servicesLoop: Loop | undefined;
    private readonly nodeLoops = new Map<string, Loop>();
    private perNode: boolean | undefined;
    private readonly refetch = new Trigger();
    private readonly limiter = new Limiter(REFETCH_CONCURRENCY);

    /** Failures reported once each until every watch is healthy again. */
    private readonly reported = new Set<string>();
    private readonly failing = new Set<Loop>();

    constructor(
        private readonly conn: ConsulConnection,
        private readonly opts: WatchOptions,
    ) {
        super();
        this.waitSeconds = opts.waitSeconds ?? 300;
        this.stale = opts.stale ?? true;
        this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
        this.origin = consulOrigin(conn);
        this.ca = conn.https && conn.caFile ? fs.readFileSync(conn.caFile, "utf8") : undefined;
    }

    /** True once the KV watch, the node list and every listed node have answered once ("ready" is emitted then; "change" events follow it). */
    get ready(): boolean {
        return this.isReady;
    }

    /** The current snapshot: the maps are replaced, never mutated, so a caller may keep a reference. */
    state(): ConsulState {
        return { kv: this.kv, nodes: this.nodes };
    }

    statuses(): WatchStatus[] {
        const loops = [this.kvLoop, this.nodesLoop, this.servicesLoop, ...this.nodeLoops.values()];
        return loops.filter((l): l is Loop => l !== undefined).map((l) => ({ ...l.status }));
    }

    /** Open TCP connections to Consul right now. */
    connections(): number {
        return this.sockets.size;
    }

    start(): void {
        if (this.running) return;
        this.running = true;
        this.token = this.conn.token;
        if (this.conn.tokenFile) this.token = fs.readFileSync(this.conn.tokenFile, "utf8").trim() || this.conn.token;
        this.pool = this.newPool();
        const prefix = this.opts.kvPrefix.split("/").map(encodeURIComponent).join("/");
        this.kvLoop = new Loop(this, { name: "kv", path: `/v1/kv/${prefix}?recurse`, blocking: true, alsoOk: [404], onData: (r) => this.onKv(r) });
        this.nodesLoop = new Loop(this, { name: "nodes", path: "/v1/catalog/nodes", blocking: true, onData: (r) => this.onNodeList(r) });
    }

    async stop(): Promise<void> {
        this.running = false;
        const loops = [this.kvLoop, this.nodesLoop, this.servicesLoop, ...this.nodeLoops.values()];
        this.kvLoop = this.nodesLoop = this.servicesLoop = undefined;
        this.nodeLoops.clear();
        await Promise.all(loops.map((l) => l?.stop()));
        await this.pool?.destroy().catch(() => undefined);
        this.pool = undefined;
    }

    // ---- Requests ----

    private newPool(): Pool {
        const base = buildConnector({
            allowH2: this.conn.https,
            preferH2: true,
            timeout: 10_000,
            ...(this.conn.https ? { ca: this.ca, servername: this.conn.serverName } : {}),
        });
        const generation = this.generation;
        return new Pool(this.origin, {
            connections: MAX_CONNECTIONS,
            allowH2: this.conn.https,
            // Our own stall watchdog bounds each request; undici's 300 s defaults would cut a blocking query short.
            headersTimeout: 0,
            bodyTimeout: 0,
            connect: (options, callback) =>
                base(options, (err, socket) => {
                    if (socket) this.track(socket, generation);
                    if (err) callback(err, null);
                    else callback(null, socket!);
                }),
        });
    }

    private track(socket: Socket | TLSSocket, generation: number): void {
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        const protocol = "alpnProtocol" in socket && socket.alpnProtocol === "h2" ? "h2" : "http/1.1";
        if (generation === this.generation) this.h2 = protocol === "h2";
        if (protocol === this.protocol) return;
        this.protocol = protocol;
        this.log(`gateway: Consul at ${this.origin} speaks ${protocol}`);
    }

    /** One GET; `index` 0 = not blocking. Aborted and reported as a stall past the watchdog's limit. */
    async get(pathAndQuery: string, index: number, signal: AbortSignal): Promise<Reply> {
        const params: string[] = [];
        if (index > 0) params.push(`index=${index}`, `wait=${this.waitSeconds}s`);
        if (this.stale) params.push("stale");
        const sep = pathAndQuery.includes("?") ? "&" : "?";
        const path = params.length ? `${pathAndQuery}${sep}${params.join("&")}` : pathAndQuery;
        const limitMs = stallTimeoutMs(index > 0 ? this.waitSeconds : 0);
        // One controller per request, fed by the watch's stop and by the stall timer.
        const abort = new AbortController();
        let stalled = false;
        const timer = setTimeout(() => {
            stalled = true;
            abort.abort();
        }, limitMs);
        const onStop = (): void => abort.abort();
        signal.addEventListener("abort", onStop, { once: true });
        const pool = this.pool;
        const generation = this.generation;
        try {
            if (!pool) throw new SupersededError("stopped");
            const headers: Record<string, string> = this.token ? { "x-consul-token": this.token } : {};
            const res = await pool.request({ method: "GET", path, headers, signal: abort.signal });
            const text = await res.body.text();
            return { status: res.statusCode, index: res.headers["x-consul-index"], text };
        } catch (err) {
            if (stalled && !signal.aborted) {
                this.recycle(generation);
                throw new StallError(`Consul did not answer ${pathAndQuery} within ${limitMs / 1000} s: aborted and re-issued on a new connection`);
            }
            if (generation !== this.generation) throw new SupersededError("connection replaced");
            throw err;
        } finally {
            clearTimeout(timer);
            signal.removeEventListener("abort", onStop);
        }
    }

    /** A stalled request may sit on a dead connection (over HTTP/2 every watch shares it): start over with new connections. */
    private recycle(generation: number): void {
        if (generation !== this.generation || !this.running) return;
        this.generation++;
        const old = this.pool;
        this.pool = this.newPool();
        void old?.destroy().catch(() => undefined);
    }

    /** A non-200 answer. On 403 the token file is read again: a rotated token takes effect on the next attempt. */
    async refused(loop: Loop, reply: Reply): Promise<void> {
        const body = reply.text.trim().slice(0, 200);
        const path = loop.spec.path;
        if (reply.status === 403) {
            if (this.conn.tokenFile) {
                const fresh = await fs.promises.readFile(this.conn.tokenFile, "utf8").then(
                    (t) => t.trim(),
                    () => "",
                );
                if (fresh) this.token = fresh;
            }
            this.problem(loop, `Consul denied the gateway's token (403) on ${path}: ${body}`, `403 ${body}`);
        } else {
            this.problem(loop, `Consul answered ${reply.status} on ${path}: ${body}`, `${reply.status} ${body}`);
        }
    }

    problem(loop: Loop, message: string, key: string): void {
        this.failing.add(loop);
        if (this.reported.has(key)) return;
        this.reported.add(key);
        this.log(`gateway: ${message}`);
    }

    succeeded(loop: Loop): void {
        this.checkReady();
        if (this.failing.delete(loop)) this.maybeHealthy();
    }

    forget(loop: Loop): void {
        if (this.failing.delete(loop)) this.maybeHealthy();
    }

    private maybeHealthy(): void {
        if (this.failing.size > 0 || this.reported.size === 0 || !this.running) return;
        this.reported.clear();
        this.log("gateway: Consul watches healthy again");
    }

    // ---- Answers ----

    private onKv(reply: Reply): void {
        const kv = reply.status === 404 ? new Map<string, string>() : parseKv(JSON.parse(reply.text));
        if (sameKv(kv, this.kv)) return;
        this.kv = kv;
        this.changed({ kv: true, nodes: [] });
    }

    private onNodeList(reply: Reply): void {
        const list = parseNodeList(JSON.parse(reply.text));
        const listChanged = JSON.stringify([...list]) !== JSON.stringify([...this.nodeList]);
        this.nodeList = list;
        const perNode = this.h2 && list.size <= MAX_NODE_WATCHES;
        if (perNode !== this.perNode) {
            this.perNode = perNode;
            for (const l of this.nodeLoops.values()) void l.stop();
            this.nodeLoops.clear();
            void this.servicesLoop?.stop();
            this.servicesLoop = undefined;
            if (!perNode) {
                const onData = (_r: Reply, moved: boolean): void => (moved ? this.refetch.bump() : undefined);
                this.servicesLoop = new Loop(this, { name: "services", path: "/v1/catalog/services", blocking: true, onData });
            }
        }
        if (!perNode && listChanged) this.refetch.bump();
        for (const [name, loop] of this.nodeLoops) {
            if (list.has(name)) continue;
            void loop.stop();
            this.nodeLoops.delete(name);
        }
        for (const name of list.keys()) {
            if (this.nodeLoops.has(name)) continue;
            const spec: LoopSpec = {
                name: `node:${name}`,
                path: `/v1/catalog/node/${encodeURIComponent(name)}`,
                blocking: perNode,
                onData: (r) => this.onNode(name, r),
                ...(perNode ? {} : { trigger: this.refetch, limiter: this.limiter }),
            };
            this.nodeLoops.set(name, new Loop(this, spec));
        }
        const gone = [...this.nodes.keys()].filter((n) => !list.has(n));
        if (gone.length === 0) return;
        const nodes = new Map(this.nodes);
        for (const n of gone) nodes.delete(n);
        this.nodes = nodes;
        this.changed({ kv: false, nodes: gone });
    }

    private onNode(name: string, reply: Reply): void {
        const node = parseNode(JSON.parse(reply.text));
        if (sameNode(node, this.nodes.get(name))) return;
        const nodes = new Map(this.nodes);
        if (node) nodes.set(name, node);
        else nodes.delete(name);
        this.nodes = nodes;
        this.changed({ kv: false, nodes: [name] });
    }

    /** "change" events start after "ready": until then the snapshot is partial. */
    private changed(change: ChangeEvent): void {
        if (this.isReady) this.emit("change", change);
    }

    private checkReady(): void {
        if (this.isReady || !this.running || !this.kvLoop?.answered || !this.nodesLoop?.answered) return;
        for (const name of this.nodeList.keys()) if (!this.nodeLoops.get(name)?.answered) return;
        this.isReady = true;
        this.emit("ready");
    }
}
