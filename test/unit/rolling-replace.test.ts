// A rolling replace of service replicas (docs/services.md, "Graceful drain"): each replica's container is
// named after its replica plus a generation, the hash of the inputs that make the Docker provider
// replace it, and is replaced create-before-delete: the new container (a new name) runs beside
// the old one, which is then stopped with its destroy grace (drained) and removed. The one-per-node
// containers keep their fixed names and delete-before-replace; the Consul servers among them are
// replaced one at a time (the last part of this file).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { CONSUL_STOP_GRACE_SECONDS } from "../../components/consul";
import { SERVER_READY_SCRIPT } from "../../components/consul-agent-config";
import { LOG_LIMITS } from "../../components/container-defaults";
import { replicaGeneration, type ReplicaReplaceInputs } from "../../components/service";
import { type Declared } from "../support/mocks";
import { devWith, envOf, evaluate, GENERATION_SUFFIX, isSecret, Program, ROOT, stackConfig, uploadsOf, withoutGeneration } from "../support/program";

const resolved = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply(resolve));

/** The containers of VersionedService components (the service replicas). */
function replicas(p: Program): Declared[] {
    return p.containers().filter((c) => c.parent.includes("::service-discovery:service:VersionedService::"));
}

/** Replica name -> container name. */
function names(p: Program): Map<string, string> {
    return new Map(replicas(p).map((c) => [String(c.inputs.hostname), String(c.inputs.name)]));
}

/** Recomputes a declared replica's generation from what it declares, minus the name and what the provider updates in place. */
function generationOf(c: Declared): Promise<string> {
    const { name: _name, restart: _restart, destroyGraceSeconds: _grace, start: _start, mustRun: _mustRun, ...forcing } = c.inputs;
    return resolved(replicaGeneration(forcing as unknown as ReplicaReplaceInputs));
}

const BASE: ReplicaReplaceInputs = {
    hostname: "dev-hello-v1-1",
    image: "service-discovery/hello:v1-dev",
    envs: ["SERVICE_NAME=hello-v1", "PORT=8080", "DRAIN_SECONDS=10"],
    stopTimeout: 40,
    networksAdvanced: [{ name: "service-discovery-dev" }, { name: "other" }],
    ...LOG_LIMITS,
};

