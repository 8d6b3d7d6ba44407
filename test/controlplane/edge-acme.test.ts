// ACME at the edge (docs/security.md, "TLS at the edge") on real processes: two gateways share
// one Consul and order from Pebble, Let's Encrypt's test CA. One certificate for both (one order,
// the same serial on each), the HTTP-01 challenge answered by whichever gateway the CA reaches
// (here: always the one that did not order); a renewal under load over HTTPS fails no request and
// reloads nothing; the lock holder killed mid-order, the other completes; the CA down, the old
// certificate stays, and the failure shows in the metrics and the log.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as https from "node:https";
import { ConsulAgent, freePort, Gateway, httpRequest, PRODUCTION_CONSUL_LIMITS, readTools, sleep, waitFor, type Tools } from "./harness";
import { acmeGatewayToken, forward, lockHolder, startDns, startPebble, type Pebble } from "./harness/acme";
import { startRecordingBackend } from "./harness/edge";
import { presented, sealingKeyFile, tlsGatewayEnv } from "./harness/tls";
import { startWrk } from "./harness/traffic";

const HOST = "app.test";
/** Pebble's certificates live 60 s and are renewed 45 s before they expire: a renewal every ~15 s. */
const VALIDITY_SECONDS = 60;
const RENEW_BEFORE_SECONDS = 45;
/** Where Pebble reaches each gateway (forwarded to its HTTP port). */
const ADDRESSES: Record<string, string> = { "gw-a": "127.0.0.10", "gw-b": "127.0.0.11" };

/** GET /acme/v1/ over HTTPS for HOST, the chain verified against `ca`: the status. */
function verifiedGet(port: number, ca: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const req = https.request({ host: "127.0.0.1", port, path: "/acme/v1/", servername: HOST, ca, headers: { host: HOST }, agent: false }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
    });
}

interface Replica {
    name: string;
    gw: Gateway;
    httpsPort: number;
    alive: boolean;
    proxy: Awaited<ReturnType<typeof forward>>;
}

