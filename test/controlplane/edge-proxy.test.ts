// Behind a load balancer that speaks the PROXY protocol (docs/security.md, "On aws": the NLB passes
// TCP 443 to the gateways with PROXY v2), on real processes. Every connection comes from the
// balancer's one address; the client's is in the PROXY header. The gateway must see clients, not
// the balancer: X-Forwarded-For and the per-client counters carry the header's address, and one
// client at its connection cap does not lock the others out, though all of them arrive from the
// same address. (HAProxy's `tcp-request connection` rules see the balancer's address; the
// gateway counts in `tcp-request session` rules, after the header.)
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { Harness, waitFor, type HelloResponse } from "./harness";
import { proxyV2Header, startRecordingBackend } from "./harness/edge";
import { edgeCa, issue, putCertificate, sealingKeyFile, tlsGatewayEnv } from "./harness/tls";
import type { TestCa } from "./harness/pki";

const CLIENT_CAP = 5;

describe("edge behind a PROXY-protocol load balancer: clients, not the balancer", { timeout: 180_000 }, () => {
    let h: Harness;
    let ca: TestCa;
    let httpsPort: number;
    const open: tls.TLSSocket[] = [];

    /** A TLS connection to the HTTPS port from 127.0.0.1 (the balancer) on behalf of `client`. */
    function connect(client: string): Promise<tls.TLSSocket> {
        return new Promise((resolve, reject) => {
            const raw = net.connect({ host: "127.0.0.1", port: httpsPort }, () => {
                raw.write(proxyV2Header(client, httpsPort));
                const s = tls.connect({ socket: raw, servername: "localhost", ca: ca.caPem });
                s.once("secureConnect", () => {
                    raw.setTimeout(0);
                    resolve(s);
                });
                // A held connection the gateway closes later is no error of the test's.
                s.on("error", reject);
            });
            raw.once("error", reject);
            raw.setTimeout(5000, () => raw.destroy(new Error(`no TLS session within 5 s for ${client}`)));
        });
    }

    /** One request on a new connection on behalf of `client`: the status and the body ("" when the connection closed without an answer). */
    async function request(client: string, path: string): Promise<{ status: number; body: string }> {
        const s = await connect(client);
        return new Promise((resolve, reject) => {
            let text = "";
            s.on("data", (d: Buffer) => (text += d.toString("utf8")));
            s.on("end", () => {
                const m = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
                resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
            });
            s.on("error", reject);
            // HTTP/1.0: the answer is not chunked.
            s.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`);
        });
    }

    before(
        async () => {
            const sealing = sealingKeyFile();
            ca = edgeCa();
            const env = { ...(await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file })), GATEWAY_ACCEPT_PROXY: "https" };
            httpsPort = Number(env.GATEWAY_HTTPS_PORT);
            h = await Harness.start({ gatewayEnv: env });
            await putCertificate(h.consul, sealing.key, "app", issue(ca, ["localhost"]));
            const web = await startRecordingBackend("web-a");
            h.onStop(web.close);
            await h.consul.register(web.registration("web"));
            await h.consul.kvPut("service/haproxy/limits/client-connections", String(CLIENT_CAP));
            await h.waitForConfig((cfg) => cfg.includes(`sc0_conn_cur gt ${CLIENT_CAP}`), "the client cap live", 20_000);
            await h.waitForRoute("/web/x", { instance: "web-a" });
            await waitFor(async () => (await request("203.0.113.1", "/web/x").catch(() => undefined))?.status === 200 || undefined, {
                timeoutMs: 20_000,
                message: "/web/x over HTTPS through the PROXY header",
            }).catch((err: Error) => {
                throw new Error(`${err.message}\n${h.diagnostics()}`);
            });
        },
        { timeout: 90_000 },
    );

    after(async () => {
        for (const s of open) s.destroy();
        await h?.stop();
    });

    it("the rendered HTTPS listener takes PROXY and counts clients in session rules", () => {
        const cfg = h.gateway.readRenderedConfig("live");
        assert.match(cfg, /^frontend https\n {4}bind .* accept-proxy$/m);
        assert.match(cfg, /^ {4}tcp-request session track-sc0 src table clients_http$/m);
    });

    it("the backend sees the client of the PROXY header in X-Forwarded-For, and the counters key on it", async () => {
        const held = await connect("203.0.113.7");
        open.push(held);
        const res = await request("203.0.113.7", "/web/who");
        assert.equal(res.status, 200, res.body);
        const body = JSON.parse(res.body) as HelloResponse & { headers: Record<string, string> };
        assert.equal(body.headers["x-forwarded-for"], "203.0.113.7");
        const table = await h.gateway.admin("show table clients_http");
        assert.match(table, /key=203\.0\.113\.7 /, table);
        // The balancer's own address (127.0.0.1, also the plain HTTP listener's test client) holds nothing for it.
        assert.doesNotMatch(table, /key=127\.0\.0\.1 .*conn_cur=[1-9]/, `the balancer's address is not counted as a client:\n${table}`);
    });

    it("one client at its cap is refused; another client through the same balancer is served", async () => {
        for (let i = 0; i < CLIENT_CAP; i++) open.push(await connect("203.0.113.8"));
        await waitFor(async () => /key=203\.0\.113\.8 .*conn_cur=5/.test(await h.gateway.admin("show table clients_http")) || undefined, {
            timeoutMs: 5000,
            message: `203.0.113.8 counted with ${CLIENT_CAP} connections`,
        });
        const over = await request("203.0.113.8", "/web/over").catch((err: Error) => ({ status: 0, body: err.message }));
        assert.equal(over.status, 0, `the ${CLIENT_CAP + 1}th connection of 203.0.113.8 is closed without an answer: ${over.body}`);
        for (const client of ["203.0.113.9", "198.51.100.20"]) {
            const res = await request(client, "/web/other");
            assert.equal(res.status, 200, `${client}, from the same balancer address: ${res.body}`);
        }
    });
});