describe("rolling replace: the generation of a replica", () => {
    before(() => {
        pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: () => ({}) }, "service-discovery", "dev", false);
    });

    it("is 8 lowercase hex characters, the same for the same inputs, whether plain or outputs", async () => {
        const gen = await resolved(replicaGeneration(BASE));
        assert.match(gen, /^[0-9a-f]{8}$/);
        assert.equal(await resolved(replicaGeneration({ ...BASE })), gen);
        assert.equal(
            await resolved(
                replicaGeneration({
                    ...BASE,
                    image: pulumi.output(BASE.image),
                    envs: pulumi.output(BASE.envs),
                    networksAdvanced: [pulumi.output({ name: "service-discovery-dev" }), { name: "other" }],
                }),
            ),
            gen,
        );
    });

    it("changes with each input the provider replaces the container for", async () => {
        const base = await resolved(replicaGeneration(BASE));
        const variants: [string, ReplicaReplaceInputs][] = [
            ["image", { ...BASE, image: "service-discovery/hello:v1-dev@sha256:" + "2".repeat(64) }],
            ["one environment value", { ...BASE, envs: ["SERVICE_NAME=hello-v1", "PORT=8080", "DRAIN_SECONDS=11"] }],
            ["an environment variable more", { ...BASE, envs: [...(BASE.envs as string[]), "IMAGE_DIGEST=sha256:" + "3".repeat(64)] }],
            ["stop timeout", { ...BASE, stopTimeout: 41 }],
            ["published ports", { ...BASE, ports: [{ internal: 8080, ip: "10.0.0.5", protocol: "tcp" }] }],
            ["networks", { ...BASE, networksAdvanced: [{ name: "service-discovery-dev" }] }],
            ["log driver", { ...BASE, logDriver: "local" }],
            ["log options", { ...BASE, logOpts: { ...BASE.logOpts, "max-file": "4" } }],
            ["hostname", { ...BASE, hostname: "dev-hello-v1-2" }],
            ["a capability given back", { ...BASE, capabilities: { drops: ["ALL"], adds: ["CHOWN"] } }],
            ["a writable root", { ...BASE, readOnly: false }],
            ["tmpfs", { ...BASE, tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=32m" } }],
            ["the memory limit (the provider could update it in place: hashed all the same)", { ...BASE, memory: 512, memorySwap: 512 }],
            ["the CPU limit", { ...BASE, cpus: "0.5" }],
        ];
        const seen = new Map<string, string>([[base, "base"]]);
        for (const [what, inputs] of variants) {
            const gen = await resolved(replicaGeneration(inputs));
            assert.ok(!seen.has(gen), `${what}: generation ${gen} is also ${seen.get(gen)}'s`);
            seen.set(gen, what);
        }
    });

    it("ignores the order of the inputs the provider keeps as sets (environment, networks) and of map keys", async () => {
        const base = await resolved(replicaGeneration(BASE));
        assert.equal(await resolved(replicaGeneration({ ...BASE, envs: [...(BASE.envs as string[])].reverse() })), base);
        assert.equal(await resolved(replicaGeneration({ ...BASE, networksAdvanced: [{ name: "other" }, { name: "service-discovery-dev" }] })), base);
        assert.equal(await resolved(replicaGeneration({ ...BASE, logOpts: { "max-file": "3", "max-size": "10m" } })), base);
        // Published ports are a list for the provider: their order is a change.
        const two = [
            { internal: 8080, protocol: "tcp" },
            { internal: 9090, protocol: "tcp" },
        ];
        assert.notEqual(await resolved(replicaGeneration({ ...BASE, ports: two })), await resolved(replicaGeneration({ ...BASE, ports: [...two].reverse() })));
    });
});

describe("rolling replace: the dev stack's replicas", () => {
    let dev: Program;
    let multi: Program;
    before(async () => {
        [dev, multi] = await Promise.all([evaluate(stackConfig("dev")), evaluate(devWith({ target: "virtualbox", nodeCount: 2 }))]);
        assert.equal(dev.error, null);
        assert.equal(multi.error, null);
    });

    it("names each replica's container <stack>-<consul name>-<i>-<8 hex>; its hostname stays <stack>-<consul name>-<i>", () => {
        const rs = replicas(dev);
        assert.deepEqual(rs.map((c) => c.inputs.hostname).sort(), ["dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"]);
        for (const c of rs) {
            const name = String(c.inputs.name);
            const i = /-([0-9]+)$/.exec(c.name)![1];
            assert.equal(c.inputs.hostname, `dev-${envOf(c).env.SERVICE_NAME}-${i}`, `${c.name}: hostname`);
            assert.match(name, new RegExp(`^${c.inputs.hostname}-[0-9a-f]{8}$`), `${c.name}: container name`);
        }
        // Only the replicas carry a generation.
        for (const c of dev.containers().filter((x) => !rs.includes(x))) assert.doesNotMatch(String(c.inputs.name), GENERATION_SUFFIX);
        // Two replicas of one service never share a generation (their hostnames differ).
        assert.equal(new Set(rs.map((c) => String(c.inputs.name).slice(-8))).size, 3);
    });

    it("hashes every declared input but the name, restart, destroyGraceSeconds, start and mustRun (the provider updates those four in place)", async () => {
        for (const p of [dev, multi]) {
            const rs = replicas(p);
            assert.ok(rs.length >= 3);
            for (const c of rs) {
                assert.deepEqual(
                    Object.keys(c.inputs).sort(),
                    [
                        "capabilities",
                        "cpus",
                        "destroyGraceSeconds",
                        "envs",
                        "hostname",
                        "image",
                        "logDriver",
                        "logOpts",
                        "memory",
                        "memorySwap",
                        "mustRun",
                        "name",
                        "networksAdvanced",
                        "readOnly",
                        "restart",
                        "securityOpts",
                        "start",
                        "stopTimeout",
                        "tmpfs",
                        ...(c.inputs.ports ? ["ports"] : []),
                    ].sort(),
                    `${c.inputs.name}: the inputs this test knows are ForceNew or updated in place; a new one must be sorted into one or the other`,
                );
                assert.equal(c.inputs.name, `${c.inputs.hostname}-${await generationOf(c)}`);
            }
        }
        assert.ok(
            replicas(multi).some((c) => c.inputs.ports),
            "not vacuous: several nodes publish ports",
        );
    });

    it("replaces replicas create-before-delete (said explicitly: the provider's default is delete-before-replace), the one-per-node containers delete-first", () => {
        for (const p of [dev, multi]) {
            const rs = replicas(p);
            for (const c of rs) assert.strictEqual(c.deleteBeforeReplace, false, `${c.inputs.name}`);
            const others = p.containers().filter((c) => !rs.includes(c));
            assert.ok(others.length >= 4);
            for (const c of others) assert.equal(c.deleteBeforeReplace, true, `${c.inputs.name}: a fixed name cannot exist twice`);
        }
    });

    it("a replica's destroy grace drains it: it is stopped with the stop timeout before it is removed", () => {
        for (const c of replicas(dev)) assert.equal(c.inputs.destroyGraceSeconds, c.inputs.stopTimeout, `${c.inputs.name}`);
    });
});

