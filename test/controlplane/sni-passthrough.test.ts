// TLS pass-through by SNI (docs/traffic-control.md, "TLS pass-through by SNI") on real processes:
// Consul, the gateway's controller and HAProxy. A tcp service declares host names in its KV key
// services/<name>/sni; its instance is a TLS server with its OWN certificate (a CA the gateway
// never sees). On the gateway's HTTPS port, a TLS client whose SNI names one of them gets that
// certificate and talks to the instance (the gateway never decrypts); every other connection
// (an http service's name, an unknown name) is terminated by the gateway with its certificate as
// before, and the http backend still sees the client's address in X-Forwarded-For. A name added
// at run time is applied through the runtime API (no reload); a hostile value is rejected (log,
// metric), never reaches HAProxy, and the routes keep serving.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { KV_PREFIX } from "../../components/images/gateway/controller/rules";
import { Harness, NODE_ADDRESS, freePort, httpRequest, waitFor, type HelloResponse, type HttpResult } from "./harness";
import { edgeCa, httpsRequest, issue, presented, putCertificate, sealingKeyFile, tlsGatewayEnv } from "./harness/tls";
import type { TestCa } from "./harness/pki";

const key = (svc: string, field: string): string => `${KV_PREFIX}/services/${svc}/${field}`;