describe("ACME: gateways order one certificate together", { timeout: 600_000 }, () => {
    let tools: Tools;
    let consul: ConsulAgent;
    let pebble: Pebble;
    let dns: Awaited<ReturnType<typeof startDns>>;
    let challengePort: number;
    let token: string;
    let sealing: { file: string; key: Buffer };
    const replicas = new Map<string, Replica>();
    const cleanups: (() => Promise<void>)[] = [];
    /** Which gateway each validation was sent to, and which one held the lock then. */
    const resolved: { to: string; holder: string | undefined }[] = [];
    let slowDns = 0;

    const serial = async (r: Replica): Promise<string> => {
        const p = await presented(r.httpsPort, { servername: HOST });
        return p.subjectAltName === `DNS:${HOST}` ? p.serial : "";
    };
    const metrics = async (r: Replica): Promise<string> => {
        const auth = Buffer.from(`${r.gw.statsUser}:${r.gw.statsPassword}`).toString("base64");
        return (await httpRequest(`http://127.0.0.1:${r.gw.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth}` } })).body;
    };
    const counter = (text: string, result: "success" | "failure"): number =>
        Number(new RegExp(`^gateway_controller_acme_orders_total\\{result="${result}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? "NaN");
    const log = (r: Replica): string => r.gw.proc?.stderr.toString() ?? "";

    async function startReplica(name: string): Promise<Replica> {
        const env = {
            ...(await tlsGatewayEnv({ source: "acme", sealingKeyFile: sealing.file })),
            CONSUL_HTTP_TOKEN: token,
            GATEWAY_NAME: name,
            GATEWAY_ACME_DIRECTORY: pebble.directoryUrl,
            GATEWAY_ACME_CA_FILE: pebble.caFile,
            GATEWAY_ACME_EMAIL: "ops@example.com",
            GATEWAY_ACME_HOSTS: HOST,
            GATEWAY_ACME_RENEW_BEFORE_SECONDS: String(RENEW_BEFORE_SECONDS),
            GATEWAY_ACME_CHECK_SECONDS: "2",
        };
        const gw = await Gateway.start(tools, consul, { env });
        const proxy = await forward(ADDRESSES[name]!, challengePort, gw.httpPort);
        const r: Replica = { name, gw, httpsPort: Number(env.GATEWAY_HTTPS_PORT), alive: true, proxy };
        replicas.set(name, r);
        return r;
    }

    before(
        async () => {
            tools = readTools();
            consul = await ConsulAgent.start(tools, { hcl: [PRODUCTION_CONSUL_LIMITS] });
            cleanups.push(() => consul.destroy());
            token = await acmeGatewayToken(consul);
            sealing = sealingKeyFile();
            challengePort = await freePort();
            // The CA reaches a live gateway that does not hold the lock when there is one.
            dns = await startDns(async (name) => {
                if (name !== HOST) return undefined;
                if (slowDns > 0) await sleep(slowDns);
                const holder = await lockHolder(consul).catch(() => undefined);
                const alive = [...replicas.values()].filter((r) => r.alive);
                const to = alive.find((r) => r.name !== holder) ?? alive[0];
                resolved.push({ to: to?.name ?? "", holder });
                return to ? ADDRESSES[to.name] : undefined;
            });
            cleanups.push(() => dns.close());
            pebble = await startPebble({ httpPort: challengePort, dnsPort: dns.port, validitySeconds: VALIDITY_SECONDS });
            cleanups.push(() => pebble.stop());
            const backend = await startRecordingBackend("acme-a");
            cleanups.push(backend.close);
            await consul.register(backend.registration("acme-v1"));
        },
        { timeout: 120_000 },
    );

    after(async () => {
        if (process.env.DEBUG_ACME) for (const r of replicas.values()) console.error(r.gw.proc?.output());
        for (const r of replicas.values()) {
            await r.proxy.close().catch(() => undefined);
            await r.gw.destroy().catch(() => undefined);
        }
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
    });

    let current = "";

    it("two gateways obtain ONE certificate: the same serial on both, the challenge answered by the gateway that did not order", async (t) => {
        const started = Date.now();
        const [a, b] = await Promise.all([startReplica("gw-a"), startReplica("gw-b")]);
        const reloads = [await a.gw.masterReloads(), await b.gw.masterReloads()];
        current = await waitFor(
            async () => {
                const [sa, sb] = [await serial(a), await serial(b)];
                return sa !== "" && sa === sb ? sa : undefined;
            },
            { timeoutMs: 60_000, intervalMs: 200, message: "the same ACME certificate on both gateways" },
        ).catch((err: Error) => {
            throw new Error(`${err.message}\n${a.gw.proc?.output()}\n${b.gw.proc?.output()}`);
        });
        t.diagnostic(`time to the first certificate on both gateways: ${Date.now() - started} ms (from starting them)`);
        const orders = [counter(await metrics(a), "success"), counter(await metrics(b), "success")];
        assert.deepEqual(orders.sort(), [0, 1], `one order for both gateways: ${orders}`);
        const orderer = /ACME: certificate for app\.test obtained/.test(log(a)) ? a : b;
        const other = orderer === a ? b : a;
        assert.match(log(orderer), new RegExp(`this gateway \\(${orderer.name}\\) holds the lock and orders`));
        assert.doesNotMatch(log(other), /obtained in/);
        // Pebble validated at the gateway that did not order, which served the answer from KV.
        assert.ok(resolved.length >= 1 && resolved.every((x) => x.to === other.name && x.holder === orderer.name), JSON.stringify(resolved));
        assert.ok(other.proxy.connections() >= 1, "the validation reached the other gateway");
        assert.equal(orderer.proxy.connections(), 0, "nothing reached the gateway that ordered");
        // Verified against Pebble's root: a real chain, for the name.
        const root = await pebble.root();
        assert.equal(await verifiedGet(a.httpsPort, root), 200);
        assert.deepEqual([await a.gw.masterReloads(), await b.gw.masterReloads()], reloads, "no reload for the challenge or the certificate");
        assert.match(await metrics(a), new RegExp(`^gateway_controller_certificate_expiry_seconds\\{name="acme",serial="${current}"\\} \\d+$`, "m"));
    });

    it("renewal under wrk over HTTPS (a handshake per request): a new certificate on both, 0 failed requests, no reload", async (t) => {
        const [a, b] = [replicas.get("gw-a")!, replicas.get("gw-b")!];
        const reloads = [await a.gw.masterReloads(), await b.gw.masterReloads()];
        const wrk = startWrk(tools, { url: `https://127.0.0.1:${a.httpsPort}/acme/v1/`, threads: 2, connections: 16, headers: ["Connection: close"] });
        const renewed = await waitFor(
            async () => {
                const [sa, sb] = [await serial(a), await serial(b)];
                return sa !== current && sa === sb ? sa : undefined;
            },
            { timeoutMs: 90_000, intervalMs: 250, message: "the renewed certificate on both gateways" },
        );
        await sleep(1000);
        const r = await wrk.stop();
        t.diagnostic(`renewal under load: ${r.requests} requests, ${r.failed} failed; serial ${current} -> ${renewed}`);
        assert.equal(r.failed, 0, r.raw);
        assert.ok(r.requests > 100, `only ${r.requests} requests`);
        assert.deepEqual([await a.gw.masterReloads(), await b.gw.masterReloads()], reloads, "no reload");
        current = renewed;
    });

    it("the lock holder killed mid-order: the other gateway completes; the killed one comes back with the certificate from KV", async (t) => {
        slowDns = 2000; // the order stays open for a moment after its challenge is in KV
        const holderName = await waitFor(
            async () => {
                const holder = await lockHolder(consul);
                const challenges = await consul.api("GET", "/v1/kv/service/haproxy/tls/acme/challenges/?keys");
                return holder && challenges.status === 200 ? holder : undefined;
            },
            { timeoutMs: 60_000, intervalMs: 50, message: "an order in progress (the lock held, a challenge in KV)" },
        );
        const holder = replicas.get(holderName)!;
        const survivor = [...replicas.values()].find((r) => r !== holder)!;
        holder.alive = false;
        holder.gw.proc!.killGroup("SIGKILL");
        const killedAt = Date.now();
        slowDns = 0;
        const renewed = await waitFor(
            async () => {
                const s = await serial(survivor);
                return s !== "" && s !== current ? s : undefined;
            },
            { timeoutMs: 90_000, intervalMs: 250, message: "the survivor's certificate" },
        );
        t.diagnostic(
            `${survivor.name} completed ${Date.now() - killedAt} ms after ${holder.name} was killed mid-order (the lock's session lapses after its TTL)`,
        );
        assert.match(log(survivor), new RegExp(`this gateway \\(${survivor.name}\\) holds the lock and orders`));
        current = renewed;
        // The killed replica restarts and serves the certificate from KV without ordering one.
        await holder.proxy.close();
        await holder.gw.destroy();
        const back = await startReplica(holder.name);
        await waitFor(async () => (await serial(back)) === current, { timeoutMs: 20_000, message: "the restarted gateway serves the certificate from KV" });
        assert.equal(counter(await metrics(back), "success"), 0);
    });

    it("the CA down at renewal: the certificate in use is kept; the failure is logged and counted", async () => {
        await pebble.stop();
        const all = [...replicas.values()];
        const failed = await waitFor(
            async () => {
                for (const r of all) if (counter(await metrics(r), "failure") >= 1) return r;
                return undefined;
            },
            { timeoutMs: 120_000, intervalMs: 500, message: "a failed renewal counted" },
        );
        assert.match(
            log(failed),
            /ACME: ordering a certificate for app\.test from https:\/\/127\.0\.0\.1:\d+\/dir failed \(.+\); the certificate in use is kept/,
        );
        assert.match(await metrics(failed), /^gateway_controller_acme_last_failure_timestamp_seconds [1-9]\d+$/m);
        for (const r of all) assert.equal(await serial(r), current, `${r.name} still serves the certificate it had`);
        const expiry = Number(new RegExp(`certificate_expiry_seconds\\{name="acme",serial="${current}"\\} (-?\\d+)`).exec(await metrics(failed))?.[1]);
        assert.ok(expiry > 0 && expiry <= RENEW_BEFORE_SECONDS, `expires in ${expiry} s: renewal due, and shown`);
    });
});
