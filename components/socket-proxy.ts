// The Docker socket proxy of one node: the only container that mounts the engine's socket.
// Whoever can write to that socket owns the host (a read-only bind mount does not change that:
// connecting to a socket is no write to the file), so Registrator gets the Docker API through
// this proxy instead, which lets through only the read-only calls Registrator makes
// (components/images/socket-proxy/haproxy.cfg). The proxy sits alone with Registrator on an
// internal network of its own (no route out, no published port): service containers cannot
// reach it, and its /containers/json would show them every container's environment.
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { Node } from "./nodes";
import { buildImage, withImageDigest } from "./image";

/** Build context of the proxy image, relative to the project (Pulumi runs programs there). */
export const SOCKET_PROXY_IMAGE_CONTEXT = "components/images/socket-proxy";
/** Repository of the proxy image's tag; the policy pack recognises the proxy by it. */
export const SOCKET_PROXY_IMAGE_REPOSITORY = "service-discovery/docker-socket-proxy";
/** The proxy's name on its network, and its port (Docker's plain-HTTP port). */
export const SOCKET_PROXY_ALIAS = "docker-socket-proxy";
export const SOCKET_PROXY_PORT = 2375;
/** Where the engine's socket is mounted in the proxy (the image's DOCKER_SOCKET). */
export const SOCKET_PROXY_SOCKET_PATH = "/var/run/docker.sock";

export interface DockerSocketProxyArgs {
    readonly settings: Settings;
    readonly node: Node;
}

export class DockerSocketProxy extends pulumi.ComponentResource {
    public readonly image: dockerBuild.Image;
    /** The internal network only the proxy and its clients (Registrator) join. */
    public readonly network: docker.Network;
    public readonly container: docker.Container;
    /** DOCKER_HOST for a client on `network`. */
    public readonly dockerHost: string;

    constructor(name: string, args: DockerSocketProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:registrator:DockerSocketProxy", name, {}, opts);
        const { settings, node } = args;

        this.network = new docker.Network(
            `${name}-network`,
            {
                name: `${settings.network.name}-${settings.stack}-docker-api`,
                driver: "bridge",
                // No gateway out of it and, with Docker's isolation rules, no traffic from other networks.
                internal: true,
                // The engine picks its subnet: after the node network, so it never takes that fixed one.
            },
            { parent: this, provider: node.provider, dependsOn: [...node.ready, node.network] },
        );

        this.image = buildImage(
            `${name}-image`,
            {
                settings,
                node,
                context: SOCKET_PROXY_IMAGE_CONTEXT,
                tag: `${SOCKET_PROXY_IMAGE_REPOSITORY}:${settings.stack}`,
            },
            { parent: this },
        );

        this.container = new docker.Container(
            name,
            {
                name: `${node.name}-docker-socket-proxy`,
                hostname: `${node.name}-docker-socket-proxy`,
                image: this.image.ref,
                // Not a service: Registrator must never register it, whatever its mode.
                envs: withImageDigest(this.image, ["SERVICE_IGNORE=true"]),
                // Read-only: the container cannot chmod/chown the host's socket file. It still has
                // the whole API through it; the proxy's rules are what limit its clients.
                volumes: [{ hostPath: settings.registrator.dockerSocket, containerPath: SOCKET_PROXY_SOCKET_PATH, readOnly: true }],
                networksAdvanced: [{ name: this.network.name, aliases: [SOCKET_PROXY_ALIAS] }],
                // Root only to switch to the socket's group (entrypoint.sh); HAProxy itself runs
                // without capabilities and cannot gain any (no-new-privileges, empty bounding set).
                capabilities: { drops: ["ALL"], adds: ["SETUID", "SETGID", "SETPCAP"] },
                securityOpts: ["no-new-privileges:true"],
                readOnly: true,
                restart: "unless-stopped",
                ...LOG_LIMITS,
                healthcheck: {
                    // Through the proxy to the engine: healthy only when the socket answers too.
                    tests: [
                        "CMD",
                        "bash",
                        "-c",
                        `exec 3<>/dev/tcp/127.0.0.1/${SOCKET_PROXY_PORT} && printf 'GET /_ping HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '`,
                    ],
                    interval: "10s",
                    timeout: "3s",
                    retries: 3,
                    startPeriod: "5s",
                },
                // Registrator starts after it: it exits when the engine does not answer at start.
                wait: true,
                waitTimeout: 60,
                // A fixed name: the old container must go before its replacement is created.
            },
            { parent: this, provider: node.provider, dependsOn: node.ready, deleteBeforeReplace: true },
        );

        this.dockerHost = `tcp://${SOCKET_PROXY_ALIAS}:${SOCKET_PROXY_PORT}`;
        this.registerOutputs({ containerName: this.container.name, networkName: this.network.name, dockerHost: this.dockerHost });
    }
}
