// Scaling a stack of the `hosts` target by its stack config (test/cluster/harness): five engines,
// the stack first on three of them (3 Consul servers, gateways on nodes 1 and 2, hello v1 one
// replica per node, hello v2 one replica), then `pulumi up` with a fourth host (3 -> 4), a fifth
// (4 -> 5: a 5-node stack, three servers and two client agents, checked end to end) and without
// the fifth again (5 -> 4), each under wrk through both gateways. Each step must change only the
// added or removed node: every container on every other engine keeps its ID, its start time and
// its restart count (docker inspect before and after), no request fails, no gateway restarts.
// The steps are harness/scenarios.ts `scale` (the benchmark records their figures: bench/cluster.ts).
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { eventually } from "../e2e/harness/stack";
import { skipReason } from "./harness/engines";
import { ALIVE, LEFT, consulJson, consulNodeName, leaderSeenBy, members, replicasOf } from "./harness/observe";
import { checkRegistrations, checkRoutes, onePerNode, scale, type ScaleRun } from "./harness/scenarios";
import { CLUSTER_STACK, ClusterStack } from "./harness/stack";
import { clusterForSuite } from "./harness/suite";

/** What every scale step must show: the other nodes untouched, nothing failed, no gateway restarted. */
function assertOnlyThatNode(run: ScaleRun): void {
    const f = run.figures;
    for (const [node, changes] of Object.entries(run.changedElsewhere)) assert.deepEqual(changes, [], `node ${node}'s containers are untouched`);
    assert.ok(f.containersCheckedElsewhere > 0, "containers were compared on the other nodes");
    assert.equal(f.gatewayRestarts, 0, "no gateway restarted");
    assert.ok(f.requests > 0, "load through both gateways");
    assert.equal(f.failed, 0, `no request through either gateway failed (${f.failed} of ${f.requests})`);
}

describe("scaling a stack of the hosts target (stack cluster): 3 -> 4 -> 5 -> 4 nodes, only that node changes", { skip: skipReason() }, () => {
    const up = clusterForSuite({ nodes: 5, hosts: 3, services: onePerNode(3) });
    let stack: ClusterStack;
    before(() => {
        stack = up();
    });

    test(
        "scale out 3 -> 4: node 4 gets its agent, Registrator and replica; nothing on nodes 1-3 is replaced or restarted",
        { timeout: 10 * 60_000 },
        async () => {
            assert.equal(stack.nodes.length, 3);
            const run = await scale(stack, 4);
            assertOnlyThatNode(run);
            const f = run.figures;
            assert.ok(f.rotationSeconds !== undefined, "node 4's replica came into rotation in both gateways");
            assert.ok(f.memberSeconds !== undefined, "node 4's agent became a live member");
            assert.ok(run.nodeContainers.includes(`${CLUSTER_STACK}-consul`), `node 4 runs a Consul agent: ${run.nodeContainers.join(", ")}`);
            assert.equal(replicasOf(stack, "hello-v1").filter((r) => r.node === 4).length, 1, "one hello-v1 replica on node 4");
            const self = await consulJson<any>(stack, 4, "/v1/agent/self");
            assert.equal(self.Config.Server, false, "node 4 runs a client agent (3 servers stay)");
            await checkRoutes(stack);
            await checkRegistrations(stack);
        },
    );

    test(
        "scale out 4 -> 5: a 5-node stack, checked end to end (routes from every edge gateway, each node's replicas by its Registrator)",
        { timeout: 10 * 60_000 },
        async () => {
            const run = await scale(stack, 5);
            assertOnlyThatNode(run);
            assert.equal(stack.nodes.length, 5);
            // Five live members, three servers with one leader, the others client agents.
            const alive = (await members(stack, 5)).filter((m) => m.Status === ALIVE).map((m) => m.Name);
            assert.deepEqual(alive.sort(), [1, 2, 3, 4, 5].map(consulNodeName));
            const leaders = new Set(await Promise.all([1, 2, 3, 4, 5].map((i) => leaderSeenBy(stack, i))));
            assert.equal(leaders.size, 1, "every agent names the same leader");
            const raft = await consulJson<{ Servers: { Voter: boolean; Node: string }[] }>(stack, 5, "/v1/operator/raft/configuration");
            assert.deepEqual(
                raft.Servers.filter((s) => s.Voter)
                    .map((s) => s.Node)
                    .sort(),
                [1, 2, 3].map(consulNodeName),
            );
            // Replicas spread: hello v1 one per node.
            assert.deepEqual(
                replicasOf(stack, "hello-v1")
                    .map((r) => r.node)
                    .sort(),
                [1, 2, 3, 4, 5],
            );
            await checkRoutes(stack);
            await checkRegistrations(stack);
        },
    );

    test(
        "scale in 5 -> 4: node 5's resources are deleted, its replica leaves rotation, its agent is gone; nothing on nodes 1-4 is replaced or restarted",
        { timeout: 10 * 60_000 },
        async () => {
            const run = await scale(stack, 4);
            assertOnlyThatNode(run);
            const f = run.figures;
            assert.deepEqual(run.nodeContainers, [], "node 5's engine runs none of the stack's containers");
            assert.ok(f.rotationSeconds !== undefined, "node 5's replica left rotation in both gateways");
            assert.ok(f.memberSeconds !== undefined, "node 5's agent is no longer a live member");
            const node5 = (await members(stack, 1)).find((m) => m.Name === consulNodeName(5));
            assert.notEqual(node5?.Status, ALIVE, `node 5's agent is gone (${JSON.stringify(node5?.Status)})`);
            // Its agent was stopped, not killed (destroyGraceSeconds): it left the cluster, and Consul
            // deregistered the node and what it held, instead of keeping a failed member for 72 h.
            assert.equal(f.memberStatus, LEFT, `node 5's agent left (member status ${f.memberStatus}: 1 alive, 3 left, 4 failed)`);
            await eventually(
                "node 5 gone from Consul's catalog",
                async () => ((await consulJson<unknown>(stack, 1, `/v1/catalog/node/${consulNodeName(5)}`)) === null ? true : undefined),
                30_000,
            );
            const passing = await consulJson<any[]>(stack, 1, "/v1/health/service/hello-v1?passing");
            assert.deepEqual(passing.map((s) => s.Node.Node).sort(), [1, 2, 3, 4].map(consulNodeName));
            await checkRoutes(stack);
            await checkRegistrations(stack);
        },
    );
});
