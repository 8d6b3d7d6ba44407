// A small client for the Docker Engine API (unix://, plain tcp://, or tcp:// with TLS client
// certificates as the Docker provider's certPath), plus the docker CLI for what the API makes
// awkward (BuildKit builds, imports, exec). Every call targets one engine.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";

export class DockerError extends Error {
    constructor(
        message: string,
        readonly status = 0,
    ) {
        super(message);
        this.name = "DockerError";
    }
}

/** Where an engine listens: `unix:///path/docker.sock` or `tcp://host:port` (no TLS). */
export function endpointOf(host: string): { socketPath: string } | { host: string; port: number } {
    if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
    const tcp = /^tcp:\/\/([^:/]+):([0-9]+)\/?$/.exec(host);
    if (tcp) return { host: tcp[1], port: Number(tcp[2]) };
    throw new DockerError(`unsupported DOCKER_HOST ${JSON.stringify(host)}: the e2e harness speaks to unix:// sockets and plain tcp:// engines`);
}

/** The docker CLI to use: Debian's own (BuildKit built in) when present. */
export function dockerCli(): string {
    if (process.env.SD_E2E_DOCKER_CLI) return process.env.SD_E2E_DOCKER_CLI;
    return fs.existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
}

export interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

/** Runs a command; resolves with its output whatever the exit code. */
export function run(
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
        child.on("error", (e) => {
            if (timer) clearTimeout(timer);
            reject(new DockerError(`cannot run ${cmd}: ${e.message}`));
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
        });
        // A command that exits before reading its input (psql refused the connection) closes the
        // pipe: EPIPE is no error of the run, its exit code and output tell what happened.
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.input ?? "");
    });
}

/**
 * An engine that requires TLS client certificates (dockerd --tlsverify): the folder holding
 * ca.pem, cert.pem and key.pem, as the Docker CLI's DOCKER_CERT_PATH and the provider's certPath.
 */
export interface DockerTls {
    certPath: string;
}

export class Docker {
    private readonly endpoint: { socketPath: string } | { host: string; port: number };
    /** With `tls`: the client's certificate, its key and the CA that signed the engine's. */
    private readonly tlsOptions: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;

    constructor(
        readonly host: string,
        readonly tls?: DockerTls,
    ) {
        this.endpoint = endpointOf(host);
        if (tls) {
            if (!("port" in this.endpoint)) throw new DockerError(`${host}: TLS client certificates are for tcp:// engines`);
            const read = (file: string): Buffer => fs.readFileSync(path.join(tls.certPath, file));
            this.tlsOptions = { ca: read("ca.pem"), cert: read("cert.pem"), key: read("key.pem") };
        }
    }

    /** http.request, or https.request with the client certificate when the engine requires TLS. */
    private send(options: http.RequestOptions, callback: (res: http.IncomingMessage) => void): http.ClientRequest {
        return this.tlsOptions ? https.request({ ...options, ...this.tlsOptions }, callback) : http.request(options, callback);
    }

    /** One API call; JSON in (a Buffer goes as a tar archive) and out. Throws DockerError with the engine's message on >= 400. */
    request<T = any>(method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
        return new Promise((resolve, reject) => {
            const raw = Buffer.isBuffer(body);
            const payload = body === undefined ? undefined : raw ? body : Buffer.from(JSON.stringify(body));
            const req = this.send(
                {
                    ...this.endpoint,
                    method,
                    path,
                    headers: { "Content-Type": raw ? "application/x-tar" : "application/json", ...(payload ? { "Content-Length": payload.length } : {}) },
                    timeout: timeoutMs,
                },
                (res) => {
                    const chunks: Buffer[] = [];
                    res.on("data", (c: Buffer) => chunks.push(c));
                    res.on("end", () => {
                        const text = Buffer.concat(chunks).toString();
                        const status = res.statusCode ?? 0;
                        if (status >= 400) {
                            let message = text.trim();
                            try {
                                message = JSON.parse(text).message ?? message;
                            } catch {
                                /* plain text */
                            }
                            reject(new DockerError(`${method} ${path}: ${status} ${message}`, status));
                            return;
                        }
                        if (text.length === 0) {
                            resolve(undefined as T);
                            return;
                        }
                        try {
                            resolve(JSON.parse(text) as T);
                        } catch {
                            resolve(text as unknown as T);
                        }
                    });
                },
            );
            req.on("timeout", () => req.destroy(new DockerError(`${method} ${path}: no answer from the engine at ${this.host} within ${timeoutMs} ms`)));
            req.on("error", (e) => reject(e instanceof DockerError ? e : new DockerError(`${method} ${path} at ${this.host}: ${e.message}`)));
            if (payload) req.write(payload);
            req.end();
        });
    }

