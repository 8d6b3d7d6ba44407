// A versioned service: `replicas` containers of one image, each registered in Consul by
// Registrator from its SERVICE_* environment, as `docker run -e SERVICE_NAME=... -p :PORT`.
// Consul name: <name>-<version> (hello-v1), a DNS label, so hello-v1.service.consul works;
// the gateway serves it at /<name>/<version>/ with the prefix stripped.
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { ServiceSettings, Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { stopTimings } from "./drain";
import { Node } from "./hosts";
import { buildImage, withImageDigest } from "./image";

export interface VersionedServiceArgs {
    readonly settings: Settings;
    readonly service: ServiceSettings;
    readonly nodes: readonly Node[];
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
        const placement = Array.from({ length: s.replicas }, (_, i) => args.nodes[i % args.nodes.length]);
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

        const tags = ["rest", `check=${s.healthCheckPath}`];
        // Graceful drain (README): the container's stop signal starts DRAIN_SECONDS of failing
        // health checks while it still serves; SIGKILL only after the stop timeout.
        const timings = stopTimings();
        this.containers = [];
        for (let i = 0; i < s.replicas; i++) {
            const node = placement[i];
            const replica = `${settings.stack}-${s.consulName}-${i + 1}`;
            this.containers.push(
                new docker.Container(
                    `${name}-${i + 1}`,
                    {
                        name: replica,
                        hostname: replica,
                        image: images.get(node.name)!,
                        envs: withImageDigest(builds.get(node.name), [
                            `SERVICE_NAME=${s.consulName}`,
                            `SERVICE_TAGS=${tags.join(",")}`,
                            `SERVICE_CHECK_HTTP=${s.healthCheckPath}`,
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
                        // Without it the provider removes a replaced or destroyed container with force
                        // (SIGKILL, no drain); with it, it stops the container first, as `docker stop` does.
                        destroyGraceSeconds: timings.stopTimeoutSeconds,
                        // One node: nothing published, Registrator registers the container's address on
                        // the shared network and its exposed port. Several nodes: `-p :PORT`, a free host
                        // port Docker picks, bound to the node address the other nodes' gateways reach.
                        ports: node.registersContainerAddresses ? undefined : [{ internal: s.containerPort, ip: node.address, protocol: "tcp" }],
                        networksAdvanced: [{ name: node.network.name }],
                        restart: "unless-stopped",
                        ...LOG_LIMITS,
                    },
                    {
                        parent: this,
                        provider: node.provider,
                        dependsOn: [...node.ready, ...(args.dependsOnNode?.(node) ?? [])],
                        // The name is fixed: a replacement (new image, published ports added or dropped
                        // when the target changes) must remove the old container before creating the new.
                        deleteBeforeReplace: true,
                    },
                ),
            );
        }

        this.registerOutputs({ path: this.path, imageRef: this.imageRef, containers: this.containers.map((c) => c.name) });
    }
}
