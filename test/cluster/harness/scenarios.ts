// The cluster scenarios, shared by the tests (test/cluster/*.test.ts, which assert on what they
// return, loosely) and the benchmark (bench/cluster.ts, which records their figures). Each one
// disturbs a converged stack under wrk through every edge gateway, measures, puts back what it
// disturbed and returns its figures (one `[cluster] figures` line too) with the evidence the
// tests check. None asserts on a timing itself.
//   partition    an edge node cut off from the other Consul servers: their RPC and gossip ports
//                dropped both ways inside its namespace (only Consul's traffic: its gateway still
//                reaches every replica), a change made on the majority's side meanwhile.
//   leader loss  the leading server's Consul container stopped, started again after.
//   node loss    a node without a gateway gone from the network: its veth pulled, put back after.
//   scale        `pulumi up` with more or fewer `hosts` (and replicas): only that node's resources change.
// Checks of a converged stack (routes through every gateway, registrations) are here too.
import assert from "node:assert/strict";
import { sleep } from "../../support/wait";
import { log } from "./engines";
import { Load, loadFigures, type GatewayLoad } from "./load";
import * as network from "./network";
import {
    ALIVE,
    consul,
    consulJson,
    consulNodeName,
    controllerMetrics,
    converged,
    FAILED,
    gatewayStarts,
    hostnamesVia,
    leaderSeenBy,
    members,
    printFigures,
    replicaServers,
    replicasOf,
    round,
    routedServices,
    routeServers,
    secondsUntil,
    viaGateway,
} from "./observe";
import type { ClusterStack } from "./stack";

/** Consul's ports between agents: server RPC, LAN and WAN gossip. */
export const CONSUL_CLUSTER_PORTS = [8300, 8301, 8302];

/** Every route answers from every edge gateway, each from every replica the program declared for it. */
export async function checkRoutes(stack: ClusterStack): Promise<void> {
    for (const gateway of stack.edgeNodes) {
        for (const { prefix, consulName } of routedServices(stack)) {
            const want = replicasOf(stack, consulName).map((r) => r.hostname);
            const seen = await hostnamesVia(stack, gateway, prefix, want.length * 3);
            assert.deepEqual([...new Set(seen)].sort(), want, `${prefix} via the gateway on node ${gateway}`);
        }
    }
}

/** Each node's replicas are registered at that node's address and published port, by that node's Registrator, and pass. */
export async function checkRegistrations(stack: ClusterStack): Promise<void> {
    await stack.registratorsSettled();
    const via = stack.nodes[stack.nodes.length - 1].index;
    for (const { consulName } of routedServices(stack)) {
        // Entries through the agent of a node no longer in the stack (removed without leaving) are not the stack's registrations.
        const live = new Set(stack.nodes.map((n) => consulNodeName(n.index)));
        const catalog = (await consulJson<any[]>(stack, via, `/v1/catalog/service/${consulName}`)).filter((s) => live.has(s.Node));
        const declared = replicasOf(stack, consulName);
        assert.equal(catalog.length, declared.length, `${consulName}: one registration per replica`);
        for (const replica of declared) {
            const node = stack.node(replica.node);
            const entry = catalog.find((s) => String(s.ServiceID).split(":")[1] === replica.container);
            assert.ok(entry, `${replica.container} registered`);
            // Registrator's service ID is <its hostname>:<container>:<port>; its hostname is the node's name.
            assert.equal(entry.ServiceID, `${consulNodeName(node.index)}:${replica.container}:8080`);
            assert.equal(entry.Node, consulNodeName(node.index), "through that node's agent");
            assert.equal(entry.ServiceAddress, node.address, "at the node's address");
            const published = (await node.docker.inspectContainer(replica.container)).NetworkSettings.Ports["8080/tcp"][0];
            assert.equal(published.HostIp, node.address);
            assert.equal(String(entry.ServicePort), published.HostPort, "at the port published on the node");
        }
        const health = await consulJson<any[]>(stack, 1, `/v1/health/service/${consulName}?passing`);
        assert.equal(health.length, declared.length, `${consulName}: every instance passes its checks`);
    }
}

function loadOn(stack: ClusterStack, durationSec: number): Load {
    return Load.start(stack.outputs.gatewayUrls, { paths: routedServices(stack).map((r) => r.prefix), durationSec });
}

