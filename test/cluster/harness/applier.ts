// The e2e applier (test/e2e/applier), one per engine: each resource the program declares goes to
// the engine its provider names. A docker.Provider (and a docker-build Provider) is accepted only
// for a cluster engine's host with that engine's client certificate folder (certPath), which is
// how the applier then reaches it, as the provider would. Docker resources go to their node's
// applier (its own containers, networks, volumes, emulated Registrator); image builds to the
// image shop (built once, shipped to the node); everything else (TLS, random values, Consul ACLs
// and keys, local commands, components) to a control applier.
import { Applier } from "../../e2e/applier";
import { allow, unwrapSecrets } from "../../e2e/applier/inputs";
import type { Obj } from "../../e2e/applier/scope";
import { DEFAULT_REGISTRATOR_IMAGE } from "../../../components/config";
import type { Cluster, ClusterNode } from "./engines";
import type { ImageShop } from "./images";

const DOCKER_PROVIDER = "pulumi:providers:docker";
const BUILD_PROVIDER = "pulumi:providers:docker-build";
const BUILD = "docker-build:index:Image";

export class ClusterApplier {
    /** One e2e applier per node, by node index. */
    readonly nodes = new Map<number, Applier>();
    /** Resources that belong to no engine. */
    readonly control: Applier;
    /** Provider id -> the node its host is. */
    private readonly providerNodes = new Map<string, ClusterNode>();
    /** Builds by type::name, as a state would keep them (a second evaluation answers unchanged ones). */
    private readonly buildState = new Map<string, { key: string; result: { id: string; outputs: Obj } }>();

    constructor(
        readonly cluster: Cluster,
        private readonly images: ImageShop,
        runId: string,
        registratorImage = DEFAULT_REGISTRATOR_IMAGE,
    ) {
        for (const node of cluster.nodes) {
            this.nodes.set(
                node.index,
                new Applier(node.docker, {
                    registratorImage,
                    runId,
                    engineSocket: node.socket,
                    reachContainer: (address, port) => cluster.relay(node.index, address, port),
                }),
            );
        }
        this.control = new Applier(cluster.nodes[0].docker, { registratorImage, runId });
    }

    private all(): Applier[] {
        return [this.control, ...this.nodes.values()];
    }

    beginEvaluation(): void {
        for (const a of this.all()) a.beginEvaluation();
    }

    /** The nodes' appliers first: what a node no longer declared uses (its agent's ACL token) goes after it. */
    async endEvaluation(): Promise<void> {
        for (const a of [...this.nodes.values(), this.control]) await a.endEvaluation();
    }

    /** The applier of the node a provider reference names; undefined for no provider. */
    private nodeOf(providerRef: string): ClusterNode | undefined {
        if (!providerRef) return undefined;
        const id = providerRef.slice(providerRef.lastIndexOf("::") + 2);
        return this.providerNodes.get(id);
    }

    applierOf(node: ClusterNode): Applier {
        return this.nodes.get(node.index)!;
    }

    async apply(
        type: string,
        name: string,
        rawInputs: Obj,
        providerRef: string,
        options: { deleteBeforeReplace?: boolean } = {},
    ): Promise<{ id: string; outputs: Obj }> {
        const where = `${type} ${name}`;
        if (type === DOCKER_PROVIDER || type === BUILD_PROVIDER) {
            const p = allow(where, unwrapSecrets(rawInputs), ["host"], type === DOCKER_PROVIDER ? ["certPath", "version"] : ["version"]);
            const node = this.cluster.byHost(p.host, type === DOCKER_PROVIDER ? p.certPath : undefined);
            if (type === DOCKER_PROVIDER && p.certPath === undefined)
                throw new Error(`${where}: ${p.host} without certPath: the cluster's engines require TLS client certificates`);
            const id = `${name}-provider-id`;
            this.providerNodes.set(id, node);
            if (type === BUILD_PROVIDER) {
                // docker-build takes the host only: its builds reach the engine with the same
                // certificates (DOCKER_CERT_PATH of the node), here through the image shop.
                return { id, outputs: {} };
            }
            // The node's applier checks the host against its engine; the certificates were checked here.
            return this.applierOf(node).apply(type, name, { host: p.host, version: p.version }, "", options);
        }
        const node = this.nodeOf(providerRef);
        if (type === BUILD) {
            if (!node)
                throw new Error(`${where}: an image build without a provider would build on the machine running Pulumi; the cluster's builds name their node`);
            const key = `${type}::${name}`;
            const inputsKey = JSON.stringify(unwrapSecrets(rawInputs));
            const previous = this.buildState.get(key);
            if (previous && previous.key === inputsKey) return previous.result;
            const result = await this.images.build(where, rawInputs, node.docker);
            this.buildState.set(key, { key: inputsKey, result });
            return result;
        }
        if (node) return this.applierOf(node).apply(type, name, rawInputs, providerRef, options);
        if (type.startsWith("docker:"))
            throw new Error(`${where}: a Docker resource without a provider; every resource of the hosts target names its node's provider`);
        return this.control.apply(type, name, rawInputs, providerRef, options);
    }

    invoke(token: string, inputs: Obj, providerRef: string): Promise<Obj> {
        return this.control.invoke(token, inputs, providerRef);
    }

    /** The emulated Registrators of the nodes, stopped. */
    async stop(): Promise<void> {
        for (const a of this.nodes.values()) await a.registrator?.stop();
    }

    /** Problems of the program the appliers saw (e.g. no leader when the Consul provider was first used). */
    findings(): string[] {
        return this.all().flatMap((a) => a.findings);
    }
}
