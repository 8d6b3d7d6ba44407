// service-discovery: reads the stack config and wires the components together.
import * as pulumi from "@pulumi/pulumi";
import { readSettings } from "./components/config";
import { ConsulCluster } from "./components/consul";
import { ConsulAcl } from "./components/consul-acl";
import { ConsulTls } from "./components/consul-tls";
import { backendNetworks, Gateway } from "./components/gateway";
import { GatewayKv } from "./components/gateway-kv";
import { GatewayTls } from "./components/gateway-tls";
import { Nodes } from "./components/nodes";
import { PerNode } from "./components/per-node";
import { Registrator } from "./components/registrator";
import { StackSecrets } from "./components/secrets";
import { VersionedService } from "./components/service";
import { gatewayTerminatesTls } from "./components/images/gateway/controller/rules";
import { ServiceNetworks } from "./components/service-networks";
import { suspendStackTraces } from "./components/stack-traces";

const settings = readSettings();
// The SDK captures a stack trace per promise of every resource declared below, over half of the
// evaluation's time at 100 nodes: off while the resources are declared (components/stack-traces.ts).
const resumeStackTraces = suspendStackTraces();

const secrets = new StackSecrets("secrets", {
    statsPassword: settings.stats.password,
    consulEncryptKey: settings.consul.encryptKey,
    consulManagementToken: settings.consul.managementToken,
    // The sealing key opens the certificates' keys in KV: none with acm (the load balancer holds the certificate).
    sealing: gatewayTerminatesTls(settings.gateway.tls.source),
});
// Named "hosts" for the URNs and resource names of existing stacks (its children are named after it).
const targetNodes = new Nodes("hosts", { settings });

// Each service's own network on each node that runs its replicas (components/service-networks.ts).
const serviceNetworks = new ServiceNetworks("service-networks", { settings, nodes: targetNodes.nodes });

const tls = new ConsulTls("consul-tls", { settings, nodes: targetNodes.nodes, servers: settings.consul.servers });
const consul = new ConsulCluster("consul", {
    settings,
    nodes: targetNodes.nodes,
    tls,
    encryptKey: secrets.consulEncryptKey,
    managementToken: secrets.consulManagementToken,
    serviceNetworksOn: (node) => serviceNetworks.joinedByNodeOf(node),
});
const acl = new ConsulAcl("consul-acl", { settings, nodes: targetNodes.nodes, cluster: consul, managementToken: secrets.consulManagementToken });

// Whatever runs on a node is found by the node (consul.agentOn(node), registrators.on(node)),
// never by position: gateways and replicas run on some nodes only.
// One Registrator per node, talking to that node's Consul agent once the agent has its token.
const registrators = PerNode.of(
    "Registrator",
    targetNodes.nodes,
    (node) =>
        new Registrator(`registrator-${node.name}`, {
            settings,
            node,
            consul: { socketVolume: consul.socketVolumeOn(node), token: acl.registratorToken },
            dependsOn: [consul.agentOn(node), acl.agentTokenSetOn(node)],
        }),
);

const gatewayKv = new GatewayKv("haproxy-settings", {
    haproxy: settings.haproxy,
    services: settings.services,
    networks: backendNetworks(settings, targetNodes.nodes, serviceNetworks.registeredSubnets(targetNodes.nodes)),
    routeUndeclared: settings.gateway.routeUndeclared,
    provider: acl.kvProvider,
});

// The certificates of the HTTPS listeners (gateway.tls), in KV for every gateway: the stack's own
// CA (self-signed) or the operator's certificate (provided); with acme the gateways order their own;
// with acm the load balancer terminates TLS (components/aws-nodes.ts) and the gateways hold no certificate.
const gatewayTls = gatewayTerminatesTls(settings.gateway.tls.source)
    ? new GatewayTls("gateway-tls", { settings, sealingKey: secrets.gatewaySealingKey!, provider: acl.kvProvider })
    : undefined;

