// What the cluster scenarios look at, from outside, as an operator would: each node's Consul
// agent over its published HTTPS API (the stack's CA, the management token from the stack
// outputs), each edge gateway's stats listener (HAProxy's CSV, the controller's metrics and
// route table, behind the stats credentials) and its HTTP port, each engine's containers.
import type { HelloResponse } from "../../support/hello";
import { httpRequest, type HttpResult } from "../../support/http";
import { waitFor } from "../../support/wait";
import { addressOf } from "./network";
import type { ClusterStack } from "./stack";

/** Port of Consul's server RPC, in the raft addresses and the leader's (host:8300). */
const CONSUL_SERVER_PORT = 8300;

/** One request to node `index`'s Consul agent, as the operator (management token unless `token` says otherwise). */
export function consul(
    stack: ClusterStack,
    index: number,
    path: string,
    opts: { method?: string; body?: string; token?: string | null; timeoutMs?: number } = {},
): Promise<HttpResult> {
    const port = stack.configValue("consul")?.httpsPort ?? 8501;
    const token = opts.token === undefined ? stack.outputs.consulManagementToken : opts.token;
    return httpRequest(`https://${addressOf(index)}:${port}${path}`, {
        method: opts.method ?? "GET",
        ca: stack.outputs.consulCaPem,
        headers: { Connection: "close", ...(token ? { "X-Consul-Token": token } : {}) },
        timeoutMs: opts.timeoutMs ?? 5000,
        ...(opts.body !== undefined ? { body: opts.body } : {}),
    });
}

/** GET through node `index`'s agent; the JSON answer (throws on non-200). */
export async function consulJson<T = any>(stack: ClusterStack, index: number, path: string, timeoutMs = 5000): Promise<T> {
    const r = await consul(stack, index, path, { timeoutMs });
    if (r.status !== 200) throw new Error(`consul ${path} via node ${index}: ${r.status} ${r.body.trim()}`);
    return JSON.parse(r.body) as T;
}

/** The node whose Consul server leads, as node `via` sees it (0: none). */
export async function leaderSeenBy(stack: ClusterStack, via: number, timeoutMs = 3000): Promise<number> {
    const leader = await consulJson<string>(stack, via, "/v1/status/leader", timeoutMs);
    return leader ? nodeOfServer(leader) : 0;
}

/** "10.213.0.12:8300" -> 2. */
export function nodeOfServer(address: string): number {
    const m = /^10\.213\.0\.([0-9]+):([0-9]+)$/.exec(address);
    if (!m || Number(m[2]) !== CONSUL_SERVER_PORT) throw new Error(`not a cluster server address: ${address}`);
    return Number(m[1]) - 10;
}

export interface Member {
    Name: string;
    Addr: string;
    /** Serf's: 1 alive, 2 leaving, 3 left, 4 failed. */
    Status: number;
    Tags: Record<string, string>;
}
export const ALIVE = 1;
export const LEFT = 3;
export const FAILED = 4;

export function members(stack: ClusterStack, via: number): Promise<Member[]> {
    return consulJson<Member[]>(stack, via, "/v1/agent/members", 3000);
}

/** The Consul node name of cluster node `index` (components/consul.ts: the node's name on several nodes). */
export function consulNodeName(index: number): string {
    return `cluster-node-${index}`;
}

/** Basic auth of the gateways' stats listener (stack outputs). */
function statsAuth(stack: ClusterStack): Record<string, string> {
    return { Authorization: `Basic ${Buffer.from(`${stack.outputs.statsUser}:${stack.outputs.statsPassword}`).toString("base64")}`, Connection: "close" };
}

function statsUrl(stack: ClusterStack, index: number, path: string): string {
    const port = stack.configValue("gateway")?.statsPort ?? 1936;
    return `http://${addressOf(index)}:${port}${path}`;
}

export interface ServerStat {
    proxy: string;
    server: string;
    /** UP, DOWN, MAINT, "no check", ... (HAProxy's status column). */
    status: string;
    /** host:port */
    addr: string;
    backup: boolean;
}