describe("rolling replace: what changes a replica's generation", () => {
    const v1 = { name: "hello", version: "v1", build: "components/images/hello", replicas: 2 };
    const v2 = { name: "hello", version: "v2", build: "components/images/hello" };
    const pulled = (tag: string) => ({ name: "hello", version: "v1", image: `example/hello:${tag}`, replicas: 2 });
    let base: Program;
    let env: Program;
    let image1: Program;
    let image2: Program;
    let routing: Program;
    before(async () => {
        [base, env, image1, image2, routing] = await Promise.all([
            evaluate(devWith({ services: [v1, v2] })),
            evaluate(devWith({ services: [{ ...v1, healthCheckPath: "/ready" }, v2] })),
            evaluate(devWith({ services: [pulled("1.0.0"), v2] })),
            evaluate(devWith({ services: [pulled("1.0.1"), v2] })),
            evaluate(
                devWith({
                    services: [
                        { ...v1, replicas: 3, weight: 90, sticky: true, maintenance: [2] },
                        { ...v2, weight: 10, sticky: true },
                    ],
                    haproxy: { maxconn: 2048, timeouts: { connect: "4s", client: "31s", server: "2m" } },
                }),
            ),
        ]);
        for (const p of [base, env, image1, image2, routing]) assert.equal(p.error, null, String(p.error));
    });

    it("a new environment (another health check path) gives hello-v1's replicas new names, hello-v2's keep theirs", () => {
        const [before_, after_] = [names(base), names(env)];
        assert.deepEqual([...after_.keys()].sort(), [...before_.keys()].sort(), "the same replicas, the same hostnames");
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2"]) assert.notEqual(after_.get(r), before_.get(r), r);
        assert.equal(after_.get("dev-hello-v2-1"), before_.get("dev-hello-v2-1"));
    });

    it("a new image gives hello-v1's replicas new names, hello-v2's keep theirs", () => {
        const [before_, after_] = [names(image1), names(image2)];
        assert.notEqual(image1.replica("dev-hello-v1-1").inputs.image, image2.replica("dev-hello-v1-1").inputs.image, "not vacuous: the image differs");
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2"]) assert.notEqual(after_.get(r), before_.get(r), r);
        assert.equal(after_.get("dev-hello-v2-1"), before_.get("dev-hello-v2-1"));
    });

    it("weights, stickiness, maintenance, gateway settings and more replicas leave the existing replicas' names alone", () => {
        const [before_, after_] = [names(base), names(routing)];
        for (const [replica, container] of before_) assert.equal(after_.get(replica), container, replica);
        assert.match(after_.get("dev-hello-v1-3")!, /^dev-hello-v1-3-[0-9a-f]{8}$/, "the new replica");
    });

    it("maintenance names the replica; the gateway finds its container by removing the generation", () => {
        const keys = routing.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        const value = keys.find((k) => k.path === "service/haproxy/services/hello-v1/maintenance")?.value;
        assert.equal(value, "dev-hello-v1-2", "the replica's name, no generation");
        const container = String(routing.replica("dev-hello-v1-2").inputs.name);
        assert.notEqual(container, value);
        // What the template does with the container field of Registrator's ID (components/images/gateway/haproxy.ctmpl).
        assert.equal(container.replace(/-[0-9a-f]{8}$/, ""), value);
        assert.equal(withoutGeneration(container), value);
    });
});

