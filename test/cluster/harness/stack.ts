// A stack of the `hosts` target on the cluster's engines, from the stack config alone: the hosts
// (each engine's tcp:// address, its client certificates, its node address), the edge nodes, the
// services; Consul with the program's defaults for three nodes (three servers, ACLs, TLS,
// gossip encryption). index.ts is evaluated under Pulumi's mocks as stack `cluster` and each
// declared resource is applied to the engine its provider names (applier.ts).
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { PROJECT, ROOT } from "../../support/program";
import type { Done, ResourceAnswer, ResourceRequest } from "../../e2e/applier/child";
import { ClusterApplier } from "./applier";
import { Cluster, type ClusterNode, log } from "./engines";
import { ImageShop } from "./images";

/** The stack's name: its containers are cluster-consul, cluster-gateway, cluster-hello-v1-1-<gen>, ... */
export const CLUSTER_STACK = "cluster";

/** The services of the 3-node stack: replica i runs on node i mod n (components/service.ts). */
export const DEFAULT_SERVICES = [
    { name: "hello", version: "v1", build: "components/images/hello", containerPort: 8080, replicas: 3, healthCheckPath: "/health" },
    { name: "hello", version: "v2", build: "components/images/hello", containerPort: 8080, replicas: 2, healthCheckPath: "/health" },
];

export interface ClusterStackOptions {
    /** Number of nodes (engines); default 3. */
    nodes?: number;
    /** How many of them the stack config's `hosts` lists (the first ones); default all. The rest wait for a scale-out. */
    hosts?: number;
    /** 1-based nodes that run a gateway; default [1, 2]. */
    edgeNodes?: number[];
    services?: unknown[];
    /** Further stack config keys. */
    config?: Record<string, unknown>;
}

export interface ClusterOutputs {
    gatewayUrls: string[];
    statsUser: string;
    statsPassword: string;
    consulUiUrl: string;
    consulCaPem: string;
    consulManagementToken: string;
    nodes: { name: string; address: string; consulServer: boolean }[];
}

/** The stack config's `hosts` entries of these engines. */
function hostsOf(nodes: ClusterNode[]): { name: string; host: string; address: string; certPath: string }[] {
    return nodes.map((n) => ({ name: n.name, host: n.host, address: n.address, certPath: n.certPath }));
}