function restarts(before: Record<number, string>, after: Record<number, string>): number {
    return Object.keys(before).filter((k) => before[Number(k)] !== after[Number(k)]).length;
}

export interface PartitionRun {
    figures: {
        scenario: "partition";
        majorityMarkedFailedSeconds?: number;
        majorityGatewayConvergedSeconds?: number;
        routesKept: boolean;
        indexLag: number;
        stalenessSecondsAtHeal: number;
        watchAgeSecondsAtHeal: number;
        convergedSecondsAfterHeal?: number;
        cutOffServerLeaderAgainSeconds?: number;
        probesFailed: number;
        failed: number;
        gatewayRestarts: number;
        [k: string]: unknown;
    };
    /** Seconds from the change on the majority's side to the heal. */
    sinceChange: number;
    /** Consul's 300 s blocking wait may have run out while cut off (the watch then answered from the cut-off agent). */
    waitRanOut: boolean;
    failedProbes: { at: number; status: number | string }[];
    results: GatewayLoad[];
}

/**
 * Edge node `cut` cut off from the other nodes' Consul servers (their RPC and gossip ports) for a
 * while; meanwhile a hello-v1 replica of `changed` (on the majority's side) is stopped. Measured:
 * the majority marking it failed, its gateway keeping its last routes and saying it is stale, how
 * it catches up when the link returns, one probe a second through its gateway, wrk through all.
 */
export async function partition(stack: ClusterStack, cut = 2, changed = 3): Promise<PartitionRun> {
    await converged(stack);
    const others = stack.nodes.filter((n) => n.index !== cut);
    const [v1] = routedServices(stack).filter((r) => r.consulName === "hello-v1");
    const v1Replicas = replicasOf(stack, "hello-v1").length;
    const moved = replicasOf(stack, "hello-v1").find((r) => r.node === changed)!;
    const watch = `gateway_controller_consul_index{watch="node:${consulNodeName(moved.node)}"}`;
    const age = `gateway_controller_consul_last_success_age_seconds{watch="node:${consulNodeName(moved.node)}"}`;
    const staleness = "gateway_controller_consul_staleness_seconds";
    const starts = await gatewayStarts(stack);
    const load = loadOn(stack, 70);
    const probes: { at: number; status: number | string }[] = [];
    let probing = true;
    // Through the cut-off node's gateway, one request a second the whole time: each must be answered.
    const prober = (async () => {
        while (probing) {
            const r = await viaGateway(stack, cut, v1.prefix, 10_000).then(
                (x) => x.status,
                (e: Error) => e.message,
            );
            probes.push({ at: Date.now(), status: r });
            await sleep(1000);
        }
    })();
    try {
        await sleep(5000);
        const before = await controllerMetrics(stack, cut);
        const tCut = Date.now();
        await network.partition(
            cut,
            others.map((n) => n.address),
            CONSUL_CLUSTER_PORTS,
        );
        log(`partition: node ${cut} cut off from ${others.map((n) => n.name).join(", ")} on ${CONSUL_CLUSTER_PORTS.join(", ")}`);
        // The majority sees it fail; the cut-off server loses its leader.
        const markedFailed = await secondsUntil(
            async () => (await members(stack, others[0].index)).find((m) => m.Name === consulNodeName(cut))?.Status === FAILED,
            tCut,
            60_000,
        );
        const leaderLost = await secondsUntil(async () => (await leaderSeenBy(stack, cut)) === 0, tCut, 60_000);
        // A change on the majority's side: a hello-v1 replica stopped (drained, then deregistered).
        const tChange = Date.now();
        await stack.node(moved.node).docker.request("POST", `/containers/${moved.container}/stop`, undefined, 120_000);
        const majorityConverged = await secondsUntil(async () => (await routeServers(stack, others[0].index, v1.prefix)) === v1Replicas - 1, tChange, 60_000);
        // Some more seconds cut off: the node's gateway keeps its routes and its figures grow.
        await sleep(8000);
        const during = await controllerMetrics(stack, cut);
        const majority = await controllerMetrics(stack, others[0].index);
        const keptServers = await routeServers(stack, cut, v1.prefix);
        const indexLag = (majority.get(watch) ?? 0) - (during.get(watch) ?? 0);
        const tHeal = Date.now();
        const drops = await network.partitionDrops(cut);
        await network.heal(cut);
        log(`partition healed after ${round((tHeal - tCut) / 1000)} s (${drops} packets dropped)`);
        const [convergedAfter, leaderAgain, aliveAgain] = await Promise.all([
            secondsUntil(async () => (await routeServers(stack, cut, v1.prefix)) === v1Replicas - 1, tHeal, 120_000),
            secondsUntil(async () => (await leaderSeenBy(stack, cut)) !== 0, tHeal, 120_000),
            secondsUntil(async () => (await members(stack, others[0].index)).find((m) => m.Name === consulNodeName(cut))?.Status === ALIVE, tHeal, 120_000),
        ]);
        const after = await controllerMetrics(stack, cut);
        const results = await load.results();
        probing = false;
        await prober;
        const ageBefore = before.get(age) ?? 0;
        const figures = {
            scenario: "partition" as const,
            node: cut,
            from: others.map((n) => n.index),
            ports: CONSUL_CLUSTER_PORTS,
            cutOffSeconds: round((tHeal - tCut) / 1000),
            packetsDropped: drops,
            majorityMarkedFailedSeconds: markedFailed,
            cutOffServerLostLeaderSeconds: leaderLost,
            majorityGatewayConvergedSeconds: majorityConverged,
            routesKept: keptServers === v1Replicas,
            indexLag,
            stalenessSecondsBefore: round(before.get(staleness) ?? NaN),
            stalenessSecondsAtHeal: round(during.get(staleness) ?? NaN),
            watchAgeSecondsAtHeal: round(during.get(age) ?? NaN),
            stalenessSecondsAfter: round(after.get(staleness) ?? NaN),
            convergedSecondsAfterHeal: convergedAfter,
            cutOffServerLeaderAgainSeconds: leaderAgain,
            memberAliveAgainSeconds: aliveAgain,
            probes: probes.length,
            probesFailed: probes.filter((p) => p.status !== 200).length,
            gatewayRestarts: restarts(starts, await gatewayStarts(stack)),
            ...loadFigures(results),
        };
        printFigures(figures);
        return {
            figures,
            sinceChange: (tHeal - tChange) / 1000,
            waitRanOut: ageBefore + (tHeal - tCut) / 1000 >= 295,
            failedProbes: probes.filter((p) => p.status !== 200),
            results,
        };
    } finally {
        probing = false;
        load.stop();
        await network.heal(cut);
        await stack
            .node(moved.node)
            .docker.request("POST", `/containers/${moved.container}/start`)
            .catch(() => undefined);
        await converged(stack);
    }
}