/** The servers of node `index`'s gateway, from HAProxy's stats CSV. */
export async function serverStats(stack: ClusterStack, index: number): Promise<ServerStat[]> {
    const r = await httpRequest(statsUrl(stack, index, "/;csv"), { headers: statsAuth(stack), timeoutMs: 3000 });
    if (r.status !== 200) throw new Error(`stats of node ${index}: ${r.status}`);
    const [header, ...lines] = r.body.trim().split("\n");
    const columns = header.replace(/^# /, "").split(",");
    const at = (name: string): number => columns.indexOf(name);
    return lines
        .map((l) => l.split(","))
        .filter((f) => f[at("svname")] !== "FRONTEND" && f[at("svname")] !== "BACKEND")
        .map((f) => ({ proxy: f[at("pxname")], server: f[at("svname")], status: f[at("status")], addr: f[at("addr")] ?? "", backup: f[at("bck")] === "1" }));
}

/** The health-checked servers (not the panic twins) of the replicas on node `on`, in node `gateway`'s gateway. */
export async function replicaServers(stack: ClusterStack, gateway: number, on: number): Promise<ServerStat[]> {
    // The controller names each server after its address (host:port); HAProxy's addr column says the same.
    const on_ = `${addressOf(on)}:`;
    return (await serverStats(stack, gateway)).filter((s) => !s.backup && s.proxy.startsWith("svc_") && (s.addr || s.server).startsWith(on_));
}

/** The controller's metrics of node `index`'s gateway: `name{labels}` -> value. */
export async function controllerMetrics(stack: ClusterStack, index: number): Promise<Map<string, number>> {
    const r = await httpRequest(statsUrl(stack, index, "/metrics/controller"), { headers: statsAuth(stack), timeoutMs: 3000 });
    if (r.status !== 200) throw new Error(`controller metrics of node ${index}: ${r.status}`);
    const out = new Map<string, number>();
    for (const line of r.body.split("\n")) {
        const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line.trim());
        if (m) out.set(m[1], Number(m[2]));
    }
    return out;
}

export interface RouteEntry {
    prefix: string;
    service: string;
    servers: number;
    drained: number;
}

/** The route table node `index`'s gateway runs (/routes). */
export async function routes(stack: ClusterStack, index: number): Promise<RouteEntry[]> {
    const r = await httpRequest(statsUrl(stack, index, "/routes"), { headers: statsAuth(stack), timeoutMs: 3000 });
    if (r.status !== 200) throw new Error(`routes of node ${index}: ${r.status} ${r.body.trim()}`);
    return (JSON.parse(r.body) as { http: RouteEntry[] }).http;
}

/** Servers of the route with `prefix` in node `index`'s gateway (0 when there is no such route). */
export async function routeServers(stack: ClusterStack, index: number, prefix: string): Promise<number> {
    return (await routes(stack, index)).find((r) => r.prefix === prefix)?.servers ?? 0;
}

/** GET through node `index`'s gateway, on a new connection. */
export function viaGateway(stack: ClusterStack, index: number, path: string, timeoutMs = 5000): Promise<HttpResult> {
    const port = stack.configValue("gateway")?.httpPort ?? 80;
    return httpRequest(`http://${addressOf(index)}${port === 80 ? "" : `:${port}`}${path}`, { headers: { Connection: "close" }, timeoutMs });
}

/** `n` requests through node `index`'s gateway; the hostnames that answered (throws on a non-200). */
export async function hostnamesVia(stack: ClusterStack, index: number, path: string, n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
        const r = await viaGateway(stack, index, path);
        if (r.status !== 200) throw new Error(`GET ${path} via node ${index}: ${r.status} ${r.body.trim()}`);
        out.push((JSON.parse(r.body) as HelloResponse).hostname);
    }
    return out;
}

/** The replicas the program declared for Consul service `consulName`: node, Docker name, hostname. */
export function replicasOf(stack: ClusterStack, consulName: string): { node: number; container: string; hostname: string }[] {
    const out: { node: number; container: string; hostname: string }[] = [];
    for (const node of stack.nodes) {
        for (const [name, c] of stack.containersOn(node.index)) {
            if ((c.envs as string[]).includes(`SERVICE_NAME=${consulName}`)) out.push({ node: node.index, container: name, hostname: c.hostname });
        }
    }
    return out.sort((a, b) => a.hostname.localeCompare(b.hostname));
}

