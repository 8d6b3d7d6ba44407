// The gateway's TLS decisions (docs/security.md, "TLS at the edge"), from its sources: the HTTPS
// listener in the model and its config, the certificates and ACME answers read from KV (each bad
// value rejected, the running one kept), the plans that install them at run time, the placeholder,
// the runtime API's payload commands, the variables the controller reads, and when ACME renews.
import assert from "node:assert/strict";
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { certificateDue } from "../../components/images/gateway/controller/acme";
import { parseCertificate, readChallenges } from "../../components/images/gateway/controller/certificates";
import { certificateSlots, planChange, type TlsOp } from "../../components/images/gateway/controller/diff";
import { EnvError, readEnv } from "../../components/images/gateway/controller/env";
import { withPayload } from "../../components/images/gateway/controller/haproxy";
import { buildModel, type CatalogService, type Model, type StackSettings } from "../../components/images/gateway/controller/model";
import { certificateSerial, PLACEHOLDER_NAME, selfSignedCertificate } from "../../components/images/gateway/controller/placeholder";
import { renderConfig } from "../../components/images/gateway/controller/render";
import { DEFAULT_HSTS_SECONDS, TLS_CIPHERS } from "../../components/images/gateway/controller/rules";
import { seal } from "../../components/images/gateway/controller/sealed";
import { SETTINGS } from "./gateway-support";

const TLS: Partial<StackSettings> = { tlsSource: "provided", httpsPort: "8443", tlsRedirect: "true", hstsSeconds: String(DEFAULT_HSTS_SECONDS) };
const KEY = randomBytes(32);
const NOW = Date.now();

const cert = (name: string, days = 30) => selfSignedCertificate({ name, days });
const one = cert("app.test");
const two = cert("app.test");

/** KV of certificates, as the program writes them: chain public, key sealed at its path. */
function certKv(certs: Record<string, { certPem: string; keyPem: string }>, key = KEY): Record<string, string> {
    const kv: Record<string, string> = {};
    for (const [name, c] of Object.entries(certs)) {
        kv[`tls/certificates/${name}/chain`] = c.certPem;
        kv[`tls/certificates/${name}/key`] = seal(key, `service/haproxy/tls/certificates/${name}/key`, c.keyPem);
    }
    return kv;
}

function model(
    kv: Record<string, string> = {},
    settings: Partial<StackSettings> = TLS,
    o: { previous?: Model; services?: CatalogService[]; sealingKey?: Buffer } = {},
) {
    return buildModel({
        kv: new Map(Object.entries(kv).map(([k, v]) => [`service/haproxy/${k}`, v])),
        nodes: [{ node: "node1", address: "10.1.0.1", services: o.services ?? [] }],
        settings: { ...SETTINGS, ...settings },
        ...(o.previous ? { previous: o.previous } : {}),
        sealingKey: o.sealingKey ?? KEY,
        nowMs: NOW,
    });
}
const serialOf = (c: { certPem: string }): string => new X509Certificate(c.certPem).serialNumber.toUpperCase();

