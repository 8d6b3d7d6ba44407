// HTTPS terminated by the AWS load balancer (gateway.tls.source acm; docs/security.md, "TLS at the
// edge", "On aws"), on real processes. The load balancer holds the ACM certificate, terminates TLS
// on 443 and opens each connection to the gateway's offload listener with a PROXY v2 header (the
// client's address); the request itself is plain HTTP/1.1 or, when the client chose h2 by ALPN,
// HTTP/2 with prior knowledge. Here this test is the load balancer: it writes the header by hand.
// The gateway serves the routes as HTTPS (X-Forwarded-Proto https, X-Forwarded-Port 443, HSTS,
// the sticky cookie Secure), never redirects there, refuses a connection without the header, and
// still redirects plain HTTP to https.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { freePort, Gateway, Harness, waitFor } from "./harness";
import { proxyV2Header, startRecordingBackend, type Seen } from "./harness/edge";
import { setWeights, stickyKey } from "./harness/traffic";

interface Answer {
    status: number;
    headers: Map<string, string[]>;
    body: string;
}

/** One HTTP/1.0 request on a new connection to `port`, after a PROXY v2 header for `client` (none when undefined). */
function request(port: number, client: string | undefined, path: string, host = "app.example.com"): Promise<Answer> {
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port }, () => {
            if (client !== undefined) s.write(proxyV2Header(client, port));
            s.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
        });
        let text = "";
        s.setTimeout(10_000, () => s.destroy(new Error(`no answer within 10 s on port ${port}`)));
        s.on("data", (d: Buffer) => (text += d.toString("utf8")));
        // A connection the gateway refuses may be reset rather than closed: no answer either way.
        s.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" ? resolve({ status: 0, headers: new Map(), body: "" }) : reject(err)));
        s.on("close", () => {
            const head = text.slice(0, Math.max(0, text.indexOf("\r\n\r\n")));
            const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
            const headers = new Map<string, string[]>();
            for (const line of head.split("\r\n").slice(1)) {
                const i = line.indexOf(":");
                const k = line.slice(0, i).trim().toLowerCase();
                headers.set(k, [...(headers.get(k) ?? []), line.slice(i + 1).trim()]);
            }
            resolve({ status: m ? Number(m[1]) : 0, headers, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
        });
    });
}