// ---------------------------------------------------------------------------------------------
// The Consul servers (components/consul.ts): fixed names, replaced delete-before-replace, so a
// `pulumi up` that replaces them must take them one at a time. Each server has a gate (a local
// command running components/local-commands/consul-server-ready.mjs) whose triggers hold the
// server's container id; the next server's container depends on that gate.

const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:local:Command";

/** A `hosts` stack of `n` nodes with `servers` Consul servers and the dev stack's services. */
function hostsStack(n: number, servers: number, consul: Record<string, unknown> = {}, more: Record<string, unknown> = {}): Record<string, string> {
    return devWith({
        target: "hosts",
        nodeCount: undefined,
        hosts: Array.from({ length: n }, (_, i) => ({ name: `h${i + 1}`, host: `ssh://ops@10.1.0.${i + 1}`, address: `10.1.0.${i + 1}` })),
        edgeNodes: [1, 2],
        consul: { image: "hashicorp/consul:1.16.3", servers, ...consul },
        ...more,
    });
}

const agentOf = (p: Program, i: number): Declared => p.one(CONTAINER, `consul-dev-node-${i}`);
const gateOf = (p: Program, i: number): Declared => p.one(COMMAND, `consul-dev-node-${i}-ready`);
const dependsOn = (r: Declared, on: Declared): boolean => r.dependencies.some((d) => d.endsWith(`$${on.type}::${on.name}`));
const plain = (v: unknown): unknown => (v && typeof v === "object" && "$secret" in (v as object) ? (v as { $secret: unknown }).$secret : v);
const envOfGate = (g: Declared): Record<string, string> => plain(g.inputs.environment) as Record<string, string>;

/** The mock id of a declared resource (test/support/evaluate.ts: `<name>-id`). */
const idOf = (r: Declared): string => `${r.name}-id`;

