// Forwarding headers at the edge (docs/security.md, "Trust rules"), on real processes: whatever a
// client says about the path its request took (X-Forwarded-*, Forwarded, X-Real-IP,
// True-Client-IP, X-Original-URL...) never reaches a backend; the gateway says it itself
// (X-Forwarded-For/-Host/-Proto/-Port, the port being the one the stack publishes). A trusted
// proxy's headers are kept. A backend records every header line it receives.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness } from "./harness";
import { requestFrom, startRecordingBackend, type Seen } from "./harness/edge";

/** The proxy in front of the gateway, as far as this test's gateway knows (GATEWAY_TRUSTED_PROXIES). */
const TRUSTED = "127.0.0.2";
/** The port the stack publishes the HTTP listener on (GATEWAY_PUBLIC_HTTP_PORT). */
const PUBLIC_PORT = "8080";

/** Every forwarding header a client might send to mislead a backend, with a value that says so. */
const SPOOFED: Record<string, string> = {
    "X-Forwarded-For": "203.0.113.66",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-Server": "evil.example",
    "X-Forwarded-Scheme": "https",
    "X-Forwarded-Ssl": "on",
    Forwarded: "for=203.0.113.66;host=evil.example;proto=https",
    "X-Real-IP": "203.0.113.66",
    "True-Client-IP": "203.0.113.66",
    "X-Client-IP": "203.0.113.66",
    "X-Cluster-Client-IP": "203.0.113.66",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
    "X-Original-Host": "evil.example",
    "X-Host": "evil.example",
    "Front-End-Https": "on",
    "X-Url-Scheme": "https",
};

describe("edge headers: spoofed forwarding headers never reach a backend", { timeout: 120_000 }, () => {
    let h: Harness;
    let backend: Awaited<ReturnType<typeof startRecordingBackend>>;

    /** What the backend received for one request through the gateway. */
    async function seenFor(client: string, path: string, headers: Record<string, string | string[]>): Promise<Seen> {
        const n = backend.seen.length;
        const r = await requestFrom(client, h.gateway.url(path), { headers });
        assert.equal(r.status, 200, r.body);
        assert.equal(backend.seen.length, n + 1);
        return backend.seen[n]!;
    }

    /** Every value the backend got for a header, lines apart and lowercased names. */
    const values = (seen: Seen, name: string): string[] => seen.raw.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

    before(
        async () => {
            h = await Harness.start({ gatewayEnv: { GATEWAY_TRUSTED_PROXIES: `${TRUSTED}/32`, GATEWAY_PUBLIC_HTTP_PORT: PUBLIC_PORT } });
            backend = await startRecordingBackend("headers-a");
            h.onStop(backend.close);
            await h.consul.register(backend.registration("headers-v1"));
            await h.waitForRoute("/headers/v1/", { instance: "headers-a" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("from any client: every forwarding header dropped, the gateway's own set", async () => {
        const seen = await seenFor("127.0.0.1", "/headers/v1/x", { ...SPOOFED, Host: "app.example:8080" });
        for (const [name, value] of Object.entries(SPOOFED)) {
            assert.ok(!values(seen, name).some((v) => v.includes(value)), `${name}: ${JSON.stringify(values(seen, name))} reached the backend`);
        }
        assert.deepEqual(values(seen, "X-Forwarded-For"), ["127.0.0.1"]);
        assert.deepEqual(values(seen, "X-Forwarded-Host"), ["app.example:8080"]);
        assert.deepEqual(values(seen, "X-Forwarded-Proto"), ["http"]);
        assert.deepEqual(values(seen, "X-Forwarded-Port"), [PUBLIC_PORT]);
        assert.deepEqual(values(seen, "X-Forwarded-Prefix"), ["/headers/v1"]);
        for (const name of ["Forwarded", "X-Real-IP", "True-Client-IP", "X-Client-IP", "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Server"]) {
            assert.deepEqual(values(seen, name), [], name);
        }
        assert.equal(seen.url, "/x", "the path the client asked for, not X-Original-URL's");
    });

    it("whatever their case, and repeated", async () => {
        const seen = await seenFor("127.0.0.3", "/headers/v1/y", {
            "x-forwarded-host": "evil.example",
            "X-FORWARDED-PROTO": "https",
            "x-real-ip": ["203.0.113.1", "203.0.113.2"],
            "true-client-ip": "203.0.113.66",
            "x-original-url": "/admin",
        });
        assert.deepEqual(values(seen, "X-Forwarded-Host"), [`127.0.0.1:${h.gateway.httpPort}`]);
        assert.deepEqual(values(seen, "X-Forwarded-Proto"), ["http"]);
        for (const name of ["X-Real-IP", "True-Client-IP", "X-Original-URL"]) assert.deepEqual(values(seen, name), [], name);
    });

    it("from a trusted proxy: its forwarding headers are kept, the client address appended", async () => {
        const seen = await seenFor(TRUSTED, "/headers/v1/z", {
            "X-Forwarded-For": "198.51.100.7",
            "X-Forwarded-Host": "shop.example",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "443",
            "True-Client-IP": "198.51.100.7",
            "X-Real-IP": "198.51.100.7",
        });
        assert.deepEqual(values(seen, "X-Forwarded-For"), ["198.51.100.7", TRUSTED]);
        assert.deepEqual(values(seen, "X-Forwarded-Host"), ["shop.example"]);
        assert.deepEqual(values(seen, "X-Forwarded-Proto"), ["https"]);
        assert.deepEqual(values(seen, "X-Forwarded-Port"), ["443"]);
        assert.deepEqual(values(seen, "True-Client-IP"), ["198.51.100.7"]);
        assert.deepEqual(values(seen, "X-Real-IP"), ["198.51.100.7"]);
        // What it did not say, the gateway says.
        const bare = await seenFor(TRUSTED, "/headers/v1/z", { Host: "shop.example" });
        assert.deepEqual(values(bare, "X-Forwarded-For"), [TRUSTED]);
        assert.deepEqual(values(bare, "X-Forwarded-Host"), ["shop.example"]);
        assert.deepEqual(values(bare, "X-Forwarded-Proto"), ["http"]);
        assert.deepEqual(values(bare, "X-Forwarded-Port"), [PUBLIC_PORT]);
    });
});
