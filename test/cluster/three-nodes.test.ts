// A 3-node stack of the `hosts` target on three Docker engines of this machine (test/cluster/harness:
// each engine in a network namespace of its own, reached over TLS with client certificates as
// the stack config says), brought up from the stack config alone: three Consul servers with
// ACLs, TLS and gossip encryption, gateways on the edge nodes 1 and 2, replicas round robin over
// the nodes (hello v1 on nodes 1-3, v2 on 1-2). Checked end to end, then disturbed under load
// through both gateways; each fault scenario (harness/scenarios.ts, which the benchmark runs too:
// bench/cluster.ts) prints its figures as one `[cluster] figures` line and leaves the cluster as it
// found it; the tests assert on those figures with loose bounds.
//   partition    node 2 (an edge node) cut off from the Consul servers of nodes 1 and 3: their
//                RPC and gossip ports dropped both ways inside node 2's namespace. Every node
//                here runs a server and replicas, so only Consul's traffic is cut: the gateways
//                still reach every replica, and what is measured is the control plane's part.
//   leader loss  the leading server's Consul container stopped, started again after.
//   node loss    node 3 (a server and a hello-v1 replica, no gateway) gone from the network: its
//                veth pulled from the bridge, put back after.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { httpRequest } from "../support/http";
import { CONNECT_PROBE } from "../support/probes";
import { Docker } from "../e2e/harness/docker";
import { skipReason } from "./harness/engines";
import * as network from "./harness/network";
import { ALIVE, consul, consulJson, consulNodeName, leaderSeenBy, members, round } from "./harness/observe";
import { checkRegistrations, checkRoutes, leaderLoss, nodeLoss, partition } from "./harness/scenarios";
import { ClusterStack } from "./harness/stack";
import { clusterForSuite } from "./harness/suite";

