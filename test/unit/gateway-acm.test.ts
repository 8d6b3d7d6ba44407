// HTTPS terminated by the AWS load balancer (gateway.tls.source acm; docs/security.md, "TLS at
// the edge"): the gateway's side. No certificate and no TLS here: an offload listener
// (https_offloaded) takes the PROXY protocol from the load balancer and serves the routes as
// HTTPS (X-Forwarded-Proto https, port 443, HSTS, Secure sticky cookie), never redirecting; the
// plain HTTP listener still redirects. The controller's variables for it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { certificateSlots } from "../../components/images/gateway/controller/diff";
import { EnvError, readEnv } from "../../components/images/gateway/controller/env";
import { buildModel, type CatalogService, type StackSettings } from "../../components/images/gateway/controller/model";
import { renderConfig } from "../../components/images/gateway/controller/render";
import { DEFAULT_HSTS_SECONDS, gatewayTerminatesTls } from "../../components/images/gateway/controller/rules";
import { SETTINGS } from "./gateway-support";

const ACM: Partial<StackSettings> = {
    tlsSource: "acm",
    httpsPort: "8443",
    publicHttpsPort: "443",
    tlsRedirect: "true",
    hstsSeconds: String(DEFAULT_HSTS_SECONDS),
};

function model(kv: Record<string, string> = {}, settings: Partial<StackSettings> = ACM, services: CatalogService[] = []) {
    return buildModel({
        kv: new Map(Object.entries(kv).map(([k, v]) => [`service/haproxy/${k}`, v])),
        nodes: [{ node: "node1", address: "10.1.0.1", services }],
        settings: { ...SETTINGS, ...settings },
    });
}

/** One frontend's section of a rendered config. */
function frontend(cfg: string, name: string): string {
    const start = cfg.indexOf(`\nfrontend ${name}\n`);
    assert.ok(start >= 0, `frontend ${name}`);
    const end = cfg.indexOf("\n\n", start + 1);
    return cfg.slice(start + 1, end < 0 ? undefined : end);
}

const svc = (service: string, address: string): CatalogService => ({ id: `node1:${service}-1:80`, service, address, port: 80, tags: ["rest"] });

describe("acm: the offload listener in the model", () => {
    it("the gateway terminates TLS for every source but none and acm", () => {
        assert.deepEqual(["none", "self-signed", "provided", "acme", "acm", "other"].filter(gatewayTerminatesTls), ["self-signed", "provided", "acme"]);
    });

    it("HTTPS on the offload port, X-Forwarded-Port 443, redirect and HSTS; PROXY protocol whatever GATEWAY_ACCEPT_PROXY says; no certificate", () => {
        const m = model({ "tls/certificates/app/chain": "x" });
        assert.deepEqual(m.tls, { port: 8443, forwardedPort: 443, redirect: true, hstsSeconds: DEFAULT_HSTS_SECONDS, acme: false, offload: true });
        assert.deepEqual(m.acceptProxy, { http: false, https: true });
        assert.deepEqual(m.certificates, [], "no certificate is read: the load balancer holds it");
        assert.equal(certificateSlots(m).size, 0, "no crt-list slot to fill");
        assert.ok(m.listenerMaxconn.https !== undefined && m.listenerMaxconn.https > m.listenerMaxconn.http, "its own share, 3/4 while HTTP only redirects");
        assert.equal(model({}, { ...ACM, tlsSource: "provided" }).tls?.offload, undefined, "a source the gateway terminates is no offload");
    });

    it("SNI pass-through is refused: the load balancer terminates every TLS connection", () => {
        const db: CatalogService = { id: "node1:db-1:5432", service: "db", address: "10.1.0.9", port: 5432, tags: [] };
        const m = model({ "services/db/sni": "db.example.com", "services/db/tcp": "true" }, ACM, [db]);
        assert.deepEqual(m.sniRoutes, []);
        assert.ok(
            m.notes.some((n) => /services\/db\/sni: the load balancer terminates TLS \(GATEWAY_TLS_SOURCE acm\)/.test(n)),
            m.notes.join("\n"),
        );
    });
});

