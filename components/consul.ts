// Consul: service registry and KV store. One agent per node: servers on the first
// `consul.servers` nodes (1, or 3 from three nodes on, always odd), client agents on the
// rest, joined with retry-join (cloud auto-join by tag on AWS, server addresses elsewhere).
// Every node's containers reach their local agent as `consul:8500`. Data lives on a volume so
// the KV store survives a container restart; gossip is encrypted with a generated key.
import * as consul from "@pulumi/consul";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { Node } from "./hosts";

export interface ConsulClusterArgs {
    readonly settings: Settings;
    readonly nodes: readonly Node[];
    readonly encryptKey: pulumi.Input<string>;
}

/** Name other containers reach the node's Consul agent by, on the node's network. */
export const CONSUL_HOST = "consul";

export class ConsulCluster extends pulumi.ComponentResource {
    /** One agent container per node, in node order; the first `servers` are servers. */
    public readonly agents: docker.Container[];
    public readonly servers: number;
    /** Address for containers on any node's network (their local agent). */
    public readonly internalAddress: pulumi.Output<string>;
    /** Address of the first server's HTTP API from the machine running Pulumi. */
    public readonly apiUrl: pulumi.Output<string>;
    public readonly uiUrl: pulumi.Output<string>;
    /** A Consul provider for the cluster, for resources kept in its KV store. */
    public readonly provider: consul.Provider;

    constructor(name: string, args: ConsulClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:consul:ConsulCluster", name, {}, opts);
        const { settings, nodes } = args;
        const c = settings.consul;
        this.servers = c.servers;
        const multiNode = nodes.length > 1;
        const serverAddresses = nodes.slice(0, c.servers).map((n) => n.address);
        const cluster = `${settings.project}-${settings.stack}`;

        this.agents = nodes.map((node) => {
            const isServer = node.index <= c.servers;
            const dockerOpts = { parent: this, provider: node.provider, dependsOn: node.ready };
            const image = new docker.RemoteImage(`${name}-${node.name}-image`, { name: c.image, keepLocally: true }, dockerOpts);
            const volume = new docker.Volume(`${name}-${node.name}-data`, { name: `${settings.stack}-consul-data` }, dockerOpts);

            const join = settings.target === "aws"
                ? pulumi.output([`-retry-join=provider=aws tag_key=consul-cluster tag_value=${cluster}`])
                : pulumi.all(serverAddresses).apply((addresses) => addresses.filter((_, i) => i + 1 !== node.index).map((a) => `-retry-join=${a}`));
            const command = pulumi.all([args.encryptKey, node.address, join]).apply(([key, address, joins]) => [
                "agent",
                ...(isServer ? ["-server", `-bootstrap-expect=${c.servers}`, "-ui"] : []),
                "-data-dir=/consul/data",
                `-datacenter=${c.datacenter}`,
                `-node=${multiNode ? node.name : `${settings.stack}-consul`}`,
                "-client=0.0.0.0",
                `-encrypt=${key}`,
                // The gateway keeps one blocking query per routed service open; the default
                // limit of 200 connections per client would cap it at ~200 services.
                `-hcl=limits { http_max_conns_per_client = ${c.maxConnsPerClient} }`,
                // Across hosts, agents gossip through ports published on the node address.
                ...(multiNode ? [`-advertise=${address}`, ...joins] : []),
            ]);
            const clusterPorts = multiNode ? [
                { internal: 8300, external: 8300, ip: node.address, protocol: "tcp" },
                { internal: 8301, external: 8301, ip: node.address, protocol: "tcp" },
                { internal: 8301, external: 8301, ip: node.address, protocol: "udp" },
            ] : [];

            return new docker.Container(`${name}-${node.name}`, {
                name: `${settings.stack}-consul`,
                hostname: `${settings.stack}-consul`,
                image: image.imageId,
                command,
                envs: ["SERVICE_IGNORE=true"], // Registrator: Consul is not a routed service
                ports: [
                    { internal: 8500, external: c.httpPort, ip: c.bindAddress, protocol: "tcp" },
                    { internal: 8600, external: c.dnsPort, ip: c.bindAddress, protocol: "udp" },
                    ...clusterPorts,
                ],
                volumes: [{ volumeName: volume.name, containerPath: "/consul/data" }],
                networksAdvanced: [{ name: node.network.name, aliases: [CONSUL_HOST] }],
                restart: "unless-stopped",
                healthcheck: {
                    // Healthy once the agent sees a cluster with a leader: `consul info` passes
                    // seconds earlier, and a KV write then is refused with "No cluster leader".
                    tests: ["CMD", "consul", "catalog", "nodes"],
                    interval: "2s", timeout: "2s", retries: 30, startPeriod: "2s",
                },
                // Wait for a healthy agent: the KV keys are written right after.
                wait: true,
                waitTimeout: 120,
            }, dockerOpts);
        });

        this.internalAddress = pulumi.output(`${CONSUL_HOST}:8500`);
        const first = nodes[0];
        this.apiUrl = settings.target === "local"
            ? pulumi.output(`http://${c.bindAddress === "0.0.0.0" ? "127.0.0.1" : c.bindAddress}:${c.httpPort}`)
            : pulumi.interpolate`http://${first.publicAddress}:${c.httpPort}`;
        this.uiUrl = pulumi.interpolate`${this.apiUrl}/ui/`;
        this.provider = new consul.Provider(`${name}-provider`, {
            address: this.apiUrl,
            datacenter: c.datacenter,
        }, { parent: this, dependsOn: this.agents.slice(0, c.servers) });

        this.registerOutputs({ internalAddress: this.internalAddress, apiUrl: this.apiUrl, uiUrl: this.uiUrl, servers: this.servers });
    }
}
