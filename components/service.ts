// A versioned service: `replicas` containers of one image, each registered in Consul by
// Registrator from its SERVICE_* environment, as `docker run -e SERVICE_NAME=... -p :PORT`.
// Consul name: <name>-<version> (hello-v1), a DNS label, so hello-v1.service.consul works;
// the gateway serves it at /<name>/<version>/ with the prefix stripped.
// Replica i is named <stack>-<consulName>-<i> (its hostname, the maintenance key's name for it);
// its container is that name plus "-<generation>", so a replacement is a rolling one: the new
// container runs beside the old until the old one has drained (docs/services.md, "Graceful drain").
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { ServiceSettings, Settings } from "./config";
import { containmentInputs, type ContainmentInputs, pidsLimitEnvironment, pidsLimitScript } from "./containment";
import { LOG_LIMITS } from "./container-defaults";
import { stopTimings } from "./drain";
import { Node } from "./nodes";
import { buildImage, withImageDigest } from "./image";
import { replicaPlacement, ServiceNetworks } from "./service-networks";

/**
 * Every input of a replica's container except its name and the two below. The Docker provider
 * cannot change most of these on an existing container: its schema (the upstream docker_container
 * resource) marks each ForceNew, so a change replaces the replica, and the generation is hashed
 * over all of them. The containment inputs (components/containment.ts) are hashed too, those the
 * provider could update in place (memory, memorySwap) included: whatever the provider version
 * does with a changed limit or tmpfs, the replica is replaced, rolling, and runs with exactly
 * what is declared. `restart`, `destroyGraceSeconds`, `start` and `mustRun` are not ForceNew (updated in place): they
 * stay out of it, so such an update keeps the container and its name.
 */
export interface ReplicaReplaceInputs extends Partial<ContainmentInputs> {
    readonly hostname: string;
    readonly image: pulumi.Input<string>;
    readonly envs: pulumi.Input<pulumi.Input<string>[]>;
    readonly stopTimeout: number;
    readonly ports?: pulumi.Input<pulumi.Input<docker.types.input.ContainerPort>[]>;
    readonly networksAdvanced: pulumi.Input<pulumi.Input<docker.types.input.ContainerNetworksAdvanced>[]>;
    readonly logDriver: string;
    readonly logOpts: Readonly<Record<string, string>>;
}

/** Inputs the provider keeps as sets (env, networks_advanced, security_opts): their order changes nothing. */
const SET_INPUTS: ReadonlySet<string> = new Set(["envs", "networksAdvanced", "securityOpts"]);

/** JSON with object keys sorted at every depth (undefined members left out, as JSON does). */
function canonicalJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
    if (value !== null && typeof value === "object") {
        return `{${Object.entries(value as Record<string, unknown>)
            .filter(([, v]) => v !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
            .join(",")}}`;
    }
    return JSON.stringify(value);
}

/**
 * A replica's generation: the first 8 hex characters (lowercase) of the sha256 of its
 * replace-forcing inputs, as resolved. It changes exactly when the provider replaces the
 * container, so the new container's name (`<replica>-<generation>`) never clashes with the old
 * one's and both can run at once.
 */
export function replicaGeneration(inputs: ReplicaReplaceInputs): pulumi.Output<string> {
    return pulumi.all({ ...inputs } as Record<string, pulumi.Input<unknown>>).apply((resolved) => {
        const hashed = Object.fromEntries(
            Object.entries(resolved as Record<string, unknown>).map(([k, v]) => [k, SET_INPUTS.has(k) && Array.isArray(v) ? v.map(canonicalJson).sort() : v]),
        );
        return createHash("sha256").update(canonicalJson(hashed)).digest("hex").slice(0, 8);
    });
}

export interface VersionedServiceArgs {
    readonly settings: Settings;
    readonly service: ServiceSettings;
    readonly nodes: readonly Node[];
    /** The services' own networks (components/service-networks.ts): a replica joins its service's. */
    readonly networks: ServiceNetworks;
    /** What a replica on `node` waits for: that node's Registrator and Consul agent, so it is registered. */
    readonly dependsOnNode?: (node: Node) => pulumi.Input<pulumi.Resource>[];
}

export class VersionedService extends pulumi.ComponentResource {
    public readonly containers: docker.Container[];
    /** The image the first replica runs (built or pulled). */
    public readonly imageRef: pulumi.Output<string>;
    public readonly path: string;