/** The http routes of the stack's services: path prefix -> Consul name. */
export function routedServices(stack: ClusterStack): { prefix: string; consulName: string }[] {
    return (stack.configValue("services") as { name: string; version?: string; protocol?: string }[])
        .filter((s) => s.protocol !== "tcp")
        .map((s) => ({
            prefix: s.version ? `/${s.name}/${s.version}/` : `/${s.name}/`,
            consulName: s.version ? `${s.name}-${s.version}` : s.name,
        }));
}

/** Gateway containers' start times and restart counts, by node: a restart changes one of them. */
export async function gatewayStarts(stack: ClusterStack): Promise<Record<number, string>> {
    const out: Record<number, string> = {};
    for (const index of stack.edgeNodes) {
        const c = await stack.node(index).docker.inspectContainer("cluster-gateway");
        out[index] = `${c.State.StartedAt} restarts=${c.RestartCount} running=${c.State.Running}`;
    }
    return out;
}

/**
 * The whole cluster as the bring-up leaves it: every node a live Consul member, the servers
 * agreeing on one leader with every node a raft voter, every replica passing its Consul check
 * and UP in every edge gateway. Waits for it; the scenarios start from it and must return to it.
 */
export async function converged(stack: ClusterStack, timeoutMs = 180_000): Promise<void> {
    const servers = stack.outputs.nodes.filter((n) => n.consulServer).length;
    await waitFor(
        async () => {
            const leaders = new Set<number>();
            for (const node of stack.nodes) {
                const seen = await members(stack, node.index);
                const alive = seen.filter((m) => m.Status === ALIVE).map((m) => m.Name);
                if (alive.length !== stack.nodes.length) throw new Error(`node ${node.index} sees ${alive.length} live members: ${alive.join(", ")}`);
                if (node.index <= servers) leaders.add(await leaderSeenBy(stack, node.index));
            }
            if (leaders.size !== 1 || leaders.has(0)) throw new Error(`servers disagree on the leader: ${[...leaders].join(", ")}`);
            const raft = await consulJson<{ Servers: { Voter: boolean; Address: string }[] }>(stack, 1, "/v1/operator/raft/configuration?stale");
            if (raft.Servers.filter((s) => s.Voter).length !== servers) throw new Error(`raft has ${raft.Servers.length} servers`);
            for (const { consulName } of routedServices(stack)) {
                const want = replicasOf(stack, consulName).length;
                const passing = (await consulJson<unknown[]>(stack, 1, `/v1/health/service/${consulName}?passing`)).length;
                if (passing !== want) throw new Error(`${passing} of ${want} instances of ${consulName} pass Consul's checks`);
            }
            for (const gateway of stack.edgeNodes) {
                const stats = (await serverStats(stack, gateway)).filter((s) => !s.backup && s.proxy.startsWith("svc_"));
                for (const { consulName } of routedServices(stack)) {
                    const want = replicasOf(stack, consulName).length;
                    const up = stats.filter((s) => s.proxy === `svc_${consulName}` && s.status.startsWith("UP")).length;
                    if (up !== want) throw new Error(`gateway on node ${gateway}: ${up} of ${want} servers of ${consulName} UP`);
                }
            }
            return true;
        },
        { timeoutMs, intervalMs: 1000, message: "the cluster converged (members alive, one leader, every replica passing and UP in every gateway)" },
    );
}

/** Polls `probe` every `everyMs` from now until it returns true or `timeoutMs` pass; seconds it took (since `from`), or undefined. */
export async function secondsUntil(probe: () => Promise<boolean>, from: number, timeoutMs: number, everyMs = 200): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (await probe().catch(() => false)) return round((Date.now() - from) / 1000);
        await new Promise((r) => setTimeout(r, everyMs));
    }
    return undefined;
}

export function round(n: number, digits = 1): number {
    const f = 10 ** digits;
    return Math.round(n * f) / f;
}

/** A scenario's figures, one JSON line a benchmark can collect. */
export function printFigures(figures: Record<string, unknown>): void {
    process.stdout.write(`[cluster] figures ${JSON.stringify(figures)}\n`);
}
