// A versioned service: `replicas` containers of one image, each registered in Consul by
// Registrator from its SERVICE_* environment, as `docker run -e SERVICE_NAME=... -p :PORT`.
// Consul name: <name>-<version> (hello-v1), a DNS label, so hello-v1.service.consul works;
// the gateway serves it at /<name>/<version>/ with the prefix stripped.
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { ServiceSettings, Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { Node } from "./hosts";

export interface VersionedServiceArgs {
    readonly settings: Settings;
    readonly service: ServiceSettings;
    readonly nodes: readonly Node[];
    /** Resources that must exist before the containers start (Registrator, Consul). */
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
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
        // Built images are referenced by tag (only loaded, never pushed): their digest goes into
        // the environment so that a rebuilt image replaces the containers.
        const digests = new Map<string, pulumi.Output<string>>();
        for (const node of placement) {
            if (images.has(node.name)) continue;
            const imageName = `${name}-${node.name}-image`;
            if (s.build !== undefined) {
                const built = new dockerBuild.Image(imageName, {
                    context: { location: s.build },
                    dockerfile: { location: `${s.build}/Dockerfile` },
                    tags: [`service-discovery/${s.name}:${s.version ?? "latest"}-${settings.stack}`],
                    network: settings.buildNetwork,
                    push: false,
                    load: true,
                    // A preview never runs Dockerfile RUN steps on a remote node (only on this machine's engine).
                    buildOnPreview: node.buildProvider === undefined,
                }, { parent: this, provider: node.buildProvider, dependsOn: [...node.ready, node.network] });
                images.set(node.name, built.ref);
                digests.set(node.name, built.digest);
            } else {
                images.set(node.name, new docker.RemoteImage(imageName, { name: s.image!, keepLocally: true }, { parent: this, provider: node.provider, dependsOn: node.ready }).imageId);
            }
        }
        this.imageRef = images.get(placement[0].name)!;

        const tags = ["rest", `check=${s.healthCheckPath}`];
        this.containers = [];
        for (let i = 0; i < s.replicas; i++) {
            const node = placement[i];
            const replica = `${settings.stack}-${s.consulName}-${i + 1}`;
            this.containers.push(new docker.Container(`${name}-${i + 1}`, {
                name: replica,
                hostname: replica,
                image: images.get(node.name)!,
                envs: pulumi.output(digests.get(node.name) ?? "").apply((digest) => [
                    ...(digest ? [`IMAGE_DIGEST=${digest}`] : []),
                    `SERVICE_NAME=${s.consulName}`,
                    `SERVICE_TAGS=${tags.join(",")}`,
                    `SERVICE_CHECK_HTTP=${s.healthCheckPath}`,
                    "SERVICE_CHECK_INTERVAL=5s",
                    "SERVICE_CHECK_TIMEOUT=2s",
                    `PORT=${s.containerPort}`,
                    `APP_SERVICE=${s.name}`,
                    `APP_VERSION=${s.version ?? ""}`,
                ]),
                // One node: nothing published, Registrator registers the container's address on
                // the shared network and its exposed port. Several nodes: `-p :PORT`, a free host
                // port Docker picks, bound to the node address the other nodes' gateways reach.
                ports: node.registersContainerAddresses ? undefined : [{ internal: s.containerPort, ip: node.address, protocol: "tcp" }],
                networksAdvanced: [{ name: node.network.name }],
                restart: "unless-stopped",
                ...LOG_LIMITS,
            }, {
                parent: this, provider: node.provider, dependsOn: [...node.ready, ...(args.dependsOn ?? [])],
                // The name is fixed: a replacement (new image, published ports added or dropped
                // when the target changes) must remove the old container before creating the new.
                deleteBeforeReplace: true,
            }));
        }

        this.registerOutputs({ path: this.path, imageRef: this.imageRef, containers: this.containers.map((c) => c.name) });
    }
}