export interface LeaderLossRun {
    figures: {
        scenario: "leader-loss";
        leaderNode: number;
        newLeaderNode: number;
        newLeaderSeconds?: number;
        kvWritesAcknowledgedBeforeLoss: number;
        kvWritesLost: number;
        aclWritesLost: number;
        gatewayRestarts: number;
        failed: number;
        [k: string]: unknown;
    };
    lostKeys: string[];
    starts: Record<number, string>;
    startsAfter: Record<number, string>;
}

/** The leading server's Consul container stopped under KV writes and load; started again after. */
export async function leaderLoss(stack: ClusterStack): Promise<LeaderLossRun> {
    await converged(stack);
    const servers = stack.outputs.nodes.filter((n) => n.consulServer).length;
    const leader = await leaderSeenBy(stack, 1);
    const survivors = stack.nodes.filter((n) => n.index !== leader && n.index <= servers).map((n) => n.index);
    const writer = survivors[0];
    const starts = await gatewayStarts(stack);
    // An ACL write and KV writes, acknowledged before the loss; KV writes go on through it.
    const policy = await consul(stack, writer, "/v1/acl/policy", {
        method: "PUT",
        body: JSON.stringify({ Name: `cluster-test-${Date.now()}`, Rules: 'key_prefix "cluster-test/" { policy = "read" }' }),
    });
    assert.equal(policy.status, 200, policy.body);
    const token = await consul(stack, writer, "/v1/acl/token", {
        method: "PUT",
        body: JSON.stringify({ Policies: [{ Name: JSON.parse(policy.body).Name }] }),
    });
    assert.equal(token.status, 200, token.body);
    const accessor = JSON.parse(token.body).AccessorID as string;
    const acknowledged = new Map<string, string>();
    let writing = true;
    let writeErrors = 0;
    let n = 0;
    const writes = (async () => {
        while (writing) {
            const key = `cluster-test/leader-loss/${++n}`;
            const value = `v${n}-${Date.now()}`;
            const r = await consul(stack, writer, `/v1/kv/${key}`, { method: "PUT", body: value, timeoutMs: 15_000 }).catch(() => undefined);
            if (r?.status === 200 && r.body.trim() === "true") acknowledged.set(key, value);
            else {
                writeErrors++;
                await sleep(100);
            }
        }
    })();
    const load = loadOn(stack, 45);
    try {
        await sleep(5000);
        const before = acknowledged.size;
        const tRequest = Date.now();
        await stack.node(leader).docker.request("POST", "/containers/cluster-consul/stop?t=10", undefined, 60_000);
        const tStop = Date.now();
        log(`leader loss: stopped the Consul container of node ${leader} (the leader) in ${round((tStop - tRequest) / 1000)} s`);
        let newLeader = 0;
        const electedAfter = await secondsUntil(
            async () => {
                const seen = await Promise.all(survivors.map((s) => leaderSeenBy(stack, s, 2000)));
                if (seen.every((l) => l !== 0 && l !== leader && l === seen[0])) newLeader = seen[0];
                return newLeader !== 0;
            },
            tStop,
            60_000,
            100,
        );
        // Writes resume under the new leader.
        const resumedAt = acknowledged.size;
        const resumedSeconds = await secondsUntil(async () => acknowledged.size > resumedAt + 5, tStop, 30_000);
        writing = false;
        await writes;
        const results = await load.results();
        // Every acknowledged write is there, read through a survivor from the new leader (consistent read).
        const stored = await consulJson<{ Key: string; Value: string }[]>(stack, survivors[1], "/v1/kv/cluster-test/leader-loss/?recurse&consistent", 15_000);
        const values = new Map(stored.map((e) => [e.Key, Buffer.from(e.Value ?? "", "base64").toString()]));
        const lost = [...acknowledged].filter(([k, v]) => values.get(k) !== v).map(([k]) => k);
        const aclKept = (await consul(stack, survivors[1], `/v1/acl/token/${accessor}?consistent`)).status === 200;
        const startsAfter = await gatewayStarts(stack);
        const figures = {
            scenario: "leader-loss" as const,
            leaderNode: leader,
            newLeaderNode: newLeader,
            newLeaderSeconds: electedAfter,
            kvWritesResumedSeconds: resumedSeconds,
            kvWritesAcknowledged: acknowledged.size,
            kvWritesAcknowledgedBeforeLoss: before,
            kvWritesRefusedOrUnanswered: writeErrors,
            kvWritesLost: lost.length,
            aclWritesAcknowledged: 2,
            aclWritesLost: aclKept ? 0 : 1,
            gatewayRestarts: restarts(starts, startsAfter),
            ...loadFigures(results),
        };
        printFigures(figures);
        return { figures, lostKeys: lost, starts, startsAfter };
    } finally {
        writing = false;
        load.stop();
        await stack
            .node(leader)
            .docker.request("POST", "/containers/cluster-consul/start")
            .catch(() => undefined);
        await consul(stack, survivors[0], "/v1/kv/cluster-test/?recurse", { method: "DELETE" }).catch(() => undefined);
        await converged(stack);
    }
}