    constructor(name: string, args: VersionedServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:service:VersionedService", name, {}, opts);
        const { settings, service: s } = args;
        this.path = s.path;

        // Replica i runs on node i mod n; each node that runs a replica gets the image.
        const placement = replicaPlacement(s, args.nodes);
        const images = new Map<string, pulumi.Output<string>>();
        const builds = new Map<string, dockerBuild.Image>();
        for (const node of placement) {
            if (images.has(node.name)) continue;
            const imageName = `${name}-${node.name}-image`;
            if (s.build !== undefined) {
                const built = buildImage(
                    imageName,
                    {
                        settings,
                        node,
                        context: s.build,
                        tag: `service-discovery/${s.name}:${s.version ?? "latest"}-${settings.stack}`,
                        dependsOn: [node.network],
                    },
                    { parent: this },
                );
                images.set(node.name, built.ref);
                builds.set(node.name, built);
            } else {
                images.set(
                    node.name,
                    new docker.RemoteImage(imageName, { name: s.image!, keepLocally: true }, { parent: this, provider: node.provider, dependsOn: node.ready })
                        .imageId,
                );
            }
        }
        this.imageRef = images.get(placement[0].name)!;

        // http: routed by path, checked on its health path. tcp (docs/traffic-control.md, "TCP services"): a
        // gateway listener of its own, checked by connecting; no check= tag, no HTTP check.
        const tags = s.protocol === "tcp" ? "tcp" : ["rest", `check=${s.healthCheckPath}`].join(",");
        const registration =
            s.protocol === "tcp" ? [`SERVICE_TAGS=${tags}`, "SERVICE_CHECK_TCP=true"] : [`SERVICE_TAGS=${tags}`, `SERVICE_CHECK_HTTP=${s.healthCheckPath}`];
        // Graceful drain (docs/services.md): the container's stop signal starts DRAIN_SECONDS of failing
        // health checks while it still serves; SIGKILL only after the stop timeout.
        const timings = stopTimings(s.drainSeconds);
        this.containers = [];
        for (let i = 0; i < s.replicas; i++) {
            const node = placement[i];
            const replica = s.containerNames[i];
            const replaceInputs: ReplicaReplaceInputs = {
                // The replica's name, without the generation: what Consul and the answers show.
                hostname: replica,
                image: images.get(node.name)!,
                envs: withImageDigest(builds.get(node.name), [
                    `SERVICE_NAME=${s.consulName}`,
                    ...registration,
                    // Registrator takes SERVICE_<port>_* over SERVICE_*, from the image's ENV and labels too.
                    // Said per port here, the container's value replaces an image's ENV of the same name.
                    // (Registrator keeps the last per-port value it reads, labels after the environment:
                    // an image's label, or an ENV key spelled in another case, still wins; whatever it
                    // registers, the gateway routes a declared service only from its replicas:
                    // docs/security.md, "Routes belong to declared replicas".)
                    `SERVICE_${s.containerPort}_NAME=${s.consulName}`,
                    `SERVICE_${s.containerPort}_TAGS=${tags}`,
                    "SERVICE_CHECK_INTERVAL=5s",
                    "SERVICE_CHECK_TIMEOUT=2s",
                    `PORT=${s.containerPort}`,
                    `APP_SERVICE=${s.name}`,
                    `APP_VERSION=${s.version ?? ""}`,
                    `DRAIN_SECONDS=${timings.drainSeconds}`,
                ]),
                // `docker stop` and an engine shutdown wait this long before SIGKILL; the stop
                // signal stays the image's (STOPSIGNAL, else SIGTERM).
                stopTimeout: timings.stopTimeoutSeconds,
                // One node: nothing published, Registrator registers the container's address on
                // its one network and its exposed port. Several nodes: `-p :PORT`, a free host
                // port Docker picks, bound to the node address the other nodes' gateways reach.
                ports: node.registersContainerAddresses ? undefined : [{ internal: s.containerPort, ip: node.address, protocol: "tcp" }],
                // One network, its service's own (components/service-networks.ts), which only the
                // gateway shares (and, on one node, the Consul agent that checks it); with
                // sharedNetwork true, the node's, shared with every container of the stack. A change
                // between the two replaces the replica (rolling), like any other input here.
                networksAdvanced: [{ name: args.networks.replicaNetwork(s, node).name }],
                ...LOG_LIMITS,
                // No capability, no-new-privileges, a read-only root, memory and CPU limits, each but
                // no-new-privileges relaxable by a key of the service (components/containment.ts).
                ...containmentInputs(s),
            };
            const container = new docker.Container(
                `${name}-${i + 1}`,
                {
                    ...replaceInputs,
                    name: replicaGeneration(replaceInputs).apply((gen) => `${replica}-${gen}`),
                    // Without it the provider removes a replaced or destroyed container with force
                    // (SIGKILL, no drain); with it, it stops the container first, as `docker stop` does.
                    destroyGraceSeconds: timings.stopTimeoutSeconds,
                    restart: "unless-stopped",
                    // Created, not started: the command below starts it once its process limit is
                    // set, so it never runs without one. mustRun false is what lets the provider
                    // accept a container it did not start (and leaves a replica stopped by hand
                    // stopped; Docker's restart policy restarts one that exits).
                    start: false,
                    mustRun: false,
                },
                {
                    parent: this,
                    provider: node.provider,
                    dependsOn: [...node.ready, ...(args.dependsOnNode?.(node) ?? [])],
                    // A rolling replacement (docs/services.md, "Graceful drain"): the new container (a new
                    // generation, a new name) is created first, the old one drained and removed
                    // after. Said explicitly: the provider's own default for containers is
                    // delete-before-replace, which would leave the replica's route without it.
                    deleteBeforeReplace: false,
                },
            );
            this.containers.push(container);
            // The process limit (pidsLimit), which the provider cannot set: `docker update` on the
            // engine once the container exists, read back, then the container started; again for
            // every new container (its ID is a trigger) and whenever the limit changes (in place,
            // the replica keeps running).
            new command.local.Command(
                `${name}-${i + 1}-pids`,
                {
                    create: pidsLimitScript(node.engine.ssh),
                    environment: pidsLimitEnvironment(node.engine, container.name, s.pidsLimit),
                    triggers: [container.id],
                },
                { parent: this, dependsOn: [container] },
            );
        }

        this.registerOutputs({ path: this.path, imageRef: this.imageRef, containers: this.containers.map((c) => c.name) });
    }
}
