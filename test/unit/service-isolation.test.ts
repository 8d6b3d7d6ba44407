// Replicas reach no other service (components/service-networks.ts; docs/security.md, "Contained
// replicas"), under Pulumi's mocks: the network each replica, the gateway and the Consul agent
// join, on one node and on several, with services[i].sharedNetwork (the relaxation) and its
// config errors. The shipped dev stack: program.test.ts; the policy: policy.test.ts; the engine:
// test/e2e/shared/replica-hardening.ts.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { parseSettings } from "../../components/config";
import { networksOf } from "../../components/gateway";
import { replicaPlacement, serviceNetworkName } from "../../components/service-networks";
import { type Declared } from "../support/mocks";
import { agentConfigOf, devWith, evaluate, Program, withoutGeneration } from "../support/program";
import { dev, rejects } from "./config-support";

const v1 = { name: "hello", version: "v1", build: "components/images/hello", replicas: 2 };
const v2 = { name: "hello", version: "v2", build: "components/images/hello" };
const PG = { name: "pg", build: "components/images/postgres", protocol: "tcp", containerPort: 5432, listenPort: 5432, tmpfs: ["/tmp"] };
const HOSTS = [
    { name: "a", host: "ssh://ops@10.1.0.1", address: "10.1.0.1" },
    { name: "b", host: "ssh://ops@10.1.0.2", address: "10.1.0.2" },
];
const NODE_NETWORK = "service-discovery-dev";
const NODE_ONLY = '{{ GetAllInterfaces | include "network" "172.28.0.0/24" | attr "address" }}';

const networksOfContainer = (c: Declared): string[] => (c.inputs.networksAdvanced as { name: string }[]).map((n) => n.name);
/** The containers of one node (by their provider, <stack>-node-<n>). */
const onNode = (p: Program, n: number): Declared[] => p.containers().filter((c) => c.provider.includes(`::dev-node-${n}::`));
const replicasOf = (p: Program): Declared[] => p.containers().filter((c) => c.parent.includes("::service-discovery:service:VersionedService::"));
const serviceNetworks = (p: Program): Declared[] => p.ofType("docker:index/network:Network").filter((n) => /-svc-/.test(String(n.inputs.name)));
const keyValue = (p: Program, path: string): string | undefined =>
    (p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[]).find((k) => k.path === path)?.value;

describe("service isolation: one node", () => {
    let isolatedStack: Program;
    let shared: Program;
    let allShared: Program;
    before(async () => {
        [isolatedStack, shared, allShared] = await Promise.all([
            evaluate(devWith({ services: [v1, v2, PG] })),
            evaluate(devWith({ services: [v1, { ...v2, sharedNetwork: true }, PG] })),
            evaluate(
                devWith({
                    services: [
                        { ...v1, sharedNetwork: true },
                        { ...v2, sharedNetwork: true },
                    ],
                }),
            ),
        ]);
        for (const p of [isolatedStack, shared, allShared]) assert.equal(p.error, null);
    });

    it("puts each replica on its service's network alone; a tcp service too", () => {
        for (const c of replicasOf(isolatedStack)) {
            const consulName = withoutGeneration(String(c.inputs.hostname))
                .replace(/^dev-/, "")
                .replace(/-[0-9]+$/, "");
            assert.deepEqual(networksOfContainer(c), [serviceNetworkName(parseSettings(dev(), "dev"), consulName)], String(c.inputs.name));
        }
        assert.deepEqual(networksOfContainer(isolatedStack.replica("dev-pg-1")), ["service-discovery-dev-svc-pg"]);
        assert.deepEqual(
            serviceNetworks(isolatedStack)
                .map((n) => n.inputs.name)
                .sort(),
            ["service-discovery-dev-svc-hello-v1", "service-discovery-dev-svc-hello-v2", "service-discovery-dev-svc-pg"],
        );
    });

    it("the gateway and the Consul agent join every service network (the node network first, named there only)", () => {
        const all = [NODE_NETWORK, "service-discovery-dev-svc-hello-v1", "service-discovery-dev-svc-hello-v2", "service-discovery-dev-svc-pg"];
        for (const name of ["dev-gateway", "dev-consul"]) {
            const c = isolatedStack.container(name);
            assert.deepEqual(networksOfContainer(c), all, name);
            const aliased = (c.inputs.networksAdvanced as { name: string; aliases?: string[] }[]).filter((n) => n.aliases !== undefined).map((n) => n.name);
            assert.deepEqual(aliased, [NODE_NETWORK], `${name} is named on the node network only`);
        }
        // Nothing else of the node shares a service network.
        for (const c of isolatedStack.containers()) {
            const name = withoutGeneration(String(c.inputs.name));
            if (["dev-gateway", "dev-consul"].includes(name) || c.parent.includes("VersionedService")) continue;
            assert.ok(!networksOfContainer(c).some((n) => n.includes("-svc-")), `${name} is on no service network`);
        }
    });

    it("the agent listens, gossips and answers DNS on its node-network address only", () => {
        const cfg = agentConfigOf(isolatedStack.container("dev-consul"));
        assert.equal(cfg.bind_addr, NODE_ONLY);
        assert.equal(cfg.client_addr, NODE_ONLY);
        assert.equal(cfg.addresses.https, NODE_ONLY);
        assert.equal(cfg.addresses.dns, NODE_ONLY);
    });

    it("the gateway's trust rules take each service network's subnet as a backend network", () => {
        const backends = keyValue(isolatedStack, "service/haproxy/networks/backends")!.split(" ");
        assert.equal(backends[0], "172.28.0.0/24");
        assert.equal(backends.length, 4, backends.join(" "));
        for (const b of backends.slice(1)) assert.match(b, /^10\.200\.[0-9]+\.0\/24$/, "the mocks' engine-picked subnets");
        assert.equal(keyValue(allShared, "service/haproxy/networks/backends"), "172.28.0.0/24", "no service network: the node network alone");
    });

    it("sharedNetwork true: that service's replicas on the node network, no network of its own; the others stay apart", () => {
        assert.deepEqual(networksOfContainer(shared.replica("dev-hello-v2-1")), [NODE_NETWORK]);
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2"]) assert.deepEqual(networksOfContainer(shared.replica(r)), ["service-discovery-dev-svc-hello-v1"]);
        assert.deepEqual(
            serviceNetworks(shared)
                .map((n) => n.inputs.name)
                .sort(),
            ["service-discovery-dev-svc-hello-v1", "service-discovery-dev-svc-pg"],
        );
        assert.deepEqual(networksOfContainer(shared.container("dev-gateway")), [
            NODE_NETWORK,
            "service-discovery-dev-svc-hello-v1",
            "service-discovery-dev-svc-pg",
        ]);
    });

    it("every service shared: the old layout, the agent bound as Consul picks (one address)", () => {
        assert.equal(serviceNetworks(allShared).length, 0);
        for (const c of allShared.containers().filter((x) => !String(x.inputs.name).includes("registrator") && !String(x.inputs.name).includes("proxy"))) {
            assert.deepEqual(networksOfContainer(c), [NODE_NETWORK], String(c.inputs.name));
        }
        const cfg = agentConfigOf(allShared.container("dev-consul"));
        assert.equal(cfg.bind_addr, undefined);
        assert.equal(cfg.client_addr, "0.0.0.0");
    });

    it("switching sharedNetwork replaces that service's replicas (a new generation, rolling), and only those", () => {
        const name = (p: Program, r: string) => String(p.replica(r).inputs.name);
        assert.notEqual(name(shared, "dev-hello-v2-1"), name(isolatedStack, "dev-hello-v2-1"));
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2", "dev-pg-1"]) assert.equal(name(shared, r), name(isolatedStack, r), r);
    });
});

