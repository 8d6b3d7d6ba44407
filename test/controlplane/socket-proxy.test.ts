// The Docker socket proxy (components/images/socket-proxy): the real HAProxy with the shipped
// haproxy.cfg, only its socket path, bind address and port set by environment as the image
// does, in front of a stand-in engine: an HTTP server on a UNIX socket that records every
// request reaching it. What Registrator needs passes unchanged; writes, other endpoints and
// requests built to slip past the rules get 403 and never reach the socket; the /events stream
// outlives the proxy's timeouts. (How the entrypoint drops privileges: socket-proxy-user.test.ts.)
import assert from "node:assert/strict";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTempDir, Proc, sleep, waitFor } from "./harness";
import { FakeEngine, raw, req, startProxy, type Raw } from "./harness/socket-proxy";

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