describe("TLS pass-through by SNI on the HTTPS port", { timeout: 300_000 }, () => {
    let h: Harness;
    let gatewayCa: TestCa;
    let backendCa: TestCa;
    let httpsPort: number;
    let gatewaySerial = "";
    let backendSerial = "";

    /** A TLS session through the gateway's HTTPS port with this SNI: the certificate presented, and the answer to one line. */
    const session = (servername: string, ca?: string): Promise<{ serial: string; authorized: boolean; answer: string }> =>
        new Promise((resolve, reject) => {
            const socket = tls.connect({ host: "127.0.0.1", port: httpsPort, servername, rejectUnauthorized: false, ...(ca ? { ca } : {}) });
            socket.setTimeout(5000, () => socket.destroy(new Error(`no answer within 5 s for ${servername}`)));
            let answer = "";
            socket.once("secureConnect", () => {
                socket.write("ping\n");
            });
            socket.on("data", (d: Buffer) => {
                answer += d.toString("utf8");
                if (answer.endsWith("\n")) {
                    resolve({ serial: socket.getPeerCertificate().serialNumber.toUpperCase(), authorized: socket.authorized, answer: answer.trim() });
                    socket.end();
                }
            });
            socket.once("error", reject);
        });
    /** HTTPS through the gateway with this SNI (and Host), verified by the gateway's CA. */
    const overHttps = (p: string, servername: string): Promise<HttpResult> => httpsRequest(httpsPort, p, { servername, ca: gatewayCa.caPem });
    const metrics = async (): Promise<string> => {
        const auth = Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
        return (await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth}` } })).body;
    };
    const passedThrough = async (servername: string): Promise<true | undefined> => {
        const s = await session(servername).catch(() => undefined);
        return s?.serial === backendSerial && s.answer === "db-1 ping" ? true : undefined;
    };

    before(
        async () => {
            const sealing = sealingKeyFile();
            gatewayCa = edgeCa();
            backendCa = edgeCa("Backend's own CA");
            const env = await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file });
            httpsPort = Number(env.GATEWAY_HTTPS_PORT);
            h = await Harness.start({ gatewayEnv: env });

            // The http service, on the same HTTPS port, terminated by the gateway.
            await h.addInstance("shop", "sni-shop-1");
            const gatewayCert = issue(gatewayCa, ["localhost", "shop.example.com"]);
            gatewaySerial = gatewayCert.serial;
            await putCertificate(h.consul, sealing.key, "app", gatewayCert);

            // The tcp service: a TLS server with its own certificate, echoing each line after its name.
            const own = issue(backendCa, ["db.example.com", "db2.example.com"]);
            backendSerial = own.serial;
            const server = tls.createServer({ cert: own.certPem, key: own.keyPem }, (socket) => {
                socket.on("data", (d: Buffer) => socket.write(`db-1 ${d.toString("utf8")}`));
                socket.on("error", () => undefined);
            });
            const port = await freePort();
            await new Promise<void>((resolve) => server.listen(port, NODE_ADDRESS, resolve));
            h.onStop(
                () =>
                    new Promise<void>((resolve) => {
                        server.close(() => resolve());
                        setTimeout(resolve, 2000);
                    }),
            );
            // Registered as Registrator registers a tcp service's container (components/service.ts).
            await h.consul.register({
                ID: `${os.hostname()}:sni-db-1:${port}`,
                Name: "db",
                Tags: ["tcp"],
                Address: NODE_ADDRESS,
                Port: port,
                Check: { TCP: `${NODE_ADDRESS}:${port}`, Interval: "5s", Timeout: "2s", Status: "passing" },
            });
            await h.consul.kvPut(key("db", "sni"), "db.example.com");
            await h.waitForRoute("/shop/");
            await waitFor(() => passedThrough("db.example.com"), { timeoutMs: 20_000, message: "db.example.com passed through to the backend" }).catch(
                (err: Error) => {
                    throw new Error(`${err.message}\n${h.diagnostics()}`);
                },
            );
            await waitFor(async () => (await presented(httpsPort, { servername: "shop.example.com" })).serial === gatewaySerial || undefined, {
                timeoutMs: 10_000,
                message: "the gateway's certificate from KV served",
            });
        },
        { timeout: 120_000 },
    );

    after(async () => {
        if (process.env.DEBUG_SNI) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("a pass-through name: the backend's own certificate (the gateway never decrypts) and its echo", async () => {
        const s = await session("db.example.com", backendCa.caPem);
        assert.equal(s.serial, backendSerial, "the backend's certificate, not the gateway's");
        assert.notEqual(s.serial, gatewaySerial);
        assert.equal(s.authorized, true, "verified by the backend's own CA, for the name asked");
        assert.equal(s.answer, "db-1 ping");
        // The rendered config: the HTTPS port is the TCP frontend, the terminating one behind it; it passes haproxy -c.
        const cfg = h.gateway.readRenderedConfig("live");
        assert.match(cfg, /^frontend https_sni from tcp_services\n {4}bind "\$\{GATEWAY_BIND\}:\d+"\n/m);
        assert.match(cfg, /^frontend https\n {4}bind "unix@\$\{GATEWAY_RUN_DIR\}\/https\.sock" mode 600 accept-proxy ssl crt-list /m);
        assert.ok(!cfg.includes("db.example.com"), "names live in the map, never in haproxy.cfg");
        assert.equal(fs.readFileSync(path.join(h.gateway.runDir, "sni.map"), "utf8"), "db.example.com svc_db\n");
        const check = h.gateway.haproxyCheck(h.gateway.liveConfigPath);
        assert.ok(check.ok, check.output);
    });

    it("an http service's name on the same port: the gateway's certificate and answer; its backend sees the client's address", async () => {
        const p = await presented(httpsPort, { servername: "shop.example.com" });
        assert.equal(p.serial, gatewaySerial);
        const res = await overHttps("/shop/cart", "shop.example.com");
        assert.equal(res.status, 200, res.body);
        const b = JSON.parse(res.body) as HelloResponse;
        assert.equal(b.service, "shop");
        assert.equal(b.path, "/cart");
        // Through the local hop, with the PROXY protocol: the client's address, not the socket's.
        assert.equal(b.forwarded_for, "127.0.0.1");
        // The per-client counters count the client too (session rules, after the PROXY header).
        const table = await h.gateway.admin("show table clients_http");
        assert.match(table, /key=127\.0\.0\.1 /, table);
    });

    it("an unknown SNI (or none) is terminated by the gateway: its certificate", async () => {
        assert.equal((await presented(httpsPort, { servername: "other.example.com" })).serial, gatewaySerial);
        assert.equal((await presented(httpsPort)).serial, gatewaySerial);
    });

    it("a second name added at run time: through the runtime API's map, without a reload", async () => {
        const reloads = await h.gateway.masterReloads();
        assert.notEqual((await presented(httpsPort, { servername: "db2.example.com" })).serial, backendSerial, "not yet passed through");
        await h.consul.kvPut(key("db", "sni"), "db.example.com db2.example.com");
        await waitFor(() => passedThrough("db2.example.com"), { timeoutMs: 10_000, message: "db2.example.com passed through" });
        assert.ok(await passedThrough("db.example.com"));
        assert.equal(await h.gateway.masterReloads(), reloads, "the master reloaded");
        await h.gateway.logged(/runtime API: SNI routes: 1 set, 0 removed, no reload/);
        assert.equal(fs.readFileSync(path.join(h.gateway.runDir, "sni.map"), "utf8"), "db.example.com svc_db\ndb2.example.com svc_db\n");
    });

    it("a hostile sni value is rejected (log, metric) and never reaches HAProxy; the routes keep serving", async () => {
        const hostile = "evil.example.com\n    use_backend svc_shop";
        await h.consul.kvPut(key("db", "sni"), hostile);
        await waitFor(
            () => /rejected: KV service\/haproxy\/services\/db\/sni: value \(sha256 [0-9a-f]{8}\)/.test(h.gateway.proc!.stderr.toString()) || undefined,
            { timeoutMs: 10_000, message: "the rejection logged" },
        );
        const log = h.gateway.proc!.stderr.toString();
        assert.match(log, /db\/sni: value \(sha256 [0-9a-f]{8}\) is not lowercase DNS names separated by single spaces; keeping its last good value/);
        assert.ok(!log.includes("evil.example.com"), "the value is named by its hash only");
        const m = await metrics();
        assert.ok(Number(/^gateway_controller_notes\{kind="rejected"\} (\d+)$/m.exec(m)?.[1]) >= 1, m);
        assert.match(m, /^gateway_controller_quarantined_services 1$/m);
        // Quarantine: the last good names keep passing through; the rest is terminated as before.
        assert.ok(await passedThrough("db.example.com"));
        assert.ok(await passedThrough("db2.example.com"));
        assert.equal((await presented(httpsPort, { servername: "evil.example.com" })).serial, gatewaySerial);
        assert.equal((await overHttps("/shop/x", "shop.example.com")).status, 200);
        for (const file of ["haproxy.cfg", "sni.map", "hosts.map"])
            assert.ok(!fs.readFileSync(path.join(h.gateway.runDir, file), "utf8").includes("evil"), file);
    });

    it("the last name gone: a reload (the HTTPS port is the terminating frontend again), which says why", async () => {
        const reloads = await h.gateway.masterReloads();
        await h.consul.kvPut(key("db", "sni"), "");
        await waitFor(async () => ((await presented(httpsPort, { servername: "db.example.com" })).serial === gatewaySerial ? true : undefined), {
            timeoutMs: 15_000,
            message: "db.example.com terminated by the gateway again",
        });
        assert.ok((await h.gateway.masterReloads()) > reloads);
        await h.gateway.logged(/TLS pass-through by SNI off \(last SNI route gone\)/);
        const cfg = h.gateway.readRenderedConfig("live");
        assert.ok(!cfg.includes("https_sni") && !cfg.includes("https.sock"), "today's HTTPS listener, exactly");
        assert.equal((await overHttps("/shop/y", "shop.example.com")).status, 200);
    });
});