describe("rolling replace: the Consul servers, one at a time", () => {
    let three: Program;
    let five: Program;
    let newImage: Program;
    let newSetting: Program;
    let gatewayChange: Program;
    before(async () => {
        [three, five, newImage, newSetting, gatewayChange] = await Promise.all([
            evaluate(hostsStack(4, 3)),
            evaluate(hostsStack(6, 5)),
            evaluate(hostsStack(4, 3, { image: "hashicorp/consul:1.16.4" })),
            evaluate(hostsStack(4, 3, { maxConnsPerClient: 300 })),
            evaluate(hostsStack(4, 3, {}, { haproxy: { maxconn: 2048, timeouts: { connect: "4s", client: "31s", server: "2m" } } })),
        ]);
        for (const p of [three, five, newImage, newSetting, gatewayChange]) assert.equal(p.error, null, String(p.error));
    });

    for (const [servers, nodes] of [
        [3, 4],
        [5, 6],
    ] as const) {
        it(`${servers} servers: a chain server 1 -> gate 1 -> server 2 -> ... -> gate ${servers} -> every client agent and the Consul provider`, () => {
            const p = servers === 3 ? three : five;
            const gates = p.ofType(COMMAND).filter((c) => /^consul-dev-node-[0-9]+-ready$/.test(c.name));
            assert.deepEqual(
                gates.map((g) => g.name).sort(),
                Array.from({ length: servers }, (_, i) => `consul-dev-node-${i + 1}-ready`).sort(),
                "one gate per server, none for a client agent",
            );
            for (let i = 1; i <= servers; i++) {
                const [agent, gate] = [agentOf(p, i), gateOf(p, i)];
                assert.equal(agent.deleteBeforeReplace, true, "a fixed name: deleted before it is created again");
                assert.ok(dependsOn(gate, agent), `gate ${i} waits for server ${i}'s container`);
                assert.deepEqual(gate.inputs.triggers, [idOf(agent)], `gate ${i} is replaced (run again) with server ${i}'s container, and by nothing else`);
                if (i > 1) assert.ok(dependsOn(agent, gateOf(p, i - 1)), `server ${i} waits for gate ${i - 1}`);
                else assert.ok(!gates.some((g) => dependsOn(agent, g)), "server 1 waits for no gate");
                // Not for gates further back either: only the one before (the chain orders the rest).
                for (let j = 1; j < i - 1; j++) assert.ok(!dependsOn(agent, gateOf(p, j)), `server ${i} does not name gate ${j}`);
            }
            // Every agent is stopped before it is removed: a client leaves the cluster, a server shuts down cleanly.
            for (let i = 1; i <= nodes; i++) assert.equal(agentOf(p, i).inputs.destroyGraceSeconds, CONSUL_STOP_GRACE_SECONDS, `agent ${i}'s stop grace`);
            for (let i = servers + 1; i <= nodes; i++) {
                assert.ok(dependsOn(agentOf(p, i), gateOf(p, servers)), `client agent ${i} waits for the last server's gate`);
                assert.equal(agentOf(p, i).inputs.wait, true, `client agent ${i} waits for a healthy agent`);
            }
            const provider = p.one("pulumi:providers:consul", "consul-provider");
            for (let i = 1; i <= servers; i++) assert.ok(dependsOn(provider, gateOf(p, i)), `the ACLs are written once server ${i} is back`);
        });
    }

    it("a first `pulumi up` cannot deadlock: only the last server's container waits for a leader; the earlier gates let a forming cluster through", () => {
        for (const [p, servers] of [
            [three, 3],
            [five, 5],
        ] as const) {
            for (let i = 1; i <= servers; i++) {
                const last = i === servers;
                // Waiting for health (`consul catalog nodes`: a leader) would need the later servers, which wait for this one's gate.
                assert.equal(agentOf(p, i).inputs.wait, last, `server ${i}: wait`);
                const env = envOfGate(gateOf(p, i));
                assert.equal(env.CONSUL_MAY_BOOTSTRAP, String(!last), `gate ${i}: may pass a cluster still forming`);
                assert.equal(env.CONSUL_SERVERS, String(servers));
                assert.equal(env.CONSUL_NODE, `dev-node-${i}`);
                assert.equal(env.CONSUL_HTTP_ADDR, `https://10.1.0.${i}:8501`);
                assert.deepEqual(
                    env.CONSUL_OTHER_ADDRS.split(","),
                    Array.from({ length: servers }, (_, j) => j + 1)
                        .filter((j) => j !== i)
                        .map((j) => `https://10.1.0.${j}:8501`),
                );
                // Leadership moves off the server replaced next; after the last, off the first.
                assert.equal(env.CONSUL_AVOID_LEADER, `dev-node-${last ? 1 : i + 1}`);
            }
        }
    });

    it("the gate runs the server-ready script; its token is a secret in the environment, never in the command", () => {
        const gate = gateOf(three, 2);
        assert.equal(gate.inputs.create, `node ${SERVER_READY_SCRIPT}`);
        assert.ok(fs.existsSync(path.join(ROOT, SERVER_READY_SCRIPT)));
        const env = gate.inputs.environment as Record<string, unknown>;
        assert.ok(isSecret(env.CONSUL_HTTP_TOKEN) || isSecret(gate.inputs.environment), "the management token is a secret");
        assert.equal(plain(envOfGate(gate).CONSUL_HTTP_TOKEN), "00000000-0000-4000-8000-000000000000");
        assert.doesNotMatch(String(gate.inputs.create), /00000000-0000/);
    });

    it("a server replacement replaces nothing else: only the gate and the agent-token command take an input from a server's container", () => {
        // The engine replaces, with a delete-before-replace resource, the dependents whose inputs
        // come from it; dependsOn alone replaces nothing (client agents, Registrators, gateways).
        for (let i = 1; i <= 3; i++) {
            const id = idOf(agentOf(three, i));
            const taking = three.resources.filter((r) => r !== agentOf(three, i) && JSON.stringify(r.inputs).includes(JSON.stringify(id).slice(1, -1)));
            assert.deepEqual(taking.map((r) => r.name).sort(), [`consul-acl-agent-dev-node-${i}-set`, `consul-dev-node-${i}-ready`].sort(), `server ${i}`);
        }
        // Not vacuous: the Registrator and the gateway of node 1 do wait for its agent.
        const registrator = three.one(CONTAINER, "registrator-dev-node-1");
        assert.ok(dependsOn(registrator, agentOf(three, 1)));
        assert.ok(!JSON.stringify(registrator.inputs).includes(idOf(agentOf(three, 1))));
        // No resource takes an input from a gate: a gate run again replaces nothing.
        for (let i = 1; i <= 3; i++) {
            const out = idOf(gateOf(three, i));
            assert.ok(!three.resources.some((r) => JSON.stringify(r.inputs).includes(out)), `gate ${i}'s outputs are nobody's input`);
        }
    });

    it("a new consul.image replaces every agent (the image is ForceNew), servers ordered by the chain, clients after them", () => {
        for (let i = 1; i <= 4; i++) {
            assert.notEqual(agentOf(newImage, i).inputs.image, agentOf(three, i).inputs.image, `agent ${i}: a new image, replaced`);
            assert.deepEqual(agentOf(newImage, i).dependencies.sort(), agentOf(three, i).dependencies.sort(), `agent ${i}: the same order`);
        }
        for (let i = 2; i <= 3; i++) assert.ok(dependsOn(agentOf(newImage, i), gateOf(newImage, i - 1)));
        assert.ok(dependsOn(agentOf(newImage, 4), gateOf(newImage, 3)));
        // The gates' own inputs are the same: they run again because their server's container id changes.
        for (let i = 1; i <= 3; i++) assert.deepEqual(gateOf(newImage, i).inputs, gateOf(three, i).inputs);
    });

    it("a server setting (consul.maxConnsPerClient) replaces the agents through their config upload, in the same order", () => {
        for (let i = 1; i <= 3; i++) {
            assert.equal(agentOf(newSetting, i).inputs.image, agentOf(three, i).inputs.image);
            assert.notDeepEqual(agentOf(newSetting, i).inputs.uploads, agentOf(three, i).inputs.uploads, `server ${i}: its agent.json changes`);
            if (i > 1) assert.ok(dependsOn(agentOf(newSetting, i), gateOf(newSetting, i - 1)));
        }
    });

    it("a change that replaces no Consul agent leaves the agents and the gates exactly as they were", () => {
        for (let i = 1; i <= 4; i++) assert.deepEqual(agentOf(gatewayChange, i).inputs, agentOf(three, i).inputs, `agent ${i}`);
        for (let i = 1; i <= 3; i++) assert.deepEqual(gateOf(gatewayChange, i).inputs, gateOf(three, i).inputs, `gate ${i}`);
        assert.notDeepEqual(
            gatewayChange.one("consul:index/keys:Keys", "haproxy-settings").inputs,
            three.one("consul:index/keys:Keys", "haproxy-settings").inputs,
            "not vacuous: the change reached the program",
        );
    });

    it("one server (the dev stack): its gate waits for the whole (one-server) cluster; the container waits for a leader as before", async () => {
        const dev = await evaluate(stackConfig("dev"));
        assert.equal(dev.error, null);
        const agent = dev.one(CONTAINER, "consul-dev-node-1");
        const gate = dev.one(COMMAND, "consul-dev-node-1-ready");
        assert.equal(agent.inputs.wait, true);
        assert.deepEqual(gate.inputs.triggers, [idOf(agent)]);
        const env = envOfGate(gate);
        assert.equal(env.CONSUL_MAY_BOOTSTRAP, "false");
        assert.equal(env.CONSUL_SERVERS, "1");
        assert.equal(env.CONSUL_NODE, "dev-consul");
        assert.equal(env.CONSUL_OTHER_ADDRS, "");
        assert.equal(env.CONSUL_AVOID_LEADER, undefined, "no other server to hand leadership to");
    });
});

