// A Consul upgrade through the program, on a stack of the `hosts` target (test/cluster/harness):
// `pulumi up` again with a new consul.image (the same Consul with another image ID, on every node),
// through the same applier, which replaces resources in the order the engine does
// (test/e2e/applier/index.ts). Watched while it runs: every server's view of the leader and the raft
// voters (every 0.5 s), KV writes through the nodes in turn, wrk through every edge gateway; after
// it: what was written before and acknowledged during, what the applier replaced and when each
// server's gate ran. The test (consul-upgrade.test.ts) asserts on it; the benchmark records the figures.
import assert from "node:assert/strict";
import { PROJECT } from "../../support/program";
import { sleep } from "../../support/wait";
import type { Replacement } from "../../e2e/applier";
import { log } from "./engines";
import { Load, loadFigures, type GatewayLoad } from "./load";
import { consul, consulJson, converged, gatewayStarts, leaderSeenBy, printFigures, round, routedServices } from "./observe";
import { CLUSTER_STACK, type ClusterStack } from "./stack";

/** What the servers say at one moment: each node's leader as it sees it (0 none, null no answer), the raft voters. */
export interface Sample {
    at: number;
    leaders: (number | null)[];
    voters?: number;
}

/** Polls every server's view of the leader (and the raft voters through one that answers) until stopped. */
function watchServers(stack: ClusterStack, servers: number[]): { stop: () => Promise<Sample[]> } {
    const samples: Sample[] = [];
    let running = true;
    const loop = (async () => {
        while (running) {
            const at = Date.now();
            const leaders = await Promise.all(servers.map((s) => leaderSeenBy(stack, s, 1500).catch(() => null)));
            const via = servers[leaders.findIndex((l) => l !== null)];
            const voters =
                via === undefined
                    ? undefined
                    : await consulJson<{ Servers: { Voter: boolean }[] }>(stack, via, "/v1/operator/raft/configuration?stale", 1500).then(
                          (r) => r.Servers.filter((s) => s.Voter).length,
                          () => undefined,
                      );
            samples.push({ at, leaders, voters });
            await sleep(Math.max(0, 500 - (Date.now() - at)));
        }
    })();
    return {
        stop: async () => {
            running = false;
            await loop;
            return samples;
        },
    };
}

/** The leader most servers name in a sample (0: none named). */
export function leaderOf(s: Sample): number {
    const named = s.leaders.filter((l): l is number => typeof l === "number" && l !== 0);
    if (named.length === 0) return 0;
    const counts = new Map<number, number>();
    for (const l of named) counts.set(l, (counts.get(l) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1])[0][0];
}

/** The longest run of samples in which no server named a leader, in seconds (from the first such sample to the next with one). */
function longestLeaderless(samples: Sample[]): number {
    let longest = 0;
    let since: number | undefined;
    for (const s of samples) {
        if (leaderOf(s) === 0) since ??= s.at;
        else if (since !== undefined) {
            longest = Math.max(longest, s.at - since);
            since = undefined;
        }
    }
    if (since !== undefined) longest = Math.max(longest, samples[samples.length - 1].at - since);
    return longest / 1000;
}

export interface UpgradeRun {
    figures: {
        scenario: "consul-upgrade";
        applySeconds: number;
        serversDownAtOnceMax: number;
        longestWithoutLeaderSeconds: number;
        gatewayRestarts: number;
        failed: number;
        [k: string]: unknown;
    };
    servers: number[];
    newImageId: string;
    samples: Sample[];
    /** Each node's replacements in the upgrade's evaluation. */
    replacementsByNode: Map<number, Replacement[]>;
    /** Each server's gate runs in the upgrade's evaluation. */
    gateRuns: Map<number, { started: number; finished?: number }[]>;
    lostBefore: string[];
    lostDuring: string[];
    acknowledgedDuring: number;
    aclKept: boolean;
    starts: Record<number, string>;
    startsAfter: Record<number, string>;
    containersBefore: Map<number, Set<string>>;
    results: GatewayLoad[];
}

