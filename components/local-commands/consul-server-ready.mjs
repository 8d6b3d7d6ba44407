// Waits until one Consul server is back in its cluster: the gate a rolling replacement of the
// servers passes before the next server is touched (components/consul.ts: server i+1's container
// depends on server i's gate, whose triggers hold server i's container id, so a replaced server
// runs this again). Run by Pulumi (command.local.Command) on the machine running `pulumi up`,
// over the server's HTTPS API, like consul-agent-token.mjs.
//
// Ready: the server knows a leader, and autopilot (asked through it, answered by the leader)
// counts every expected server as a healthy voter, this one among them, for SETTLE_SECONDS in a
// row. Also ready, at once: a cluster still forming on the first `pulumi up`, where the later
// servers do not run yet (this server holds no raft state, and neither it nor any other server
// knows a leader); the last server's gate never takes that way: it waits for the whole cluster.
// Then, if the server named in CONSUL_AVOID_LEADER leads, leadership is handed to this one
// (POST /v1/operator/raft/transfer-leader), so that the server replaced next is never the leader
// when it stops: a planned hand-over instead of an election after a lost leader.
// Everything comes from the environment, so no secret is ever on a command line:
//   CONSUL_HTTP_ADDR      https://host:port of the server
//   CONSUL_CACERT_PEM     the CA its certificate is signed by (PEM)
//   CONSUL_HTTP_TOKEN     a token with operator:read and operator:write (the management token)
//   CONSUL_NODE           the server's Consul node name
//   CONSUL_SERVERS        how many servers the cluster has
//   CONSUL_MAY_BOOTSTRAP  "true": a later server is needed before a first cluster can form
//   CONSUL_OTHER_ADDRS    the other servers' HTTPS addresses, comma-separated (who knows a leader)
//   CONSUL_AVOID_LEADER   node name that should not lead once this gate passes (optional)
//   SETTLE_SECONDS        how long the server must stay ready (5)
//   TIMEOUT_SECONDS       how long to wait in all (300)
import https from "node:https";
import { pathToFileURL } from "node:url";

/**
 * The gate's decision on one observation. Pure.
 * @param {{
 *   node: string, servers: number, mayBootstrap: boolean,
 *   self: { error?: string, leader?: string, peers?: string[] },
 *   othersWithLeader: number,
 *   autopilot?: { Healthy: boolean, FailureTolerance: number, Servers: { ID: string, Name: string, Healthy: boolean, Voter: boolean, Leader: boolean }[] },
 *   autopilotError?: string,
 * }} o
 * @returns {{ ready: boolean, forming: boolean, reason: string }}
 */
export function serverReadiness(o) {
    const wait = (reason) => ({ ready: false, forming: false, reason });
    if (o.self.error !== undefined) return wait(`${o.node} does not answer: ${o.self.error}`);
    const peers = o.self.peers ?? [];
    const leader = o.self.leader ?? "";
    if (o.mayBootstrap && peers.length === 0 && leader === "" && o.othersWithLeader === 0) {
        return {
            ready: true,
            forming: true,
            reason: `${o.node} runs; the cluster is still forming (no raft state here, no leader anywhere): it forms once all ${o.servers} servers run`,
        };
    }
    if (leader === "") return wait(`${o.node} knows no leader yet`);
    if (!o.autopilot) return wait(`autopilot health not available through ${o.node}: ${o.autopilotError ?? "no answer"}`);
    const servers = o.autopilot.Servers ?? [];
    const me = servers.find((s) => s.Name === o.node);
    if (!me) return wait(`${o.node} is not among the raft servers yet (${servers.map((s) => s.Name).join(", ") || "none"})`);
    if (!me.Voter) return wait(`${o.node} is not a voter yet`);
    if (!me.Healthy) return wait(`${o.node} is not healthy yet (autopilot)`);
    const voters = servers.filter((s) => s.Voter);
    if (voters.length !== o.servers) return wait(`${voters.length} of ${o.servers} servers are voters`);
    const unhealthy = servers.filter((s) => !s.Healthy).map((s) => s.Name);
    if (unhealthy.length > 0 || !o.autopilot.Healthy) return wait(`not every server is healthy: ${unhealthy.join(", ") || "autopilot says unhealthy"}`);
    const lead = servers.find((s) => s.Leader)?.Name ?? leader;
    return {
        ready: true,
        forming: false,
        reason: `${o.node} is back: ${o.servers} healthy voters, leader ${lead}, failure tolerance ${o.autopilot.FailureTolerance}`,
    };
}

/** The server to hand leadership to when `avoid` leads (this one), else undefined. Pure. */
export function leadershipTarget(autopilot, node, avoid) {
    if (!avoid || avoid === node) return undefined;
    const servers = autopilot?.Servers ?? [];
    const leader = servers.find((s) => s.Leader);
    if (!leader || leader.Name !== avoid) return undefined;
    return servers.find((s) => s.Name === node)?.ID;
}

