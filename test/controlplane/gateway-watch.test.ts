// The gateway controller's Consul watch against a real Consul (ACLs, TLS, the gateway's token as
// the stack makes them): the first snapshot, change events for registrations and KV writes, the
// bound on connections at scale over HTTPS (HTTP/2) and plain HTTP, a token rotated through its
// file, and a connection that silently stops answering.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import {
    ConsulWatch,
    connectionFromEnv,
    MAX_CONNECTIONS,
    MAX_NODE_WATCHES,
    parseNode,
    type CatalogNode,
    type ChangeEvent,
    type WatchOptions,
} from "../../components/images/gateway/controller/watch";
import { ConsulAgent, httpRequest, makeTempDir, readTools, removeTempDir, sleep, waitFor } from "./harness";

const PREFIX = "service/haproxy/";
const execFileAsync = promisify(execFile);

/** A watch with what it emitted and logged, each change with the time it arrived. */
class Watched {
    readonly changes: { at: number; change: ChangeEvent }[] = [];
    readonly logs: string[] = [];
    readonly watch: ConsulWatch;

    constructor(env: NodeJS.ProcessEnv, opts: Partial<WatchOptions> = {}) {
        this.watch = new ConsulWatch(connectionFromEnv(env), { kvPrefix: PREFIX, log: (l) => this.logs.push(l), ...opts });
        this.watch.on("change", (change: ChangeEvent) => this.changes.push({ at: performance.now(), change }));
    }

    async start(): Promise<this> {
        this.watch.start();
        await waitFor(() => this.watch.ready, { timeoutMs: 20_000, message: `watch ready (logs: ${this.logs.join(" | ")})` });
        return this;
    }

    /** The first change since `since` (performance.now()) that `pred` accepts. */
    async change(since: number, pred: (c: ChangeEvent) => boolean, timeoutMs = 5000): Promise<number> {
        const hit = await waitFor(() => this.changes.find((c) => c.at >= since && pred(c.change)), { timeoutMs, intervalMs: 5 }).catch((err: Error) => {
            const watches = this.watch.statuses().filter((s) => !s.name.startsWith("node:") || s.errors + s.stalls > 0);
            throw new Error(`${err.message}: no such change event; logs: ${this.logs.join(" | ")}; watches: ${JSON.stringify(watches)}`);
        });
        return hit.at;
    }

    stop(): Promise<void> {
        return this.watch.stop();
    }
}

/** Established TCP connections from this process to `port`, as the kernel sees them (`ss`, run without blocking the watch). */
async function osConnections(port: number): Promise<number> {
    const { stdout } = await execFileAsync("ss", ["-Htnp", "state", "established", `( dport = :${port} )`], { encoding: "utf8" });
    return stdout.split("\n").filter((l) => l.includes(`pid=${process.pid},`)).length;
}

