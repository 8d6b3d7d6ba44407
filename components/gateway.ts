// A gateway on one edge node: the HAProxy image with its controller (a Node.js program that
// follows Consul and drives HAProxy), built by the program from components/images/gateway into
// the node's engine, and its container on the node's network and, on one node, on every
// service's own network (components/service-networks.ts), where it reaches the replicas.
// It publishes the HTTP port, the HTTPS port (gateway.tls), the stats port and each tcp service's listenPort, follows the whole
// cluster through the node's Consul agent, and registers itself in Consul through Registrator.
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { ConsulClient } from "./consul-client";
import { ALL_ADDRESSES, Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { bindAddressOn, Node } from "./nodes";
import { buildImage, withImageDigest } from "./image";
import { bundleController } from "./images/gateway/bundle";
import { CONSUL_TOKEN_FILE, DEFAULT_SEALING_KEY_FILE, STATS_PASSWORD_FILE } from "./images/gateway/controller/env";
import { CONTAINER_HTTPS_PORT, gatewayTerminatesTls } from "./images/gateway/controller/rules";

/** Build context of the gateway image, relative to the project (Pulumi runs programs there). */
export const GATEWAY_IMAGE_CONTEXT = "components/images/gateway";

/** Where the Consul CA is placed in the gateway's container. */
export const GATEWAY_CONSUL_CA_FILE = "/etc/gateway/consul-ca.pem";

/** The port HAProxy listens on in the container (published as gateway.httpPort). */
export const GATEWAY_CONTAINER_HTTP_PORT = 80;
/** HTTPS in the container (published as gateway.httpsPort) when gateway.tls has a source. */
export const GATEWAY_CONTAINER_HTTPS_PORT = CONTAINER_HTTPS_PORT;
/** The sealing key's file in the gateway's container: readable by its user (10080) only. */
export const GATEWAY_SEALING_KEY_FILE = DEFAULT_SEALING_KEY_FILE;
/** The gateway's Consul ACL token, a file readable by its user only (CONSUL_HTTP_TOKEN_FILE). */
export const GATEWAY_CONSUL_TOKEN_FILE = CONSUL_TOKEN_FILE;
/** The stats password, a file readable by its user only (STATS_PASSWORD_FILE). */
export const GATEWAY_STATS_PASSWORD_FILE = STATS_PASSWORD_FILE;
/** The gateway image's user and group (its Dockerfile). */
export const GATEWAY_UID = 10080;

/**
 * Where servers may lie, for the gateway's trust rules (components/images/gateway/controller/model.ts,
 * docs/security.md, "Trust rules"). They change when nodes are added, so they are Pulumi-managed KV keys
 * (components/gateway-kv.ts: service/haproxy/networks/*, writable by Pulumi's token only), not
 * the gateway's environment: adding a node updates a key, it never replaces a gateway.
 *   backends  where instances are registered with their container address (local): the node
 *             network's subnet (sharedNetwork services) and each service network's, as the engine
 *             picked it (components/service-networks.ts); the VPC (aws), else each node's address
 *             (/32): Registrator registers node addresses.
 *   nodes     which of those addresses are nodes, where GATEWAY_NODE_PORTS are refused: the
 *             host's address on the Docker network (local), else the same.
 */
export function backendNetworks(
    settings: Settings,
    nodes: readonly Node[],
    serviceSubnets: pulumi.Input<string[]> = [],
): pulumi.Output<{ backends: string; nodes: string }> {
    return pulumi.all([pulumi.all(nodes.map((n) => n.address)), pulumi.output(serviceSubnets)]).apply(([addresses, subnets]) =>
        networksOf(
            settings,
            nodes.map((n, i) => ({ address: addresses[i]!, subnet: n.subnet, registersContainerAddresses: n.registersContainerAddresses })),
            subnets,
        ),
    );
}

/** backendNetworks once the nodes' addresses are known (pure: `npm run plan` uses it with the addresses it assumes). */
export function networksOf(
    settings: Pick<Settings, "target" | "aws">,
    nodes: readonly { address: string; subnet: string; registersContainerAddresses: boolean }[],
    serviceSubnets: readonly string[] = [],
): { backends: string; nodes: string } {
    const containerAddresses = nodes.some((n) => n.registersContainerAddresses);
    const nodeNetworks = settings.target === "aws" ? [settings.aws.vpcCidr] : [...new Set(nodes.map((n) => n.address))].map((a) => `${a}/32`);
    const backends = containerAddresses ? [...new Set([...nodes.map((n) => n.subnet), ...serviceSubnets])] : nodeNetworks;
    return { backends: backends.join(" "), nodes: nodeNetworks.join(" ") };
}

/**
 * What the trust rules need from the stack that never changes with the node count, as the
 * gateway's environment:
 *   GATEWAY_NODE_PORTS        what the stack publishes on a node: the gateway, its stats, Consul's
 *                             HTTPS API and DNS; and SSH. (Consul's and the Docker API's own ports
 *                             are refused on every address by the gateway itself.)
 *   GATEWAY_TRUSTED_PROXIES   gateway.trustedProxies: whose X-Forwarded-* headers are kept.
 * The gateway's own addresses are read by its entrypoint from the container's interfaces.
 */
export function trustRuleEnv(settings: Settings): string[] {
    const g = settings.gateway;
    // The tcp services' listeners are published on the node too: an instance registered there
    // would be the gateway itself.
    const https = gatewayTerminatesTls(g.tls.source) ? [g.httpsPort] : g.tls.acm ? [g.tls.acm.offloadPort] : [];
    const ports = [...new Set([g.httpPort, ...https, g.statsPort, settings.consul.httpsPort, settings.consul.dnsPort, 22, ...tcpListenPorts(settings)])];
    return [`GATEWAY_NODE_PORTS=${ports.join(" ")}`, `GATEWAY_TRUSTED_PROXIES=${g.trustedProxies.join(" ")}`];
}

/** The listenPort of each tcp service, in the order of the services. */
export function tcpListenPorts(settings: Settings): number[] {
    return settings.services.flatMap((s) => (s.protocol === "tcp" && s.listenPort !== undefined ? [s.listenPort] : []));
}

/**
 * The first port an unprivileged process may bind in the gateway's network namespace: the
 * lowest one it listens on (80, or a tcp service's listenPort below it), so it needs no capability.
 */
export function unprivilegedPortStart(settings: Settings): number {
    return Math.min(GATEWAY_CONTAINER_HTTP_PORT, ...tcpListenPorts(settings));
}

export interface GatewayArgs {
    readonly settings: Settings;
    readonly node: Node;
    /** The node's Consul agent (HTTPS) and the gateway's read-only ACL token. */
    readonly consul: ConsulClient;
    readonly statsPassword: pulumi.Input<string>;
    /** The stack's sealing key (secret), with a TLS source: uploaded as a file the gateway's user alone reads. */
    readonly sealingKey?: pulumi.Input<string>;
    /**
     * The services' networks on the node that the gateway joins (ServiceNetworks.joinedByNodeOf): on
     * one node, every one, as it reaches the replicas at their container addresses. A change of that
     * set (a service added or removed) replaces the gateway's container.
     */
    readonly serviceNetworks?: readonly docker.Network[];
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * The gateway's TLS variables (controller/env.ts): the source, HTTPS's ports, redirect and HSTS,
 * the listeners a load balancer reaches with the PROXY protocol (aws: HTTPS), and what ACME orders.
 */
export function tlsEnv(settings: Settings): string[] {
    const t = settings.gateway.tls;
    if (t.source === "none") return ["GATEWAY_TLS_SOURCE=none"];
    const aws = settings.target === "aws";
    if (t.acm)
        return [
            // The load balancer terminates TLS (ACM) and sends the requests, plain, with the PROXY
            // protocol v2, to the offload listener: HTTPS terminated upstream, published at the same port.
            "GATEWAY_TLS_SOURCE=acm",
            `GATEWAY_HTTPS_PORT=${t.acm.offloadPort}`,
            "GATEWAY_PUBLIC_HTTPS_PORT=443",
            `GATEWAY_TLS_REDIRECT=${t.redirect}`,
            `GATEWAY_HSTS_SECONDS=${t.hstsSeconds}`,
        ];
    return [
        `GATEWAY_TLS_SOURCE=${t.source}`,
        `GATEWAY_HTTPS_PORT=${GATEWAY_CONTAINER_HTTPS_PORT}`,
        // The port users reach HTTPS on (the redirect's, X-Forwarded-Port): the load balancer's 443 on aws.
        `GATEWAY_PUBLIC_HTTPS_PORT=${aws ? 443 : settings.gateway.httpsPort}`,
        `GATEWAY_TLS_REDIRECT=${t.redirect}`,
        `GATEWAY_HSTS_SECONDS=${t.hstsSeconds}`,
        `GATEWAY_SEALING_KEY_FILE=${GATEWAY_SEALING_KEY_FILE}`,
        // The network load balancer passes TLS through with the PROXY protocol v2 (components/aws-nodes.ts).
        ...(aws ? ["GATEWAY_ACCEPT_PROXY=https"] : []),
        ...(t.acme
            ? [
                  `GATEWAY_ACME_DIRECTORY=${t.acme.directoryUrl}`,
                  `GATEWAY_ACME_EMAIL=${t.acme.email}`,
                  `GATEWAY_ACME_HOSTS=${t.hosts.join(" ")}`,
                  `GATEWAY_ACME_RENEW_BEFORE_SECONDS=${t.acme.renewBeforeDays * 86400}`,
                  ...(t.acme.eabKid !== undefined ? [`GATEWAY_ACME_EAB_KID=${t.acme.eabKid}`] : []),
              ]
            : []),
    ];
}

/** An upload only the gateway's user reads (mode 0400, its uid and gid), its content a Pulumi secret. */
export function gatewaySecretFile(file: string, content: pulumi.Input<string>): docker.types.input.ContainerUpload {
    return { file, content: pulumi.secret(content), permissions: "0400", owner: String(GATEWAY_UID), group: String(GATEWAY_UID) };
}

export class Gateway extends pulumi.ComponentResource {
    public readonly image: dockerBuild.Image;
    public readonly container: docker.Container;
    public readonly url: pulumi.Output<string>;
    public readonly statsUrl: pulumi.Output<string>;
    /** With a TLS source: its HTTPS URL (on local by the name the self-signed certificate covers). */
    public readonly httpsUrl?: pulumi.Output<string>;
    /** The address clients reach it on (its tcp listeners too). */
    public readonly host: pulumi.Output<string>;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:gateway:Gateway", name, {}, opts);
        const { settings, node } = args;
        const g = settings.gateway;
        // The gateway's own HTTPS listener (certificates from KV); with acm the load balancer terminates TLS.
        const tlsOn = gatewayTerminatesTls(g.tls.source);
        const offload = g.tls.acm?.offloadPort;
        if (tlsOn && args.sealingKey === undefined) throw new Error(`gateway ${name}: gateway.tls.source ${g.tls.source} needs the stack's sealing key`);

        // The image copies the controller's bundle from its folder: made (or found up to date) first.
        bundleController();
        this.image = buildImage(
            `${name}-image`,
            {
                settings,
                node,
                context: GATEWAY_IMAGE_CONTEXT,
                tag: `service-discovery/gateway:${settings.stack}`,
                buildArgs: { NODE_SOURCE: g.nodeSource },
                dependsOn: [node.network],
            },
            { parent: this },
        );

        // Every port on one address: the loopback on local, else the node's own (bindAddressOn).
        const ip = bindAddressOn(node, g.bindAddress);
        this.container = new docker.Container(
            name,
            {
                name: `${settings.stack}-gateway`,
                hostname: `${node.name}-gateway`,
                image: this.image.ref,
                // No secret here: `docker inspect` shows the environment, and Registrator reads it
                // through the socket proxy. The token and the stats password are files (uploads).
                envs: withImageDigest(
                    this.image,
                    pulumi.output(args.consul.address).apply((consul) => [
                        // The controller: HTTPS verified against the cluster's CA, its own ACL token.
                        `CONSUL_HTTP_ADDR=${consul}`,
                        "CONSUL_HTTP_SSL=true",
                        `CONSUL_CACERT=${GATEWAY_CONSUL_CA_FILE}`,
                        `CONSUL_HTTP_TOKEN_FILE=${GATEWAY_CONSUL_TOKEN_FILE}`,
                        `STATS_USER=${settings.stats.user}`,
                        `STATS_PASSWORD_FILE=${GATEWAY_STATS_PASSWORD_FILE}`,
                        // Registrator: register the gateway itself, never routed (no `rest` tag).
                        "SERVICE_80_NAME=gateway",
                        "SERVICE_1936_NAME=gateway-stats",
                        // Its tcp listeners are the gateway's, not instances of anything: not registered.
                        ...tcpListenPorts(settings).map((p) => `SERVICE_${p}_IGNORE=true`),
                        // Consul checks the registered address: the container's own (local), or the
                        // node's, which the gateway answers on when bound to it or to every address.
                        ...(node.registersContainerAddresses || g.bindAddress === undefined || g.bindAddress === ALL_ADDRESSES
                            ? ["SERVICE_80_CHECK_HTTP=/-/health", "SERVICE_80_CHECK_INTERVAL=5s"]
                            : []),
                        ...trustRuleEnv(settings),
                        ...tlsEnv(settings),
                        ...(tlsOn ? [`SERVICE_${GATEWAY_CONTAINER_HTTPS_PORT}_NAME=gateway-https`] : []),
                        // The offload listener takes the PROXY protocol only: not a service Consul could check.
                        ...(offload !== undefined ? [`SERVICE_${offload}_IGNORE=true`] : []),
                        // The port users reach the HTTP listener on, the X-Forwarded-Port the gateway
                        // sets: the load balancer's 80 on aws, else the published port.
                        `GATEWAY_PUBLIC_HTTP_PORT=${settings.target === "aws" ? 80 : g.httpPort}`,
                    ]),
                ),
                // The image runs as a non-root user (its Dockerfile). It still binds port 80 (and any
                // lower tcp listenPort) in its own network namespace: ports from the lowest one it
                // binds up are unprivileged there. No capability is needed, so none is kept, and
                // no-new-privileges stops any gain through setuid or file capabilities (which is also
                // why those could not be used to bind port 80).
                sysctls: { "net.ipv4.ip_unprivileged_port_start": String(unprivilegedPortStart(settings)) },
                capabilities: { drops: ["ALL"] },
                securityOpts: ["no-new-privileges:true"],
                uploads: [
                    { file: GATEWAY_CONSUL_CA_FILE, content: args.consul.caPem, permissions: "0644" },
                    // Secrets are files for the gateway's user alone, never environment variables
                    // (which `docker inspect` shows): its Consul token, the stats password and, with
                    // TLS, the sealing key that opens the certificates' keys in KV.
                    gatewaySecretFile(GATEWAY_CONSUL_TOKEN_FILE, args.consul.token),
                    gatewaySecretFile(GATEWAY_STATS_PASSWORD_FILE, args.statsPassword),
                    ...(tlsOn ? [gatewaySecretFile(GATEWAY_SEALING_KEY_FILE, args.sealingKey!)] : []),
                ],
                ports: [
                    { internal: GATEWAY_CONTAINER_HTTP_PORT, external: g.httpPort, ip, protocol: "tcp" },
                    ...(tlsOn ? [{ internal: GATEWAY_CONTAINER_HTTPS_PORT, external: g.httpsPort, ip, protocol: "tcp" }] : []),
                    // acm: the offload listener, on the same port inside and out (the load balancer's only).
                    ...(offload !== undefined ? [{ internal: offload, external: offload, ip, protocol: "tcp" }] : []),
                    { internal: 1936, external: g.statsPort, ip, protocol: "tcp" },
                    // Each tcp service's listener, on the same port inside and out.
                    ...tcpListenPorts(settings).map((p) => ({ internal: p, external: p, ip, protocol: "tcp" })),
                ],
                // The node network first (the Consul agent, by name; its published ports), then each
                // service network it routes to. Registrator v7 -internal registers the gateway's own
                // service (not routed) with the address of any one of them; the agent checks it there.
                networksAdvanced: [{ name: node.network.name, aliases: ["gateway"] }, ...(args.serviceNetworks ?? []).map((n) => ({ name: n.name }))],
                restart: "unless-stopped",
                // The controller (Node.js) is the container's main process and HAProxy its child: a
                // minimal init as process 1 reaps whatever the master leaves if it dies.
                init: true,
                ...LOG_LIMITS,
                healthcheck: {
                    // bash, not sh: the image's /bin/sh (dash) has no /dev/tcp.
                    tests: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /-/health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q 200 <&3"],
                    interval: "5s",
                    timeout: "2s",
                    retries: 3,
                    startPeriod: "5s",
                },
                // Created means healthy (HAProxy answers /-/health): the next edge node's gateway, which
                // depends on this one, is replaced only then (index.ts).
                wait: true,
                waitTimeout: 120,
            },
            {
                parent: this,
                provider: node.provider,
                dependsOn: [...node.ready, ...(args.dependsOn ?? [])],
                // The name is fixed: a replacement (a rebuilt image, new log limits) must remove the
                // old container before creating the new.
                deleteBeforeReplace: true,
            },
        );

        const host =
            settings.target !== "local"
                ? node.publicAddress
                : pulumi.output(g.bindAddress === undefined || g.bindAddress === ALL_ADDRESSES ? "127.0.0.1" : g.bindAddress);
        this.host = host;
        this.url = pulumi.interpolate`http://${host}${g.httpPort === 80 ? "" : `:${g.httpPort}`}`;
        this.statsUrl = pulumi.interpolate`http://${host}:${g.statsPort}/`;
        if (tlsOn)
            this.httpsUrl = pulumi.interpolate`https://${settings.target === "local" ? "localhost" : host}${g.httpsPort === 443 ? "" : `:${g.httpsPort}`}`;

        this.registerOutputs({ url: this.url, httpsUrl: this.httpsUrl, statsUrl: this.statsUrl, imageRef: this.image.ref });
    }
}