describe("TLS: the HTTPS listener in the model", () => {
    it("none (or unset): no listener, the listeners' shares as before, no certificate read", () => {
        for (const tlsSource of [undefined, "none"]) {
            const m = model(certKv({ app: one }), tlsSource === undefined ? {} : { tlsSource });
            assert.equal(m.tls, undefined);
            assert.deepEqual(m.certificates, []);
            assert.deepEqual(m.listenerMaxconn, { http: 4096 - 256 - 10, tcp: 0, stats: 256 });
            assert.doesNotMatch(renderConfig(m), /ssl|https/);
        }
    });

    it("a source: HTTPS on its port with redirect and HSTS; it takes 3/4 of the HTTP budget when HTTP only redirects, else half", () => {
        const m = model({}, { ...TLS, publicHttpsPort: "443" });
        assert.deepEqual(m.tls, { port: 8443, forwardedPort: 443, redirect: true, hstsSeconds: DEFAULT_HSTS_SECONDS, acme: false });
        const share = 4096 - 256 - 10;
        assert.deepEqual(m.listenerMaxconn, { http: share - Math.floor((share * 3) / 4), tcp: 0, stats: 256, https: Math.floor((share * 3) / 4) });
        assert.equal(model({}, { ...TLS, tlsRedirect: "false" }).listenerMaxconn.https, Math.floor(share / 2));
        assert.equal(model({}, { ...TLS, tlsSource: "acme" }).tls?.acme, true);
    });

    it("refuses a source it does not know and an HSTS that is not a number, naming them by hash", () => {
        const m = model({}, { ...TLS, tlsSource: "letsencrypt" });
        assert.equal(m.tls, undefined);
        assert.ok(m.notes.some((n) => /^rejected: GATEWAY_TLS_SOURCE \(sha256 [0-9a-f]{8}\) is not one of none, self-signed, provided, acme/.test(n)));
        const h = model({}, { ...TLS, hstsSeconds: "1y" });
        assert.equal(h.tls?.hstsSeconds, 0);
        assert.ok(h.notes.some((n) => n.startsWith("rejected: GATEWAY_HSTS_SECONDS")));
    });

    it("the HTTPS port is refused as a tcp service's listener", () => {
        const m = model({ "services/pg/listen": "8443" }, TLS);
        assert.deepEqual(m.tcpListeners, []);
        assert.ok(
            m.notes.some((n) => n.includes("services/pg/listen") && n.includes("is the port of the gateway's HTTPS listener")),
            m.notes.join("\n"),
        );
    });
});

