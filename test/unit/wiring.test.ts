// Per-node wiring: whatever runs on a node talks to, and waits for, the Consul agent, agent
// token and Registrator of that same node, never another node's. Gateways sit on edge nodes
// given out of order ([3, 1]) and replicas on the first nodes only, so a lookup by position
// in some list instead of by node would show up here as a dependency on the wrong node.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Node, Nodes } from "../../components/nodes";
import { PerNode } from "../../components/per-node";
import { Declared } from "../support/mocks";
import { devWith, evaluate, Program } from "../support/program";

const NODES = ["dev-node-1", "dev-node-2", "dev-node-3", "dev-node-4"];
const HOSTS = NODES.map((_, i) => ({ name: `h${i + 1}`, host: `ssh://ops@10.1.0.${i + 1}`, address: `10.1.0.${i + 1}` }));

/** The node a docker resource runs on: its provider's name. */
function nodeOf(r: Declared): string {
    const m = /pulumi:providers:docker::([^:]+)::/.exec(r.provider);
    assert.ok(m, `${r.type}/${r.name} has a docker provider (${r.provider})`);
    return m[1];
}

/** Per-node resources by what they are, as `<kind>@<node>`. */
const PER_NODE: [kind: string, type: string, name: RegExp][] = [
    ["agent", "docker:index/container:Container", /^consul-(dev-node-[0-9]+)$/],
    ["agent-socket-volume", "docker:index/volume:Volume", /^consul-(dev-node-[0-9]+)-run$/],
    ["agent-data-volume", "docker:index/volume:Volume", /^consul-(dev-node-[0-9]+)-data$/],
    ["agent-token-set", "command:local:Command", /^consul-acl-agent-(dev-node-[0-9]+)-set$/],
    ["registrator", "docker:index/container:Container", /^registrator-(dev-node-[0-9]+)$/],
    ["socket-proxy", "docker:index/container:Container", /^registrator-(dev-node-[0-9]+)-docker-socket-proxy$/],
];

/** The per-node resources `r` depends on (its inputs and dependsOn), as `<kind>@<node>`. */
function perNodeDependencies(r: Declared): string[] {
    const found: string[] = [];
    for (const urn of r.dependencies) {
        const name = urn.slice(urn.lastIndexOf("::") + 2);
        for (const [kind, type, pattern] of PER_NODE) {
            const m = pattern.exec(name);
            if (m && urn.includes(`$${type}::`)) found.push(`${kind}@${m[1]}`);
        }
    }
    return found.sort();
}

describe("wiring: each node's components use that node's agent and Registrator", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts: HOSTS, edgeNodes: [3, 1] }));
        assert.equal(p.error, null);
    });

    it("each Registrator mounts its own node's agent socket and waits for that agent and its token", () => {
        const registrators = p.containers().filter((c) => String(c.inputs.name).endsWith("-registrator"));
        assert.deepEqual(registrators.map(nodeOf).sort(), NODES);
        for (const r of registrators) {
            const node = nodeOf(r);
            assert.deepEqual(
                perNodeDependencies(r),
                [`agent-socket-volume@${node}`, `agent-token-set@${node}`, `agent@${node}`, `socket-proxy@${node}`].sort(),
                r.name,
            );
            // The socket volume it mounts is the one declared on its own engine.
            const volume = p.one("docker:index/volume:Volume", `consul-${node}-run`);
            assert.equal(nodeOf(volume), node);
            assert.deepEqual(
                (r.inputs.volumes as { volumeName: string }[]).map((v) => v.volumeName),
                [volume.inputs.name],
            );
        }
    });

    it("each gateway, on the edge nodes only, waits for its own node's agent, agent token and Registrator", () => {
        const gateways = p.containers().filter((c) => String(c.inputs.name).endsWith("-gateway"));
        assert.deepEqual(gateways.map(nodeOf).sort(), ["dev-node-1", "dev-node-3"]);
        for (const g of gateways) {
            const node = nodeOf(g);
            assert.equal(g.inputs.hostname, `${node}-gateway`);
            assert.deepEqual(perNodeDependencies(g), [`agent-token-set@${node}`, `agent@${node}`, `registrator@${node}`].sort(), g.name);
            assert.match(
                p.one("docker-build:index:Image", `gateway-${node}-image`).provider,
                new RegExp(`^urn:pulumi:.*pulumi:providers:docker-build::${node}-build::`),
                "the image is built by its own node's engine",
            );
        }
    });

    it("each replica waits for its own node's agent token and Registrator, not every node's", () => {
        const replicas = p.containers().filter((c) => /^dev-hello-v[0-9]+-[0-9]+-[0-9a-f]{8}$/.test(String(c.inputs.name)));
        // hello-v1 has 2 replicas (nodes 1 and 2), hello-v2 one (node 1): nodes 3 and 4 run none.
        assert.deepEqual(replicas.map((c) => `${c.inputs.hostname}@${nodeOf(c)}`).sort(), [
            "dev-hello-v1-1@dev-node-1",
            "dev-hello-v1-2@dev-node-2",
            "dev-hello-v2-1@dev-node-1",
        ]);
        for (const c of replicas) {
            const node = nodeOf(c);
            assert.deepEqual(perNodeDependencies(c), [`agent-token-set@${node}`, `registrator@${node}`], c.name);
        }
    });
});

describe("PerNode: lookup by node, not by position", () => {
    const node = (n: number) => ({ name: `dev-node-${n}`, index: n }) as unknown as Node;

    it("finds each node's value whatever order the nodes came in", () => {
        const nodes = [node(3), node(1), node(2)];
        const perNode = PerNode.of("Registrator", nodes, (x) => `registrator of ${x.name}`);
        for (const n of [1, 2, 3]) assert.equal(perNode.on(node(n)), `registrator of dev-node-${n}`);
    });

    it("names the missing thing and the node when a node has none, and refuses a second one", () => {
        const perNode = PerNode.of("Registrator", [node(1)], (x) => x.name);
        assert.throws(() => perNode.on(node(2)), /^Error: no Registrator on node dev-node-2$/);
        assert.throws(() => perNode.set(node(1), "again"), /^Error: Registrator on node dev-node-1 declared twice$/);
    });

    it("finds a node by its config number, not its place in the list", () => {
        const hosts = { nodes: [node(2), node(3), node(1)] } as unknown as Nodes;
        const numbered = Nodes.prototype.numbered.bind(hosts);
        assert.equal(numbered(1).name, "dev-node-1");
        assert.equal(numbered(3).name, "dev-node-3");
        assert.throws(() => numbered(4), /^Error: no node number 4; the stack has nodes 1 to 3$/);
    });
});
