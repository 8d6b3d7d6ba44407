// The edge (docs/security.md, "TLS at the edge"): what HTTPS costs at the gateway, next to plain
// HTTP in the same run, and how certificates arrive and change under load.
// - Throughput: wrk against one route of two HAProxy-static backends, over keep-alive connections
//   (the TLS cost per request) and with one connection per request (a full handshake per request:
//   wrk does not resume sessions), HTTP and HTTPS interleaved, EDGE_ROUNDS rounds of each; once
//   with every process free to use every CPU, and once with the gateway (the controller and its
//   HAProxy) on CPU 0 and wrk on CPU 1, so the client's own TLS work is not done on the gateway's CPU.
// - Rotation: the certificate replaced in KV twice while wrk runs over HTTPS with a handshake per
//   request: failed requests and HAProxy reloads.
// - First certificate: a gateway with tls.source acme started against Pebble (Let's Encrypt's test
//   CA) with an empty KV: from the start of the gateway to the certificate served (account, order,
//   HTTP-01 challenge answered by the gateway, certificate installed through the runtime API).
// BENCH_ONLY=edge runs only this measure (edgeOnly) and updates the `edge` field of results.json.
import * as os from "node:os";
import { ConsulAgent, freePort, Gateway, Harness, PRODUCTION_CONSUL_LIMITS, readTools, runWrk, waitFor, type WrkResult } from "../test/controlplane/harness";
import { acmeGatewayToken, forward, startDns, startPebble } from "../test/controlplane/harness/acme";
import { edgeCa, issue, presented, putCertificate, sealingKeyFile, tlsGatewayEnv } from "../test/controlplane/harness/tls";
import { startWrk } from "../test/controlplane/harness/traffic";
import { stats } from "./dataplane";
import { log, machine, writeField } from "./report";
import { EDGE_FIRST_CERTIFICATE_TRIALS, EDGE_ROUNDS, EDGE_SECONDS } from "./settings";

const THREADS = 2;
const CONNECTIONS = 64;
const ACME_HOST = "edge.test";

interface Run {
    rps: number;
    p50Ms: number;
    p99Ms: number;
    failed: number;
}

interface Throughput {
    keepAlive: { http: Run[]; https: Run[] };
    perRequest: { http: Run[]; https: Run[] };
}

export interface EdgeResult extends Throughput {
    rounds: number;
    seconds: number;
    /** The gateway on CPU 0, wrk on CPU 1 (undefined on a machine with one CPU). */
    pinned: Throughput | undefined;
    rotation: { rotations: number; requests: number; failed: number; reloads: number; requestsPerSec: number };
    firstCertificateMs: number[];
}

function run(w: WrkResult): Run {
    return { rps: Math.round(w.requestsPerSec), p50Ms: w.latencyMs?.p50 ?? NaN, p99Ms: w.latencyMs?.p99 ?? NaN, failed: w.failed };
}

async function throughput(pin: boolean): Promise<Throughput & Partial<Pick<EdgeResult, "rotation">>> {
    const sealing = sealingKeyFile();
    const ca = edgeCa("Edge bench CA");
    const env = await tlsGatewayEnv({ source: "provided", sealingKeyFile: sealing.file });
    const httpsPort = Number(env.GATEWAY_HTTPS_PORT);
    const h = await Harness.start({ gatewayEnv: env, ...(pin ? { gatewayCpus: "0" } : {}) });
    try {
        for (const name of ["edge-a", "edge-b"]) await h.consul.register((await h.startStaticBackend(name)).registration("edge-v1"));
        await h.waitForRoute("/edge/v1/", { instance: "edge-b" });
        let cert = issue(ca, ["localhost"]);
        await putCertificate(h.consul, sealing.key, "edge", cert);
        const served = (serial: string) =>
            waitFor(async () => (await presented(httpsPort, { servername: "localhost" })).serial === serial, { timeoutMs: 10_000, message: "certificate" });
        await served(cert.serial);

        const urls = { http: h.gateway.url("/edge/v1/"), https: `https://127.0.0.1:${httpsPort}/edge/v1/` };
        const keepAlive = { http: [] as Run[], https: [] as Run[] };
        const perRequest = { http: [] as Run[], https: [] as Run[] };
        for (let round = 0; round < EDGE_ROUNDS; round++) {
            // Alternate which scheme goes first, so neither always runs on a warmer machine.
            const order = round % 2 === 0 ? (["http", "https"] as const) : (["https", "http"] as const);
            for (const scheme of order) {
                const common = {
                    url: urls[scheme],
                    durationSec: EDGE_SECONDS,
                    threads: THREADS,
                    connections: CONNECTIONS,
                    latency: true,
                    ...(pin ? { cpus: "1" } : {}),
                };
                keepAlive[scheme].push(run(await runWrk(h.tools, common)));
                perRequest[scheme].push(run(await runWrk(h.tools, { ...common, headers: ["Connection: close"] })));
                log(
                    `edge${pin ? " (gateway on CPU 0, wrk on CPU 1)" : ""} round ${round + 1} ${scheme}: keep-alive ${keepAlive[scheme].at(-1)!.rps} req/s, a connection per request ${perRequest[scheme].at(-1)!.rps} req/s`,
                );
            }
        }

        if (pin) return { keepAlive, perRequest };
        const reloads = await h.gateway.masterReloads();
        const wrk = startWrk(h.tools, { url: urls.https, threads: THREADS, connections: 16, headers: ["Connection: close"] });
        const t0 = performance.now();
        const rotations = 2;
        for (let i = 0; i < rotations; i++) {
            await new Promise((r) => setTimeout(r, 2000));
            cert = issue(ca, ["localhost"]);
            await putCertificate(h.consul, sealing.key, "edge", cert);
            await served(cert.serial);
        }
        await new Promise((r) => setTimeout(r, 2000));
        const r = await wrk.stop();
        const seconds = (performance.now() - t0) / 1000;
        return {
            keepAlive,
            perRequest,
            rotation: {
                rotations,
                requests: r.requests,
                failed: r.failed,
                reloads: (await h.gateway.masterReloads()) - reloads,
                requestsPerSec: r.requests / seconds,
            },
        };
    } finally {
        await h.stop();
    }
}