export interface NodeLossRun {
    figures: {
        scenario: "node-loss";
        replicasOutOfRotationSeconds?: number;
        consulMarkedFailedSeconds?: number;
        leaderSeconds?: number;
        requests: number;
        failed: number;
        [k: string]: unknown;
    };
    /** Node `lost` had replicas in rotation just before its link was cut. */
    inRotationBefore: boolean;
    /** Hostnames answering through each gateway after the load, while the node was still gone. */
    answeredBy: Record<number, string[]>;
    /** Hostnames of the lost node's replicas. */
    lostReplicas: string[];
}

/** Node `lost`'s link cut under load (a node without a gateway); restored after. */
export async function nodeLoss(stack: ClusterStack, lost = 3): Promise<NodeLossRun> {
    await converged(stack);
    const wasLeader = (await leaderSeenBy(stack, 1)) === lost;
    const load = loadOn(stack, 60);
    try {
        await sleep(8000);
        const inRotationBefore = (await replicaServers(stack, stack.edgeNodes[0], lost)).length > 0;
        const tCut = Date.now();
        await network.cutLink(lost);
        log(`node loss: the link of node ${lost} cut${wasLeader ? " (it led the Consul servers)" : ""}`);
        const [outOfRotation, markedFailed, leaderAgain] = await Promise.all([
            secondsUntil(
                async () => {
                    for (const g of stack.edgeNodes) if ((await replicaServers(stack, g, lost)).some((s) => s.status.startsWith("UP"))) return false;
                    return true;
                },
                tCut,
                60_000,
            ),
            secondsUntil(async () => (await members(stack, 1)).find((m) => m.Name === consulNodeName(lost))?.Status === FAILED, tCut, 60_000),
            secondsUntil(async () => ![0, lost].includes(await leaderSeenBy(stack, 1, 2000)), tCut, 60_000),
        ]);
        const results = await load.results();
        // After the load: answered, by whom.
        const lostReplicas = routedServices(stack).flatMap(({ consulName }) =>
            replicasOf(stack, consulName)
                .filter((r) => r.node === lost)
                .map((r) => r.hostname),
        );
        const answeredBy: Record<number, string[]> = {};
        for (const g of stack.edgeNodes) answeredBy[g] = await hostnamesVia(stack, g, "/hello/v1/", 10);
        const tRestore = Date.now();
        await network.restoreLink(lost);
        await converged(stack);
        const figures = {
            scenario: "node-loss" as const,
            node: lost,
            how: "link cut",
            wasLeader,
            replicasOutOfRotationSeconds: outOfRotation,
            consulMarkedFailedSeconds: markedFailed,
            leaderSeconds: wasLeader ? leaderAgain : 0,
            rejoinedSecondsAfterRestore: round((Date.now() - tRestore) / 1000),
            ...loadFigures(results),
        };
        printFigures(figures);
        return { figures, inRotationBefore, answeredBy, lostReplicas };
    } finally {
        load.stop();
        if (!(await network.linkIsUp(lost))) await network.restoreLink(lost);
        await converged(stack);
    }
}