function request(env, origin, path, method = "GET", timeoutMs = 5000) {
    return new Promise((resolve) => {
        const req = https.request(
            new URL(path, origin),
            {
                method,
                ca: env.CONSUL_CACERT_PEM,
                headers: { "X-Consul-Token": env.CONSUL_HTTP_TOKEN, Connection: "close" },
                timeout: timeoutMs,
            },
            (res) => {
                let text = "";
                res.on("data", (d) => (text += d));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, text: text.trim() }));
            },
        );
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", (e) => resolve({ status: 0, text: e.message }));
        req.end();
    });
}

async function json(env, origin, path) {
    const r = await request(env, origin, path);
    // The autopilot health answers 429 with its body when some server is unhealthy.
    if (r.status !== 200 && r.status !== 429) throw new Error(r.status === 0 ? r.text : `HTTP ${r.status}: ${r.text}`);
    return JSON.parse(r.text);
}

async function observe(env, o) {
    const self = {};
    try {
        self.leader = await json(env, env.CONSUL_HTTP_ADDR, "/v1/status/leader");
        self.peers = await json(env, env.CONSUL_HTTP_ADDR, "/v1/status/peers");
    } catch (e) {
        self.error = e.message;
    }
    const others = (env.CONSUL_OTHER_ADDRS || "").split(",").filter(Boolean);
    const leaders = await Promise.all(others.map((a) => json(env, a, "/v1/status/leader").catch(() => "")));
    let autopilot;
    let autopilotError;
    if (self.error === undefined && self.leader) {
        try {
            autopilot = await json(env, env.CONSUL_HTTP_ADDR, "/v1/operator/autopilot/health");
        } catch (e) {
            autopilotError = e.message;
        }
    }
    return { ...o, self, othersWithLeader: leaders.filter((l) => typeof l === "string" && l !== "").length, autopilot, autopilotError };
}

async function main() {
    const env = process.env;
    for (const key of ["CONSUL_HTTP_ADDR", "CONSUL_CACERT_PEM", "CONSUL_HTTP_TOKEN", "CONSUL_NODE", "CONSUL_SERVERS"]) {
        if (!env[key]) {
            console.error(`consul-server-ready: ${key} is not set`);
            process.exit(2);
        }
    }
    const fixed = { node: env.CONSUL_NODE, servers: Number(env.CONSUL_SERVERS), mayBootstrap: env.CONSUL_MAY_BOOTSTRAP === "true" };
    const settleMs = Number(env.SETTLE_SECONDS || 5) * 1000;
    const started = Date.now();
    const deadline = started + Number(env.TIMEOUT_SECONDS || 300) * 1000;
    let readySince;
    let said = "";
    for (;;) {
        const o = await observe(env, fixed);
        const r = serverReadiness(o);
        if (r.reason !== said) console.log(`consul-server-ready: ${r.reason}`);
        said = r.reason;
        if (r.forming) process.exit(0);
        readySince = r.ready ? (readySince ?? Date.now()) : undefined;
        if (readySince !== undefined && Date.now() - readySince >= settleMs) {
            await handOver(env, o);
            console.log(`consul-server-ready: ${fixed.node} ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
            process.exit(0);
        }
        // A TLS failure will not fix itself: the CA or the address is wrong.
        if (o.self.error && /certificate|self.signed|altnames|SSL|TLS/i.test(o.self.error)) break;
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    console.error(`consul-server-ready: ${fixed.node} not ready at ${env.CONSUL_HTTP_ADDR}: ${said}`);
    process.exit(1);
}

/** Leadership off the server replaced next, onto this one; a failure is reported, not fatal. */
async function handOver(env, o) {
    const target = leadershipTarget(o.autopilot, o.node, env.CONSUL_AVOID_LEADER);
    if (!target) return;
    const r = await request(env, env.CONSUL_HTTP_ADDR, `/v1/operator/raft/transfer-leader?id=${encodeURIComponent(target)}`, "POST", 15_000);
    if (r.status !== 200) {
        console.log(`consul-server-ready: leadership stays on ${env.CONSUL_AVOID_LEADER}: transfer refused (${r.status} ${r.text})`);
        return;
    }
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
        const health = await json(env, env.CONSUL_HTTP_ADDR, "/v1/operator/autopilot/health").catch(() => undefined);
        const leader = health?.Servers?.find((s) => s.Leader)?.Name;
        if (leader && leader !== env.CONSUL_AVOID_LEADER) {
            console.log(`consul-server-ready: leadership handed from ${env.CONSUL_AVOID_LEADER} to ${leader}`);
            return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
    }
    console.log(`consul-server-ready: leadership still on ${env.CONSUL_AVOID_LEADER} 30 s after the transfer`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
