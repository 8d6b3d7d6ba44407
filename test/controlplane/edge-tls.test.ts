// TLS at the edge (docs/security.md, "TLS at the edge") on real processes: the gateway's HTTPS
// listener serves the certificates Pulumi writes to KV (chain public, key sealed), each one
// installed through HAProxy's runtime API — a rotation under load over HTTPS fails no request and
// the HAProxy master does not reload; a key that does not unseal or a PEM that does not parse is
// rejected and the running certificate kept; routing is HTTP's, with X-Forwarded-Proto https,
// HTTP/2 by ALPN, TLS 1.2+ only; plain HTTP redirects (ACME challenges excepted), HSTS, and the
// sticky cookie is Secure over HTTPS.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { PLACEHOLDER_NAME } from "../../components/images/gateway/controller/placeholder";
import { KV_PREFIX, TLS_KV } from "../../components/images/gateway/controller/rules";
import { seal } from "../../components/images/gateway/controller/sealed";
import { Gateway, Harness, httpRequest, sleep, waitFor } from "./harness";
import { startRecordingBackend } from "./harness/edge";
import { edgeCa, issue, presented, putCertificate, sealingKeyFile, tlsGatewayEnv } from "./harness/tls";
import { setWeights, startWrk, stickyKey } from "./harness/traffic";
import type { TestCa } from "./harness/pki";

