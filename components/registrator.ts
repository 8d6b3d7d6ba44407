// Registrator on a node: watches the Docker engine through the node's Docker socket proxy
// (components/socket-proxy.ts: read-only API calls only; Registrator has no socket mount) and
// registers every container's ports in Consul: on one node the container's own address and
// exposed port (-internal), across nodes the node's address and published port (-ip).
// Its Consul token is an uploaded file its entrypoint reads (registratorWrapper), never in the
// container's environment.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { CONSUL_PATHS } from "./consul-agent-config";
import { ConsulSocketClient } from "./consul-client";
import { Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { Node } from "./nodes";
import { DockerSocketProxy } from "./socket-proxy";

/** Where Registrator's Consul ACL token is uploaded in its container: root's alone (the image runs as root). */
export const REGISTRATOR_TOKEN_FILE = "/etc/registrator/secrets/consul.token";
/** The program in the Registrator image (v7: `ENTRYPOINT ["/bin/registrator"]`). */
export const REGISTRATOR_BINARY = "/bin/registrator";

/**
 * The shell script Registrator's container runs before Registrator: it exports the token from
 * `tokenFile` as CONSUL_HTTP_TOKEN and execs `binary` with the container's command. Registrator
 * v7's Consul client (hashicorp/consul/api as of 2016, when the image was built) reads
 * CONSUL_HTTP_TOKEN only: CONSUL_HTTP_TOKEN_FILE came to that client later (still not planned in
 * 2018, hashicorp/consul#1078). So the token must be in Registrator's process environment; set
 * by this script it is there, but not in the container's configuration, which `docker inspect`
 * and the Docker API show. The command line holds the file's name, never the
 * token. POSIX sh (busybox in the v7 image, which is Alpine's). A missing or empty file stops
 * the container with a message naming the file (exit 78, EX_CONFIG).
 */
export function registratorWrapper(tokenFile = REGISTRATOR_TOKEN_FILE, binary = REGISTRATOR_BINARY): string {
    return [
        `token="$(cat '${tokenFile}')" || { echo "registrator: cannot read its Consul ACL token from ${tokenFile}" >&2; exit 78; }`,
        `[ -n "$token" ] || { echo "registrator: ${tokenFile} is empty (its Consul ACL token)" >&2; exit 78; }`,
        'export CONSUL_HTTP_TOKEN="$token"',
        "unset token",
        `exec '${binary}' "$@"`,
    ].join("\n");
}

/**
 * The container's entrypoint: the wrapper, with "registrator" as its $0 and the container's
 * command (Registrator's flags and registry URI) as its arguments.
 */
export const REGISTRATOR_ENTRYPOINT: readonly string[] = ["/bin/sh", "-c", registratorWrapper(), "registrator"];

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
                // Consul's Go client reads its token from CONSUL_HTTP_TOKEN, which the entrypoint sets
                // from the uploaded file: never in the container's environment nor on a command line.
                entrypoints: [...REGISTRATOR_ENTRYPOINT],
                // The Docker API through the proxy (Registrator reads DOCKER_HOST), never the socket.
                envs: [`DOCKER_HOST=${this.socketProxy.dockerHost}`],
                uploads: [{ file: REGISTRATOR_TOKEN_FILE, content: pulumi.secret(args.consul.token), permissions: "0400", owner: "0", group: "0" }],
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
