// Registrator on a node: watches the Docker engine through the node's Docker socket proxy
// (components/socket-proxy.ts: read-only API calls only; Registrator has no socket mount) and
// registers every container's ports in Consul: on one node the container's own address and
// exposed port (-internal), across nodes the node's address and published port (-ip).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { CONSUL_PATHS } from "./consul-agent-config";
import { ConsulSocketClient } from "./consul-client";
import { Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { Node } from "./nodes";
import { DockerSocketProxy } from "./socket-proxy";

export interface RegistratorArgs {
    readonly settings: Settings;
    readonly node: Node;
    /** The node's Consul agent (its HTTP socket's volume) and Registrator's ACL token. */
    readonly consul: ConsulSocketClient;
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class Registrator extends pulumi.ComponentResource {
    public readonly container: docker.Container;
    public readonly socketProxy: DockerSocketProxy;

    constructor(name: string, args: RegistratorArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:registrator:Registrator", name, {}, opts);
        const { settings, node } = args;
        const dockerOpts = { parent: this, provider: node.provider, dependsOn: node.ready };

        const image = new docker.RemoteImage(`${name}-image`, { name: settings.registrator.image, keepLocally: true }, dockerOpts);
        this.socketProxy = new DockerSocketProxy(`${name}-docker-socket-proxy`, { settings, node }, { parent: this });
        this.container = new docker.Container(
            name,
            {
                name: `${node.name}-registrator`,
                // Registrator's service IDs are <hostname>:<container>:<port>.
                hostname: node.name,
                image: image.imageId,
                command: node.address.apply((address) => [
                    // One node: each container's address on the shared network and its exposed port,
                    // nothing published; several nodes: the node's address (not a guess) and host port.
                    ...(node.registersContainerAddresses ? ["-internal"] : [`-ip=${address}`]),
                    `-resync=${settings.registrator.resyncSeconds}`, // re-register what Consul lost
                    "-cleanup", // remove dangling services after restarts
                    "-deregister=always",
                    // The agent's HTTP socket (Registrator v7 has no TLS with a custom CA): on no
                    // network at all, in a volume only this node's agent and Registrator share.
                    `consul-unix://${CONSUL_PATHS.httpSocket}`,
                ]),
                // Consul's Go client reads its token from the environment (never the command line).
                envs: pulumi.all([args.consul.token]).apply(([token]) => [
                    // The Docker API through the proxy (Registrator reads DOCKER_HOST), never the socket.
                    `DOCKER_HOST=${this.socketProxy.dockerHost}`,
                    `CONSUL_HTTP_TOKEN=${token}`,
                ]),
                volumes: [{ volumeName: args.consul.socketVolume, containerPath: CONSUL_PATHS.runDir, readOnly: true }],
                // Only the proxy's internal network: Consul is reached through its socket, so no
                // container on the node network can reach Registrator, nor it them.
                networksAdvanced: [{ name: this.socketProxy.network.name }],
                restart: "unless-stopped",
                ...LOG_LIMITS,
                // A fixed name: the old container must go before its replacement is created.
            },
            { ...dockerOpts, dependsOn: [...node.ready, this.socketProxy.container, ...(args.dependsOn ?? [])], deleteBeforeReplace: true },
        );

        this.registerOutputs({ containerName: this.container.name });
    }
}