/** Gateway start -> the ACME certificate served, each trial from an empty KV (a new account, a new order). */
async function firstCertificate(): Promise<number[]> {
    const tools = readTools();
    const consul = await ConsulAgent.start(tools, { hcl: [PRODUCTION_CONSUL_LIMITS] });
    const cleanups: (() => Promise<void>)[] = [() => consul.destroy()];
    try {
        const token = await acmeGatewayToken(consul);
        const sealing = sealingKeyFile();
        const challengePort = await freePort();
        const dns = await startDns(async (name) => (name === ACME_HOST ? "127.0.0.12" : undefined));
        cleanups.push(() => dns.close());
        const pebble = await startPebble({ httpPort: challengePort, dnsPort: dns.port, validitySeconds: 86_400 });
        cleanups.push(() => pebble.stop());
        const times: number[] = [];
        for (let trial = 0; trial < EDGE_FIRST_CERTIFICATE_TRIALS; trial++) {
            const deleted = await consul.api("DELETE", "/v1/kv/service/haproxy/tls/?recurse");
            if (deleted.status !== 200) throw new Error(`emptying the TLS keys: ${deleted.status} ${deleted.body}`);
            const env = {
                ...(await tlsGatewayEnv({ source: "acme", sealingKeyFile: sealing.file })),
                CONSUL_HTTP_TOKEN: token,
                GATEWAY_NAME: "edge-bench",
                GATEWAY_ACME_DIRECTORY: pebble.directoryUrl,
                GATEWAY_ACME_CA_FILE: pebble.caFile,
                GATEWAY_ACME_EMAIL: "ops@example.com",
                GATEWAY_ACME_HOSTS: ACME_HOST,
            };
            const t0 = performance.now();
            const gw = await Gateway.start(tools, consul, { env, waitForRender: false });
            const proxy = await forward("127.0.0.12", challengePort, gw.httpPort);
            try {
                await waitFor(async () => (await presented(Number(env.GATEWAY_HTTPS_PORT), { servername: ACME_HOST })).subjectAltName === `DNS:${ACME_HOST}`, {
                    timeoutMs: 60_000,
                    intervalMs: 50,
                    message: "the ACME certificate served",
                });
                times.push(Math.round(performance.now() - t0));
                log(`edge: first ACME certificate ${times.at(-1)} ms after the gateway started`);
            } finally {
                await proxy.close();
                await gw.destroy();
            }
        }
        return times;
    } finally {
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
    }
}

