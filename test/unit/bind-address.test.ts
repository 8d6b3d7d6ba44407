// Where the stack publishes its ports, per target, under Pulumi's mocks: every published port of
// every container the program declares (the gateway's HTTP, HTTPS, stats and tcp listeners,
// Consul's API, DNS and cluster ports, the replicas') is on one address, never every address of a
// node unless the stack opts in (docs/security.md, "Published ports").
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bindAddressDefault } from "../../components/config";
import { Declared } from "../support/mocks";
import { devWith, envOf, evaluate, TEST_SSH_KEY } from "../support/program";

type Port = { internal: number; external?: number; ip?: string; protocol: string };

const PG = { name: "pg", build: "components/images/postgres", protocol: "tcp", containerPort: 5432, listenPort: 5432, tmpfs: ["/tmp"] };
const HOSTS = [
    { name: "a", host: "ssh://ops@10.1.0.1", address: "10.1.0.1" },
    { name: "b", host: "tcp://10.1.0.2:2376", address: "10.1.0.2", certPath: "certs/b" },
    { name: "c", host: "ssh://ops@10.1.0.3", address: "10.1.0.3" },
];
const SERVICES = [{ name: "hello", version: "v1", build: "components/images/hello", replicas: 3 }, PG];

/** Each target with the address its node n (1-based) publishes on by default (the mocks' node addresses). */
const TARGETS: [string, Record<string, unknown>, (n: number) => string][] = [
    ["local", {}, () => "127.0.0.1"],
    ["virtualbox", { target: "virtualbox", nodeCount: 3 }, (n) => `192.168.99.${100 + n}`],
    ["hosts", { target: "hosts", nodeCount: undefined, hosts: HOSTS }, (n) => `10.1.0.${n}`],
    ["aws", { target: "aws", nodeCount: 3, aws: { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY } }, (n) => `10.42.0.${10 + n}`],
];

/** The node number a docker resource runs on, from its provider's name (<stack>-node-<n>). */
function nodeOf(r: Declared): number {
    const m = /pulumi:providers:docker::[^:]*-node-([0-9]+)::/.exec(r.provider);
    assert.ok(m, `${r.name} has a node's docker provider (${r.provider})`);
    return Number(m[1]);
}

const published = (c: Declared): Port[] => (c.inputs.ports as Port[] | undefined) ?? [];

describe("published ports: one address per node by default, on every target", () => {
    it("the default: the loopback on local, the node's own address elsewhere (never every address)", () => {
        assert.equal(bindAddressDefault("local"), "127.0.0.1");
        for (const target of ["virtualbox", "hosts", "aws"] as const) assert.equal(bindAddressDefault(target), undefined, target);
    });

    for (const [target, config, address] of TARGETS) {
        it(`${target}: every published port of every container is on ${target === "local" ? "127.0.0.1" : "its node's own address"}`, async () => {
            const p = await evaluate(devWith({ ...config, services: SERVICES }));
            assert.equal(p.error, null, String(p.error));
            const seen = new Set<string>();
            for (const c of p.containers()) {
                for (const port of published(c)) {
                    const where = `${c.inputs.name} ${port.internal}/${port.protocol}`;
                    assert.equal(port.ip, address(nodeOf(c)), where);
                    seen.add(`${String(c.inputs.name).replace(/-[0-9a-f]{8}$/, "")}:${port.external ?? port.internal}/${port.protocol}`);
                }
            }
            // What is published at all: the gateway's listeners (HTTPS with the dev stack's TLS) and
            // Consul's API and DNS on every target; across nodes also Consul's cluster ports and the replicas.
            for (const expected of ["dev-gateway:80/tcp", "dev-gateway:1936/tcp", "dev-gateway:5432/tcp", "dev-consul:8501/tcp", "dev-consul:8600/udp"]) {
                assert.ok(seen.has(expected), `${expected} in ${[...seen].join(" ")}`);
            }
            if (target === "local") assert.ok(seen.has("dev-gateway:443/tcp"), [...seen].join(" "));
            else assert.ok(seen.has("dev-consul:8301/udp") && seen.has("dev-pg-1:5432/tcp"), [...seen].join(" "));
        });
    }

    it("the opt-in: gateway.bindAddress 0.0.0.0 puts the gateway's ports on every address and leaves Consul's on the node's own", async () => {
        const p = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts: HOSTS, gateway: { bindAddress: "0.0.0.0" }, services: SERVICES }));
        assert.equal(p.error, null, String(p.error));
        for (const c of p.containers()) {
            for (const port of published(c)) {
                assert.equal(port.ip, c.inputs.name === "dev-gateway" ? "0.0.0.0" : `10.1.0.${nodeOf(c)}`, `${c.inputs.name} ${port.internal}`);
            }
        }
    });

    it("Consul checks the gateway where it answers: its node address by default; not when it is bound to the loopback only", async () => {
        const byDefault = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts: HOSTS }));
        const loopback = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts: HOSTS, gateway: { bindAddress: "127.0.0.1" } }));
        for (const [p, check] of [
            [byDefault, "/-/health"],
            [loopback, undefined],
        ] as const) {
            assert.equal(p.error, null, String(p.error));
            const gateways = p.containers().filter((c) => c.inputs.name === "dev-gateway");
            assert.equal(gateways.length, 3);
            for (const gw of gateways) assert.equal(envOf(gw).env.SERVICE_80_CHECK_HTTP, check);
        }
    });
});