describe("a 3-node stack of the hosts target (stack cluster): three engines over TLS, three Consul servers, two edge gateways", { skip: skipReason() }, () => {
    const up = clusterForSuite();
    let stack: ClusterStack;
    before(() => {
        stack = up();
    });

    test("the engines are reached as the stack config says: tcp://<address>:2376, TLS with the client certificate of certPath, nothing else", async () => {
        const hosts = stack.configValue("hosts") as { name: string; host: string; address: string; certPath: string }[];
        assert.equal(hosts.length, 3);
        for (const node of stack.nodes) {
            const h = hosts[node.index - 1];
            assert.deepEqual(h, { name: node.name, host: `tcp://${node.address}:2376`, address: node.address, certPath: node.certPath });
            // The declared provider is this host and certificate folder (the applier refuses any other).
            const provider = [...stack.applier.nodes.get(node.index)!.state.values()].find((r) => r.type === "pulumi:providers:docker");
            assert.equal(provider?.inputs.host, h.host);
            // Without a client certificate the engine refuses the client; plain HTTP is not spoken.
            const plain = await new Docker(h.host).ping(3000);
            assert.equal(plain, false, `${h.host} answers plain HTTP`);
            const engineCa = fs.readFileSync(path.join(node.certPath, "ca.pem"), "utf8");
            const anonymous = await httpRequest(`https://${node.address}:2376/_ping`, { ca: engineCa, timeoutMs: 3000 }).then(
                (r) => `answered ${r.status}`,
                (e: Error) => e.message,
            );
            assert.doesNotMatch(anonymous, /answered 200/, `${h.host} without a client certificate`);
            assert.equal(await node.docker.ping(), true);
        }
        // Each engine is in its own namespace: its iptables NAT rules are its own (published ports of its containers only).
        const nat1 = await network.inNode(1, "iptables", ["-w", "-t", "nat", "-S"]);
        const nat3 = await network.inNode(3, "iptables", ["-w", "-t", "nat", "-S"]);
        assert.match(nat1, /--dport 80 -j DNAT/, "node 1 (edge) publishes the gateway");
        assert.doesNotMatch(nat3, /--dport 80 -j DNAT/, "node 3 (not an edge node) publishes no gateway");
    });

    test("each engine runs its node's share: a Consul agent everywhere, gateways on the edge nodes, replicas round robin, each with its process limit", async () => {
        const placement: Record<string, number[]> = {};
        for (const node of stack.nodes) {
            const running = (await node.docker.request<any[]>("GET", "/containers/json")).map((c) => String(c.Names[0]).slice(1));
            assert.ok(running.includes("cluster-consul"), `Consul agent on ${node.name}`);
            assert.equal(running.includes("cluster-gateway"), stack.edgeNodes.includes(node.index), `gateway on ${node.name}`);
            assert.ok(running.includes(`cluster-node-${node.index}-docker-socket-proxy`), `socket proxy on ${node.name}`);
            for (const name of running) {
                const m = /^cluster-(hello-v[0-9]+)-([0-9]+)-[0-9a-f]{8}$/.exec(name);
                if (!m) continue;
                (placement[m[1]] ??= []).push(node.index);
                // Set by the command beside the replica with the Docker CLI, over this engine's TLS endpoint (DOCKER_CERT_PATH).
                assert.equal((await node.docker.inspectContainer(name)).HostConfig.PidsLimit, 512, `${name} on ${node.name}: PidsLimit`);
            }
        }
        assert.deepEqual(placement["hello-v1"]?.sort(), [1, 2, 3]);
        assert.deepEqual(placement["hello-v2"]?.sort(), [1, 2]);
    });

    test("Consul: three servers and one leader, over TLS with ACLs (default deny) and gossip encryption", async () => {
        const leaders = new Set<number>();
        for (const node of stack.nodes) {
            const peers = await consulJson<string[]>(stack, node.index, "/v1/status/peers");
            assert.equal(peers.length, 3, `${node.name} sees 3 raft peers`);
            leaders.add(await leaderSeenBy(stack, node.index));
            const self = await consulJson<any>(stack, node.index, "/v1/agent/self");
            assert.equal(self.Config.Server, true, `${node.name} runs a server`);
            assert.equal(self.Config.NodeName, consulNodeName(node.index));
            assert.equal(self.Stats.serf_lan.encrypted, "true", `${node.name}: gossip encrypted`);
        }
        assert.equal(leaders.size, 1, "every server names the same leader");
        assert.ok(!leaders.has(0), "a leader exists");
        const alive = (await members(stack, 1)).filter((m) => m.Status === ALIVE && m.Tags.role === "consul");
        assert.equal(alive.length, 3, "3 live server members");
        // ACLs: without a token nothing is written; TLS: no plain HTTP on the API port.
        const anonymous = await consul(stack, 1, "/v1/kv/cluster-test/anonymous", { method: "PUT", body: "x", token: null });
        assert.equal(anonymous.status, 403, "an anonymous KV write is denied");
        const plain = await httpRequest(`http://${stack.node(1).address}:8501/v1/status/leader`, { timeoutMs: 3000 }).then(
            (r) => r.status,
            () => 0,
        );
        assert.notEqual(plain, 200, "plain HTTP on the API port");
    });

    test("every route answers from every edge gateway, with the replicas of every node in rotation", async () => {
        await checkRoutes(stack);
    });

    test("each node's replicas are registered at that node's address and published port, by that node's Registrator", async () => {
        await checkRegistrations(stack);
    });

    // The scenarios (harness/scenarios.ts) measure and put back what they disturbed; the bounds here are loose.
    test("replicas are isolated on their node (Docker's isolation between bridges, iptables on): a hello-v1 replica reaches neither the hello-v2 replica beside it nor the Consul agent", async () => {
        const node = stack.nodes[0]!; // node 1 runs a replica of each version, the agent and a gateway
        const running = (await node.docker.request<any[]>("GET", "/containers/json")).map((c) => String(c.Names[0]).slice(1));
        const [v1, v2] = ["hello-v1", "hello-v2"].map((s) => running.find((n) => new RegExp(`^cluster-${s}-[0-9]+-[0-9a-f]{8}$`).test(n)));
        assert.ok(v1 && v2, `a replica of each version on ${node.name}: ${running.join(" ")}`);
        const networksOf = async (c: string): Promise<Record<string, string>> =>
            Object.fromEntries(
                Object.entries((await node.docker.inspectContainer(c)).NetworkSettings.Networks as Record<string, { IPAddress: string }>).map(([n, x]) => [
                    n,
                    x.IPAddress,
                ]),
            );
        const [mine, other, agent] = await Promise.all([v1, v2, "cluster-consul"].map(networksOf));
        assert.deepEqual(Object.keys(mine).length, 1, `one network: ${JSON.stringify(mine)}`);
        assert.match(Object.keys(mine)[0]!, /-svc-hello-v1$/);
        assert.ok(!Object.keys(other).some((n) => n in mine) && !Object.keys(agent).some((n) => n in mine), "no network shared with them");
        const self = `${Object.values(mine)[0]}:8080`;
        const refused = [...Object.values(other).map((a) => `${a}:8080`), ...Object.values(agent).flatMap((a) => [`${a}:8501`, `${a}:8301`])];
        const r = await node.docker.cli(["exec", v1, "python3", "-c", CONNECT_PROBE, self, ...refused], { allowFailure: true });
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout.trim()) as Record<string, { ok?: true; error?: string }>;
        console.log(`[cluster] TCP connects from ${v1} on ${node.name}: ${JSON.stringify(out)}`);
        assert.deepEqual(out[self], { ok: true }, "the probe works: the replica reaches itself");
        for (const x of refused) assert.ok(out[x]?.error !== undefined, `${x} must not be reachable from ${v1}: ${JSON.stringify(out[x])}`);
        // Meanwhile both versions answer through both gateways.
        await checkRoutes(stack);
    });

    describe("faults under load through both edge gateways", () => {
        test(
            "partition: an edge node cut off from the Consul servers keeps serving its last good routes, says it is stale, catches up when the link returns",
            { timeout: 10 * 60_000 },
            async () => {
                const run = await partition(stack);
                const f = run.figures;
                assert.ok(f.majorityGatewayConvergedSeconds !== undefined, "the gateway on the majority's side dropped the stopped replica");
                assert.ok(
                    f.majorityMarkedFailedSeconds !== undefined && f.majorityMarkedFailedSeconds <= 30,
                    `the majority marked node 2 failed within 30 s (${f.majorityMarkedFailedSeconds})`,
                );
                assert.equal(f.routesKept, true, "the cut-off gateway kept its last good routes (3 hello-v1 servers)");
                assert.ok(f.indexLag > 0, `the cut-off gateway is behind the majority's (index lag ${f.indexLag})`);
                // Its watch of the changed node heard nothing while cut off (unless Consul's 300 s wait ran out in between).
                assert.ok(
                    f.watchAgeSecondsAtHeal >= run.sinceChange - 2 || run.waitRanOut,
                    `the cut-off gateway's staleness for node 3 rose (${f.watchAgeSecondsAtHeal} s, ${round(run.sinceChange)} s since the change)`,
                );
                assert.ok(
                    f.stalenessSecondsAtHeal >= run.sinceChange - 2 || run.waitRanOut,
                    `the staleness gauge says at least as much (${f.stalenessSecondsAtHeal})`,
                );
                // Consul decides how long the cut-off server takes to hear from its leader again; the
                // gateway must follow its agent within seconds.
                const convergedAfter = f.convergedSecondsAfterHeal;
                const leaderAgain = f.cutOffServerLeaderAgainSeconds;
                assert.ok(convergedAfter !== undefined && convergedAfter <= 90, `converged within 90 s of the link returning (${convergedAfter})`);
                assert.ok(
                    leaderAgain !== undefined && convergedAfter - leaderAgain <= 10,
                    `the gateway caught up within 10 s of its agent (${convergedAfter} s, agent ${leaderAgain} s)`,
                );
                assert.equal(f.probesFailed, 0, `every probe through the cut-off gateway was answered: ${JSON.stringify(run.failedProbes)}`);
                assert.ok(run.results.every((r) => r.requests > 0));
                assert.equal(f.failed, 0, "no request through either gateway failed");
                assert.equal(f.gatewayRestarts, 0, "no gateway restarted");
            },
        );

        test(
            "leader loss: the leader's Consul container stopped; a new leader, no acknowledged write lost, no gateway restarted",
            { timeout: 10 * 60_000 },
            async () => {
                const run = await leaderLoss(stack);
                const f = run.figures;
                assert.ok(f.newLeaderSeconds !== undefined && f.newLeaderSeconds <= 30, `a new leader within 30 s (${f.newLeaderSeconds})`);
                assert.notEqual(f.newLeaderNode, f.leaderNode);
                assert.ok(f.kvWritesAcknowledgedBeforeLoss > 0, "writes were acknowledged before the loss");
                assert.deepEqual(run.lostKeys, [], "every acknowledged KV write survived");
                assert.equal(f.aclWritesLost, 0, "the ACL token written before the loss survived");
                assert.equal(f.gatewayRestarts, 0, `no gateway restarted: ${JSON.stringify({ starts: run.starts, startsAfter: run.startsAfter })}`);
                assert.equal(f.failed, 0, "no request through either gateway failed");
            },
        );

        test(
            "node loss: a node's link cut; its replicas leave rotation, Consul marks it failed, requests keep being answered",
            { timeout: 10 * 60_000 },
            async () => {
                const lost = 3; // runs a server and a hello-v1 replica, no gateway
                const run = await nodeLoss(stack, lost);
                const f = run.figures;
                assert.ok(run.inRotationBefore, `node ${lost} had replicas in rotation`);
                for (const [g, seen] of Object.entries(run.answeredBy)) {
                    assert.ok(!seen.some((h) => run.lostReplicas.includes(h)), `node ${g}'s gateway no longer routes to node ${lost}: ${seen.join(" ")}`);
                }
                assert.ok(
                    f.replicasOutOfRotationSeconds !== undefined && f.replicasOutOfRotationSeconds <= 15,
                    `its replicas left rotation in both gateways within 15 s (${f.replicasOutOfRotationSeconds})`,
                );
                assert.ok(
                    f.consulMarkedFailedSeconds !== undefined && f.consulMarkedFailedSeconds <= 30,
                    `Consul marked it failed within 30 s (${f.consulMarkedFailedSeconds})`,
                );
                assert.ok(f.leaderSeconds !== undefined, "the servers left have a leader");
                assert.ok(f.requests > 0);
                // Goal 0: the gateway retries an idempotent request that met the lost node on another
                // replica. Without the retries each load connection whose request went to the lost
                // node's replicas before its checks failed would fail (several of the 8).
                assert.ok(f.failed <= 2, `at most 2 of ${f.requests} requests failed (${f.failed})`);
            },
        );
    });
});