export async function edge(): Promise<EdgeResult> {
    const t = await throughput(false);
    const pinned = os.cpus().length >= 2 ? await throughput(true) : undefined;
    return {
        rounds: EDGE_ROUNDS,
        seconds: EDGE_SECONDS,
        keepAlive: t.keepAlive,
        perRequest: t.perRequest,
        rotation: t.rotation!,
        pinned: pinned && { keepAlive: pinned.keepAlive, perRequest: pinned.perRequest },
        firstCertificateMs: await firstCertificate(),
    };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

function medianRun(runs: Run[]): Run {
    return {
        rps: median(runs.map((r) => r.rps)),
        p50Ms: median(runs.map((r) => r.p50Ms)),
        p99Ms: median(runs.map((r) => r.p99Ms)),
        failed: runs.reduce((a, r) => a + r.failed, 0),
    };
}

function throughputSummary(t: Throughput): {
    keep_alive: { http: Run; https: Run; https_share_of_http_pct: number };
    connection_per_request: { http: Run; https: Run; https_full_handshakes_per_sec: number };
} {
    const ka = { http: medianRun(t.keepAlive.http), https: medianRun(t.keepAlive.https) };
    const pr = { http: medianRun(t.perRequest.http), https: medianRun(t.perRequest.https) };
    return {
        keep_alive: { http: ka.http, https: ka.https, https_share_of_http_pct: Math.round((1000 * ka.https.rps) / ka.http.rps) / 10 },
        connection_per_request: { http: pr.http, https: pr.https, https_full_handshakes_per_sec: pr.https.rps },
    };
}

export function edgeSummary(e: EdgeResult): Record<string, unknown> {
    return {
        rounds: e.rounds,
        seconds_per_run: e.seconds,
        ...throughputSummary(e),
        ...(e.pinned ? { gateway_on_its_own_cpu: throughputSummary(e.pinned) } : {}),
        rotation_under_load: {
            rotations: e.rotation.rotations,
            requests: e.rotation.requests,
            failed: e.rotation.failed,
            reloads: e.rotation.reloads,
        },
        first_certificate_ms: { trials: e.firstCertificateMs, ...stats(e.firstCertificateMs) },
    };
}

export function edgeMarkdown(e: EdgeResult): string[] {
    const first = stats(e.firstCertificateMs);
    const row = (what: string, r: Run, goal = ""): string => `| ${what} | ${r.rps} | ${r.p50Ms} ms | ${r.p99Ms} ms | ${r.failed} | ${goal} |`;
    const rows = (where: string, t: Throughput): string[] => {
        const s = throughputSummary(t);
        return [
            row(`${where}: HTTP, keep-alive`, s.keep_alive.http),
            row(`${where}: HTTPS, keep-alive`, s.keep_alive.https, `≥ 85 % of HTTP: ${s.keep_alive.https_share_of_http_pct} %`),
            row(`${where}: HTTP, a connection per request`, s.connection_per_request.http),
            row(`${where}: HTTPS, a full handshake per request`, s.connection_per_request.https),
        ];
    };
    return [
        "## The edge: HTTPS next to HTTP",
        "",
        `wrk, ${THREADS} threads × ${CONNECTIONS} connections, ${e.seconds} s per run, ${e.rounds} rounds of each row (HTTP and HTTPS`,
        "interleaved), against one route of two HAProxy-static backends; medians of the rounds (failed: the sum). HTTPS: TLS 1.3,",
        "ECDSA P-256 certificate, through the gateway's HTTPS listener; wrk resumes no session, so a connection per request is a",
        "full handshake per request. Shared: every process on every CPU; pinned: the gateway (controller and HAProxy, which then",
        "runs one thread) on CPU 0, wrk on CPU 1. The previous design had no HTTPS listener.",
        "",
        "| Run | Requests/s | Latency p50 | Latency p99 | Failed | Goal |",
        "|---|---|---|---|---|---|",
        ...rows("shared", e),
        ...(e.pinned ? rows("pinned", e.pinned) : []),
        "",
        `Certificate rotation under load: ${e.rotation.rotations} rotations through KV while wrk ran over HTTPS with a handshake per`,
        `request: ${e.rotation.requests} requests, **${e.rotation.failed} failed**, ${e.rotation.reloads} reloads of HAProxy.`,
        "",
        `Time to the first certificate from Pebble (tls.source acme, an empty KV: account, order, HTTP-01 answered by the gateway,`,
        `installed through the runtime API), from the gateway's start: ${e.firstCertificateMs.join(", ")} ms (p50 ${first.p50} ms).`,
        "",
    ];
}

/** BENCH_ONLY=edge: the edge alone; its field replaces `edge` in results.json. */
export async function edgeOnly(): Promise<void> {
    log(`machine: ${machine()}`);
    log(`edge: HTTP and HTTPS, ${EDGE_ROUNDS} rounds of ${EDGE_SECONDS} s, then a rotation under load and ${EDGE_FIRST_CERTIFICATE_TRIALS} first certificates`);
    const e = await edge();
    writeField("edge", edgeSummary(e), edgeMarkdown(e));
}
