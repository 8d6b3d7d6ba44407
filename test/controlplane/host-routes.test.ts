// Routes by host name (docs/traffic-control.md, "Routes by host name") on real processes: Consul,
// the gateway's controller and HAProxy. Two services declare host names in their KV keys
// services/<name>/hosts: a request with one of them in its Host header (any port, any case, or
// an HTTP/2 :authority) reaches that service on every path, unprefixed, before the path routes;
// a host no service declares is routed by its path as before. Moving a name is applied through
// the runtime API (no reload); a hostile KV value is rejected (log and metric), never reaches
// HAProxy, and the other services keep serving. Over HTTPS, the client's SNI and Host alike.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { KV_PREFIX } from "../../components/images/gateway/controller/rules";
import { Harness, httpRequest, waitFor, type HelloResponse, type HttpResult } from "./harness";
import { edgeCa, httpsRequest, issue, presented, putCertificate, sealingKeyFile, tlsGatewayEnv } from "./harness/tls";
import type { TestCa } from "./harness/pki";

const hostsKey = (svc: string): string => `${KV_PREFIX}/services/${svc}/hosts`;
const body = (res: HttpResult): HelloResponse => JSON.parse(res.body) as HelloResponse;

describe("routes by host name", { timeout: 300_000 }, () => {
    let h: Harness;
    let ca: TestCa;
    let httpsPort: number;
    let serial = "";

    const get = (p: string, host?: string) => h.gateway.get(p, { headers: host === undefined ? {} : { host }, timeoutMs: 3000 });
    /** Which service answered a request for `p` with Host `host`, and the path it saw. */
    const reached = async (p: string, host?: string): Promise<string> => {
        const res = await get(p, host);
        if (res.status !== 200) return `${res.status}`;
        const b = body(res);
        return `${b.service}${b.version ? `-${b.version}` : ""} ${b.path}`;
    };
    const metrics = async (): Promise<string> => {
        const auth = Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
        return (await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth}` } })).body;
    };
    /** HTTPS to 127.0.0.1 with this SNI and Host, verified by the test CA. */
    const overHttps = (p: string, servername: string, host = servername): Promise<HttpResult> => httpsRequest(httpsPort, p, { servername, host, ca: ca.caPem });

    before(
        async () => {
            const sealing = sealingKeyFile();
            ca = edgeCa();
            const env = await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file });
            httpsPort = Number(env.GATEWAY_HTTPS_PORT);
            h = await Harness.start({ gatewayEnv: env });
            await h.addInstance("shop", "host-shop-1");
            await h.addInstance("api-v2", "host-api-1");
            await h.consul.kvPut(hostsKey("shop"), "shop.example.com www.example.com");
            await h.consul.kvPut(hostsKey("api-v2"), "api.example.com");
            const cert = issue(ca, ["localhost", "shop.example.com", "www.example.com", "api.example.com"]);
            serial = cert.serial;
            await putCertificate(h.consul, sealing.key, "app", cert);
            await h.waitForRoute("/shop/");
            await h.waitForRoute("/api/v2/");
            await waitFor(async () => (await reached("/", "api.example.com")) === "api-v2 /" || undefined, {
                timeoutMs: 15_000,
                message: "the host routes are served",
            }).catch((err: Error) => {
                throw new Error(`${err.message}\n${h.diagnostics()}`);
            });
        },
        { timeout: 90_000 },
    );

    after(async () => {
        if (process.env.DEBUG_HOSTS) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("a declared host reaches its service on every path, unprefixed, whatever its port and case; before the path routes", async () => {
        assert.equal(await reached("/", "shop.example.com"), "shop /");
        assert.equal(await reached("/cart/42?x=1", "SHOP.Example.com:8080"), "shop /cart/42?x=1");
        assert.equal(await reached("/anything", "www.example.com"), "shop /anything");
        assert.equal(await reached("/shop/x", "shop.example.com"), "shop /shop/x", "a host route keeps the path, its own prefix included");
        assert.equal(await reached("/orders", "api.example.com"), "api-v2 /orders");
        // Host first: on api.example.com, shop's prefix is just a path of api-v2.
        assert.equal(await reached("/shop/x", "api.example.com"), "api-v2 /shop/x");
        const seen = body(await get("/cart", "shop.example.com"));
        assert.equal(seen.forwarded_prefix, "", "no X-Forwarded-Prefix for a host route");
    });

    it("a host no service declares (or none at all) is routed by its path as before", async () => {
        assert.equal(await reached("/shop/x", "other.example.com"), "shop /x");
        assert.equal(await reached("/api/v2/y", "127.0.0.1"), "api-v2 /y");
        assert.equal(await reached("/api/v2/y"), "api-v2 /y");
        assert.equal(await reached("/cart", "other.example.com"), "404");
        assert.equal(body(await get("/shop/x", "other.example.com")).forwarded_prefix, "/shop");
    });

    it("HTTPS: the SNI and the Host header of a declared name, HTTP/1.1 and HTTP/2 (:authority)", async () => {
        await waitFor(async () => (await presented(httpsPort, { servername: "api.example.com" })).serial === serial || undefined, {
            timeoutMs: 10_000,
            message: "the certificate from KV served",
        });
        const res = await overHttps("/orders", "api.example.com");
        assert.equal(res.status, 200, res.body);
        assert.equal(body(res).service, "api");
        assert.equal(body(res).path, "/orders");
        assert.equal(body(await overHttps("/cart", "shop.example.com")).service, "shop");
        // The Host header decides, not the SNI (as every HTTP router: one connection may carry several names).
        assert.equal(body(await overHttps("/cart", "shop.example.com", "api.example.com")).service, "api");
        const h2 = await new Promise<{ status: number; text: string }>((resolve, reject) => {
            const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { servername: "www.example.com", ca: ca.caPem });
            session.on("error", reject);
            const req = session.request({ ":path": "/h2", ":authority": "www.example.com" });
            let status = 0;
            let text = "";
            req.on("response", (headers) => (status = Number(headers[":status"])));
            req.on("data", (c: Buffer) => (text += c.toString("utf8")));
            req.on("end", () => {
                session.close();
                resolve({ status, text });
            });
            req.on("error", reject);
            req.end();
        });
        assert.equal(h2.status, 200, h2.text);
        assert.deepEqual([(JSON.parse(h2.text) as HelloResponse).service, (JSON.parse(h2.text) as HelloResponse).path], ["shop", "/h2"]);
    });

    it("moving, adding and removing names: through the runtime API's map, without a reload", async () => {
        const reloads = await h.gateway.masterReloads();
        await h.consul.kvPut(hostsKey("shop"), "shop.example.com");
        await h.consul.kvPut(hostsKey("api-v2"), "api.example.com www.example.com");
        await waitFor(async () => (await reached("/w", "www.example.com")) === "api-v2 /w" || undefined, {
            timeoutMs: 10_000,
            message: "www.example.com moved to api-v2",
        });
        assert.equal(await reached("/s", "shop.example.com"), "shop /s");
        assert.equal(await h.gateway.masterReloads(), reloads, "the master reloaded");
        await h.gateway.logged(/runtime API: host routes: \d+ set, \d+ removed, no reload/);
        // The map file says the same, for the next reload.
        const map = fs.readFileSync(path.join(h.gateway.runDir, "hosts.map"), "utf8");
        assert.equal(map, "api.example.com svc_api-v2\nshop.example.com svc_shop\nwww.example.com svc_api-v2\n");
    });

    it("a hostile KV value is rejected (log, metric) and never reaches HAProxy; the other services keep serving", async () => {
        const hostile = "evil.example.com\n    use_backend svc_shop";
        await h.consul.kvPut(hostsKey("shop"), hostile);
        await h.consul.kvPut(hostsKey("other"), "bad host!");
        await waitFor(
            () => /rejected: KV service\/haproxy\/services\/other\/hosts: value \(sha256 [0-9a-f]{8}\)/.test(h.gateway.proc!.stderr.toString()) || undefined,
            {
                timeoutMs: 10_000,
                message: "the rejection logged",
            },
        );
        const log = h.gateway.proc!.stderr.toString();
        assert.match(
            log,
            /rejected: KV service\/haproxy\/services\/shop\/hosts: value \(sha256 [0-9a-f]{8}\) is not lowercase DNS names separated by single spaces; keeping its last good value/,
        );
        assert.ok(!log.includes("evil.example.com"), "the value is named by its hash only");
        const m = await metrics();
        assert.ok(Number(/^gateway_controller_notes\{kind="rejected"\} (\d+)$/m.exec(m)?.[1]) >= 2, m);
        assert.match(m, /^gateway_controller_quarantined_services 1$/m);
        // Quarantine: shop keeps its last good names; api-v2 is not affected; nothing of the value anywhere.
        assert.equal(await reached("/q", "shop.example.com"), "shop /q");
        assert.equal(await reached("/q", "api.example.com"), "api-v2 /q");
        assert.equal(await reached("/shop/q", "evil.example.com"), "shop /q", "evil.example.com is no host route: routed by path");
        for (const file of ["haproxy.cfg", "hosts.map"]) assert.ok(!fs.readFileSync(path.join(h.gateway.runDir, file), "utf8").includes("evil"), file);
    });
});