describe("acm: the rendered configuration", () => {
    const services = [svc("hello-v1", "10.1.0.5"), svc("hello-v2", "10.1.0.6")];
    const sticky = { "services/hello-v1/weight": "50", "services/hello-v2/weight": "50", "routes/hello/sticky": "true" };
    const cfg = renderConfig(model(sticky, ACM, services));

    it("https_offloaded: plain HTTP on the offload port with accept-proxy, HTTPS for the backends, HSTS, no redirect", () => {
        const f = frontend(cfg, "https_offloaded");
        assert.match(f, /^ {4}bind "\$\{GATEWAY_BIND\}:8443" accept-proxy$/m);
        assert.doesNotMatch(f, /\bssl\b|crt-list/, "no TLS on the gateway");
        assert.match(f, /^ {4}http-request set-header X-Forwarded-Proto https unless \{ req\.fhdr\(x-forwarded-proto\) -m found \}$/m);
        assert.match(f, /^ {4}http-request set-header X-Forwarded-Port 443 unless/m);
        assert.match(f, /^ {4}http-after-response set-header Strict-Transport-Security "max-age=15552000"$/m);
        assert.match(f, /^ {4}http-request del-header X-Forwarded-Proto$/m, "a client's own X-Forwarded-Proto is dropped");
        assert.match(f, /^ {4}http-request set-var\(txn\.https_offloaded\) bool\(true\)$/m);
        assert.doesNotMatch(f, /http-request redirect/);
        assert.match(f, /^ {4}use_backend svc_hello if \{ path \/hello \} \|\| \{ path_beg \/hello\/ \}$/m, "the same routes as on HTTP");
        assert.match(f, new RegExp(`^ {4}maxconn ${model(sticky, ACM, services).listenerMaxconn.https}$`, "m"));
    });

    it("clients are counted by the PROXY header's address (session rules)", () => {
        const rules = [...frontend(cfg, "https_offloaded").matchAll(/^ {4}tcp-request (connection|session) (track-sc0|reject)/gm)].map(
            (m) => `${m[1]} ${m[2]}`,
        );
        assert.deepEqual(rules, ["session track-sc0", "session reject"]);
    });

    it("plain HTTP still redirects to https on 443; no TLS anywhere: no ssl settings, no https frontend, no crt-list", () => {
        const http = frontend(cfg, "http");
        assert.match(
            http,
            /^ {4}http-request redirect location "https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]%\[pathq\]" code 301 if METH_GET !acme_challenge$/m,
        );
        assert.match(http, /^ {4}bind "\$\{GATEWAY_BIND\}:\$\{GATEWAY_HTTP_PORT\}"$/m, "the NLB's 80 keeps the client's address: no PROXY there");
        assert.doesNotMatch(cfg, /ssl-default-bind|crt-list|\nfrontend https\n|https_sni/);
        assert.doesNotMatch(http, /acme-challenges\.map/);
    });

    it("the sticky cookie is Secure on the offload listener (its txn var), not on plain HTTP", () => {
        assert.match(
            cfg,
            /^ {4}http-response add-header Set-Cookie "sd-hello=[^"]*; HttpOnly; SameSite=Lax; Secure" if \{ var\(txn\.https_offloaded\) -m bool \}$/m,
        );
        assert.match(
            cfg,
            /^ {4}http-response add-header Set-Cookie "sd-hello=[^"]*; HttpOnly; SameSite=Lax" unless \{ var\(txn\.https_offloaded\) -m bool \}$/m,
        );
        assert.doesNotMatch(cfg, /ssl_fc/);
    });

    it("no HSTS with hstsSeconds 0; no redirect on HTTP with redirect false", () => {
        const plain = renderConfig(model({}, { ...ACM, hstsSeconds: "0", tlsRedirect: "false" }));
        assert.doesNotMatch(plain, /Strict-Transport-Security|redirect location/);
        assert.ok(plain.includes("\nfrontend https_offloaded\n"));
    });
});

describe("acm: the controller's variables", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-acm-env-"));
    fs.writeFileSync(path.join(dir, "stats.password"), "p\n");
    const base = { STATS_USER: "s", STATS_PASSWORD_FILE: path.join(dir, "stats.password"), GATEWAY_OWN_ADDRESSES: "10.0.0.2", GATEWAY_FD_LIMIT: "100000" };
    const read = (env: Record<string, string>) => readEnv({ ...base, ...env }, () => undefined);

    it("no sealing key needed; the bootstrap config gets the offload port, never an HTTPS port", () => {
        const e = read({ GATEWAY_TLS_SOURCE: "acm", GATEWAY_HTTPS_PORT: "8443", GATEWAY_SEALING_KEY_FILE: path.join(dir, "missing") });
        assert.equal(e.stack.tlsSource, "acm");
        assert.equal(e.stack.httpsPort, "8443");
        assert.equal(e.sealingKey, undefined);
        assert.equal(e.acme, undefined);
        assert.equal(e.haproxyEnv.GATEWAY_OFFLOAD_PORT, "8443");
        assert.equal(e.haproxyEnv.GATEWAY_HTTPS_PORT, undefined);
        const provided = read({ GATEWAY_TLS_SOURCE: "none", GATEWAY_OFFLOAD_PORT: "9999" });
        assert.equal(provided.haproxyEnv.GATEWAY_OFFLOAD_PORT, undefined, "only acm has the bootstrap offload listener");
    });

    it("refuses acm without the offload port, naming the variable", () => {
        assert.throws(
            () => read({ GATEWAY_TLS_SOURCE: "acm" }),
            (e: unknown) => e instanceof EnvError && /^GATEWAY_HTTPS_PORT must be set with GATEWAY_TLS_SOURCE=acm/.test(e.message),
        );
    });
});
