// A backend whose health the test sets: /health answers the status the test chose while every
// other path keeps answering 200 (an overloaded or draining instance that still serves), and
// /stream holds a response open for as long as asked (a long download or a WebSocket-like
// connection). In-process (node:http), so a test can switch it in a microsecond.
import * as http from "node:http";
import type { Socket } from "node:net";
import { freePort } from "../../support/ports";
import { registratorRegistration } from "./backends";
import type { Registration } from "./consul";
import { ensureTestAddresses, NODE_ADDRESS } from "./network";

export interface ProgrammableBackend {
    readonly instance: string;
    readonly port: number;
    /** The gateway's server name for it (haproxy.ctmpl: <address>:<port>). */
    readonly serverName: string;
    /** The status /health answers from now on. */
    setHealth(status: number): void;
    /** Registrator's shape; `consulCheck` "passing" checks /health, "critical" a closed port. */
    registration(name: string, opts?: { consulCheck?: "passing" | "critical" }): Registration;
    close(): Promise<void>;
}

export async function startProgrammableBackend(instance: string, address = NODE_ADDRESS): Promise<ProgrammableBackend> {
    let health = 200;
    const server = http.createServer((req, res) => {
        const url = new URL(req.url ?? "/", "http://x");
        if (url.pathname === "/health") {
            res.writeHead(health, { "content-type": "text/plain" });
            res.end(health < 400 ? "ok\n" : "unhealthy\n");
            return;
        }
        if (url.pathname.endsWith("/stream")) {
            // One chunk every 100 ms for ?ms= milliseconds, then the end.
            const until = Date.now() + Number(url.searchParams.get("ms") ?? "1000");
            res.writeHead(200, { "content-type": "text/plain" });
            const timer = setInterval(() => {
                res.write(".");
                if (Date.now() >= until) {
                    clearInterval(timer);
                    res.end(`${instance}\n`);
                }
            }, 100);
            res.on("close", () => clearInterval(timer));
            return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        // Formatted as hello.py's json.dumps, which waitForRoute() matches.
        res.end(`{"service": "programmable", "version": "", "hostname": "${instance}"}\n`);
    });
    const { port, close } = await listenOnTestNode(server, address);
    return {
        instance,
        port,
        serverName: `${address}:${port}`,
        setHealth: (status) => {
            health = status;
        },
        registration: (name, opts = {}) => {
            const reg = registratorRegistration({ instance, name, port, address, status: opts.consulCheck ?? "passing" });
            // Nothing listens on port 1: Consul keeps this check critical.
            if (opts.consulCheck === "critical") reg.Check!.HTTP = `http://${address}:1/health`;
            return reg;
        },
        close,
    };
}

/**
 * Listens on a free port of `address` (default the test node) and returns it with a close() that
 * also ends open connections (server.close() alone waits for keep-alive clients).
 */
export async function listenOnTestNode(server: http.Server, address = NODE_ADDRESS): Promise<{ port: number; close: () => Promise<void> }> {
    ensureTestAddresses();
    const sockets = new Set<Socket>();
    server.on("connection", (s: Socket) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, address, r));
    return {
        port,
        close: () =>
            new Promise<void>((r) => {
                for (const s of sockets) s.destroy();
                server.close(() => r());
            }),
    };
}
