// The Docker socket proxy (components/images/socket-proxy): the real HAProxy with the shipped
// haproxy.cfg, only its socket path, bind address and port set by environment as the image
// does, in front of a stand-in engine: an HTTP server on a UNIX socket that records every
// request reaching it. What Registrator needs passes unchanged; writes, other endpoints and
// requests built to slip past the rules get 403 and never reach the socket; the /events stream
// outlives the proxy's timeouts. The entrypoint runs HAProxy unprivileged when the socket allows.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, makeTempDir, Proc, readTools, REPO_ROOT, sleep, waitFor } from "./harness";

const IMAGE_DIR = path.join(REPO_ROOT, "components", "images", "socket-proxy");
const CFG = path.join(IMAGE_DIR, "haproxy.cfg");
const ENTRYPOINT = path.join(IMAGE_DIR, "entrypoint.sh");
const tools = readTools();

interface Seen {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
    body: string;
}

/** A stand-in Docker engine on a UNIX socket: records what reaches it; /events streams. */
class FakeEngine {
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

interface Raw {
    /** Status of each response on the connection, in order. */
    statuses: number[];
    text: string;
}

/** Sends bytes as they are on a new connection; collects what comes back until it closes. */
function raw(port: number, request: string, timeoutMs = 3000): Promise<Raw> {
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
function req(method: string, target: string, headers: string[] = [], body = ""): string {
    const lines = [`${method} ${target} HTTP/1.1`, "Host: docker", ...headers, "Connection: close"];
    if (body && !headers.some((h) => /^(content-length|transfer-encoding):/i.test(h))) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/** A started proxy: HAProxy with the shipped config, or the image's entrypoint. */
async function startProxy(name: string, socketPath: string, opts: { entrypoint?: boolean; conf?: string } = {}): Promise<{ proc: Proc; port: number }> {
    const port = await freePort();
    const env = {
        ...process.env,
        DOCKER_SOCKET: socketPath,
        SOCKET_PROXY_BIND: "127.0.0.1",
        SOCKET_PROXY_PORT: String(port),
        SOCKET_PROXY_CONF: opts.conf ?? CFG,
        HAPROXY_BIN: tools.HAPROXY_BIN,
    };
    const proc = opts.entrypoint ? new Proc(name, "bash", [ENTRYPOINT], { env }) : new Proc(name, tools.HAPROXY_BIN, ["-db", "-f", CFG], { env });
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

describe("Docker socket proxy: the shipped haproxy.cfg in front of an engine socket", () => {
    let dir: string;
    let engine: FakeEngine;
    let proxy: Proc;
    let port: number;

    before(async () => {
        dir = makeTempDir("socket-proxy");
        engine = await FakeEngine.start(path.join(dir, "docker.sock"));
        ({ proc: proxy, port } = await startProxy("socket-proxy", engine.socketPath));
    });

    after(async () => {
        await proxy?.stop();
        await engine?.close();
    });

    /** Sends a request that must be refused: 403 (or 400 from the parser), nothing reaches the socket. */
    async function refused(request: string, why: string, expected: number[] = [403]): Promise<Raw> {
        const before = engine.seen.length;
        // Kept-alive connections stay open after the answer: 1 s is plenty for it to come.
        const answer = await raw(port, request, 1000);
        assert.ok(
            answer.statuses.length > 0 && answer.statuses.every((s) => expected.includes(s)),
            `${why}: answered ${answer.statuses.join(",") || "nothing"}, expected ${expected}\n${answer.text}`,
        );
        await sleep(20);
        assert.deepEqual(
            engine.seen.slice(before).map((s) => `${s.method} ${s.url}`),
            [],
            `${why}: reached the socket`,
        );
        return answer;
    }

    it("lets every call Registrator makes through, unchanged, with or without an API version and with queries", async () => {
        const id = "4f1c2b3a".repeat(8);
        const targets = [
            "/_ping",
            "/version",
            "/info",
            "/containers/json",
            "/containers/json?all=1&filters=%7B%22status%22%3A%5B%22running%22%5D%7D",
            `/containers/${id}/json`,
            `/containers/${id.slice(0, 12)}/json?size=false`,
            "/containers/dev-hello-v1-1/json",
            "/containers/a.b_c-d/json",
        ];
        for (const prefix of ["", "/v1.24", "/v1.41", "/v1.100"]) {
            for (const target of targets) {
                for (const method of ["GET", "HEAD"]) {
                    const before = engine.seen.length;
                    const answer = await raw(port, req(method, `${prefix}${target}`));
                    assert.deepEqual(answer.statuses, [200], `${method} ${prefix}${target}: ${answer.text}`);
                    assert.deepEqual(
                        engine.seen.slice(before).map((s) => `${s.method} ${s.url}`),
                        [`${method} ${prefix}${target}`],
                    );
                }
            }
        }
        // As go-dockerclient (Registrator's client) sends them: no Host value on the events
        // stream, a Host of the proxy on the others.
        const before = engine.seen.length;
        assert.deepEqual(
            (await raw(port, "GET /version HTTP/1.1\r\nHost: docker-socket-proxy:2375\r\nUser-Agent: go-dockerclient\r\nConnection: close\r\n\r\n")).statuses,
            [200],
        );
        assert.deepEqual(
            engine.seen.slice(before).map((s) => s.url),
            ["/version"],
        );
    });

    it("refuses writes and every other endpoint with 403, before the socket", async () => {
        const attempts: [string, string, string?][] = [
            ["POST", "/containers/create", JSON.stringify({ Image: "debian", HostConfig: { Privileged: true, Binds: ["/:/host"] } })],
            ["POST", "/v1.41/containers/create?name=evil", "{}"],
            ["DELETE", "/containers/dev-consul"],
            ["DELETE", "/v1.41/containers/dev-consul?force=true&v=true"],
            ["POST", "/containers/dev-consul/exec", JSON.stringify({ Cmd: ["sh"] })],
            ["POST", "/exec/abc/start", "{}"],
            ["GET", "/exec/abc/json"],
            ["POST", "/images/create?fromImage=evil&tag=1"],
            ["GET", "/images/json"],
            ["POST", "/build?t=evil"],
            ["GET", "/volumes"],
            ["POST", "/volumes/create", "{}"],
            ["GET", "/networks"],
            ["POST", "/networks/create", "{}"],
            ["POST", "/containers/dev-consul/start"],
            ["POST", "/containers/dev-consul/kill"],
            ["POST", "/containers/dev-consul/update", "{}"],
            ["GET", "/containers/dev-consul/logs?stdout=1"],
            ["GET", "/containers/dev-consul/archive?path=/consul/data"],
            ["PUT", "/containers/dev-consul/archive?path=/", "x"],
            ["GET", "/containers/dev-consul/export"],
            ["GET", "/containers/dev-consul/top"],
            ["POST", "/containers/prune"],
            ["GET", "/system/df"],
            ["GET", "/secrets"],
            ["POST", "/swarm/init", "{}"],
            ["POST", "/session"],
            ["POST", "/_ping"],
            ["PUT", "/containers/json"],
            ["OPTIONS", "/containers/json"],
            ["GET", "/containers/json/extra"],
            ["GET", "/v2.0/containers/json"],
            ["GET", "/containers//json"],
            ["GET", `/containers/${"a".repeat(129)}/json`],
        ];
        for (const [method, target, body] of attempts) {
            const answer = await refused(req(method, target, [], body), `${method} ${target}`);
            assert.match(answer.text, /refused by the Docker socket proxy/);
        }
    });

    it("refuses requests built to slip past the rules: dot segments, encodings, query strings, other URI forms and versions, bodies, upgrades", async () => {
        // Dot segments and encoded slashes: the engine's router would resolve them differently.
        for (const target of [
            "/containers/x/json/../../create",
            "/containers/x/../create/json",
            "/containers/../containers/json",
            "/./_ping",
            "//_ping",
            "/containers/x%2F..%2F..%2Fcreate/json",
            "/containers%2Fjson",
            "/containers/x%2fjson",
            "/%5Fping",
            "/containers/x/json%00",
            "/containers/x/json;/create",
            "/containers\\json",
            "/v1.41/../containers/create",
        ]) {
            await refused(req("GET", target), `GET ${target}`, [400, 403]);
        }
        await refused(req("POST", "/containers/x/json/../../create", [], "{}"), "POST with dot segments");
        // A query string is only a query: it does not decide the endpoint.
        await refused(req("POST", "/containers/create?x=/containers/json", [], "{}"), "POST with an allowed path in the query");
        await refused(req("GET", "/containers/create?/containers/json"), "GET with an allowed path in the query");
        const before = engine.seen.length;
        assert.deepEqual((await raw(port, req("GET", "/_ping?../../containers/create"))).statuses, [200]);
        assert.deepEqual(
            engine.seen.slice(before).map((s) => s.url),
            ["/_ping?../../containers/create"],
            "the engine routes on the path, /_ping",
        );

        // Absolute-URI request lines and CONNECT: another way to name the target.
        await refused(req("GET", "http://docker/containers/json"), "absolute URI");
        await refused(req("POST", "http://docker/containers/create", [], "{}"), "absolute URI POST");
        await refused(req("GET", "http://docker/_ping@evil/containers/create"), "absolute URI with user info");
        await refused("CONNECT docker:2375 HTTP/1.1\r\nHost: docker:2375\r\n\r\n", "CONNECT", [400, 403]);
        await refused("GET * HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n", "asterisk form", [400, 403]);

        // Other HTTP versions: 1.0 (different keep-alive and body rules), 0.9, an h2c preface.
        await refused("GET /containers/json HTTP/1.0\r\n\r\n", "HTTP/1.0 GET");
        await refused("POST /containers/create HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.0 POST");
        await refused("GET /containers/json\r\n\r\n", "HTTP/0.9", [400]);
        await refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2c prior knowledge", [400]);

        // A body on a GET: chunked (a smuggled request inside), a length, both.
        const smuggled = "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}";
        const chunk = `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
        await refused(req("GET", "/containers/json", ["Transfer-Encoding: chunked"], chunk), "chunked GET");
        await refused(req("GET", "/containers/json", ["Transfer-Encoding: gzip, chunked"], chunk), "chunked GET, other coding first", [403, 422]);
        await refused(req("GET", "/containers/json", [`Content-Length: ${Buffer.byteLength(smuggled)}`], smuggled), "GET with a body");
        await refused(req("GET", "/containers/json", ["Content-Length: 5", "Transfer-Encoding: chunked"], chunk), "GET with both", [400, 403]);
        await refused(req("GET", "/containers/json", ["Content-Length: 0", "Content-Length: 5"], "xxxxx"), "GET with two lengths", [400, 403]);
        await refused(req("HEAD", "/events", ["Transfer-Encoding: chunked"], chunk), "chunked HEAD");

        // Upgrades and hijacks (how attach and exec take over the connection).
        await refused("GET /containers/json HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", "GET with Upgrade: tcp");
        await refused("GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive, Upgrade\r\n\r\n", "Connection: upgrade without Upgrade");
        await refused("GET /_ping HTTP/1.1\r\nHost: docker\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n", "Upgrade: h2c");
        await refused("POST /containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", "attach hijack");
        await refused("GET /events HTTP/1.1\r\nHost: docker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "events as a websocket", [400, 403]);

        // Methods are case-sensitive: lower case is not GET.
        await refused(req("get", "/_ping"), "lower-case method");
    });

    it("judges each request on a kept-alive connection on its own", async () => {
        const before = engine.seen.length;
        const answer = await raw(
            port,
            "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n" +
                "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}" +
                "GET /version HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
        );
        assert.equal(answer.statuses[0], 200, answer.text);
        assert.equal(answer.statuses[1], 403, answer.text);
        assert.deepEqual(
            engine.seen
                .slice(before)
                .map((s) => `${s.method} ${s.url}`)
                .filter((s) => !s.endsWith("/version")),
            ["GET /_ping"],
        );
    });

    it("logs each refusal with its method, URI and reason", async () => {
        await raw(port, req("DELETE", "/containers/dev-consul?force=1"));
        await raw(port, req("GET", "/containers/x/json/../../create"));
        await raw(port, "GET /containers/json HTTP/1.0\r\n\r\n");
        await waitFor(
            () => {
                const log = proxy.stdout.toString();
                return (
                    /^socket-proxy: 127\.0\.0\.1 DELETE "\/containers\/dev-consul\?force=1" HTTP\/1\.1 403 [0-9]+ [0-9]+ refused=method$/m.test(log) &&
                    /^socket-proxy: 127\.0\.0\.1 GET "\/containers\/x\/json\/\.\.\/\.\.\/create" HTTP\/1\.1 403 [0-9]+ [0-9]+ refused=path$/m.test(log) &&
                    /^socket-proxy: 127\.0\.0\.1 GET "\/containers\/json" HTTP\/1\.0 403 [0-9]+ [0-9]+ refused=version$/m.test(log)
                );
            },
            { timeoutMs: 5000, message: `refusals in the proxy's log:\n${proxy.stdout.toString().slice(-2000)}` },
        );
        // Allowed requests are logged too, marked as not refused.
        assert.match(proxy.stdout.toString(), /socket-proxy: 127\.0\.0\.1 GET "\/_ping" HTTP\/1\.1 200 .* refused=-$/m);
    });

    it("keeps the /events stream open past the default timeouts, which still cut other calls", { timeout: 60_000 }, async () => {
        const open = (request: string) => {
            const sock = net.connect(port, "127.0.0.1");
            const state = { text: "", closed: false };
            sock.setEncoding("utf8");
            sock.on("data", (d: string) => (state.text += d));
            sock.on("close", () => (state.closed = true));
            sock.on("error", () => undefined);
            sock.write(request);
            return { sock, state };
        };
        const started = Date.now();
        // As go-dockerclient opens it (an empty Host), and versioned with filters.
        const a = open("GET /events HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n\r\n");
        const b = open(`GET /v1.41/events?filters=${encodeURIComponent(JSON.stringify({ type: ["container"] }))} HTTP/1.1\r\nHost: docker\r\n\r\n`);
        try {
            await waitFor(() => /^HTTP\/1\.1 200 /.test(a.state.text) && /^HTTP\/1\.1 200 /.test(b.state.text), {
                timeoutMs: 3000,
                message: "both streams answered",
            });
            // A call the engine never answers is cut by the default server timeout (10 s).
            const slow = await raw(port, req("GET", "/containers/slow/json"), 20_000);
            const slowAfter = Date.now() - started;
            assert.deepEqual(slow.statuses, [504], slow.text);
            assert.ok(slowAfter >= 9_000, `timed out after ${slowAfter} ms`);
            await sleep(Math.max(0, 12_000 - (Date.now() - started)));
            assert.equal(a.state.closed || b.state.closed, false, "a stream was closed during the silence");
            assert.equal(engine.emit({ status: "start", id: "abc", Type: "container", Action: "start", time: 1 }), 2, "both streams reached the engine");
            await waitFor(() => a.state.text.includes('"Action":"start"') && b.state.text.includes('"Action":"start"'), {
                timeoutMs: 3000,
                message: "the event on both streams",
            });
            assert.ok(Date.now() - started > 12_000);
            assert.equal(a.state.closed || b.state.closed, false);
        } finally {
            a.sock.destroy();
            b.sock.destroy();
        }
    });
});

describe(
    "Docker socket proxy: the entrypoint runs HAProxy without privileges",
    { skip: process.getuid?.() === 0 ? false : "needs root to own sockets as other users and to switch users" },
    () => {
        let dir: string;
        let conf: string;
        const started: { proc: Proc; engine: FakeEngine }[] = [];

        before(() => {
            dir = makeTempDir("socket-proxy-user");
            // Unprivileged users must reach the socket and read the config in it.
            fs.chmodSync(dir, 0o711);
            conf = path.join(dir, "haproxy.cfg");
            fs.copyFileSync(CFG, conf);
            fs.chmodSync(conf, 0o644);
        });

        after(async () => {
            for (const s of started) {
                await s.proc.stop();
                await s.engine.close();
            }
        });

        /** Proc status fields of the running HAProxy (the entrypoint execs into it). */
        function status(pid: number): Record<string, string> {
            const out: Record<string, string> = {};
            for (const line of fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
                const i = line.indexOf(":");
                if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
            }
            return out;
        }

        async function run(name: string, mode: number, uid: number, gid: number): Promise<{ proc: Proc; st: Record<string, string>; port: number }> {
            const socketPath = path.join(dir, `${name}.sock`);
            const engine = await FakeEngine.start(socketPath);
            fs.chownSync(socketPath, uid, gid);
            fs.chmodSync(socketPath, mode);
            const { proc, port } = await startProxy(name, socketPath, { entrypoint: true, conf });
            started.push({ proc, engine });
            assert.equal(fs.readFileSync(`/proc/${proc.pid}/comm`, "utf8").trim(), "haproxy", "the entrypoint execs into HAProxy");
            const st = status(proc.pid);
            // Whatever the user: no capability, none to regain.
            assert.equal(st.CapEff, "0000000000000000", `${name}: effective capabilities`);
            assert.equal(st.CapPrm, "0000000000000000", `${name}: permitted capabilities`);
            assert.equal(st.CapBnd, "0000000000000000", `${name}: bounding set`);
            assert.equal(st.NoNewPrivs, "1", `${name}: no_new_privs`);
            assert.ok(
                engine.seen.some((s) => s.url === "/_ping"),
                `${name}: /_ping reached the socket through the proxy`,
            );
            return { proc, st, port };
        }

        it("a group-writable socket: user nobody with the socket's group as its only group", async () => {
            const { st, proc } = await run("group", 0o660, 0, 4242);
            assert.equal(st.Uid.split(/\s+/)[0], "65534");
            assert.deepEqual(st.Uid.split(/\s+/), ["65534", "65534", "65534", "65534"]);
            assert.deepEqual(st.Gid.split(/\s+/), ["4242", "4242", "4242", "4242"]);
            assert.equal(st.Groups, "", "no supplementary groups (root's are dropped)");
            assert.match(proc.stderr.toString(), /forwarding to .*group\.sock \(mode 660, owner 0:4242\) as uid 65534 gid 4242/);
        });

        it("a socket only its non-root owner may use (a rootless engine's): that owner", async () => {
            const { st } = await run("owner", 0o600, 4243, 4243);
            assert.deepEqual(st.Uid.split(/\s+/), ["4243", "4243", "4243", "4243"]);
            assert.equal(st.Gid.split(/\s+/)[0], "4243");
        });

        it("a root-only socket: root, said in the log, still without capabilities", async () => {
            const { st, proc } = await run("root", 0o600, 0, 0);
            assert.equal(st.Uid.split(/\s+/)[0], "0");
            assert.match(proc.stderr.toString(), /is writable by root only: running HAProxy as root, without capabilities/);
        });

        it("no socket at the path: exits with a message naming it", async () => {
            const proc = new Proc("no-socket", "bash", [ENTRYPOINT], {
                env: {
                    ...process.env,
                    DOCKER_SOCKET: path.join(dir, "missing.sock"),
                    SOCKET_PROXY_CONF: conf,
                    HAPROXY_BIN: tools.HAPROXY_BIN,
                    SOCKET_PROXY_PORT: String(await freePort()),
                },
            });
            const { code } = await proc.exited;
            assert.equal(code, 66);
            assert.match(proc.stderr.toString(), /missing\.sock is not a socket: mount the Docker engine's socket there/);
            await proc.stop();
        });
    },
);