describe("TLS: certificates and ACME answers from KV", () => {
    it("opens each key with the sealing key, sorted by name, normalised for the runtime API (no blank line)", () => {
        const m = model(certKv({ zz: two, app: one }));
        assert.deepEqual(
            m.certificates.map((c) => [c.name, c.serial, c.hosts]),
            [
                ["app", serialOf(one), ["app.test"]],
                ["zz", serialOf(two), ["app.test"]],
            ],
        );
        assert.deepEqual(m.notes, []);
        for (const c of m.certificates) {
            assert.doesNotMatch(c.pem, /\n\s*\n/);
            assert.match(
                c.pem,
                /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/,
            );
        }
    });

    const bad: [string, (kv: Record<string, string>) => void, RegExp][] = [
        [
            "a key sealed with another key",
            (kv) => (kv["tls/certificates/app/key"] = seal(randomBytes(32), "service/haproxy/tls/certificates/app/key", two.keyPem)),
            /the certificate has a key that cannot be unsealed: it does not open with this gateway's sealing key/,
        ],
        [
            "a key sealed for another path",
            (kv) => (kv["tls/certificates/app/key"] = seal(KEY, "service/haproxy/tls/certificates/zz/key", two.keyPem)),
            /cannot be unsealed: it does not open/,
        ],
        ["a key in clear text", (kv) => (kv["tls/certificates/app/key"] = two.keyPem), /cannot be unsealed: it is not a sealed-v1 value/],
        [
            "another certificate's key",
            (kv) => (kv["tls/certificates/app/key"] = seal(KEY, "service/haproxy/tls/certificates/app/key", cert("x").keyPem)),
            /has a key that is not the certificate's \(a rotation half written\?\)/,
        ],
        ["a chain that is no PEM", (kv) => (kv["tls/certificates/app/chain"] = "hello"), /holds no PEM certificate/],
        [
            "a PEM that does not parse",
            (kv) => (kv["tls/certificates/app/chain"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            /does not parse as X\.509/,
        ],
        ["a chain without its key", (kv) => delete kv["tls/certificates/app/key"], /has a chain but no key/],
        ["an expired certificate", (kv) => Object.assign(kv, certKv({ app: selfSignedCertificate({ name: "app.test", days: -1 }) })), /expired on \d{4}-/],
    ];
    for (const [what, change, why] of bad) {
        it(`rejects ${what}, keeping the one running (and serving none when none runs)`, () => {
            const running = model(certKv({ app: one }));
            const kv = certKv({ app: two });
            change(kv);
            const next = model(kv, TLS, { previous: running });
            assert.deepEqual(
                next.certificates.map((c) => c.serial),
                [serialOf(one)],
                "the running certificate is kept",
            );
            const note = next.notes.find((n) => n.startsWith("rejected: KV service/haproxy/tls/certificates/app: the certificate "));
            assert.ok(note && why.test(note) && note.endsWith(`keeping the one running (serial ${serialOf(one)})`), next.notes.join("\n"));
            assert.ok(!note.includes("PRIVATE KEY") && !note.includes("BEGIN"), "no value in a note");
            const fresh = model(kv, TLS);
            assert.deepEqual(fresh.certificates, []);
            assert.ok(fresh.notes.some((n) => why.test(n) && n.endsWith("not served")));
        });
    }

    it("without its sealing key the gateway opens nothing, and says why", () => {
        const m = buildModel({
            kv: new Map(Object.entries(certKv({ app: one })).map(([k, v]) => [`service/haproxy/${k}`, v])),
            nodes: [],
            settings: { ...SETTINGS, ...TLS },
        });
        assert.deepEqual(m.certificates, []);
        assert.ok(m.notes.some((n) => n.includes("this gateway has no sealing key (GATEWAY_SEALING_KEY_FILE)")));
    });

    it("refuses a name that is not a DNS label, and any other key under tls/certificates/", () => {
        const m = model({ ...certKv({ app: one }), "tls/certificates/Bad_Name/chain": one.certPem, "tls/certificates/app/extra": "x" });
        assert.deepEqual(
            m.certificates.map((c) => c.name),
            ["app"],
        );
        assert.equal(m.notes.filter((n) => n.startsWith("rejected: KV key under service/haproxy/tls/certificates/")).length, 2);
    });

    it("ACME answers: only with source acme; tokens and key authorizations checked", () => {
        const token = "tok_ABCDEFGHIJKLMNOP-123";
        const auth = `${token}.${"a".repeat(43)}`;
        const kv = { [`tls/acme/challenges/${token}`]: auth, "tls/acme/challenges/short": "short.x", [`tls/acme/challenges/${token}x`]: auth };
        assert.deepEqual(model(kv).challenges, [], "not with source provided");
        const m = model(kv, { ...TLS, tlsSource: "acme" });
        assert.deepEqual(m.challenges, [[token, auth]]);
        assert.equal(m.notes.filter((n) => n.startsWith("rejected: KV key under service/haproxy/tls/acme/challenges/")).length, 2);
        const notes: string[] = [];
        assert.deepEqual(
            readChallenges(new Map([[`tls/acme/challenges/${token}`, `${auth} `]]), (n) => notes.push(n)),
            [[token, auth]],
        );
    });
});

describe("TLS: plans — certificates and ACME answers at run time, settings by reload", () => {
    const tlsOps = (a: Model, b: Model): readonly TlsOp[] => {
        const p = planChange(a, b);
        assert.equal(p.kind, "runtime", JSON.stringify(p));
        return p.kind === "runtime" ? (p.tls ?? []) : [];
    };
    const summary = (ops: readonly TlsOp[]) =>
        ops.map((o) =>
            o.op === "certificate"
                ? `${o.slot}${o.added ? " (new)" : ""}${o.pem === "" ? " placeholder" : ""}`
                : o.op === "uncertificate"
                  ? `-${o.slot}`
                  : `${o.op} ${o.token}`,
        );

    it("the first certificate fills the default slot and gets its own; a rotation changes both; a second name adds a slot", () => {
        const none = model({});
        assert.deepEqual([...certificateSlots(none)], [["default", ""]], "the placeholder until a certificate arrives");
        const first = model(certKv({ app: one }));
        assert.deepEqual(summary(tlsOps(none, first)), ["default", "certs/app (new)"]);
        const rotated = model(certKv({ app: two }));
        assert.deepEqual(summary(tlsOps(first, rotated)), ["default", "certs/app"]);
        const more = model(certKv({ app: two, shop: one }));
        assert.deepEqual(summary(tlsOps(rotated, more)), ["certs/shop (new)"]);
        assert.deepEqual(summary(tlsOps(more, none)), ["default placeholder", "-certs/app", "-certs/shop"]);
        assert.deepEqual(planChange(more, model(certKv({ app: two, shop: one }))), { kind: "none" });
    });

    it("ACME answers come and go at run time", () => {
        const acme = { ...TLS, tlsSource: "acme" };
        const token = "tok_ABCDEFGHIJKLMNOP-123";
        const with1 = model({ [`tls/acme/challenges/${token}`]: `${token}.${"b".repeat(43)}` }, acme);
        assert.deepEqual(summary(tlsOps(model({}, acme), with1)), [`challenge ${token}`]);
        assert.deepEqual(summary(tlsOps(with1, model({}, acme))), [`unchallenge ${token}`]);
    });

    it("HTTPS settings are the structure: a reload, with the reason", () => {
        const on = model({});
        for (const [settings, why] of [
            [{ ...TLS, hstsSeconds: "60" }, "HTTPS settings changed"],
            [{ ...TLS, tlsRedirect: "false" }, "maxconn of the http listeners"],
            [{ ...TLS, acceptProxy: "https" }, "PROXY protocol listeners changed"],
            [{}, "maxconn of the http listeners"],
        ] as const) {
            const p = planChange(on, model({}, settings));
            assert.equal(p.kind, "reload");
            assert.ok(p.kind === "reload" && p.why.startsWith(why), `${JSON.stringify(settings)}: ${p.kind === "reload" ? p.why : ""}`);
        }
    });
});

describe("TLS: the rendered configuration", () => {
    const svc = (service: string, address: string): CatalogService => ({ id: `node1:${service}-1:80`, service, address, port: 80, tags: ["rest"] });

    it("HTTPS: the crt-list, ALPN h2 and http/1.1, TLS 1.2+, forward-secret ciphers; routes as on HTTP with X-Forwarded-Proto https", () => {
        const cfg = renderConfig(model(certKv({ app: one }), { ...TLS, publicHttpsPort: "443" }, { services: [svc("hello-v1", "10.1.0.5")] }));
        assert.match(cfg, /^ {4}ssl-default-bind-options ssl-min-ver TLSv1\.2$/m);
        assert.ok(cfg.includes(`    ssl-default-bind-ciphers ${TLS_CIPHERS}\n`));
        for (const c of TLS_CIPHERS.split(":"))
            assert.match(c, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/, "forward secret and AEAD");
        const https = cfg.slice(cfg.indexOf("frontend https\n"), cfg.indexOf("\n\n", cfg.indexOf("frontend https\n")));
        assert.match(
            https,
            /^ {4}bind "\$\{GATEWAY_BIND\}:8443" ssl crt-list "\$\{GATEWAY_RUN_DIR\}\/tls\/crt-list" alpn h2,http\/1\.1 ssl-min-ver TLSv1\.2$/m,
        );
        assert.match(https, /^ {4}http-request set-header X-Forwarded-Proto https unless/m);
        assert.match(https, /^ {4}http-request set-header X-Forwarded-Port 443 unless/m);
        assert.match(https, /^ {4}http-after-response set-header Strict-Transport-Security "max-age=15552000"$/m);
        assert.match(https, /^ {4}use_backend svc_hello-v1 if \{ path \/hello\/v1 \} \|\| \{ path_beg \/hello\/v1\/ \}$/m);
        assert.match(https, /^ {4}http-request del-header X-Forwarded-Proto$/m, "a client's own X-Forwarded-Proto is dropped over HTTPS too");
        assert.doesNotMatch(https, /redirect/);
        assert.ok(!cfg.includes("BEGIN"), "no certificate or key in the configuration");
    });

    it("plain HTTP beside it: 301 for GET and HEAD, 308 otherwise, to the public HTTPS port; never an ACME challenge", () => {
        const cfg = renderConfig(model({}, { ...TLS, publicHttpsPort: "443" }));
        const http = cfg.slice(cfg.indexOf("frontend http\n"), cfg.indexOf("frontend https\n"));
        assert.match(http, /^ {4}acl acme_challenge path_beg \/\.well-known\/acme-challenge\/$/m);
        assert.match(
            http,
            /^ {4}http-request redirect location "https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]%\[pathq\]" code 301 if METH_GET !acme_challenge$/m,
        );
        assert.match(
            http,
            /^ {4}http-request redirect location "https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]%\[pathq\]" code 308 if !METH_GET !acme_challenge$/m,
        );
        const other = renderConfig(model({}, { ...TLS, publicHttpsPort: "8443" }));
        assert.match(other, /redirect location "https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]:8443%\[pathq\]" code 301/);
        assert.doesNotMatch(renderConfig(model({}, { ...TLS, tlsRedirect: "false" })), /redirect location/);
        assert.doesNotMatch(renderConfig(model({}, { ...TLS, hstsSeconds: "0" })), /Strict-Transport-Security/);
    });

    it("behind a trusted proxy that terminated TLS itself: no redirect loop", () => {
        const cfg = renderConfig(model({}, { ...TLS, trustedProxies: "10.9.0.0/16" }));
        assert.match(cfg, /set-var\(txn\.https_proxied\) bool\(true\) if trusted_proxy \{ req\.fhdr\(x-forwarded-proto\) -m str https \}/);
        assert.match(cfg, /code 301 if METH_GET !acme_challenge !\{ var\(txn\.https_proxied\) -m bool \}$/m);
    });

    it("ACME: HTTP answers the tokens from the map the controller keeps in sync", () => {
        const cfg = renderConfig(model({}, { ...TLS, tlsSource: "acme" }));
        assert.match(
            cfg,
            /^ {4}http-request set-var\(txn\.acme\) path,field\(4,\/\),map\("\$\{GATEWAY_RUN_DIR\}\/tls\/acme-challenges\.map"\) if acme_challenge$/m,
        );
        assert.match(
            cfg,
            /^ {4}http-request return status 200 content-type text\/plain lf-string "%\[var\(txn\.acme\)\]" if \{ var\(txn\.acme\) -m found \}$/m,
        );
        assert.doesNotMatch(renderConfig(model({}, TLS)), /acme-challenges\.map/);
    });

    it("the sticky cookie is Secure over HTTPS only; without TLS it is as before", () => {
        const services = [svc("hello-v1", "10.1.0.5"), svc("hello-v2", "10.1.0.6")];
        const kv = { "services/hello-v1/weight": "50", "services/hello-v2/weight": "50", "routes/hello/sticky": "true" };
        const cfg = renderConfig(model(kv, TLS, { services }));
        assert.match(cfg, /^ {4}http-response add-header Set-Cookie "sd-hello=[^"]*; HttpOnly; SameSite=Lax; Secure" if \{ ssl_fc \}$/m);
        assert.match(cfg, /^ {4}http-response add-header Set-Cookie "sd-hello=[^"]*; HttpOnly; SameSite=Lax" unless \{ ssl_fc \}$/m);
        assert.match(renderConfig(model(kv, {}, { services })), /^ {4}http-response add-header Set-Cookie "sd-hello=[^"]*; HttpOnly; SameSite=Lax"$/m);
    });

    it("the PROXY protocol on the listeners a load balancer reaches", () => {
        const cfg = renderConfig(model({}, { ...TLS, acceptProxy: "https" }));
        assert.match(cfg, /bind "\$\{GATEWAY_BIND\}:8443" ssl .* accept-proxy$/m);
        assert.match(cfg, /^ {4}bind "\$\{GATEWAY_BIND\}:\$\{GATEWAY_HTTP_PORT\}"$/m);
        assert.match(renderConfig(model({}, { ...TLS, acceptProxy: "http https" })), /^ {4}bind "\$\{GATEWAY_BIND\}:\$\{GATEWAY_HTTP_PORT\}" accept-proxy$/m);
        assert.deepEqual(model({}, { acceptProxy: "https" }).acceptProxy, { http: false, https: false }, "no HTTPS, no PROXY on it");
    });

    it("behind a load balancer, clients are counted by the PROXY header's address (session rules), not the balancer's", () => {
        const frontend = (cfg: string, name: string): string => {
            const start = cfg.indexOf(`\nfrontend ${name}\n`);
            assert.ok(start >= 0, `frontend ${name}`);
            const end = cfg.indexOf("\n\n", start + 1);
            return cfg.slice(start, end < 0 ? undefined : end);
        };
        const rules = (text: string): string[] =>
            [...text.matchAll(/^ {4}tcp-request (connection|session) (track-sc0|reject)/gm)].map((m) => `${m[1]} ${m[2]}`);
        const both = renderConfig(model({}, { ...TLS, acceptProxy: "http https" }));
        for (const name of ["http", "https"]) assert.deepEqual(rules(frontend(both, name)), ["session track-sc0", "session reject"], name);
        const httpsOnly = renderConfig(model({}, { ...TLS, acceptProxy: "https" }));
        assert.deepEqual(rules(frontend(httpsOnly, "http")), ["connection track-sc0", "connection reject"], "http without PROXY: rejected at accept");
        assert.deepEqual(rules(frontend(httpsOnly, "https")), ["session track-sc0", "session reject"]);
        const none = renderConfig(model({}, TLS));
        for (const name of ["http", "https"]) assert.deepEqual(rules(frontend(none, name)), ["connection track-sc0", "connection reject"], name);
    });
});

describe("TLS: the pieces around the model", () => {
    it("a certificate serial is positive and minimally encoded whatever the random bytes (strict DER: no leading zero)", () => {
        for (const first of [0x00, 0x01, 0x3f, 0x7f, 0x80, 0xff]) {
            for (const second of [0x00, 0x7f, 0x80, 0xff]) {
                const s = certificateSerial(Buffer.from([first, second, ...randomBytes(14)]));
                assert.equal(s.length, 16);
                assert.ok(s[0]! >= 0x40 && s[0]! <= 0x7f, `first byte ${s[0]} for ${first}`);
                assert.deepEqual(s.subarray(1, 2), Buffer.from([second]), "the other bytes are kept");
            }
        }
        // Every certificate made parses (strict DER), its serial the one encoded: 300 of them, where
        // one in 256 failed with a serial starting 00 0x.
        for (let i = 0; i < 300; i++) {
            const c = new X509Certificate(selfSignedCertificate({ name: "app.test", days: 1 }).certPem);
            assert.match(c.serialNumber, /^[4-7][0-9A-F]{31}$/);
        }
    });

    it("the placeholder: self-signed, for gateway.invalid, its key matching", () => {
        const p = selfSignedCertificate({ name: PLACEHOLDER_NAME, days: 1 });
        const x = new X509Certificate(p.certPem);
        assert.equal(x.subjectAltName, `DNS:${PLACEHOLDER_NAME}`);
        assert.ok(x.verify(x.publicKey), "self-signed");
        assert.ok(x.checkPrivateKey(createPrivateKey(p.keyPem)));
        assert.ok(parseCertificate(p.certPem, p.keyPem, Date.now()).ok);
    });

    it("a runtime API payload: `<command> <<`, its lines, no blank line (the end of a payload)", () => {
        assert.equal(withPayload("set ssl cert /run/x.pem", "a\n\nb\r\n\n"), "set ssl cert /run/x.pem <<\na\nb\n");
    });

    it("ACME renews a certificate missing, not covering the hosts, or within the renewal window", () => {
        const c = selfSignedCertificate({ name: "app.test", days: 10 });
        assert.deepEqual(certificateDue(undefined, undefined, ["app.test"], 86400, NOW), { due: true, why: "no certificate yet" });
        const fine = certificateDue(c.certPem, c.keyPem, ["app.test"], 86400, NOW);
        assert.equal(fine.due, false);
        assert.ok(!fine.due && Math.abs(fine.renewAtMs - (NOW + 9 * 86400_000)) < 2 * 3600_000);
        assert.deepEqual(certificateDue(c.certPem, c.keyPem, ["app.test", "www.app.test"], 86400, NOW), {
            due: true,
            why: "the certificate does not cover www.app.test",
        });
        const due = certificateDue(c.certPem, c.keyPem, ["app.test"], 30 * 86400, NOW);
        assert.ok(due.due && /renewal due/.test(due.why));
    });

    describe("the controller's TLS variables", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-tls-env-"));
        const keyFile = path.join(dir, "sealing.key");
        fs.writeFileSync(keyFile, `${KEY.toString("hex")}\n`);
        fs.writeFileSync(path.join(dir, "stats.password"), "p\n");
        const base = { STATS_USER: "s", STATS_PASSWORD_FILE: path.join(dir, "stats.password"), GATEWAY_OWN_ADDRESSES: "10.0.0.2", GATEWAY_FD_LIMIT: "100000" };
        const read = (env: Record<string, string>) => readEnv({ ...base, ...env }, () => undefined);
        const refuses = (env: Record<string, string>, message: RegExp) =>
            assert.throws(
                () => read(env),
                (e: unknown) => e instanceof EnvError && message.test(e.message),
            );

        it("none by default: no HTTPS variable for HAProxy's bootstrap config", () => {
            const e = read({});
            assert.equal(e.stack.tlsSource, "none");
            assert.equal(e.haproxyEnv.GATEWAY_HTTPS_PORT, undefined);
            assert.equal(e.sealingKey, undefined);
        });

        it("a source: the sealing key from its file, HTTPS for the bootstrap config, ACME's settings", () => {
            const e = read({
                GATEWAY_TLS_SOURCE: "acme",
                GATEWAY_HTTPS_PORT: "8443",
                GATEWAY_SEALING_KEY_FILE: keyFile,
                GATEWAY_ACME_EMAIL: "ops@example.com",
                GATEWAY_ACME_HOSTS: "a.example.com b.example.com",
                GATEWAY_ACCEPT_PROXY: "https",
            });
            assert.deepEqual(e.sealingKey, KEY);
            assert.equal(e.haproxyEnv.GATEWAY_HTTPS_PORT, "8443");
            assert.equal(e.haproxyEnv.GATEWAY_HTTPS_BIND_OPTIONS, "accept-proxy");
            assert.equal(e.haproxyEnv.GATEWAY_HTTP_BIND_OPTIONS, "");
            assert.deepEqual(e.acme?.hosts, ["a.example.com", "b.example.com"]);
            assert.equal(e.acme?.renewBeforeSeconds, 30 * 86400);
            assert.equal(e.acme?.directoryUrl, "https://acme-v02.api.letsencrypt.org/directory");
        });

        it("refuses what it cannot run with, naming the variable", () => {
            refuses({ GATEWAY_TLS_SOURCE: "letsencrypt" }, /^GATEWAY_TLS_SOURCE=letsencrypt is not one of none, self-signed, provided, acme, acm$/);
            refuses(
                { GATEWAY_TLS_SOURCE: "provided", GATEWAY_SEALING_KEY_FILE: path.join(dir, "missing") },
                /^GATEWAY_SEALING_KEY_FILE=.*missing: no such file/,
            );
            fs.writeFileSync(path.join(dir, "short.key"), "abcd");
            refuses({ GATEWAY_TLS_SOURCE: "provided", GATEWAY_SEALING_KEY_FILE: path.join(dir, "short.key") }, /the sealing key is not 64 hex digits/);
            refuses(
                { GATEWAY_TLS_SOURCE: "acme", GATEWAY_SEALING_KEY_FILE: keyFile, GATEWAY_ACME_HOSTS: "a.example.com" },
                /^GATEWAY_ACME_EMAIL= is not an e-mail/,
            );
            refuses(
                { GATEWAY_TLS_SOURCE: "acme", GATEWAY_SEALING_KEY_FILE: keyFile, GATEWAY_ACME_EMAIL: "o@example.com", GATEWAY_ACME_HOSTS: "*.example.com" },
                /GATEWAY_ACME_HOSTS/,
            );
            refuses({ GATEWAY_TLS_REDIRECT: "yes" }, /^GATEWAY_TLS_REDIRECT=yes is not true or false$/);
            refuses({ GATEWAY_ACCEPT_PROXY: "tcp" }, /tcp is not a listener/);
            refuses({ GATEWAY_HTTPS_PORT: "0" }, /GATEWAY_HTTPS_PORT="0" is not a port number/);
        });
    });
});