describe("service isolation: several nodes", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts: HOSTS, services: [{ ...v1, replicas: 3 }, v2] }));
        assert.equal(p.error, null);
    });

    it("a network per service on each node that runs its replicas (not internal: their ports are published)", () => {
        const nets = serviceNetworks(p).map((n) => `${n.name} ${n.inputs.name} internal=${n.inputs.internal}`);
        assert.deepEqual(nets.sort(), [
            "dev-node-1-svc-hello-v1-network service-discovery-dev-svc-hello-v1 internal=false",
            "dev-node-1-svc-hello-v2-network service-discovery-dev-svc-hello-v2 internal=false",
            "dev-node-2-svc-hello-v1-network service-discovery-dev-svc-hello-v1 internal=false",
        ]);
        assert.deepEqual(replicaPlacement({ replicas: 3 }, ["a", "b"]), ["a", "b", "a"]);
    });

    it("replicas join their service's network on their node and publish their port; the gateway and agents stay on the node network", () => {
        for (const n of [1, 2]) {
            for (const c of onNode(p, n)) {
                const name = withoutGeneration(String(c.inputs.name));
                const nets = networksOfContainer(c);
                if (c.parent.includes("VersionedService")) {
                    assert.deepEqual(nets, [`service-discovery-dev-svc-${name.replace(/^dev-/, "").replace(/-[0-9]+$/, "")}`], name);
                    assert.equal((c.inputs.ports as unknown[]).length, 1, `${name} publishes its port on the node address`);
                } else {
                    assert.ok(!nets.some((x) => x.includes("-svc-")), `${name} (node ${n}) is on no service network: ${nets}`);
                }
            }
        }
        for (const n of [1, 2]) {
            const agent = onNode(p, n).find((c) => c.inputs.name === "dev-consul")!;
            assert.equal(agentConfigOf(agent).bind_addr, undefined, "an agent on one network: Consul's own choice");
        }
        assert.equal(keyValue(p, "service/haproxy/networks/backends"), "10.1.0.1/32 10.1.0.2/32", "node addresses: no service subnet");
    });

    it("networksOf adds service subnets only where container addresses are registered", () => {
        const settings = { target: "hosts" as const, aws: {} as never };
        assert.deepEqual(networksOf(settings, [{ address: "10.1.0.1", subnet: "172.28.0.0/24", registersContainerAddresses: false }], ["10.200.1.0/24"]), {
            backends: "10.1.0.1/32",
            nodes: "10.1.0.1/32",
        });
        assert.deepEqual(networksOf(settings, [{ address: "172.28.0.1", subnet: "172.28.0.0/24", registersContainerAddresses: true }], ["10.200.1.0/24"]), {
            backends: "172.28.0.0/24 10.200.1.0/24",
            nodes: "172.28.0.1/32",
        });
    });
});

describe("service isolation: config", () => {
    const hello = { name: "hello", version: "v1", build: "components/images/hello" };
    it("defaults sharedNetwork to false and accepts true", () => {
        assert.equal(parseSettings(dev({ services: [hello] }), "dev").services[0].sharedNetwork, false);
        assert.equal(parseSettings(dev({ services: [{ ...hello, sharedNetwork: true }] }), "dev").services[0].sharedNetwork, true);
    });
    for (const value of ["yes", 1, null, "true"]) {
        it(`rejects sharedNetwork ${JSON.stringify(value)} with the key and what is allowed`, () =>
            rejects(
                dev({ services: [{ ...hello, sharedNetwork: value }] }),
                `service-discovery:services[0].sharedNetwork: ${JSON.stringify(value)} is not allowed; expected false (the default: the replicas are on a network of the service's own, which only they and the gateway join) or true (they join the node's network, where they reach every container of the stack)`,
            ));
    }
});