// ---------------------------------------------------------------------------------------------
// The gate's decision (components/local-commands/consul-server-ready.mjs), as a pure function.

interface AutopilotServer {
    ID: string;
    Name: string;
    Healthy: boolean;
    Voter: boolean;
    Leader: boolean;
}
interface Observation {
    node: string;
    servers: number;
    mayBootstrap: boolean;
    self: { error?: string; leader?: string; peers?: string[] };
    othersWithLeader: number;
    autopilot?: { Healthy: boolean; FailureTolerance: number; Servers: AutopilotServer[] };
    autopilotError?: string;
}
interface ReadyScript {
    serverReadiness(o: Observation): { ready: boolean; forming: boolean; reason: string };
    leadershipTarget(autopilot: Observation["autopilot"], node: string, avoid: string | undefined): string | undefined;
}

describe("rolling replace: the server gate's decision", () => {
    let gate: ReadyScript;
    before(async () => {
        gate = (await import(pathToFileURL(path.join(ROOT, SERVER_READY_SCRIPT)).href)) as ReadyScript;
    });

    const server = (n: number, over: Partial<AutopilotServer> = {}): AutopilotServer => ({
        ID: `id-${n}`,
        Name: `node-${n}`,
        Healthy: true,
        Voter: true,
        Leader: n === 3,
        ...over,
    });
    const healthy = (servers: AutopilotServer[] = [server(1), server(2), server(3)]) => ({
        Healthy: servers.every((s) => s.Healthy),
        FailureTolerance: 1,
        Servers: servers,
    });
    const back: Observation = {
        node: "node-1",
        servers: 3,
        mayBootstrap: true,
        self: { leader: "10.0.0.3:8300", peers: ["10.0.0.1:8300", "10.0.0.2:8300", "10.0.0.3:8300"] },
        othersWithLeader: 2,
        autopilot: healthy(),
    };

    it("ready when the server knows a leader and autopilot counts every server a healthy voter, itself included", () => {
        const r = gate.serverReadiness(back);
        assert.deepEqual({ ready: r.ready, forming: r.forming }, { ready: true, forming: false });
        assert.match(r.reason, /3 healthy voters, leader node-3, failure tolerance 1/);
    });

    it("waits while the server does not answer, knows no leader, or autopilot does not answer", () => {
        const cases: [string, Observation, RegExp][] = [
            ["no answer", { ...back, self: { error: "connect ECONNREFUSED" } }, /does not answer: connect ECONNREFUSED/],
            ["no leader", { ...back, self: { ...back.self, leader: "" } }, /knows no leader/],
            [
                "no autopilot",
                { ...back, autopilot: undefined, autopilotError: "HTTP 500: No cluster leader" },
                /autopilot health not available.*No cluster leader/,
            ],
        ];
        for (const [what, o, reason] of cases) {
            const r = gate.serverReadiness(o);
            assert.equal(r.ready, false, what);
            assert.match(r.reason, reason, what);
        }
    });

    it("waits while this server is missing from raft, not yet a voter or not yet healthy, or another server is unhealthy or missing", () => {
        const cases: [string, AutopilotServer[], RegExp][] = [
            ["missing", [server(2), server(3)], /node-1 is not among the raft servers yet \(node-2, node-3\)/],
            ["non-voter", [server(1, { Voter: false }), server(2), server(3)], /node-1 is not a voter yet/],
            ["unhealthy", [server(1, { Healthy: false }), server(2), server(3)], /node-1 is not healthy yet/],
            ["another unhealthy", [server(1), server(2, { Healthy: false }), server(3)], /not every server is healthy: node-2/],
            ["a voter short", [server(1), server(2), server(3, { Voter: false })], /2 of 3 servers are voters/],
        ];
        for (const [what, servers, reason] of cases) {
            const r = gate.serverReadiness({ ...back, autopilot: healthy(servers) });
            assert.equal(r.ready, false, what);
            assert.match(r.reason, reason, what);
        }
    });

    it("lets a cluster still forming through at once (first `pulumi up`), but never for the last server, nor once a leader exists anywhere", () => {
        const forming: Observation = { ...back, self: { leader: "", peers: [] }, othersWithLeader: 0, autopilot: undefined };
        const r = gate.serverReadiness(forming);
        assert.deepEqual({ ready: r.ready, forming: r.forming }, { ready: true, forming: true });
        assert.match(r.reason, /forms once all 3 servers run/);
        // The last server's gate waits for the whole cluster.
        assert.equal(gate.serverReadiness({ ...forming, mayBootstrap: false }).ready, false);
        // A server that lost its data joins a cluster that has a leader: it must become a voter first.
        assert.equal(gate.serverReadiness({ ...forming, othersWithLeader: 1 }).ready, false);
        // A server with raft state is a replacement, not a first start.
        assert.equal(gate.serverReadiness({ ...forming, self: { leader: "", peers: ["10.0.0.1:8300"] } }).ready, false);
    });

    it("hands leadership to this server only when the server to avoid leads", () => {
        const servers = [server(1), server(2), server(3)];
        assert.equal(gate.leadershipTarget(healthy(servers), "node-1", "node-3"), "id-1", "node-3 leads: to node-1");
        assert.equal(gate.leadershipTarget(healthy(servers), "node-1", "node-2"), undefined, "node-2 does not lead");
        assert.equal(gate.leadershipTarget(healthy(servers), "node-3", "node-3"), undefined);
        assert.equal(gate.leadershipTarget(healthy(servers), "node-1", undefined), undefined);
        assert.equal(gate.leadershipTarget(undefined, "node-1", "node-3"), undefined);
    });
});

