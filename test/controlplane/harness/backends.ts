// HTTP backends on the test node: hello.py as the image runs it, and a faster static stand-in for
// load tests; each with the registration Registrator would make for it.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { httpRequest, type HttpResult } from "../../support/http";
import type { HelloResponse } from "../../support/hello";
import { ROOT } from "../../support/paths";
import { freePort } from "../../support/ports";
import type { Tools } from "../../support/tools";
import { waitFor } from "../../support/wait";
import type { Check, Registration } from "./consul";
import { ensureTestAddresses, NODE_ADDRESS } from "./network";
import { makeTempDir, Proc, removeTempDir } from "./processes";

export const HELLO_PY = path.join(ROOT, "components", "images", "hello", "hello.py");

export type { HelloResponse };

/**
 * The registration Registrator makes for a container's port: ID <host>:<container>:<port>, tags
 * rest + check=/health, an HTTP check of /health (passing at once when `status` says so).
 */
export function registratorRegistration(o: {
    instance: string;
    name: string;
    port: number;
    address?: string;
    tags?: string[];
    interval?: string;
    timeout?: string;
    status?: Check["Status"];
}): Registration {
    const address = o.address ?? NODE_ADDRESS;
    const check: Check = { HTTP: `http://${address}:${o.port}/health`, Interval: o.interval ?? "1s", Timeout: o.timeout ?? "1s" };
    if (o.status) check.Status = o.status;
    return {
        ID: `${os.hostname()}:${o.instance}:${o.port}`,
        Name: o.name,
        Tags: o.tags ?? ["rest", "check=/health"],
        Address: address,
        Port: o.port,
        Check: check,
    };
}

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
            // Stopped at once (the drain tests start hello.py with their own grace).
            DRAIN_SECONDS: "0",
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
        return registratorRegistration({ instance: this.instance, name, port: this.port, address: this.address, ...opts });
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
        return registratorRegistration({ instance: this.instance, name, port: this.port, status: "passing" });
    }

    async stop(): Promise<void> {
        await this.proc.stop(2000);
        removeTempDir(this.dir);
    }
}

/** Parses a hello.py JSON answer. */
export function hello(res: HttpResult): HelloResponse {
    return JSON.parse(res.body) as HelloResponse;
}
