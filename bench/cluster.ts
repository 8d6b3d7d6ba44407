// The cluster scenarios (test/cluster: Docker engines each in a network namespace of its own, over
// TLS, the `hosts` target applied node by node), measured rather than tested: the same harness and
// the same scenario code as `npm run test:cluster` (test/cluster/harness/scenarios.ts, upgrade.ts),
// their figures recorded. Three stacks, one after the other (one cluster at a time on a machine):
// - 3 nodes: partition (an edge node cut off from the other Consul servers), leader loss (the
//   leader's Consul container stopped), node loss (a node's link cut), each under wrk through both
//   edge gateways;
// - 3 nodes again: a Consul upgrade through the program (a new consul.image, the servers replaced
//   one at a time);
// - 5 engines: scale out 3 -> 4 -> 5 and in 5 -> 4 (hello v1 one replica per node).
// Not part of the full `npm run bench` (minutes, root, network namespaces): BENCH_ONLY=cluster runs
// only this (clusterOnly) and updates the `cluster` field of results.json.
import * as fs from "node:fs";
import * as path from "node:path";
import { log as clusterLog, skipReason } from "../test/cluster/harness/engines";
import { converged } from "../test/cluster/harness/observe";
import { leaderLoss, nodeLoss, onePerNode, partition, scale } from "../test/cluster/harness/scenarios";
import { ClusterStack, type ClusterStackOptions } from "../test/cluster/harness/stack";
import { consulUpgrade } from "../test/cluster/harness/upgrade";
import { log, machine } from "./report";

type Figures = Record<string, unknown>;

export interface ClusterResult {
    machine: string;
    /** Seconds of each stack's bring-up (engines, images, apply). */
    bringUp: Record<string, Record<string, number>>;
    partition: Figures;
    leaderLoss: Figures;
    nodeLoss: Figures;
    consulUpgrade: Figures;
    scale: Figures[];
}

/** A scenario's figures without the per-gateway breakdown of the load (the totals stay). */
function summary(figures: Figures): Figures {
    const { gateways: _, ...rest } = figures;
    return rest;
}

async function withStack<T>(
    name: string,
    options: ClusterStackOptions,
    bringUp: ClusterResult["bringUp"],
    body: (stack: ClusterStack) => Promise<T>,
): Promise<T> {
    log(`cluster: bringing up ${name}`);
    const stack = await ClusterStack.up(options);
    try {
        await converged(stack);
        bringUp[name] = { ...stack.timings };
        return await body(stack);
    } finally {
        await stack.down().catch((e: Error) => clusterLog(`teardown: ${e.message}`));
    }
}

export async function cluster(): Promise<ClusterResult> {
    const skip = skipReason();
    if (skip) throw new Error(`BENCH_ONLY=cluster: ${skip}`);
    const bringUp: ClusterResult["bringUp"] = {};
    const faults = await withStack("3 nodes", {}, bringUp, async (stack) => {
        log("cluster: partition");
        const p = await partition(stack);
        log("cluster: leader loss");
        const l = await leaderLoss(stack);
        log("cluster: node loss");
        const n = await nodeLoss(stack);
        return { partition: summary(p.figures), leaderLoss: summary(l.figures), nodeLoss: summary(n.figures) };
    });
    const upgrade = await withStack("3 nodes (Consul upgrade)", {}, bringUp, async (stack) => {
        log("cluster: Consul upgrade");
        return summary((await consulUpgrade(stack)).figures);
    });
    const scaled = await withStack("5 engines, 3 hosts", { nodes: 5, hosts: 3, services: onePerNode(3) }, bringUp, async (stack) => {
        const out: Figures[] = [];
        for (const to of [4, 5, 4]) {
            log(`cluster: scale ${stack.nodes.length} -> ${to}`);
            out.push(summary((await scale(stack, to)).figures));
        }
        return out;
    });
    return { machine: machine(), bringUp, ...faults, consulUpgrade: upgrade, scale: scaled };
}

export function clusterMarkdown(c: ClusterResult): string[] {
    const n = (v: unknown): string => (v === undefined || v === null ? "—" : String(v));
    const p = c.partition;
    const l = c.leaderLoss;
    const d = c.nodeLoss;
    const u = c.consulUpgrade;
    return [
        "## Cluster scenarios (`BENCH_ONLY=cluster`)",
        "",
        `On ${c.machine}: Docker engines in network namespaces of this machine, the \`hosts\` target applied node by node, wrk through both edge gateways.`,
        "",
        "| Scenario | Figures | Requests failed |",
        "|---|---|---|",
        `| partition (edge node 2 cut off from the other servers for ${n(p.cutOffSeconds)} s) | marked failed ${n(p.majorityMarkedFailedSeconds)} s; routes kept ${n(p.routesKept)}; staleness at heal ${n(p.stalenessSecondsAtHeal)} s; converged ${n(p.convergedSecondsAfterHeal)} s after the link returned | ${n(p.failed)} of ${n(p.requests)}; probes through the cut-off gateway ${n(p.probesFailed)} of ${n(p.probes)} |`,
        `| leader loss | new leader ${n(l.newLeaderSeconds)} s; ${n(l.kvWritesAcknowledgedBeforeLoss)} writes acknowledged before, ${n(l.kvWritesLost)} lost; gateway restarts ${n(l.gatewayRestarts)} | ${n(l.failed)} of ${n(l.requests)} |`,
        `| node loss (link cut) | replicas out of rotation ${n(d.replicasOutOfRotationSeconds)} s; Consul marked it failed ${n(d.consulMarkedFailedSeconds)} s | ${n(d.failed)} of ${n(d.requests)} |`,
        `| Consul upgrade | \`pulumi up\` ${n(u.applySeconds)} s; servers down at once ≤ ${n(u.serversDownAtOnceMax)}; longest without a leader ${n(u.longestWithoutLeaderSeconds)} s; KV lost ${n(u.kvLostDuring)} | ${n(u.failed)} of ${n(u.requests)} |`,
        ...c.scale.map(
            (s) =>
                `| scale ${n(s.from)} → ${n(s.to)} | \`pulumi up\` ${n(s.applySeconds)} s; node ${n(s.node)} ${s.scenario === "scale-out" ? "in" : "out of"} rotation ${n(s.rotationSeconds)} s; ${n(s.containersChangedElsewhere)} of ${n(s.containersCheckedElsewhere)} containers elsewhere changed | ${n(s.failed)} of ${n(s.requests)} |`,
        ),
        "",
    ];
}

/** BENCH_ONLY=cluster: the cluster scenarios alone; their field replaces `cluster` in results.json. */
export async function clusterOnly(): Promise<void> {
    log(`machine: ${machine()}`);
    const c = await cluster();
    const file = path.join(__dirname, "results.json");
    const results = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
    results.cluster = c;
    fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify({ cluster: c }, null, 2)}\n\n${clusterMarkdown(c).join("\n")}`);
}