describe("rolling replace: the gateways, one at a time (a rotated Consul token, a rebuilt image)", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(hostsStack(4, 3, {}, { edgeNodes: [1, 2, 4] }));
        assert.equal(p.error, null, String(p.error));
    });
    const gatewayOf = (i: number): Declared => p.one(CONTAINER, `gateway-dev-node-${i}`);

    it("each gateway waits for the previous edge node's gateway, healthy; the first for none", () => {
        const order = [1, 2, 4];
        order.forEach((n, k) => {
            const g = gatewayOf(n);
            assert.equal(g.deleteBeforeReplace, true, "a fixed name: deleted before it is created again");
            assert.equal(g.inputs.wait, true, `gateway ${n}: created means healthy, so the next one waits for a serving gateway`);
            const others = order.filter((m) => m !== n).map(gatewayOf);
            const waitsFor = others.filter((o) => dependsOn(g, o)).map((o) => o.name);
            assert.deepEqual(waitsFor, k === 0 ? [] : [`gateway-dev-node-${order[k - 1]}`], `gateway ${n} waits for the one before it only`);
        });
    });

    it("the token is an uploaded file of each gateway (a rotation replaces them, in that order); no gateway takes an input from another", () => {
        for (const n of [1, 2, 4]) {
            const token = uploadsOf(gatewayOf(n)).get("/etc/gateway/secrets/consul.token");
            assert.deepEqual([token?.content, token?.secret], ["secret-of-consul-acl-gateway-id", true]);
            // dependsOn alone: replacing one gateway never forces the replacement of the next (the
            // engine replaces, with a delete-before-replace resource, the dependents whose inputs come from it).
            for (const m of [1, 2, 4].filter((m) => m !== n)) assert.ok(!JSON.stringify(gatewayOf(n).inputs).includes(idOf(gatewayOf(m))));
        }
    });
});
