// A rolling replace of service replicas (docs/services.md, "Graceful drain"): each replica's container is
// named after its replica plus a generation, the hash of the inputs that make the Docker provider
// replace it, and is replaced create-before-delete: the new container (a new name) runs beside
// the old one, which is then stopped with its destroy grace (drained) and removed. The one-per-node
// containers keep their fixed names and delete-before-replace.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { LOG_LIMITS } from "../../components/container-defaults";
import { replicaGeneration, type ReplicaReplaceInputs } from "../../components/service";
import { type Declared } from "../support/mocks";
import { devWith, envOf, evaluate, GENERATION_SUFFIX, Program, stackConfig, withoutGeneration } from "../support/program";

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
    const { name: _name, restart: _restart, destroyGraceSeconds: _grace, ...forcing } = c.inputs;
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

    it("hashes every declared input but the name, restart and destroyGraceSeconds (the provider updates those two in place)", async () => {
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
                        "name",
                        "networksAdvanced",
                        "readOnly",
                        "restart",
                        "securityOpts",
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