/** Every container on an engine, by name: its ID, when it last started, its restart count. */
export type EngineSnapshot = Record<string, { id: string; startedAt: string; restarts: number; running: boolean }>;

export async function snapshot(stack: ClusterStack, index: number): Promise<EngineSnapshot> {
    const docker = stack.cluster.node(index).docker;
    const out: EngineSnapshot = {};
    for (const c of await docker.request<any[]>("GET", "/containers/json?all=1")) {
        const inspect = await docker.inspectContainer(c.Id);
        out[String(c.Names[0]).slice(1)] = {
            id: inspect.Id,
            startedAt: inspect.State.StartedAt,
            restarts: inspect.RestartCount,
            running: inspect.State.Running,
        };
    }
    return out;
}

/** What differs between two snapshots of an engine: names added, removed, or with another ID, start or restart count. */
export function snapshotChanges(before: EngineSnapshot, after: EngineSnapshot): string[] {
    const changes: string[] = [];
    for (const [name, b] of Object.entries(before)) {
        const a = after[name];
        if (!a) changes.push(`${name} removed`);
        else if (a.id !== b.id) changes.push(`${name}: another container (${b.id.slice(0, 12)} -> ${a.id.slice(0, 12)})`);
        else if (a.startedAt !== b.startedAt || a.restarts !== b.restarts || a.running !== b.running)
            changes.push(`${name}: restarted (${b.startedAt} -> ${a.startedAt}, restarts ${b.restarts} -> ${a.restarts}, running ${a.running})`);
    }
    for (const name of Object.keys(after)) if (!before[name]) changes.push(`${name} added`);
    return changes;
}

/** hello v1 with one replica per node (replica i on node i mod n) and hello v2 with one: the scale scenarios' services. */
export function onePerNode(nodes: number): unknown[] {
    return [
        { name: "hello", version: "v1", build: "components/images/hello", containerPort: 8080, replicas: nodes, healthCheckPath: "/health" },
        { name: "hello", version: "v2", build: "components/images/hello", containerPort: 8080, replicas: 1, healthCheckPath: "/health" },
    ];
}

