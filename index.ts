// service-discovery: reads the stack config and wires the components together.
import * as pulumi from "@pulumi/pulumi";
import { readSettings } from "./components/config";
import { ConsulServer } from "./components/consul";
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
const [node] = hosts.nodes;

const consul = new ConsulServer("consul", { settings, node, encryptKey: secrets.consulEncryptKey });

const registrators = hosts.nodes.map((n) => new Registrator(`registrator-${n.name}`, {
    settings, node: n, consulAddress: consul.internalAddress, dependsOn: [consul.container],
}));

new GatewaySettings("haproxy-settings", { haproxy: settings.haproxy, provider: consul.provider });

const gateway = new Gateway("gateway", {
    settings, node, consulAddress: consul.internalAddress, statsPassword: secrets.statsPassword,
    dependsOn: [consul.container, ...registrators.map((r) => r.container)],
});

const services = settings.services.map((service) => new VersionedService(`service-${service.consulName}`, {
    settings, service, nodes: hosts.nodes,
    dependsOn: [consul.container, ...registrators.map((r) => r.container)],
}));

export const gatewayUrl = gateway.url;
export const statsUrl = gateway.statsUrl;
export const statsUser = settings.stats.user;
export const statsPassword = secrets.statsPassword;
export const consulUiUrl = consul.uiUrl;
/** URL of each service version through the gateway, by Consul service name. */
export const serviceUrls = pulumi.all(Object.fromEntries(
    services.map((s, i) => [settings.services[i].consulName, pulumi.interpolate`${gateway.url}${s.path}/`]),
));
