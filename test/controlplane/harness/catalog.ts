// A large catalog in one go, and what a gateway holds of it: for the scale test and the benchmark.
import { spawnSync } from "node:child_process";
import type { StaticBackend } from "./backends";
import type { ConsulAgent } from "./consul";
import type { Gateway } from "./gateway";
import { NODE_ADDRESS } from "./network";
import { waitFor } from "../../support/wait";

/**
 * Registers `services` services named `<prefix><n>-v1` with one instance on each of
 * `statics.length` nodes ("<prefix>-node-<i>", as Docker hosts each running one replica), the
 * instance on node i being static backend i. Written with Consul transactions (64 operations
 * each, the management token): Registrator's one-by-one agent registrations would measure
 * Consul's write rate (~30/s here with ACLs and TLS), not the gateway. No Consul checks: the
 * gateway checks instances itself. Returns when the last transaction was accepted.
 */
export async function registerCatalog(
    consul: ConsulAgent,
    statics: StaticBackend[],
    services: number,
    prefix: string,
): Promise<{ registrationMs: number; lastAt: number }> {
    const ops: unknown[] = [];
    statics.forEach((b, i) => {
        const node = `${prefix}-node-${i}`;
        ops.push({ Node: { Verb: "set", Node: { Node: node, Address: NODE_ADDRESS } } });
        for (let s = 0; s < services; s++) {
            ops.push({
                Service: {
                    Verb: "set",
                    Node: node,
                    Service: { ID: `${prefix}${s}-${i}`, Service: `${prefix}${s}-v1`, Tags: ["rest", "check=/health"], Address: NODE_ADDRESS, Port: b.port },
                },
            });
        }
    });
    const t0 = performance.now();
    for (let i = 0; i < ops.length; i += 64) {
        const res = await consul.api("PUT", "/v1/txn", ops.slice(i, i + 64), undefined, 30_000);
        if (res.status !== 200) throw new Error(`txn: ${res.status} ${res.body.slice(0, 500)}`);
    }
    const lastAt = performance.now();
    return { registrationMs: lastAt - t0, lastAt };
}

/** Backends of the running worker (`show backend`), the gateway's own ones included. */
export async function runningBackends(gw: Gateway): Promise<Set<string>> {
    return new Set(
        (await gw.admin("show backend"))
            .split("\n")
            .slice(1)
            .map((l) => l.trim())
            .filter(Boolean),
    );
}

/** Waits until the running worker has a backend for each of the `services` and the last one answers 200; ms since `since`. */
export async function allRoutesLive(gw: Gateway, services: number, prefix: string, since: number, limitMs: number): Promise<number> {
    const last = `/${prefix}${services - 1}/v1/x`;
    await waitFor(
        async () => {
            const running = await runningBackends(gw).catch(() => new Set<string>());
            let n = 0;
            for (let s = 0; s < services; s++) if (running.has(`svc_${prefix}${s}-v1`)) n++;
            return n === services && (await gw.get(last)).status === 200;
        },
        { timeoutMs: limitMs, intervalMs: 50, message: `all ${services} ${prefix} routes live` },
    );
    return performance.now() - since;
}

/** Established TCP connections from the gateway (or the previous design's consul-template) to Consul's HTTPS port (`ss`). */
export function consulConnections(gw: Gateway): number {
    const port = String(gw.env.CONSUL_HTTP_ADDR ?? "")
        .split(":")
        .pop();
    const r = spawnSync("ss", ["-Htnp", "state", "established", `( dport = :${port} )`], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
    // The controller is the gateway's process itself; the previous design's client was consul-template.
    const pid = `pid=${gw.proc?.pid},`;
    return r.stdout.split("\n").filter((l) => l.includes(pid) || l.includes('"consul-template"')).length;
}