export interface ScaleRun {
    figures: {
        scenario: "scale-out" | "scale-in";
        from: number;
        to: number;
        node: number;
        applySeconds: number;
        /** Scale out: its replica UP in every gateway; scale in: none of its replicas in any gateway. */
        rotationSeconds?: number;
        /** Scale out: its Consul agent a live member; scale in: it left (or is gone from the members). */
        memberSeconds?: number;
        containersCheckedElsewhere: number;
        containersChangedElsewhere: number;
        gatewayRestarts: number;
        requests: number;
        failed: number;
        [k: string]: unknown;
    };
    /** Changes on the engines of every other node (snapshotChanges), by node. */
    changedElsewhere: Record<number, string[]>;
    /** The scaled node's containers after the apply (its engine, by name). */
    nodeContainers: string[];
}

/**
 * `pulumi up` from the stack's current `hosts` to `to` (one more or one fewer) with hello v1 one
 * replica per node, under load through every gateway. Every container of every other node's
 * engine (ID, start, restarts) is compared before and after.
 */
export async function scale(stack: ClusterStack, to: number): Promise<ScaleRun> {
    await converged(stack);
    const from = stack.nodes.length;
    if (Math.abs(to - from) !== 1) throw new Error(`scale(${from} -> ${to}): one node at a time`);
    const out = to > from;
    const node = out ? to : from;
    const others = stack.cluster.nodes.filter((n) => n.index !== node).map((n) => n.index);
    const before = Object.fromEntries(await Promise.all(others.map(async (i) => [i, await snapshot(stack, i)] as const)));
    const starts = await gatewayStarts(stack);
    const load = loadOn(stack, 600);
    try {
        await sleep(3000);
        const t0 = Date.now();
        let applied = 0;
        const apply = stack.scaleTo(to, onePerNode(to)).then(() => (applied = Date.now()));
        const inRotation = async (): Promise<boolean> => {
            for (const g of stack.edgeNodes) {
                const mine = (await replicaServers(stack, g, node)).filter((s) => s.status.startsWith("UP"));
                if (out ? mine.length === 0 : mine.length > 0) return false;
            }
            return true;
        };
        const member = async (): Promise<boolean> => {
            const m = (await members(stack, 1)).find((x) => x.Name === consulNodeName(node));
            return out ? m?.Status === ALIVE : m === undefined || m.Status !== ALIVE;
        };
        const [rotation, memberSeconds] = await Promise.all([secondsUntil(inRotation, t0, 300_000, 250), secondsUntil(member, t0, 300_000, 250)]);
        await apply;
        const applySeconds = round((applied - t0) / 1000);
        log(`scale ${from} -> ${to}: pulumi up (the applier) done in ${applySeconds} s`);
        await converged(stack);
        await sleep(2000);
        load.finish();
        const results = await load.results();
        const changedElsewhere: Record<number, string[]> = {};
        let checked = 0;
        for (const i of others) {
            const after = await snapshot(stack, i);
            checked += Object.keys(before[i]).length;
            changedElsewhere[i] = snapshotChanges(before[i], after);
        }
        // How Consul remembers the node: its member status (1 alive, 3 left, 4 failed) and what its catalog entry still holds.
        const memberStatus = (await members(stack, 1)).find((m) => m.Name === consulNodeName(node))?.Status ?? 0;
        const catalogNode = await consulJson<{ Services?: Record<string, unknown> } | null>(stack, 1, `/v1/catalog/node/${consulNodeName(node)}`);
        const nodeContainers = (await stack.cluster.node(node).docker.request<any[]>("GET", "/containers/json?all=1")).map((c) => String(c.Names[0]).slice(1));
        const figures = {
            scenario: out ? ("scale-out" as const) : ("scale-in" as const),
            from,
            to,
            node,
            applySeconds,
            rotationSeconds: rotation,
            memberSeconds,
            containersOnNode: nodeContainers.length,
            memberStatus,
            catalogServicesOfNode: Object.keys(catalogNode?.Services ?? {}).length,
            containersCheckedElsewhere: checked,
            containersChangedElsewhere: Object.values(changedElsewhere).reduce((n, c) => n + c.length, 0),
            gatewayRestarts: restarts(starts, await gatewayStarts(stack)),
            ...loadFigures(results),
        };
        printFigures(figures);
        return { figures, changedElsewhere, nodeContainers };
    } finally {
        load.stop();
    }
}