// The gateways one after another: each waits for the previous one's container (healthy), so a change
// that replaces them all (a rotated Consul token is an uploaded file; a rebuilt image) never takes
// every gateway down at once: `pulumi up` replaces them one at a time (docs/operations.md, "Lifecycles").
const gateways: Gateway[] = [];
for (const node of settings.edgeNodes.map((n) => targetNodes.numbered(n))) {
    const previous = gateways.at(-1);
    gateways.push(
        new Gateway(`gateway-${node.name}`, {
            settings,
            node,
            statsPassword: secrets.statsPassword,
            ...(secrets.gatewaySealingKey ? { sealingKey: secrets.gatewaySealingKey } : {}),
            consul: { address: consul.internalAddress, caPem: consul.caPem, token: acl.gatewayToken },
            serviceNetworks: serviceNetworks.joinedByNodeOf(node),
            dependsOn: [
                consul.agentOn(node),
                acl.agentTokenSetOn(node),
                registrators.on(node).container,
                gatewayKv.keys,
                ...(gatewayTls?.keys ? [gatewayTls.keys] : []),
                ...(previous ? [previous.container] : []),
            ],
        }),
    );
}

// Each replica starts once its own node's agent has its token and its Registrator runs.
const services = settings.services.map(
    (service) =>
        new VersionedService(`service-${service.consulName}`, {
            settings,
            service,
            nodes: targetNodes.nodes,
            networks: serviceNetworks,
            dependsOnNode: (node) => [acl.agentTokenSetOn(node), registrators.on(node).container],
        }),
);
resumeStackTraces();

/** The entry point: the load balancer on AWS (HTTPS), else the first edge node's gateway. */
export const gatewayUrl = targetNodes.loadBalancerDns
    ? pulumi.interpolate`${settings.gateway.tls.source !== "none" ? "https" : "http"}://${targetNodes.loadBalancerDns}`
    : gateways[0].url;
/** With a TLS source: HTTPS through the first edge node's gateway (or the load balancer). */
export const gatewayHttpsUrl = targetNodes.loadBalancerDns ? gatewayUrl : gateways[0].httpsUrl;
/** The stack's gateway CA when gateway.tls.source is self-signed: `curl --cacert` (docs/security.md). */
export const gatewayCaPem = gatewayTls?.caPem;
export const gatewayUrls = pulumi.all(gateways.map((g) => g.url));
/** URL of each http service version through the gateway, by Consul service name. */
export const serviceUrls = pulumi.all(
    Object.fromEntries(
        services.flatMap((s, i) =>
            settings.services[i].protocol === "tcp" ? [] : [[settings.services[i].consulName, pulumi.interpolate`${gatewayUrl}${s.path}/`]],
        ),
    ),
);
/** Each tcp service's listener on the first edge node's gateway (host:listenPort), by Consul service name. */
export const tcpEndpoints = pulumi.all(
    Object.fromEntries(
        settings.services.flatMap((s) =>
            s.protocol === "tcp" && s.listenPort !== undefined ? [[s.consulName, pulumi.interpolate`${gateways[0].host}:${s.listenPort}`]] : [],
        ),
    ),
);
export const statsUrl = gateways[0].statsUrl;
export const statsUser = settings.stats.user;
export const statsPassword = secrets.statsPassword;
export const consulUiUrl = consul.uiUrl;
export const nodes = pulumi.all(targetNodes.nodes.map((n) => pulumi.all({ name: n.name, address: n.address, consulServer: n.index <= consul.servers })));
/** The CA of the Consul cluster: `curl --cacert`, or import it to open the UI without a warning. */
export const consulCaPem = consul.caPem;
/** The operators' Consul token (secret, read-only: components/consul-policies.ts): the UI's login and `npm run operator`'s. */
export const consulOperatorToken = acl.operatorToken;
/** Consul's management token (secret): Pulumi's own, and break-glass only (docs/security.md). */
export const consulManagementToken = secrets.consulManagementToken;
