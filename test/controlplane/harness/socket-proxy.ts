// Shared by the Docker socket proxy tests (socket-proxy.test.ts, socket-proxy-user.test.ts): a
// stand-in engine (an HTTP server on a UNIX socket that records every request reaching it), raw
// HTTP/1.x on a connection, and the proxy started as the image does: the real HAProxy with the
// shipped haproxy.cfg, or the image's entrypoint, only socket path, bind address and port set by
// environment.
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { freePort, Proc, readTools, REPO_ROOT, waitFor } from "./index";

const IMAGE_DIR = path.join(REPO_ROOT, "components", "images", "socket-proxy");
export const CFG = path.join(IMAGE_DIR, "haproxy.cfg");
export const ENTRYPOINT = path.join(IMAGE_DIR, "entrypoint.sh");
export const tools = readTools();

interface Seen {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
    body: string;
}

/** A stand-in Docker engine on a UNIX socket: records what reaches it; /events streams. */
export class FakeEngine {
    readonly seen: Seen[] = [];
    private readonly streams = new Set<http.ServerResponse>();
    private readonly server: http.Server;

    private constructor(readonly socketPath: string) {
        this.server = http.createServer((req, res) => {
            const chunks: Buffer[] = [];
            req.on("data", (c: Buffer) => chunks.push(c));
            req.on("end", () => {
                const url = req.url ?? "";
                this.seen.push({ method: req.method ?? "", url, headers: req.headers, body: Buffer.concat(chunks).toString() });
                const p = url.split("?")[0];
                if (/\/events$/.test(p)) {
                    res.writeHead(200, { "Content-Type": "application/json" });
                    res.flushHeaders();
                    this.streams.add(res);
                    res.on("close", () => this.streams.delete(res));
                    return;
                }
                if (p === "/containers/slow/json") return; // never answers
                res.writeHead(200, { "Content-Type": p.endsWith("_ping") ? "text/plain" : "application/json" });
                res.end(p.endsWith("_ping") ? "OK" : JSON.stringify({ engine: "fake", path: p }));
            });
        });
    }

    static async start(socketPath: string): Promise<FakeEngine> {
        const engine = new FakeEngine(socketPath);
        await new Promise<void>((resolve, reject) => {
            engine.server.once("error", reject);
            engine.server.listen(socketPath, resolve);
        });
        return engine;
    }

    /** Writes one event line to every open /events stream. */
    emit(event: object): number {
        for (const res of this.streams) res.write(`${JSON.stringify(event)}\n`);
        return this.streams.size;
    }

    async close(): Promise<void> {
        for (const res of this.streams) res.destroy();
        this.server.closeAllConnections();
        await new Promise((r) => this.server.close(r));
    }
}

export interface Raw {
    /** Status of each response on the connection, in order. */
    statuses: number[];
    text: string;
}

/** Sends bytes as they are on a new connection; collects what comes back until it closes. */
export function raw(port: number, request: string, timeoutMs = 3000): Promise<Raw> {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, "127.0.0.1");
        let text = "";
        const timer = setTimeout(() => sock.destroy(), timeoutMs);
        sock.setEncoding("latin1");
        sock.on("data", (d: string) => (text += d));
        sock.on("error", (e) => {
            clearTimeout(timer);
            if ((e as NodeJS.ErrnoException).code === "ECONNRESET") resolve({ statuses: statuses(text), text });
            else reject(e);
        });
        sock.on("close", () => {
            clearTimeout(timer);
            resolve({ statuses: statuses(text), text });
        });
        sock.write(request, "latin1");
    });
}

function statuses(text: string): number[] {
    return [...text.matchAll(/^HTTP\/1\.[01] ([0-9]{3}) /gm)].map((m) => Number(m[1]));
}

/** A request in HTTP/1.1 with Connection: close, as bytes. */
export function req(method: string, target: string, headers: string[] = [], body = ""): string {
    const lines = [`${method} ${target} HTTP/1.1`, "Host: docker", ...headers, "Connection: close"];
    if (body && !headers.some((h) => /^(content-length|transfer-encoding):/i.test(h))) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/** A started proxy: HAProxy with the shipped config, or the image's entrypoint. */
export async function startProxy(name: string, socketPath: string, opts: { entrypoint?: boolean; conf?: string } = {}): Promise<{ proc: Proc; port: number }> {
    const port = await freePort();
    const env = {
        ...process.env,
        DOCKER_SOCKET: socketPath,
        SOCKET_PROXY_BIND: "127.0.0.1",
        SOCKET_PROXY_PORT: String(port),
        SOCKET_PROXY_CONF: opts.conf ?? CFG,
        HAPROXY_BIN: tools.HAPROXY_BIN,
    };
    // From "/", as in the image: HAProxy returns to its starting directory after reading its
    // config, which an unprivileged user may not enter (a checkout under a 0700 directory).
    const proc = opts.entrypoint
        ? new Proc(name, "bash", [ENTRYPOINT], { env, cwd: "/" })
        : new Proc(name, tools.HAPROXY_BIN, ["-db", "-f", CFG], { env, cwd: "/" });
    await waitFor(
        async () => {
            if (!proc.running) throw new Error(`${name} exited`);
            return (await raw(port, req("GET", "/_ping"), 1000)).statuses[0] === 200;
        },
        { timeoutMs: 10_000, message: `${name} answering /_ping` },
    ).catch((e) => {
        throw new Error(`${(e as Error).message}\n${proc.output()}`);
    });
    return { proc, port };
}
