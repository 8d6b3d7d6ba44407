// The Consul server: service registry and KV store. Dev/local runs one server
// (-bootstrap-expect 1) with UI, HTTP API and DNS; its data lives on a volume so the KV
// store survives a container restart; gossip is encrypted with a generated key.
import * as consul from "@pulumi/consul";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { Node } from "./hosts";

export interface ConsulServerArgs {
    readonly settings: Settings;
    readonly node: Node;
    readonly encryptKey: pulumi.Input<string>;
}

/** Name other containers reach Consul by on the stack network. */
export const CONSUL_HOST = "consul";

export class ConsulServer extends pulumi.ComponentResource {
    public readonly container: docker.Container;
    public readonly dataVolume: docker.Volume;
    /** Address for containers on the stack network. */
    public readonly internalAddress: pulumi.Output<string>;
    /** Address of the HTTP API from the machine running Pulumi. */
    public readonly apiUrl: pulumi.Output<string>;
    public readonly uiUrl: pulumi.Output<string>;
    /** A Consul provider for this server, for resources kept in its KV store. */
    public readonly provider: consul.Provider;

    constructor(name: string, args: ConsulServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:consul:ConsulServer", name, {}, opts);
        const { settings, node } = args;
        const c = settings.consul;
        const dockerOpts = { parent: this, provider: node.provider };

        const image = new docker.RemoteImage(`${name}-image`, { name: c.image, keepLocally: true }, dockerOpts);
        this.dataVolume = new docker.Volume(`${name}-data`, { name: `${settings.stack}-consul-data` }, { ...dockerOpts, retainOnDelete: false });

        this.container = new docker.Container(name, {
            name: `${settings.stack}-consul`,
            hostname: `${settings.stack}-consul`,
            image: image.imageId,
            command: pulumi.all([args.encryptKey]).apply(([key]) => [
                "agent", "-server", "-bootstrap-expect=1", "-ui",
                "-data-dir=/consul/data",
                `-datacenter=${c.datacenter}`,
                `-node=${settings.stack}-consul`,
                "-client=0.0.0.0",
                `-encrypt=${key}`,
                // The gateway keeps one blocking query per routed service open; the default
                // limit of 200 connections per client would cap it at ~200 services.
                `-hcl=limits { http_max_conns_per_client = ${c.maxConnsPerClient} }`,
            ]),
            envs: ["SERVICE_IGNORE=true"], // Registrator: Consul is not a routed service
            ports: [
                { internal: 8500, external: c.httpPort, ip: c.bindAddress, protocol: "tcp" },
                { internal: 8600, external: c.dnsPort, ip: c.bindAddress, protocol: "udp" },
            ],
            volumes: [{ volumeName: this.dataVolume.name, containerPath: "/consul/data" }],
            networksAdvanced: [{ name: node.network.name, aliases: [CONSUL_HOST] }],
            restart: "unless-stopped",
            healthcheck: {
                tests: ["CMD", "consul", "info"],
                interval: "2s", timeout: "2s", retries: 30, startPeriod: "2s",
            },
            // Wait for a healthy agent: the KV keys are written right after.
            wait: true,
            waitTimeout: 120,
        }, dockerOpts);

        this.internalAddress = pulumi.output(`${CONSUL_HOST}:8500`);
        const host = c.bindAddress === "0.0.0.0" ? "127.0.0.1" : c.bindAddress;
        this.apiUrl = pulumi.output(`http://${host}:${c.httpPort}`);
        this.uiUrl = pulumi.interpolate`${this.apiUrl}/ui/`;
        this.provider = new consul.Provider(`${name}-provider`, {
            address: this.apiUrl,
            datacenter: c.datacenter,
        }, { parent: this, dependsOn: [this.container] });

        this.registerOutputs({ internalAddress: this.internalAddress, apiUrl: this.apiUrl, uiUrl: this.uiUrl });
    }
}
