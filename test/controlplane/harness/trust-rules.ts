// Shared by the trust-rules tests (trust-rules.test.ts, trust-rules-addresses.test.ts): the same
// start in each file (a harness with two real instances of real-v1 routed), an HTTP server on the
// test node, and the reads of the gateway's log and rendered config the assertions are made on.
import assert from "node:assert/strict";
import * as http from "node:http";
import { Gateway, Harness, hello, listenOnTestNode, waitFor, type Backend } from "./index";

/** An HTTP server on the test node: /health 200, `fail` paths 404, else `answer(req)` as JSON. */
export async function startServer(
    address: string,
    answer: (req: http.IncomingMessage) => unknown,
    fail: (path: string) => boolean = () => false,
): Promise<{ port: number; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
        const status = req.url === "/health" ? 200 : fail(req.url ?? "") ? 404 : 200;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(req.url === "/health" ? "ok\n" : `${JSON.stringify(answer(req))}\n`);
    });
    return listenOnTestNode(server, address);
}

export function servers(cfg: string, backend: string): string[] {
    const section = cfg.split(/\n(?=backend |frontend |userlist )/).find((s) => s.startsWith(`backend ${backend}\n`)) ?? "";
    // Routed servers: not the unchecked backup copies used only for panic routing.
    return [...section.matchAll(/^ {4}server (\S+) /gm)].map((m) => m[1]!).filter((s) => !s.startsWith("panic-"));
}

/** A started harness with the real instances real-a and real-b of real-v1 routed, and the helpers on it. */
export class TrustRig {
    /** Cleanup that must run even when an assertion fails (KV keys would change later tests). */
    readonly undo: Array<() => Promise<void>> = [];
    private seq = 0;

    private constructor(
        readonly h: Harness,
        readonly realA: Backend,
        readonly realB: Backend,
    ) {}

    static async start(): Promise<TrustRig> {
        const h = await Harness.start();
        try {
            const realA = await h.addInstance("real-v1", "real-a");
            const realB = await h.addInstance("real-v1", "real-b");
            await h.waitForRoute("/real/v1/", { instance: "real-a" });
            await h.waitForRoute("/real/v1/", { instance: "real-b" });
            return new TrustRig(h, realA, realB);
        } catch (err) {
            await h.stop();
            throw err;
        }
    }

    async stop(): Promise<void> {
        await this.cleanup();
        await this.h.stop();
    }

    async cleanup(): Promise<void> {
        for (const fn of this.undo.splice(0).reverse()) await fn().catch(() => undefined);
    }

    /** A number not used before in this file's run: unique IDs and names. */
    next(): number {
        return ++this.seq;
    }

    stderr(gw: Gateway = this.h.gateway): string {
        return gw.proc?.stderr.toString() ?? "";
    }

    /** How many times the gateway logged `line` ("gateway: <line>"). */
    logged(line: string, gw: Gateway = this.h.gateway): number {
        return this.stderr(gw)
            .split("\n")
            .filter((l) => l === `gateway: ${line}`).length;
    }

    async waitLogged(line: string, gw: Gateway = this.h.gateway): Promise<void> {
        await waitFor(() => this.logged(line, gw) > 0, { timeoutMs: 10_000, message: `log line "gateway: ${line}"` }).catch((err: Error) => {
            throw new Error(
                `${err.message}\n--- gateway stderr ---\n${this.stderr(gw).slice(-4000)}\n--- rendered ---\n${gw.readRenderedConfig("new").slice(-3000)}`,
            );
        });
    }

    /** Waits until no reload has happened for 500 ms (reload.sh logs a reload once the new worker runs). */
    async settled(): Promise<number> {
        let last = -1;
        let since = Date.now();
        return waitFor(
            async () => {
                const now = this.h.gateway.reloads();
                if (now !== last) {
                    last = now;
                    since = Date.now();
                }
                return Date.now() - since >= 500 ? String(now) : undefined;
            },
            { timeoutMs: 15_000, intervalMs: 50, message: "no reload for 500 ms" },
        ).then(Number);
    }

    /** A change the gateway must render (a canary route appears), so earlier changes were rendered too. */
    async rerender(): Promise<void> {
        const seq = this.next();
        await this.h.consul.register({ ...this.realA.registration(`canary${seq}`, { status: "passing" }), ID: `canary-${seq}` });
        await this.h.waitForRoute(`/canary${seq}/`, { instance: "real-a" });
        await this.h.consul.deregister(`canary-${seq}`);
        await this.h.waitForRoute(`/canary${seq}/`, { status: 404 });
    }

    /** Both real instances, and only they, answer /real/v1/ through the gateway. */
    async realKeepServing(): Promise<void> {
        const seen = new Set<string>();
        for (let i = 0; i < 8; i++) {
            const res = await this.h.gateway.get("/real/v1/x");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
            seen.add(hello(res).hostname);
        }
        assert.deepEqual([...seen].sort(), ["real-a", "real-b"]);
    }

    /** HAProxy's view of a backend's routed servers (not the panic copies): name -> status (UP, DOWN, ...). */
    async serverStates(backend: string, gw: Gateway = this.h.gateway): Promise<Record<string, string>> {
        return Object.fromEntries(Object.entries(await gw.serverStates(backend)).filter(([name]) => !name.startsWith("panic-")));
    }
}
