// The Docker hosts ("nodes") the stack runs on, behind one interface: a Docker provider,
// an address other nodes and the gateway reach published ports on, and the node's network.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";

export interface Node {
    /** Stable name; also the hostname Registrator puts in service IDs. */
    readonly name: string;
    readonly provider: docker.Provider;
    /** Address published service ports are bound to and registered with. */
    readonly address: pulumi.Output<string>;
    /** The user-defined bridge network the stack's containers share (DNS by name). */
    readonly network: docker.Network;
}

export interface HostsArgs {
    readonly settings: Settings;
}

export class Hosts extends pulumi.ComponentResource {
    public readonly nodes: Node[];

    constructor(name: string, args: HostsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:hosts:Hosts", name, {}, opts);
        const { settings } = args;

        // local: the Docker engine of the machine running Pulumi (DOCKER_HOST or the default
        // socket). Published service ports are bound to the network's gateway address, which
        // the host owns: reachable from the gateway and Consul containers, not from the LAN.
        const nodeName = `${settings.stack}-node-1`;
        const provider = new docker.Provider(nodeName, {}, { parent: this });
        const network = new docker.Network(`${nodeName}-network`, {
            name: `${settings.network.name}-${settings.stack}`,
            driver: "bridge",
            ipamConfigs: [{ subnet: settings.network.subnet, gateway: settings.network.gateway }],
        }, { parent: this, provider });
        this.nodes = [{ name: nodeName, provider, address: pulumi.output(settings.network.gateway), network }];

        this.registerOutputs({ nodes: this.nodes.map((n) => ({ name: n.name, address: n.address })) });
    }
}