/** Whether a second TLS connection resumes the session the first one got (its ticket, which TLS 1.3 sends after the handshake). */
async function resumes(port: number, version: "TLSv1.2" | "TLSv1.3"): Promise<boolean> {
    const connect = (session?: Buffer): Promise<{ session: Buffer | undefined; reused: boolean }> =>
        new Promise((resolve, reject) => {
            let got: Buffer | undefined;
            const s = tls.connect({
                host: "127.0.0.1",
                port,
                servername: "localhost",
                rejectUnauthorized: false,
                minVersion: version,
                maxVersion: version,
                ...(session ? { session } : {}),
            });
            s.on("session", (t: Buffer) => (got = t));
            s.once("secureConnect", () => {
                const reused = s.isSessionReused();
                s.write("GET /-/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                s.on("data", () => undefined);
                s.once("end", () => resolve({ session: got, reused }));
            });
            s.once("error", reject);
        });
    const first = await connect();
    assert.ok(first.session, `no ${version} session ticket`);
    return (await connect(first.session)).reused;
}

describe("edge TLS: certificates from KV, applied at run time", { timeout: 300_000 }, () => {
    let h: Harness;
    let ca: TestCa;
    let sealing: { file: string; key: Buffer };
    let httpsPort: number;
    let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
    const first = { certPem: "", keyPem: "", serial: "" };

    const https = (p: string, headers: Record<string, string> = {}) =>
        httpRequest(`https://localhost:${httpsPort}${p}`, { ca: ca.caPem, headers, timeoutMs: 5000 });
    const metrics = async (): Promise<string> => {
        const auth = Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
        return (await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth}` } })).body;
    };
    const servedSerial = async (servername = "localhost"): Promise<string> => (await presented(httpsPort, { servername })).serial;

    before(
        async () => {
            sealing = sealingKeyFile();
            ca = edgeCa();
            const env = await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file });
            httpsPort = Number(env.GATEWAY_HTTPS_PORT);
            h = await Harness.start({ gatewayEnv: env });
            backend = await startRecordingBackend("tls-a");
            h.onStop(backend.close);
            await h.consul.register(backend.registration("tls-v1"));
            await h.waitForRoute("/tls/v1/", { instance: "tls-a" });
            Object.assign(first, issue(ca, ["localhost", "app.test"]));
        },
        { timeout: 60_000 },
    );

    after(async () => {
        if (process.env.DEBUG_TLS) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("listens from the start with a placeholder, then serves the certificate written to KV without a reload", async () => {
        const placeholder = await presented(httpsPort, { servername: "localhost" });
        assert.equal(placeholder.subjectAltName, `DNS:${PLACEHOLDER_NAME}`);
        const reloads = await h.gateway.masterReloads();
        await putCertificate(h.consul, sealing.key, "app", first);
        await waitFor(async () => (await servedSerial()) === first.serial, { timeoutMs: 10_000, message: "the certificate from KV served" });
        // Any name, or none, gets the default certificate: the first by name.
        assert.equal((await presented(httpsPort, {})).serial, first.serial);
        assert.equal(await h.gateway.masterReloads(), reloads, "the master reloaded");
        await h.gateway.logged(/runtime API: certificate\(s\) the default certificate, app installed, no reload/);
        const m = await metrics();
        const expiry = new RegExp(`^gateway_controller_certificate_expiry_seconds\\{name="app",serial="${first.serial}"\\} (\\d+)$`, "m").exec(m);
        assert.ok(expiry, m);
        assert.ok(Number(expiry[1]) > 86400 && Number(expiry[1]) <= 2 * 86400, `expires in ${expiry[1]} s (the test CA issues for 2 days)`);
    });

    it("routes HTTPS as HTTP: verified by the CA, HTTP/2 by ALPN, X-Forwarded-Proto https and the HTTPS port; TLS 1.1 refused", async () => {
        const n = backend.seen.length;
        const res = await https("/tls/v1/x", { "X-Forwarded-Proto": "http" });
        assert.equal(res.status, 200, res.body);
        const seen = backend.seen[n]!;
        assert.equal(seen.url, "/x");
        assert.equal(seen.headers["x-forwarded-proto"], "https");
        assert.equal(seen.headers["x-forwarded-port"], String(httpsPort));
        assert.equal((await presented(httpsPort, { servername: "localhost", alpn: ["h2", "http/1.1"] })).protocol, "h2");
        assert.equal((await presented(httpsPort, { servername: "localhost", alpn: ["http/1.1"] })).protocol, "http/1.1");
        await assert.rejects(
            new Promise<void>((resolve, reject) => {
                // The client offers TLS 1.1 (its own security level lowered): the gateway answers with the "protocol version" alert.
                const s = tls.connect({
                    host: "127.0.0.1",
                    port: httpsPort,
                    rejectUnauthorized: false,
                    minVersion: "TLSv1",
                    maxVersion: "TLSv1.1",
                    ciphers: "DEFAULT:@SECLEVEL=0",
                });
                s.once("secureConnect", () => {
                    s.end();
                    resolve();
                });
                s.once("error", reject);
            }),
            { code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" },
            "TLS 1.1 is refused by the gateway",
        );
        // Sessions resume (a ticket from the first connection, offered on the second), TLS 1.2 and 1.3.
        for (const version of ["TLSv1.2", "TLSv1.3"] as const) assert.ok(await resumes(httpsPort, version), `a ${version} session resumes`);
        // Plain HTTP still works on this gateway (no redirect configured) and says http.
        const plain = await h.gateway.get("/tls/v1/y");
        assert.equal(plain.status, 200);
        assert.equal(backend.seen.at(-1)!.headers["x-forwarded-proto"], "http");
    });

    it("a certificate rotated twice under wrk over HTTPS (a handshake per request): 0 failed requests, no reload", async (t) => {
        const rot = await startRecordingBackend("rot-a");
        h.onStop(rot.close);
        await h.consul.register(rot.registration("rot-v1"));
        await h.waitForRoute("/rot/v1/");
        const reloads = await h.gateway.masterReloads();
        const wrk = startWrk(h.tools, { url: `https://127.0.0.1:${httpsPort}/rot/v1/`, threads: 2, connections: 16, headers: ["Connection: close"] });
        await sleep(2000);
        const second = issue(ca, ["localhost", "app.test"]);
        await putCertificate(h.consul, sealing.key, "app", second);
        await waitFor(async () => (await servedSerial()) === second.serial, { timeoutMs: 10_000, message: "the second certificate served" });
        await sleep(2000);
        const third = issue(ca, ["localhost", "app.test"]);
        await putCertificate(h.consul, sealing.key, "app", third);
        await waitFor(async () => (await servedSerial()) === third.serial, { timeoutMs: 10_000, message: "the third certificate served" });
        await sleep(2000);
        const r = await wrk.stop();
        t.diagnostic(
            `wrk over HTTPS: ${r.requests} requests, ${r.failed} failed, ${r.requestsPerSec} req/s; reloads ${reloads} -> ${await h.gateway.masterReloads()}`,
        );
        assert.ok(r.requests > 200, `only ${r.requests} requests`);
        assert.equal(r.failed, 0, r.raw);
        assert.equal(await h.gateway.masterReloads(), reloads, "the master reloaded");
        Object.assign(first, third);
    });

    it("a key that does not unseal, a key of another certificate, a PEM that does not parse: rejected, the running certificate kept", async () => {
        const serial = await servedSerial();
        const keyPath = `${KV_PREFIX}/${TLS_KV.key("app")}`;
        const chainPath = `${KV_PREFIX}/${TLS_KV.chain("app")}`;
        const other = issue(ca, ["localhost"]);
        const cases: [string, () => Promise<void>, RegExp][] = [
            [
                "sealed with another key",
                () => h.consul.kvPut(keyPath, seal(randomBytes(32), keyPath, other.keyPem)),
                /rejected: KV service\/haproxy\/tls\/certificates\/app: the certificate has a key that cannot be unsealed/,
            ],
            [
                "sealed for another path",
                () => h.consul.kvPut(keyPath, seal(sealing.key, `${KV_PREFIX}/${TLS_KV.key("other")}`, other.keyPem)),
                /cannot be unsealed: it does not open/,
            ],
            ["another certificate's key", () => h.consul.kvPut(keyPath, seal(sealing.key, keyPath, other.keyPem)), /has a key that is not the certificate's/],
            [
                "a chain that does not parse",
                () => h.consul.kvPut(chainPath, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                /does not parse as X.509/,
            ],
        ];
        for (const [what, write, note] of cases) {
            const logged = h.gateway.proc!.stderr.toString().length;
            await write();
            await waitFor(() => note.test(h.gateway.proc!.stderr.toString().slice(logged)), { timeoutMs: 10_000, message: `${what}: the rejection logged` });
            assert.match(await metrics(), /^gateway_controller_notes\{kind="rejected"\} [1-9]/m, what);
            assert.equal(await servedSerial(), serial, `${what}: the running certificate replaced`);
            assert.match(h.gateway.proc!.stderr.toString().slice(logged), new RegExp(`keeping the one running \\(serial ${serial}\\)`));
            await putCertificate(h.consul, sealing.key, "app", first);
            await waitFor(async () => !/kind="rejected"\} [1-9]/.test(await metrics()), { timeoutMs: 10_000, message: `${what}: the note cleared` });
        }
        assert.equal(await servedSerial(), serial);
    });

    it("another certificate is added by name and chosen by SNI, then removed, at run time", async () => {
        const reloads = await h.gateway.masterReloads();
        const shop = issue(ca, ["shop.test"]);
        await putCertificate(h.consul, sealing.key, "shop", shop);
        await waitFor(async () => (await servedSerial("shop.test")) === shop.serial, { timeoutMs: 10_000, message: "shop.test's certificate by SNI" });
        assert.equal(await servedSerial("localhost"), first.serial, "the default stays the first by name");
        await h.consul.kvDelete(`${KV_PREFIX}/${TLS_KV.chain("shop")}`);
        await h.consul.kvDelete(`${KV_PREFIX}/${TLS_KV.key("shop")}`);
        await waitFor(async () => (await servedSerial("shop.test")) === first.serial, { timeoutMs: 10_000, message: "shop.test back to the default" });
        assert.equal(await h.gateway.masterReloads(), reloads, "the master reloaded");
    });

    it("sticky cookie: Secure over HTTPS only", async () => {
        const v1 = await h.addInstance("sticky-v1", "sticky-a");
        await h.addInstance("sticky-v2", "sticky-b");
        await setWeights(h.consul, "sticky", { v1: 50, v2: 50 });
        await h.consul.kvPut(stickyKey("sticky"), "true");
        await h.waitForConfig((cfg) => cfg.includes("sd-sticky="), "sticky rendered");
        await h.waitForRoute("/sticky/");
        const cookie = (res: { headers: Record<string, unknown> }): string =>
            String([res.headers["set-cookie"]].flat().find((c) => String(c).startsWith("sd-sticky=")));
        assert.match(cookie(await https("/sticky/")), /; HttpOnly; SameSite=Lax; Secure$/);
        assert.doesNotMatch(cookie(await h.gateway.get("/sticky/")), /Secure/);
        assert.ok(v1);
    });

    it("with redirect and HSTS: plain HTTP answers 301 (GET) or 308 (POST) to HTTPS, never for ACME challenges or health; HTTPS sends HSTS", async () => {
        const env = { ...(await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file, redirect: true, hstsSeconds: 600 })) };
        const gw = await Gateway.start(h.tools, h.consul, { env, waitForRender: false });
        h.onStop(() => gw.destroy());
        const port = Number(env.GATEWAY_HTTPS_PORT);
        const get = await waitFor(
            async () => {
                const r = await gw.get("/tls/v1/a?b=1", { headers: { host: `example.test:${gw.httpPort}` } });
                return r.status === 301 ? r : undefined;
            },
            { timeoutMs: 15_000, message: "the redirect rendered" },
        );
        assert.equal(get.headers.location, `https://example.test:${port}/tls/v1/a?b=1`);
        const post = await gw.get("/tls/v1/a", { method: "POST", body: "x", headers: { host: "example.test" } });
        assert.equal(post.status, 308);
        assert.equal(post.headers.location, `https://example.test:${port}/tls/v1/a`);
        assert.equal((await gw.get("/-/health")).status, 200, "the load balancer's check is not redirected");
        const acmePath = await gw.get("/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz");
        assert.notEqual(acmePath.status, 301, "an ACME challenge is not redirected");
        await waitFor(async () => (await presented(port, { servername: "localhost" })).serial === first.serial, { timeoutMs: 10_000, message: "certificate" });
        const res = await httpRequest(`https://localhost:${port}/tls/v1/`, { ca: ca.caPem });
        assert.equal(res.status, 200);
        assert.equal(res.headers["strict-transport-security"], "max-age=600");
        const noRoute = await httpRequest(`https://localhost:${port}/nowhere`, { ca: ca.caPem });
        assert.equal(noRoute.headers["strict-transport-security"], "max-age=600", "on the gateway's own answers too");
    });
});