/** `pulumi up` with a new consul.image, under KV writes and load, the servers watched throughout. */
export async function consulUpgrade(stack: ClusterStack): Promise<UpgradeRun> {
    await converged(stack);
    const servers = stack.outputs.nodes.filter((n) => n.consulServer).map((_, i) => i + 1);
    // The first `pulumi up` left the leadership off node 1, where the next rolling replacement starts.
    const leaderBefore = await leaderSeenBy(stack, 1);
    log(`consul upgrade: leader before: node ${leaderBefore}`);

    // The new image: the same Consul, another image ID, on every node (the program pulls nothing here).
    const oldImage = stack.configValue("consul").image as string;
    const newImage = await stack.images.derive(oldImage, `${oldImage}-rolled`);
    await Promise.all(stack.nodes.map((n) => stack.images.ship(newImage, n.docker)));
    const newImageId = (await stack.node(1).docker.imageExists(newImage)).Id as string;

    // Written before: KV keys and an ACL policy with a token.
    const before_ = new Map<string, string>();
    for (let i = 1; i <= 20; i++) {
        const [key, value] = [`cluster-test/upgrade/before/${i}`, `b${i}-${Date.now()}`];
        const r = await consul(stack, 1 + (i % 3), `/v1/kv/${key}`, { method: "PUT", body: value });
        assert.equal(r.body.trim(), "true", `${key} written`);
        before_.set(key, value);
    }
    const policy = await consul(stack, 2, "/v1/acl/policy", {
        method: "PUT",
        body: JSON.stringify({ Name: `cluster-upgrade-${Date.now()}`, Rules: 'key_prefix "cluster-test/" { policy = "read" }' }),
    });
    assert.equal(policy.status, 200, policy.body);
    const token = await consul(stack, 3, "/v1/acl/token", {
        method: "PUT",
        body: JSON.stringify({ Policies: [{ Name: JSON.parse(policy.body).Name }] }),
    });
    assert.equal(token.status, 200, token.body);
    const accessor = JSON.parse(token.body).AccessorID as string;

    const starts = await gatewayStarts(stack);
    const containersBefore = new Map(stack.nodes.map((n) => [n.index, new Set(stack.containersOn(n.index).keys())]));
    const load = Load.start(stack.outputs.gatewayUrls, { paths: routedServices(stack).map((r) => r.prefix), durationSec: 900 });
    const watch = watchServers(stack, servers);
    // KV writes through the nodes in turn the whole time: each acknowledged one must survive.
    const acknowledged = new Map<string, string>();
    let writing = true;
    let writeErrors = 0;
    const writes = (async () => {
        for (let n = 1; writing; n++) {
            const [key, value] = [`cluster-test/upgrade/during/${n}`, `d${n}-${Date.now()}`];
            const r = await consul(stack, 1 + (n % 3), `/v1/kv/${key}`, { method: "PUT", body: value, timeoutMs: 15_000 }).catch(() => undefined);
            if (r?.status === 200 && r.body.trim() === "true") acknowledged.set(key, value);
            else writeErrors++;
            await sleep(200);
        }
    })();
    let samples: Sample[] = [];
    let applySeconds = 0;
    try {
        await sleep(5000);
        const tApply = Date.now();
        await stack.apply({ ...stack.config, [`${PROJECT}:consul`]: JSON.stringify({ ...stack.configValue("consul"), image: newImage }) });
        applySeconds = round((Date.now() - tApply) / 1000);
        log(`consul upgrade: pulumi up (the applier) done in ${applySeconds} s`);
        await sleep(5000);
    } finally {
        samples = await watch.stop();
        writing = false;
        await writes;
        load.finish();
    }
    const results = await load.results();

    // What the applier replaced in this evaluation: the three servers' containers, nothing else.
    const evaluation = Math.max(...[...stack.applier.nodes.values()].flatMap((a) => a.replacements.map((r) => r.evaluation)));
    const replaced = new Map<number, Replacement>();
    const replacementsByNode = new Map<number, Replacement[]>();
    for (const node of stack.nodes) {
        const mine = stack.applier.nodes.get(node.index)!.replacements.filter((r) => r.evaluation === evaluation);
        replacementsByNode.set(node.index, mine);
        const agent = mine.find((r) => r.resource === `docker:index/container:Container::consul-${CLUSTER_STACK}-node-${node.index}`);
        assert.ok(agent, `node ${node.index}: its Consul agent was replaced`);
        replaced.set(node.index, agent);
    }
    // Each server's gate run of this evaluation (none without the chain: then a server is back once created).
    const gateRuns = new Map(
        servers.map((i) => [
            i,
            stack.applier.control.commandRuns.filter(
                (r) => r.resource === `command:local:Command::consul-${CLUSTER_STACK}-node-${i}-ready` && r.started >= replaced.get(1)!.deleteStarted!,
            ),
        ]),
    );
    const backAt = (i: number): number => gateRuns.get(i)?.[0]?.finished ?? replaced.get(i)!.created!;
    const perServer = servers.map((i) => {
        const r = replaced.get(i)!;
        const g = gateRuns.get(i)?.[0];
        return {
            node: i,
            downSeconds: round((r.created! - r.deleteStarted!) / 1000),
            gateSeconds: g ? round((g.finished! - g.started) / 1000) : undefined,
            untilBackSeconds: round((backAt(i) - r.deleteStarted!) / 1000),
        };
    });
    const leaders = samples.map(leaderOf);
    let leaderChanges = 0;
    for (let i = 0, last = leaderBefore; i < leaders.length; i++) {
        if (leaders[i] !== 0 && leaders[i] !== last) [leaderChanges, last] = [leaderChanges + 1, leaders[i]];
    }
    const stored = await consulJson<{ Key: string; Value: string }[]>(stack, 1, "/v1/kv/cluster-test/upgrade/?recurse&consistent", 15_000);
    const values = new Map(stored.map((e) => [e.Key, Buffer.from(e.Value ?? "", "base64").toString()]));
    const lostBefore = [...before_].filter(([k, v]) => values.get(k) !== v).map(([k]) => k);
    const lostDuring = [...acknowledged].filter(([k, v]) => values.get(k) !== v).map(([k]) => k);
    const aclKept = (await consul(stack, 1, `/v1/acl/token/${accessor}?consistent`)).status === 200;
    const startsAfter = await gatewayStarts(stack);
    const figures = {
        scenario: "consul-upgrade" as const,
        applySeconds,
        leaderBefore,
        perServer,
        serversDownAtOnceMax: Math.max(
            ...servers.map(
                (i) =>
                    servers.filter((j) => replaced.get(j)!.deleteStarted! <= replaced.get(i)!.deleteStarted! && backAt(j) > replaced.get(i)!.deleteStarted!)
                        .length,
            ),
        ),
        samples: samples.length,
        samplesWithoutLeader: leaders.filter((l) => l === 0).length,
        longestWithoutLeaderSeconds: round(longestLeaderless(samples)),
        leaderChanges,
        leaders: [...new Set(leaders.filter((l) => l !== 0))],
        samplesFewerThanQuorumAnswering: samples.filter((s) => s.leaders.filter((l) => l !== null).length < 2).length,
        votersMin: Math.min(...samples.flatMap((s) => (s.voters === undefined ? [] : [s.voters]))),
        kvWrittenBefore: before_.size,
        kvLostBefore: lostBefore.length,
        kvWritesAcknowledgedDuring: acknowledged.size,
        kvWritesRefusedOrUnanswered: writeErrors,
        kvLostDuring: lostDuring.length,
        aclTokenKept: aclKept,
        gatewayRestarts: Object.keys(starts).filter((k) => starts[Number(k)] !== startsAfter[Number(k)]).length,
        ...loadFigures(results),
    };
    printFigures(figures);
    return {
        figures,
        servers,
        newImageId,
        samples,
        replacementsByNode,
        gateRuns,
        lostBefore,
        lostDuring,
        acknowledgedDuring: acknowledged.size,
        aclKept,
        starts,
        startsAfter,
        containersBefore,
        results,
    };
}
