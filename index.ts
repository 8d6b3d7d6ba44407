// service-discovery: reads the stack config and wires the components together.
import * as pulumi from "@pulumi/pulumi";
import { readSettings } from "./components/config";
import { ConsulCluster } from "./components/consul";
import { Gateway } from "./components/gateway";
import { Hosts } from "./components/hosts";
import { Registrator } from "./components/registrator";
import { StackSecrets } from "./components/secrets";
import { VersionedService } from "./components/service";
import { GatewaySettings } from "./components/settings";

const settings = readSettings();

const secrets = new StackSecrets("secrets", {
    statsPassword: settings.stats.password,
    consulEncryptKey: settings.consul.encryptKey,
});
const hosts = new Hosts("hosts", { settings });

const consul = new ConsulCluster("consul", { settings, nodes: hosts.nodes, encryptKey: secrets.consulEncryptKey });

// One Registrator per node, talking to that node's Consul agent.
const registrators = hosts.nodes.map((node, i) => new Registrator(`registrator-${node.name}`, {
    settings, node, consulAddress: consul.internalAddress, dependsOn: [consul.agents[i]],
}));

new GatewaySettings("haproxy-settings", { haproxy: settings.haproxy, provider: consul.provider });

const gateways = settings.edgeNodes.map((n) => new Gateway(`gateway-${hosts.nodes[n - 1].name}`, {
    settings, node: hosts.nodes[n - 1], consulAddress: consul.internalAddress, statsPassword: secrets.statsPassword,
    dependsOn: [consul.agents[n - 1], registrators[n - 1].container],
}));

const services = settings.services.map((service) => new VersionedService(`service-${service.consulName}`, {
    settings, service, nodes: hosts.nodes,
    dependsOn: [...consul.agents, ...registrators.map((r) => r.container)],
}));

/** The entry point: the load balancer on AWS, else the first edge node's gateway. */
export const gatewayUrl = hosts.loadBalancerDns ? pulumi.interpolate`http://${hosts.loadBalancerDns}` : gateways[0].url;
export const gatewayUrls = pulumi.all(gateways.map((g) => g.url));
/** URL of each service version through the gateway, by Consul service name. */
export const serviceUrls = pulumi.all(Object.fromEntries(
    services.map((s, i) => [settings.services[i].consulName, pulumi.interpolate`${gatewayUrl}${s.path}/`]),
));
export const statsUrl = gateways[0].statsUrl;
export const statsUser = settings.stats.user;
export const statsPassword = secrets.statsPassword;
export const consulUiUrl = consul.uiUrl;
export const nodes = pulumi.all(hosts.nodes.map((n) => pulumi.all({ name: n.name, address: n.address, consulServer: n.index <= consul.servers })));
