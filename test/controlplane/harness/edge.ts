// The gateway's edge as clients see it (docs/security.md, "Budgets"): requests from a chosen
// source address, floods of idle or slow connections, a TCP echo service, and backends that
// record what reached them. Each loopback address (127.x.y.z) is a client of its own to the
// gateway's per-client counters, so one test plays the attacker and the other clients at once.
// For the edge tests, imported by name.
import * as http from "node:http";
import * as net from "node:net";
import type { HttpResult } from "../../support/http";
import { freePort } from "../../support/ports";
import type { Registration } from "./consul";
import { ensureTestAddresses, NODE_ADDRESS } from "./network";
import { listenOnTestNode } from "./programmable";

export interface TimedResult extends HttpResult {
    /** From the start of the connection to the end of the answer. */
    ms: number;
}

/** One request on a new connection from `localAddress` (a loopback address: 127.0.0.1, 127.0.0.2...). */
export function requestFrom(
    localAddress: string,
    url: string,
    opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; timeoutMs?: number; auth?: string } = {},
): Promise<TimedResult> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
        const req = http.request(
            url,
            {
                method: opts.method ?? "GET",
                // A body is sent with its Content-Length (not chunked), as browsers and most clients send one.
                headers: opts.body !== undefined ? { "content-length": Buffer.byteLength(opts.body), ...opts.headers } : opts.headers,
                agent: false,
                localAddress,
                ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
            },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () =>
                    resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - t0 }),
                );
                res.on("error", reject);
            },
        );
        const timeoutMs = opts.timeoutMs ?? 5000;
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url} from ${localAddress}`)));
        req.on("error", reject);
        if (opts.body !== undefined) req.write(opts.body);
        req.end();
    });
}

/** Connections one client holds open: idle, or sending a request's headers a byte at a time (slowloris). */
export class Flood {
    readonly sockets: net.Socket[] = [];
    /** Connections the gateway closed or refused (reset, end, error), and when (ms after the flood began). */
    readonly closedAt: number[] = [];
    private readonly started = performance.now();
    private timers: NodeJS.Timeout[] = [];

    private constructor() {}

    /**
     * Opens `count` connections from `localAddress` to 127.0.0.1:`port`, `parallel` at a time. With
     * `slow`, each sends the start of a request and then one more header byte every `slow` ms.
     */
    static async open(o: { localAddress: string; port: number; count: number; parallel?: number; slow?: number }): Promise<Flood> {
        const f = new Flood();
        const one = (): Promise<void> =>
            new Promise((resolve) => {
                const s = net.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress });
                f.sockets.push(s);
                let done = false;
                const settle = (): void => {
                    if (!done) {
                        done = true;
                        resolve();
                    }
                };
                s.on("data", () => undefined);
                s.once("close", () => {
                    f.closedAt.push(performance.now() - f.started);
                    settle();
                });
                s.once("error", () => settle());
                // A full listener's backlog drops SYNs and the kernel retries for minutes: move on.
                setTimeout(settle, 500);
                s.once("connect", () => {
                    if (o.slow !== undefined) {
                        s.write("GET /slow/ HTTP/1.1\r\nHost: gateway\r\nX-Slow: ");
                        const t = setInterval(() => {
                            if (!s.destroyed) s.write("a");
                        }, o.slow);
                        f.timers.push(t);
                        s.once("close", () => clearInterval(t));
                    }
                    // The gateway refuses a connection over the cap right after accepting it: wait a moment.
                    setTimeout(settle, 20);
                });
            });
        const parallel = o.parallel ?? 20;
        for (let i = 0; i < o.count; i += parallel) await Promise.all(Array.from({ length: Math.min(parallel, o.count - i) }, one));
        return f;
    }

    /** Connections still open now. */
    get open(): number {
        return this.sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
    }

    close(): void {
        for (const t of this.timers) clearInterval(t);
        for (const s of this.sockets) s.destroy();
    }
}

/** A line sent over a new TCP connection from `localAddress` to 127.0.0.1:`port`, and the time its echo took to come back. */
export function tcpEcho(localAddress: string, port: number, line: string, timeoutMs = 5000): Promise<{ echo: string; ms: number }> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port, localAddress });
        let got = "";
        const timer = setTimeout(() => {
            s.destroy();
            reject(new Error(`no echo within ${timeoutMs} ms from port ${port} (from ${localAddress})`));
        }, timeoutMs);
        s.once("connect", () => s.write(`${line}\n`));
        s.on("data", (c: Buffer) => {
            got += c.toString("utf8");
            if (got.includes("\n")) {
                clearTimeout(timer);
                s.destroy();
                resolve({ echo: got.trim(), ms: performance.now() - t0 });
            }
        });
        s.once("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        s.once("close", () => {
            clearTimeout(timer);
            if (!got.includes("\n")) reject(new Error(`connection closed before the echo (port ${port}, from ${localAddress})`));
        });
    });
}

/** A TCP echo server on the test node, registered as Registrator registers a tcp service (tag tcp, a TCP check). */
export async function startEchoServer(instance: string): Promise<{
    port: number;
    serverName: string;
    registration: (name: string) => Registration;
    close: () => Promise<void>;
}> {
    ensureTestAddresses();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => undefined);
        s.pipe(s);
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, NODE_ADDRESS, r));
    const serverName = `${NODE_ADDRESS}:${port}`;
    return {
        port,
        serverName,
        registration: (name) => ({
            ID: `controlplane:${instance}:${port}`,
            Name: name,
            Tags: ["tcp"],
            Address: NODE_ADDRESS,
            Port: port,
            Check: { TCP: serverName, Interval: "5s", Timeout: "2s", Status: "passing" },
        }),
        close: () =>
            new Promise<void>((r) => {
                for (const s of sockets) s.destroy();
                server.close(() => r());
            }),
    };
}

/** What one request looked like when it reached a backend. */
export interface Seen {
    readonly method: string;
    readonly url: string;
    readonly headers: http.IncomingHttpHeaders;
    /** The header lines as received (name, value), repeated ones apart. */
    readonly raw: readonly [string, string][];
}

/**
 * An HTTP backend on the test node that records every request (method, path, headers) and
 * answers 200 with them as JSON; /health answers "ok" and is not recorded. `onRequest` may answer
 * in its place (return true when it did).
 */
export async function startRecordingBackend(
    instance: string,
    onRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean,
): Promise<{ port: number; serverName: string; seen: Seen[]; registration: (name: string) => Registration; close: () => Promise<void> }> {
    const seen: Seen[] = [];
    const server = http.createServer((req, res) => {
        req.resume();
        if (req.url === "/health") {
            res.end("ok\n");
            return;
        }
        const raw: [string, string][] = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
        seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, raw });
        if (onRequest?.(req, res)) return;
        req.on("end", () => {
            res.writeHead(200, { "content-type": "application/json" });
            // Formatted as hello.py's json.dumps, which waitForRoute() matches.
            res.end(`{"hostname": "${instance}", "headers": ${JSON.stringify(req.headers)}}\n`);
        });
    });
    const { port, close } = await listenOnTestNode(server);
    const serverName = `${NODE_ADDRESS}:${port}`;
    return {
        port,
        serverName,
        seen,
        registration: (name) => ({
            ID: `controlplane:${instance}:${port}`,
            Name: name,
            Tags: ["rest", "check=/health"],
            Address: NODE_ADDRESS,
            Port: port,
            Check: { HTTP: `http://${serverName}/health`, Interval: "1s", Timeout: "1s", Status: "passing" },
        }),
        close,
    };
}

/**
 * A PROXY protocol v2 header (PROXY command, TCP over IPv4), as a load balancer sends it before the
 * client's bytes: `source` is the client the gateway is told about, `destinationPort` the port it reached.
 */
export function proxyV2Header(source: string, destinationPort: number): Buffer {
    const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const header = Buffer.alloc(16 + 12);
    signature.copy(header, 0);
    header[12] = 0x21; // version 2, PROXY
    header[13] = 0x11; // AF_INET, STREAM
    header.writeUInt16BE(12, 14);
    Buffer.from(source.split(".").map(Number)).copy(header, 16);
    Buffer.from([10, 0, 0, 10]).copy(header, 20);
    header.writeUInt16BE(40000 + Math.floor(Math.random() * 20000), 24);
    header.writeUInt16BE(destinationPort, 26);
    return header;
}
