// A Consul upgrade through the program, on the 3-node stack of the hosts target (test/cluster/harness):
// `pulumi up` again with a new consul.image (the same Consul with another image ID, on every node),
// through the same applier, which replaces resources in the order the engine does
// (test/e2e/applier/index.ts). The three servers have fixed container names and are deleted before
// they are created again; components/consul.ts chains them through a gate per server
// (components/local-commands/consul-server-ready.mjs). Checked while it runs: at most one server
// down at any moment (the applier's own record of each replacement), a leader known by the
// servers all along (polled), KV writes going on; after it: every KV key and ACL token written
// before and every acknowledged write still there, the gateways served throughout (wrk through both),
// nothing but the Consul agents replaced. The scenario is harness/upgrade.ts (the benchmark runs it
// too: bench/cluster.ts); its figures in one `[cluster] figures` line.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { skipReason } from "./harness/engines";
import { consulJson, consulNodeName, converged } from "./harness/observe";
import { CLUSTER_STACK, ClusterStack } from "./harness/stack";
import { clusterForSuite } from "./harness/suite";
import { consulUpgrade, leaderOf } from "./harness/upgrade";

describe("a Consul upgrade through the program (stack cluster): the servers replaced one at a time", { skip: skipReason() }, () => {
    const up = clusterForSuite();
    let stack: ClusterStack;
    before(() => {
        stack = up();
    });

    test(
        "pulumi up with a new consul.image: one server at a time behind its gate, a leader throughout, nothing lost, the gateways serving",
        { timeout: 15 * 60_000 },
        async () => {
            const run = await consulUpgrade(stack);
            const { servers, figures, gateRuns, samples, lostBefore, lostDuring, aclKept, starts, startsAfter, containersBefore, results, newImageId } = run;
            assert.deepEqual(servers, [1, 2, 3], "three servers, on nodes 1 to 3");
            // What the applier replaced in this evaluation: the three servers' containers, nothing else.
            for (const [index, mine] of run.replacementsByNode) {
                assert.deepEqual(
                    mine.map((r) => r.resource),
                    [`docker:index/container:Container::consul-${CLUSTER_STACK}-node-${index}`],
                    `node ${index}: only its Consul agent is replaced`,
                );
                assert.equal(mine[0].mode, "delete-before-replace");
            }
            const replaced = new Map([...run.replacementsByNode].map(([i, mine]) => [i, mine[0]]));
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
            assert.ok(run.acknowledgedDuring > 0, "KV writes were acknowledged during the upgrade");
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