describe("edge behind a load balancer that terminates TLS (acm): the offload listener", { timeout: 180_000 }, () => {
    let h: Harness;
    let offloadPort: number;
    let backend: Awaited<ReturnType<typeof startRecordingBackend>>;

    /** What the backend received for the request `send` makes (which must reach it). */
    async function seenFor(send: () => Promise<Answer>): Promise<{ answer: Answer; seen: Seen }> {
        const n = backend.seen.length;
        const answer = await send();
        assert.equal(answer.status, 200, answer.body);
        assert.equal(backend.seen.length, n + 1);
        return { answer, seen: backend.seen[n]! };
    }

    before(
        async () => {
            offloadPort = await freePort();
            h = await Harness.start({
                gatewayEnv: {
                    GATEWAY_TLS_SOURCE: "acm",
                    GATEWAY_HTTPS_PORT: String(offloadPort),
                    GATEWAY_PUBLIC_HTTPS_PORT: "443",
                    // The harness waits for the rendered config on plain HTTP: redirected in the test below, on a gateway of its own.
                    GATEWAY_TLS_REDIRECT: "false",
                    GATEWAY_HSTS_SECONDS: "600",
                },
            });
            backend = await startRecordingBackend("acm-a");
            h.onStop(backend.close);
            await h.consul.register(backend.registration("acm-v1"));
            await h.waitForConfig((cfg) => cfg.includes("use_backend svc_acm-v1"), "the acm-v1 route rendered", 20_000);
            await waitFor(async () => (await request(offloadPort, "203.0.113.1", "/acm/v1/x").catch(() => undefined))?.status === 200 || undefined, {
                timeoutMs: 20_000,
                message: "/acm/v1/x on the offload listener through the PROXY header",
            }).catch((err: Error) => {
                throw new Error(`${err.message}\n${h.diagnostics()}`);
            });
        },
        { timeout: 90_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("renders https_offloaded on the offload port with accept-proxy, no TLS, no certificate", () => {
        const cfg = h.gateway.readRenderedConfig("live");
        assert.match(cfg, new RegExp(`^frontend https_offloaded\\n {4}bind "\\$\\{GATEWAY_BIND\\}:${offloadPort}" accept-proxy$`, "m"));
        assert.doesNotMatch(cfg, /\bssl\b|crt-list/);
    });

    it("a request with a PROXY v2 header: 200, X-Forwarded-Proto https, port 443, X-Forwarded-For the header's client, HSTS, no redirect", async () => {
        const { answer, seen } = await seenFor(() => request(offloadPort, "198.51.100.23", "/acm/v1/who"));
        assert.equal(seen.headers["x-forwarded-proto"], "https");
        assert.equal(seen.headers["x-forwarded-port"], "443");
        assert.equal(seen.headers["x-forwarded-for"], "198.51.100.23");
        assert.equal(seen.headers["x-forwarded-host"], "app.example.com");
        assert.deepEqual(answer.headers.get("strict-transport-security"), ["max-age=600"]);
        assert.equal(answer.headers.get("location"), undefined);
    });

    it("a client's own X-Forwarded-Proto is not believed there either", async () => {
        const { seen } = await seenFor(
            () =>
                new Promise<Answer>((resolve, reject) => {
                    const s = net.connect({ host: "127.0.0.1", port: offloadPort }, () => {
                        s.write(proxyV2Header("198.51.100.24", offloadPort));
                        s.write("GET /acm/v1/spoof HTTP/1.0\r\nHost: app.example.com\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.6.6.6\r\n\r\n");
                    });
                    let text = "";
                    s.on("data", (d: Buffer) => (text += d.toString("utf8")));
                    s.on("error", reject);
                    s.on("close", () => resolve({ status: Number(/^HTTP\/1\.[01] (\d{3}) /.exec(text)?.[1] ?? 0), headers: new Map(), body: text }));
                }),
        );
        assert.deepEqual(
            seen.raw.filter(([k]) => /^x-forwarded-(proto|for)$/i.test(k)).map(([k, v]) => `${k.toLowerCase()}: ${v}`),
            ["x-forwarded-proto: https", "x-forwarded-for: 198.51.100.24"],
        );
    });

    it("a connection without the PROXY header is refused (closed without an answer)", async () => {
        const n = backend.seen.length;
        const res = await request(offloadPort, undefined, "/acm/v1/direct");
        assert.equal(res.status, 0, `no answer without the PROXY header: ${res.body}`);
        assert.equal(backend.seen.length, n, "nothing reached the backend");
    });

    it("HTTP/2 with prior knowledge after the header (what the load balancer forwards when the client chose h2): 200, https", async () => {
        const session = http2.connect(`http://127.0.0.1:${offloadPort}`, {
            createConnection: () => {
                const s = net.connect({ host: "127.0.0.1", port: offloadPort });
                s.write(proxyV2Header("198.51.100.25", offloadPort));
                return s;
            },
        });
        try {
            const { status, hsts } = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) => {
                session.once("error", reject);
                const req = session.request({ ":path": "/acm/v1/h2", ":authority": "app.example.com" });
                req.once("response", (headers) => {
                    req.resume();
                    req.once("end", () => resolve({ status: Number(headers[":status"]), hsts: headers["strict-transport-security"] }));
                });
                req.once("error", reject);
                req.end();
            });
            assert.equal(status, 200);
            assert.equal(hsts, "max-age=600");
        } finally {
            session.close();
        }
        const seen = backend.seen.at(-1)!;
        assert.equal(seen.url, "/h2");
        assert.equal(seen.headers["x-forwarded-proto"], "https");
        assert.equal(seen.headers["x-forwarded-for"], "198.51.100.25");
    });

    it("with redirect: plain HTTP answers 301 to https on 443 (the load balancer's 80 stays plain); the offload listener never redirects", async () => {
        const port = await freePort();
        const env = {
            GATEWAY_TLS_SOURCE: "acm",
            GATEWAY_HTTPS_PORT: String(port),
            GATEWAY_PUBLIC_HTTPS_PORT: "443",
            GATEWAY_TLS_REDIRECT: "true",
            GATEWAY_HSTS_SECONDS: "600",
        };
        const gw = await Gateway.start(h.tools, h.consul, { env, waitForRender: false });
        h.onStop(() => gw.destroy());
        const res = await waitFor(
            async () => {
                const r = await gw.get("/acm/v1/a?b=1", { headers: { host: "app.example.com" } });
                return r.status === 301 ? r : undefined;
            },
            { timeoutMs: 20_000, message: "the redirect rendered" },
        );
        assert.equal(res.headers.location, "https://app.example.com/acm/v1/a?b=1");
        const offloaded = await waitFor(
            async () => {
                const r = await request(port, "203.0.113.2", "/acm/v1/b");
                return r.status === 200 ? r : undefined;
            },
            { timeoutMs: 20_000, message: "the route on the second gateway's offload listener" },
        );
        assert.equal(offloaded.headers.get("location"), undefined);
    });

    it("the sticky cookie is Secure on the offload listener", async () => {
        await h.addInstance("sticky-v1", "sticky-a");
        await h.addInstance("sticky-v2", "sticky-b");
        await setWeights(h.consul, "sticky", { v1: 50, v2: 50 });
        await h.consul.kvPut(stickyKey("sticky"), "true");
        await h.waitForConfig((cfg) => cfg.includes("sd-sticky="), "sticky rendered");
        const res = await waitFor(
            async () => {
                const r = await request(offloadPort, "203.0.113.5", "/sticky/");
                return r.status === 200 && r.headers.get("set-cookie")?.some((c) => c.startsWith("sd-sticky=")) ? r : undefined;
            },
            { timeoutMs: 20_000, message: "/sticky/ answered with its cookie" },
        );
        const cookie = res.headers.get("set-cookie")!.filter((c) => c.startsWith("sd-sticky="));
        assert.equal(cookie.length, 1, cookie.join("\n"));
        assert.match(cookie[0]!, /; HttpOnly; SameSite=Lax; Secure$/);
    });
});
