// A gateway on one edge node: the HAProxy + consul-template image, built by the program from
// components/images/gateway into the node's engine, and its container on the node's network.
// It publishes the HTTP port and the stats port, follows the whole cluster through the node's
// Consul agent, and registers itself in Consul through Registrator.
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { Node } from "./hosts";

/** Build context of the gateway image, relative to the project (Pulumi runs programs there). */
export const GATEWAY_IMAGE_CONTEXT = "components/images/gateway";

export interface GatewayArgs {
    readonly settings: Settings;
    readonly node: Node;
    /** Consul HTTP address reachable from the node's network, host:port. */
    readonly consulAddress: pulumi.Input<string>;
    readonly statsPassword: pulumi.Input<string>;
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class Gateway extends pulumi.ComponentResource {
    public readonly image: dockerBuild.Image;
    public readonly container: docker.Container;
    public readonly url: pulumi.Output<string>;
    public readonly statsUrl: pulumi.Output<string>;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:gateway:Gateway", name, {}, opts);
        const { settings, node } = args;
        const g = settings.gateway;

        this.image = new dockerBuild.Image(`${name}-image`, {
            context: { location: GATEWAY_IMAGE_CONTEXT },
            dockerfile: { location: `${GATEWAY_IMAGE_CONTEXT}/Dockerfile` },
            buildArgs: { CONSUL_TEMPLATE_SOURCE: g.consulTemplateSource },
            tags: [`service-discovery/gateway:${settings.stack}`],
            network: settings.buildNetwork,
            push: false,
            load: true,
        }, { parent: this, provider: node.buildProvider, dependsOn: [...node.ready, node.network] });

        this.container = new docker.Container(name, {
            name: `${settings.stack}-gateway`,
            hostname: `${node.name}-gateway`,
            image: this.image.ref,
            envs: pulumi.all([args.consulAddress, args.statsPassword, this.image.digest]).apply(([consul, password, digest]) => [
                // The image is referenced by tag (it is only loaded, never pushed): the digest
                // makes a rebuilt image replace the container.
                `IMAGE_DIGEST=${digest}`,
                `CONSUL_HTTP_ADDR=${consul}`,
                `STATS_USER=${settings.stats.user}`,
                `STATS_PASSWORD=${password}`,
                // Registrator: register the gateway itself, never routed (no `rest` tag).
                "SERVICE_80_NAME=gateway",
                "SERVICE_1936_NAME=gateway-stats",
                // Consul checks the registered node address, which only a wildcard bind answers on.
                ...(g.bindAddress === "0.0.0.0" ? ["SERVICE_80_CHECK_HTTP=/-/health", "SERVICE_80_CHECK_INTERVAL=5s"] : []),
            ]),
            ports: [
                { internal: 80, external: g.httpPort, ip: g.bindAddress, protocol: "tcp" },
                { internal: 1936, external: g.statsPort, ip: g.bindAddress, protocol: "tcp" },
            ],
            networksAdvanced: [{ name: node.network.name, aliases: ["gateway"] }],
            restart: "unless-stopped",
            healthcheck: {
                // bash, not sh: the image's /bin/sh (dash) has no /dev/tcp.
                tests: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /-/health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q 200 <&3"],
                interval: "5s", timeout: "2s", retries: 3, startPeriod: "5s",
            },
        }, { parent: this, provider: node.provider, dependsOn: [...node.ready, ...(args.dependsOn ?? [])] });

        const host = settings.target !== "local" ? node.publicAddress
            : pulumi.output(g.bindAddress === "0.0.0.0" ? "127.0.0.1" : g.bindAddress);
        this.url = pulumi.interpolate`http://${host}${g.httpPort === 80 ? "" : `:${g.httpPort}`}`;
        this.statsUrl = pulumi.interpolate`http://${host}:${g.statsPort}/`;

        this.registerOutputs({ url: this.url, statsUrl: this.statsUrl, imageRef: this.image.ref });
    }
}
