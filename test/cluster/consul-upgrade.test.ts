// A Consul upgrade through the program, on the 3-node stack of the hosts target (test/cluster/harness):
// `pulumi up` again with a new consul.image (the same Consul with another image ID, on every node),
// through the same applier, which replaces resources in the order the engine does
// (test/e2e/applier/index.ts). The three servers have fixed container names and are deleted before
// they are created again; components/consul.ts chains them through a gate per server
// (components/local-commands/consul-server-ready.mjs). Checked while it runs: at most one server
// down at any moment (the applier's own record of each replacement), a leader known by the
// servers all along (polled), KV writes going on; after it: every KV key and ACL token written
// before and every acknowledged write still there, the gateways served throughout (wrk through both),
// nothing but the Consul agents replaced. Figures in one `[cluster] figures` line.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sleep } from "../support/wait";
import type { Replacement } from "../e2e/applier";
import { log, skipReason } from "./harness/engines";
import { Load, loadFigures } from "./harness/load";
import { consul, consulJson, consulNodeName, converged, gatewayStarts, leaderSeenBy, printFigures, round, routedServices } from "./harness/observe";
import { PROJECT } from "../support/program";
import { CLUSTER_STACK, ClusterStack } from "./harness/stack";

/** What the servers say at one moment: each node's leader as it sees it (0 none, null no answer), the raft voters. */
interface Sample {
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
function leaderOf(s: Sample): number {
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

describe("a Consul upgrade through the program (stack cluster): the servers replaced one at a time", { skip: skipReason() }, () => {
    let stack: ClusterStack;

    before(
        async () => {
            stack = await ClusterStack.up();
            await converged(stack);
        },
        { timeout: 20 * 60_000 },
    );

    after(
        async () => {
            await stack?.down();
        },
        { timeout: 5 * 60_000 },
    );

    test(
        "pulumi up with a new consul.image: one server at a time behind its gate, a leader throughout, nothing lost, the gateways serving",
        { timeout: 15 * 60_000 },
        async () => {
            const servers = stack.outputs.nodes.filter((n) => n.consulServer).map((_, i) => i + 1);
            assert.deepEqual(servers, [1, 2, 3], "three servers, on nodes 1 to 3");
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
            for (const [index, a] of stack.applier.nodes) {
                const mine = a.replacements.filter((r) => r.evaluation === evaluation);
                assert.deepEqual(
                    mine.map((r) => r.resource),
                    [`docker:index/container:Container::consul-${CLUSTER_STACK}-node-${index}`],
                    `node ${index}: only its Consul agent is replaced`,
                );
                assert.equal(mine[0].mode, "delete-before-replace");
                replaced.set(index, mine[0]);
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
                scenario: "consul-upgrade",
                applySeconds,
                leaderBefore,
                perServer,
                serversDownAtOnceMax: Math.max(
                    ...servers.map(
                        (i) =>
                            servers.filter(
                                (j) => replaced.get(j)!.deleteStarted! <= replaced.get(i)!.deleteStarted! && backAt(j) > replaced.get(i)!.deleteStarted!,
                            ).length,
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

            // One at a time: server i+1 is deleted only after server i's gate passed, which ran after server i was created again.
            for (const i of servers) assert.equal(gateRuns.get(i)!.length, 1, `gate ${i} ran once, after its server was replaced`);
            for (const i of servers.slice(1)) {
                const previous = gateRuns.get(i - 1)![0];
                assert.ok(previous.started >= replaced.get(i - 1)!.created!, `gate ${i - 1} ran after server ${i - 1} was created again`);
                assert.ok(replaced.get(i)!.deleteStarted! >= previous.finished!, `server ${i} deleted only after gate ${i - 1} passed`);
            }
            assert.equal(figures.serversDownAtOnceMax, 1, "never two servers out at once: a quorum of 2 of 3 throughout");
            // A leader all along: each server that stops is not the leader (its predecessor's gate handed leadership on),
            // so no election waits out a lost leader; a few samples may fall between a hand-over's steps.
            assert.ok(
                figures.longestWithoutLeaderSeconds <= 10,
                `no leader for at most 10 s at a time (${figures.longestWithoutLeaderSeconds} s; ${JSON.stringify(samples.filter((s) => leaderOf(s) === 0).slice(0, 10))})`,
            );
            assert.ok(samples.length >= 20, `the servers were watched during the apply (${samples.length} samples)`);
            assert.deepEqual(lostBefore, [], "every KV key written before the upgrade is there");
            assert.ok(acknowledged.size > 0, "KV writes were acknowledged during the upgrade");
            assert.deepEqual(lostDuring, [], "every KV write acknowledged during the upgrade is there");
            assert.ok(aclKept, "the ACL token written before the upgrade is there");
            assert.equal(figures.gatewayRestarts, 0, `no gateway restarted: ${JSON.stringify({ starts, startsAfter })}`);
            assert.ok(
                results.every((r) => r.requests > 0),
                "load through both gateways",
            );
            assert.equal(figures.failed, 0, "no request through either gateway failed");
            // The other containers are the same ones (their names, as Docker sees them, unchanged).
            for (const node of stack.nodes) {
                assert.deepEqual(new Set(stack.containersOn(node.index).keys()), containersBefore.get(node.index), `node ${node.index}'s containers`);
                const agent = await node.docker.inspectContainer(`${CLUSTER_STACK}-consul`);
                assert.equal(agent.Image, newImageId, `node ${node.index} runs the new image`);
                assert.equal(agent.State.Running, true);
            }
            const raft = await consulJson<{ Servers: { Voter: boolean; Node: string }[] }>(stack, 2, "/v1/operator/raft/configuration");
            assert.deepEqual(
                raft.Servers.filter((s) => s.Voter)
                    .map((s) => s.Node)
                    .sort(),
                servers.map(consulNodeName),
                "the same three voters",
            );
            await converged(stack);
        },
    );
});