    /** True when an engine answers /_ping within the timeout. */
    async ping(timeoutMs = 3000): Promise<boolean> {
        try {
            const answer = await this.request<string>("GET", "/_ping", undefined, timeoutMs);
            return String(answer).trim() === "OK";
        } catch {
            return false;
        }
    }

    /** A stream of newline-delimited JSON objects (events); returns a function that closes it. */
    stream(path: string, onObject: (o: any) => void, onEnd: (e?: Error) => void): Promise<() => void> {
        return new Promise((resolve, reject) => {
            const req = this.send({ ...this.endpoint, method: "GET", path }, (res) => {
                if ((res.statusCode ?? 0) >= 400) {
                    reject(new DockerError(`GET ${path}: ${res.statusCode}`, res.statusCode));
                    res.resume();
                    return;
                }
                let buffered = "";
                res.setEncoding("utf8");
                res.on("data", (chunk: string) => {
                    buffered += chunk;
                    let nl: number;
                    while ((nl = buffered.indexOf("\n")) >= 0) {
                        const line = buffered.slice(0, nl).trim();
                        buffered = buffered.slice(nl + 1);
                        if (line) onObject(JSON.parse(line));
                    }
                });
                res.on("end", () => onEnd());
                res.on("error", (e) => onEnd(e));
                resolve(() => req.destroy());
            });
            req.on("error", (e) => reject(new DockerError(`GET ${path} at ${this.host}: ${e.message}`)));
            req.end();
        });
    }

    /** Environment for the docker CLI aimed at this engine, BuildKit on. */
    cliEnv(): NodeJS.ProcessEnv {
        const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: this.host, DOCKER_BUILDKIT: "1" };
        delete env.DOCKER_CONTEXT;
        if (this.tls) Object.assign(env, { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: this.tls.certPath });
        return env;
    }

    /** The docker CLI against this engine; throws with its stderr when it fails. */
    async cli(args: readonly string[], opts: { input?: string; timeoutMs?: number; allowFailure?: boolean } = {}): Promise<RunResult> {
        const result = await run(dockerCli(), args, { env: this.cliEnv(), input: opts.input, timeoutMs: opts.timeoutMs });
        if (result.code !== 0 && !opts.allowFailure) {
            throw new DockerError(
                `docker ${args.join(" ")} failed (exit ${result.code}):\n${(result.stderr || result.stdout).trim().split("\n").slice(-30).join("\n")}`,
            );
        }
        return result;
    }

    async imageExists(ref: string): Promise<any | undefined> {
        try {
            return await this.request("GET", `/images/${encodeURIComponent(ref)}/json`);
        } catch (e) {
            if (e instanceof DockerError && e.status === 404) return undefined;
            throw e;
        }
    }

    inspectContainer(name: string): Promise<any> {
        return this.request("GET", `/containers/${encodeURIComponent(name)}/json`);
    }

    /** The last lines of a container's log (stdout and stderr), for failure messages. */
    async logs(name: string, lines = 40): Promise<string> {
        const r = await this.cli(["logs", "--tail", String(lines), name], { allowFailure: true });
        return `${r.stdout}${r.stderr}`.trim();
    }
}