function percentile(values: number[], p: number): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe("gateway controller: Consul watch", { timeout: 600_000 }, () => {
    let consul: ConsulAgent;
    const nodeName = (): string => consul.nodeName;

    before(async () => {
        consul = await ConsulAgent.start(readTools());
    });

    after(async () => {
        await consul?.destroy();
    });

    /** Catalog writes over the agent's UNIX socket, so that they add no TCP connection to the counts. */
    async function txn(ops: unknown[]): Promise<void> {
        for (let i = 0; i < ops.length; i += 64) {
            const res = await httpRequest("http://consul/v1/txn", {
                method: "PUT",
                socketPath: consul.socketPath,
                body: JSON.stringify(ops.slice(i, i + 64)),
                headers: { "X-Consul-Token": consul.tokens.management },
                timeoutMs: 30_000,
            });
            assert.equal(res.status, 200, res.body.slice(0, 300));
        }
    }

    function nodeOps(prefix: string, nodes: number, servicesPerNode: number): unknown[] {
        const ops: unknown[] = [];
        for (let n = 0; n < nodes; n++) {
            const node = `${prefix}-node-${n}`;
            ops.push({ Node: { Verb: "set", Node: { Node: node, Address: `198.18.0.${10 + (n % 200)}` } } });
            for (let s = 0; s < servicesPerNode; s++) {
                const Service = { ID: `${prefix}-${n}-${s}`, Service: `${prefix}${s}-v1`, Tags: ["rest"], Address: "", Port: 8000 + s };
                ops.push({ Service: { Verb: "set", Node: node, Service } });
            }
        }
        return ops;
    }

    /** GET with the gateway's token over the agent's UNIX socket. */
    async function read(apiPath: string): Promise<unknown> {
        const res = await httpRequest(`http://consul${apiPath}`, { socketPath: consul.socketPath, headers: { "X-Consul-Token": consul.tokens.gateway } });
        assert.equal(res.status, 200, res.body);
        return JSON.parse(res.body);
    }

    /** Every node as Consul serves it to the gateway's token. */
    async function catalog(): Promise<Map<string, CatalogNode>> {
        const nodes = new Map<string, CatalogNode>();
        for (const { Node } of (await read("/v1/catalog/nodes")) as { Node: string }[]) {
            nodes.set(Node, parseNode(await read(`/v1/catalog/node/${encodeURIComponent(Node)}`))!);
        }
        return nodes;
    }

    /** Same nodes, same contents, whatever the order. */
    function sameNodes(a: ReadonlyMap<string, CatalogNode>, b: ReadonlyMap<string, CatalogNode>): void {
        const sorted = (m: ReadonlyMap<string, CatalogNode>): [string, CatalogNode][] => [...m].sort(([x], [y]) => (x < y ? -1 : 1));
        assert.deepEqual(sorted(a), sorted(b));
    }

    /** The watch's snapshot comes to equal `truth` (each node's query answers on its own), then is compared once more for the diff. */
    async function convergesTo(w: Watched, truth: ReadonlyMap<string, CatalogNode>): Promise<void> {
        const same = (): boolean => {
            try {
                sameNodes(w.watch.state().nodes, truth);
                return true;
            } catch {
                return false;
            }
        };
        await waitFor(same, { timeoutMs: 10_000, message: "the watch's nodes equal the catalog" }).catch(() => undefined);
        sameNodes(w.watch.state().nodes, truth);
    }

    /** Registration (as Registrator does it) -> a change naming the node, then deregistration -> the same; ms each. */
    async function latencies(w: Watched, trials: number, tag: string): Promise<number[]> {
        const ms: number[] = [];
        for (let i = 0; i < trials; i++) {
            const id = `${tag}-${i}`;
            const has = (): boolean =>
                !!w.watch
                    .state()
                    .nodes.get(nodeName())
                    ?.services.some((s) => s.id === id);
            let t0 = performance.now();
            await consul.register({ ID: id, Name: `${tag}-v1`, Tags: ["rest"], Address: "198.18.0.1", Port: 9000 + i });
            ms.push((await w.change(t0, (c) => c.nodes.includes(nodeName()) && has())) - t0);
            t0 = performance.now();
            await consul.deregister(id);
            ms.push((await w.change(t0, (c) => c.nodes.includes(nodeName()) && !has())) - t0);
        }
        return ms;
    }

    it("starts from the KV prefix and every node's services", async () => {
        await consul.kvPut(`${PREFIX}maxconn`, "2000");
        await consul.kvPut(`${PREFIX}timeouts/client`, "déjà 30s");
        const outside = await consul.api("PUT", "/v1/kv/service/other/key", "x");
        assert.equal(outside.status, 200, outside.body);
        await consul.register({ ID: "watch:start:1", Name: "start-v1", Tags: ["rest", "check=/health"], Address: "198.18.0.1", Port: 8081 });
        await txn(nodeOps("start", 2, 1));

        const w = await new Watched({ ...consul.clientEnv("gateway") }).start();
        try {
            const { kv, nodes } = w.watch.state();
            assert.deepEqual(Object.fromEntries(kv), { [`${PREFIX}maxconn`]: "2000", [`${PREFIX}timeouts/client`]: "déjà 30s" });
            const own = nodes.get(nodeName());
            assert.ok(own, `nodes: ${[...nodes.keys()]}`);
            assert.deepEqual(
                own.services.find((s) => s.id === "watch:start:1"),
                { id: "watch:start:1", service: "start-v1", address: "198.18.0.1", port: 8081, tags: ["rest", "check=/health"] },
            );
            assert.deepEqual(nodes.get("start-node-1"), {
                node: "start-node-1",
                address: "198.18.0.11",
                services: [{ id: "start-1-0", service: "start0-v1", address: "", port: 8000, tags: ["rest"] }],
            });
            sameNodes(nodes, await catalog());
            assert.ok(w.logs.includes(`gateway: Consul at https://${consul.addr} speaks h2`), w.logs.join("\n"));
            assert.deepEqual(
                w.watch
                    .statuses()
                    .map((s) => s.name)
                    .sort(),
                ["kv", "nodes", ...[...nodes.keys()].map((n) => `node:${n}`)].sort(),
            );
            assert.equal(w.changes.length, 0, "no change before ready: the first snapshot comes with ready");
        } finally {
            await w.stop();
            await consul.deregister("watch:start:1");
        }
        assert.equal(w.watch.connections(), 0);
    });

    it("a registration or deregistration emits a change naming the node within a second (20 trials each)", async (t) => {
        const w = await new Watched({ ...consul.clientEnv("gateway") }).start();
        try {
            const ms = await latencies(w, 20, "lat");
            t.diagnostic(
                `HTTPS (h2, per-node watches): p50 ${percentile(ms, 50).toFixed(1)} ms, p90 ${percentile(ms, 90).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`,
            );
            assert.ok(percentile(ms, 50) < 1000, `p50 ${percentile(ms, 50)} ms`);
            assert.ok(Math.max(...ms) < 3000, `max ${Math.max(...ms)} ms`);
        } finally {
            await w.stop();
        }
    });

    it("emits only for what really changed: KV values, and not for a node whose services stayed the same", async (t) => {
        const w = await new Watched({ ...consul.clientEnv("gateway") }).start();
        try {
            let t0 = performance.now();
            await consul.kvPut(`${PREFIX}maxconn`, "3000");
            await w.change(t0, (c) => c.kv && c.nodes.length === 0);
            assert.equal(w.watch.state().kv.get(`${PREFIX}maxconn`), "3000");

            // The same value with other flags: Consul's index moves, the data the gateway reads does not.
            // (Consul skips a put of the very same value and flags: its index would not move.)
            const kvIndex = w.watch.statuses().find((s) => s.name === "kv")!.index;
            t0 = performance.now();
            assert.equal((await consul.api("PUT", `/v1/kv/${PREFIX}maxconn?flags=7`, "3000", consul.tokens.kvWriter)).body.trim(), "true");
            await waitFor(() => w.watch.statuses().find((s) => s.name === "kv")!.index > kvIndex, { message: "KV index moved" });
            await sleep(200);
            assert.deepEqual(
                w.changes.filter((c) => c.at >= t0),
                [],
            );

            // A service on another node: a change naming that node only. Then the same service with
            // other Meta (which the gateway does not keep): the node's index moves, nothing is emitted.
            // Over plain HTTP the watch follows /v1/catalog/services and re-reads every node.
            const plain = await new Watched({ CONSUL_HTTP_ADDR: `127.0.0.1:${consul.ports.http}`, CONSUL_HTTP_TOKEN: consul.tokens.gateway }).start();
            try {
                const other = (meta: string): unknown[] => [
                    { Service: { Verb: "set", Node: "start-node-0", Service: { ID: "other-1", Service: "other-v1", Port: 7000, Meta: { rev: meta } } } },
                ];
                t0 = performance.now();
                await txn(other("1"));
                for (const x of [w, plain]) await x.change(t0, (c) => c.nodes.includes("start-node-0"));
                await sleep(200);
                for (const x of [w, plain]) {
                    assert.deepEqual(
                        x.changes.filter((c) => c.at >= t0).flatMap((c) => c.change.nodes),
                        ["start-node-0"],
                    );
                }

                const index = (x: Watched): number => x.watch.statuses().find((s) => s.name === "node:start-node-0")!.index;
                const before = { https: index(w), plain: index(plain) };
                t0 = performance.now();
                await txn(other("2"));
                await waitFor(() => index(w) > before.https && index(plain) > before.plain, { message: "start-node-0 answered with a new index" });
                await sleep(200);
                for (const x of [w, plain])
                    assert.deepEqual(
                        x.changes.filter((c) => c.at >= t0),
                        [],
                    );
                t.diagnostic(`start-node-0's index: HTTPS ${before.https} -> ${index(w)}, plain HTTP ${before.plain} -> ${index(plain)}, no change event`);
            } finally {
                await plain.stop();
            }

            t0 = performance.now();
            await consul.kvDelete(`${PREFIX}maxconn`);
            await w.change(t0, (c) => c.kv);
            assert.equal(w.watch.state().kv.has(`${PREFIX}maxconn`), false);

            // A node leaving the catalog: a change naming it, and it is gone from the snapshot.
            t0 = performance.now();
            await txn([{ Node: { Verb: "delete", Node: { Node: "start-node-1" } } }]);
            await w.change(t0, (c) => c.nodes.includes("start-node-1"));
            assert.equal(w.watch.state().nodes.has("start-node-1"), false);
            // Its own watch may see it gone (null) before the node list does: then its watch stops.
            await waitFor(() => !w.watch.statuses().some((s) => s.name === "node:start-node-1"), { message: "node:start-node-1 watch stopped" });
        } finally {
            await w.stop();
        }
    });

    it("a token rotated through CONSUL_HTTP_TOKEN_FILE: denied once, then the watches recover", async () => {
        const dir = makeTempDir("watch-token");
        const tokenFile = path.join(dir, "token");
        const createToken = async (): Promise<{ AccessorID: string; SecretID: string }> => {
            const res = await consul.api("PUT", "/v1/acl/token", { Description: "gateway (rotated)", Policies: [{ Name: "gateway" }] });
            assert.equal(res.status, 200, res.body);
            return JSON.parse(res.body) as { AccessorID: string; SecretID: string };
        };
        const first = await createToken();
        fs.writeFileSync(tokenFile, `${first.SecretID}\n`);
        const env = { ...consul.clientEnv("gateway"), CONSUL_HTTP_TOKEN: "", CONSUL_HTTP_TOKEN_FILE: tokenFile };
        const w = await new Watched(env, { waitSeconds: 2 }).start();
        try {
            const denied = (): string[] => w.logs.filter((l) => l.startsWith("gateway: Consul denied the gateway's token (403) on /v1/"));
            assert.equal((await consul.api("DELETE", `/v1/acl/token/${first.AccessorID}`)).status, 200);
            await waitFor(() => denied().length > 0, { timeoutMs: 10_000, message: "403 logged" });
            await waitFor(() => w.watch.statuses().reduce((n, s) => n + s.errors, 0) >= 6, { timeoutMs: 10_000, message: "retries" });

            const second = await createToken();
            fs.writeFileSync(tokenFile, `${second.SecretID}\n`);
            await waitFor(() => w.logs.includes("gateway: Consul watches healthy again"), { timeoutMs: 15_000, message: "recovery" });
            assert.equal(denied().length, 1, w.logs.join("\n"));
            assert.match(denied()[0]!, /ACL not found/);

            const t0 = performance.now();
            await consul.register({ ID: "watch:rotated:1", Name: "rotated-v1", Address: "198.18.0.1", Port: 8082 });
            await w.change(t0, (c) => c.nodes.includes(nodeName()));
            assert.ok(
                w.watch
                    .state()
                    .nodes.get(nodeName())!
                    .services.some((s) => s.id === "watch:rotated:1"),
            );
        } finally {
            await w.stop();
            await consul.deregister("watch:rotated:1").catch(() => undefined);
            removeTempDir(dir);
        }
    });

    it("a connection that silently stops answering: the stall watchdog aborts and re-issues on a new connection", async (t) => {
        // A TCP proxy in front of Consul's HTTPS port that can black-hole the connections it holds
        // (as a NAT or firewall that dropped them would): new connections still pass.
        const pairs: [net.Socket, net.Socket][] = [];
        const proxy = net.createServer((client) => {
            const upstream = net.connect(consul.ports.https, "127.0.0.1");
            for (const s of [client, upstream]) s.on("error", () => undefined);
            client.pipe(upstream);
            upstream.pipe(client);
            pairs.push([client, upstream]);
        });
        await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
        const port = (proxy.address() as net.AddressInfo).port;
        const blackHole = (): void => {
            for (const [client, upstream] of pairs) {
                client.unpipe(upstream);
                upstream.unpipe(client);
                client.pause();
                upstream.pause();
            }
        };
        const w = await new Watched({ ...consul.clientEnv("gateway"), CONSUL_HTTP_ADDR: `127.0.0.1:${port}` }, { waitSeconds: 1 }).start();
        try {
            assert.equal(pairs.length, 1, "one HTTP/2 connection");
            blackHole();
            const t0 = performance.now();
            await consul.register({ ID: "watch:stall:1", Name: "stall-v1", Address: "198.18.0.1", Port: 8083 });
            // wait 1 s: aborted past 1 + 15 + 5 = 21 s after it was sent.
            const at = await w.change(t0, (c) => c.nodes.includes(nodeName()), 40_000);
            t.diagnostic(`change after ${((at - t0) / 1000).toFixed(1)} s through a black-holed connection`);
            assert.ok(at - t0 > 18_000, `the change came through in ${at - t0} ms: the black hole did not hold`);
            assert.ok(at - t0 < 30_000, `${at - t0} ms`);
            assert.ok(
                w.watch
                    .state()
                    .nodes.get(nodeName())!
                    .services.some((s) => s.id === "watch:stall:1"),
            );
            const stalls = w.watch.statuses().reduce((n, s) => n + s.stalls, 0);
            assert.ok(stalls >= 1, JSON.stringify(w.watch.statuses()));
            assert.ok(pairs.length >= 2, "re-issued on a new connection");
            assert.ok(
                w.logs.some((l) => /^gateway: Consul did not answer \/v1\/\S+ within 21 s: aborted and re-issued/.test(l)),
                w.logs.join("\n"),
            );
        } finally {
            await w.stop();
            for (const [a, b] of pairs) (a.destroy(), b.destroy());
            await new Promise((r) => proxy.close(r));
            await consul.deregister("watch:stall:1").catch(() => undefined);
        }
    });

    it("200 services: at most 5 connections over HTTPS (one, HTTP/2) and plain HTTP, counted by the watch and the kernel", async (t) => {
        const https = await new Watched({ ...consul.clientEnv("gateway") }).start();
        const plainEnv = { CONSUL_HTTP_ADDR: `127.0.0.1:${consul.ports.http}`, CONSUL_HTTP_TOKEN: consul.tokens.gateway };
        let plain: Watched | undefined;
        const max = { https: 0, httpsOs: 0, plain: 0, plainOs: 0 };
        // Both counts, sampled all along (every ~20 ms) until the end of the test.
        let sampling = true;
        const sampler = (async () => {
            while (sampling) {
                max.https = Math.max(max.https, https.watch.connections());
                max.httpsOs = Math.max(max.httpsOs, await osConnections(consul.ports.https));
                if (plain) {
                    max.plain = Math.max(max.plain, plain.watch.connections());
                    max.plainOs = Math.max(max.plainOs, await osConnections(consul.ports.http));
                }
                await sleep(20);
            }
        })();
        try {
            // 200 services on 50 nodes: per-node blocking queries over HTTP/2.
            let t0 = performance.now();
            await txn(nodeOps("scale", 50, 4));
            await https.change(t0, (c) => c.nodes.includes("scale-node-49"), 20_000);
            await waitFor(() => https.watch.state().nodes.get("scale-node-49")?.services.length === 4, { message: "all scale nodes" });
            assert.ok(https.watch.statuses().length > 50, "one blocking query per node");
            await convergesTo(https, await catalog());

            // Past MAX_NODE_WATCHES nodes: one query on /v1/catalog/services and node re-reads.
            t0 = performance.now();
            await txn(nodeOps("more", MAX_NODE_WATCHES, 1));
            await https.change(t0, (c) => c.nodes.includes(`more-node-${MAX_NODE_WATCHES - 1}`), 20_000);
            assert.ok(https.watch.statuses().some((s) => s.name === "services"));

            plain = await new Watched(plainEnv).start();
            assert.ok(plain.logs.includes(`gateway: Consul at http://127.0.0.1:${consul.ports.http} speaks http/1.1`), plain.logs.join("\n"));
            const truth = await catalog();
            assert.ok(truth.size > 50 + MAX_NODE_WATCHES, `${truth.size} nodes`);
            await convergesTo(https, truth);
            await convergesTo(plain, truth);

            // A burst of registrations while both follow.
            t0 = performance.now();
            await txn(nodeOps("burst", 20, 3));
            for (const w of [https, plain]) await w.change(t0, (c) => c.nodes.includes("burst-node-19"), 20_000);
            const ms = await latencies(plain, 10, "plainlat");
            t.diagnostic(
                `plain HTTP (catalog/services + re-reads of ${truth.size + 20} nodes): p50 ${percentile(ms, 50).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`,
            );
            // Every change re-reads the whole catalog (3 nodes at a time): the latency grows with the
            // number of nodes, ~0.2 s here for 160 nodes on an idle machine, seconds on a loaded one.
            assert.ok(percentile(ms, 50) < 2500, `p50 ${percentile(ms, 50)} ms`);
        } finally {
            sampling = false;
            await sampler;
            t.diagnostic(`max connections: HTTPS ${max.https} (kernel ${max.httpsOs}), plain HTTP ${max.plain} (kernel ${max.plainOs})`);
            await https.stop();
            await plain?.stop();
        }
        assert.equal(max.https, 1, "HTTP/2: every query on one connection");
        assert.ok(max.httpsOs >= 1 && max.httpsOs <= 1, `kernel: ${max.httpsOs}`);
        assert.ok(max.plain >= 3 && max.plain <= MAX_CONNECTIONS, `plain HTTP: ${max.plain}`);
        assert.ok(max.plainOs >= 3 && max.plainOs <= MAX_CONNECTIONS, `kernel: ${max.plainOs}`);
    });
});