/** Pulumi's flattening of a stack file's values: strings as they are, anything else as JSON. */
function flatten(config: Record<string, unknown>): Record<string, string> {
    return Object.fromEntries(Object.entries(config).map(([k, v]) => [`${PROJECT}:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

export class ClusterStack {
    outputs!: ClusterOutputs;
    /** Seconds of the bring-up's phases. */
    readonly timings: Record<string, number> = {};

    private constructor(
        readonly cluster: Cluster,
        readonly images: ImageShop,
        readonly applier: ClusterApplier,
        /** The stack config, as `pulumi config` holds it (the last applied). */
        public config: Record<string, string>,
        readonly edgeNodes: number[],
    ) {}

    /** Engines, images, config, apply; on failure everything acquired so far is released. */
    static async up(options: ClusterStackOptions = {}): Promise<ClusterStack> {
        const t0 = Date.now();
        const count = options.nodes ?? 3;
        const edgeNodes = options.edgeNodes ?? [1, 2];
        let cluster: Cluster | undefined;
        let images: ImageShop | undefined;
        let stack: ClusterStack | undefined;
        try {
            cluster = await Cluster.start(count);
            const t1 = Date.now();
            images = await ImageShop.open();
            // consul.image names an image to pull: it must be on every node first (the program pulls nothing here).
            const consulImage = images.consulImage;
            await Promise.all(cluster.nodes.map((n) => images!.ship(consulImage, n.docker)));
            const t2 = Date.now();
            const config = flatten({
                target: "hosts",
                hosts: hostsOf(cluster.nodes.slice(0, options.hosts ?? count)),
                edgeNodes,
                // Image builds run their RUN steps on the builder, which reaches the Debian mirror on the host network.
                buildNetwork: "host",
                consul: { image: consulImage },
                gateway: { nodeSource: "context" },
                services: options.services ?? DEFAULT_SERVICES,
                ...options.config,
            });
            const applier = new ClusterApplier(cluster, images, randomBytes(4).toString("hex"));
            stack = new ClusterStack(cluster, images, applier, config, edgeNodes);
            await stack.apply(config);
            stack.timings.enginesSeconds = (t1 - t0) / 1000;
            stack.timings.imagesSeconds = (t2 - t1) / 1000;
            stack.timings.applySeconds = (Date.now() - t2) / 1000;
            stack.timings.shippingSeconds = images.shippingSeconds;
            log(
                `stack ${CLUSTER_STACK} up on ${count} nodes in ${((Date.now() - t0) / 1000).toFixed(1)} s (engines ${stack.timings.enginesSeconds.toFixed(1)} s, images ${stack.timings.imagesSeconds.toFixed(1)} s, apply ${stack.timings.applySeconds.toFixed(1)} s, of which ${images.shippingSeconds.toFixed(1)} s shipping images)`,
            );
            for (const f of applier.findings()) log(`finding: ${f}`);
            return stack;
        } catch (e) {
            if (stack) await stack.down().catch((d) => log(`teardown after a failed bring-up: ${(d as Error).message}`));
            else {
                await cluster?.release().catch(() => undefined);
                await images?.release().catch(() => undefined);
            }
            throw e;
        }
    }

    /** Evaluates index.ts with `config` and applies what it declares, like `pulumi up`. */
    async apply(config: Record<string, string>): Promise<void> {
        const applier = this.applier;
        applier.beginEvaluation();
        const env: NodeJS.ProcessEnv = { ...process.env, EVAL_CONFIG: JSON.stringify(config), EVAL_STACK: CLUSTER_STACK };
        delete env.DOCKER_HOST;
        const child = fork(path.join(ROOT, "test", "e2e", "applier", "child.ts"), [], {
            cwd: ROOT,
            env,
            execArgv: ["--import", "tsx"],
            stdio: ["ignore", "inherit", "pipe", "ipc"],
        });
        let stderr = "";
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        const failures: string[] = [];
        const done = await new Promise<Done>((resolve, reject) => {
            let killer: NodeJS.Timeout | undefined;
            child.on("message", (m: ResourceRequest | Done) => {
                if (m.kind === "done") {
                    resolve(m);
                    return;
                }
                const work =
                    m.kind === "invoke"
                        ? applier.invoke(m.type, m.inputs, m.provider).then((outputs) => ({ id: "", outputs }))
                        : applier.apply(m.type, m.name, m.inputs, m.provider, { deleteBeforeReplace: m.deleteBeforeReplace });
                work.then(
                    (r) => child.send({ kind: "answer", seq: m.seq, id: r.id, outputs: r.outputs } satisfies ResourceAnswer),
                    (e: Error) => {
                        failures.push(e.message);
                        child.send({ kind: "answer", seq: m.seq, error: e.message } satisfies ResourceAnswer);
                        // Outputs that depend on a failed resource never resolve: do not wait long.
                        killer ??= setTimeout(() => child.kill("SIGKILL"), 10_000);
                    },
                );
            });
            child.on("exit", (code) => {
                if (killer) clearTimeout(killer);
                reject(
                    new Error(failures[0] ?? `the program's evaluation exited (${code}) before finishing:\n${stderr.trim().split("\n").slice(-20).join("\n")}`),
                );
            });
        });
        await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.on("exit", r)));
        if (failures.length > 0) throw new Error(`applying the program failed: ${failures[0]}`);
        if (done.error) throw new Error(`evaluating the program failed: ${done.error}`);
        await applier.endEvaluation();
        this.outputs = done.outputs as unknown as ClusterOutputs;
    }

    /** The nodes the stack config's `hosts` lists now (the cluster may have more engines). */
    get nodes(): ClusterNode[] {
        const hosts = new Set((this.configValue("hosts") as { name: string }[]).map((h) => h.name));
        return this.cluster.nodes.filter((n) => hosts.has(n.name));
    }

    /**
     * `pulumi up` with the first `hosts` engines in the stack config's `hosts` (and `services`, when
     * given): a scale out or in. The config is kept for the next apply.
     */
    async scaleTo(hosts: number, services?: unknown[]): Promise<void> {
        if (hosts < 1 || hosts > this.cluster.nodes.length) throw new Error(`scaleTo(${hosts}): the cluster has ${this.cluster.nodes.length} engines`);
        const config = {
            ...this.config,
            ...flatten({ hosts: hostsOf(this.cluster.nodes.slice(0, hosts)), ...(services ? { services } : {}) }),
        };
        await this.apply(config);
        this.config = config;
    }

    node(index: number): ClusterNode {
        return this.cluster.node(index);
    }

    /** Config key (as in the stack file) -> its value. */
    configValue(key: string): any {
        const raw = this.config[`${PROJECT}:${key}`];
        if (raw === undefined) return undefined;
        try {
            return JSON.parse(raw);
        } catch {
            return raw;
        }
    }

    /** Containers the program declared on node `index`, by Docker name, with their inputs as applied. */
    containersOn(index: number): Map<string, any> {
        return this.applier.nodes.get(index)!.containers;
    }

    /** Emulated Registrators caught up with their engines' events; throws on an emulation failure. */
    async registratorsSettled(): Promise<void> {
        for (const [index, a] of this.applier.nodes) {
            await a.registrator?.settle();
            const errors = a.registrator?.errors ?? [];
            if (errors.length > 0) throw new Error(`emulated Registrator of node ${index}: ${errors.join("; ")}`);
        }
    }

    async down(): Promise<void> {
        try {
            await this.applier.stop();
        } finally {
            try {
                await this.cluster.release();
            } finally {
                await this.images.release();
            }
        }
    }
}
