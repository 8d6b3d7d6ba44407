// A Docker network of its own for each service on each node that runs its replicas
// (docs/security.md, "Contained replicas"): a replica reaches no replica of another service, nor
// the node's Consul agent, gateway listeners on the node network, Registrator or the socket
// proxy; only the gateway reaches it (and, on one node, the Consul agent that checks it).
//   <network.name>-<stack>-svc-<consul name>   bridge; the engine picks its subnet
// Who joins it on a node:
//   - that service's replicas on the node, and nothing else of the services;
//   - where instances are registered with their container addresses (one node, `local`): the
//     gateway, which routes to those addresses, and the Consul agent, which checks them. The
//     agent's listeners are bound to its address on the node network only (components/consul.ts),
//     so a replica that connects to the agent's address on its own network finds nothing listening.
//   - several nodes: nothing else. Replicas are published on the node's address (`-p`), which the
//     gateways and Consul reach through the host. Between nodes, isolation rests on the security
//     group or firewall in front of the node addresses (docs/security.md).
// Docker's isolation rules drop traffic between two bridge networks. The network is not an
// internal one (no route out): on an internal network the engine reports no port of the
// container (NetworkSettings.Ports is empty, measured on Docker 20.10), and Registrator v7 then
// registers nothing ("no published ports"). So a replica keeps its route out, through the host.
// A service with sharedNetwork true has no network of its own: its replicas join the node network.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ServiceSettings, Settings } from "./config";
import { Node } from "./nodes";

/** The name of a service's network on a node (the same on every node: each engine has its own). */
export function serviceNetworkName(settings: Pick<Settings, "network" | "stack">, consulName: string): string {
    return `${settings.network.name}-${settings.stack}-svc-${consulName}`;
}

/** The node each replica of a service runs on: replica i (0-based) on node i mod n. */
export function replicaPlacement<N>(service: Pick<ServiceSettings, "replicas">, nodes: readonly N[]): N[] {
    return Array.from({ length: service.replicas }, (_, i) => nodes[i % nodes.length]!);
}

/** Whether a service's replicas are on a network of their own (no sharedNetwork relaxation). */
export function isolated(service: Pick<ServiceSettings, "sharedNetwork">): boolean {
    return service.sharedNetwork !== true;
}

export interface ServiceNetworksArgs {
    readonly settings: Settings;
    readonly nodes: readonly Node[];
}

export class ServiceNetworks extends pulumi.ComponentResource {
    /** node name -> consul name -> network */
    private readonly byNode = new Map<string, Map<string, docker.Network>>();

    constructor(name: string, args: ServiceNetworksArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:network:ServiceNetworks", name, {}, opts);
        const { settings } = args;
        for (const node of args.nodes) this.byNode.set(node.name, new Map());
        for (const service of settings.services.filter(isolated)) {
            for (const node of new Set(replicaPlacement(service, args.nodes))) {
                const network = new docker.Network(
                    `${node.name}-svc-${service.consulName}-network`,
                    {
                        name: serviceNetworkName(settings, service.consulName),
                        driver: "bridge",
                        // Not internal: Registrator v7 would see no port of the replicas (above).
                        internal: false,
                        // The engine picks its subnet: after the node network, so it never takes that fixed one.
                    },
                    { parent: this, provider: node.provider, dependsOn: [...node.ready, node.network] },
                );
                this.byNode.get(node.name)!.set(service.consulName, network);
            }
        }
        this.registerOutputs({});
    }

    /** The network a replica of `service` on `node` joins: its service's, or the node's with sharedNetwork. */
    replicaNetwork(service: Pick<ServiceSettings, "consulName" | "sharedNetwork">, node: Node): docker.Network {
        if (!isolated(service)) return node.network;
        const network = this.byNode.get(node.name)?.get(service.consulName);
        if (!network) throw new Error(`no network of service ${service.consulName} on node ${node.name}`);
        return network;
    }

    /**
     * The service networks the gateway and the Consul agent of `node` join: all of the node's where
     * instances are registered with their container addresses (they reach and check those), else
     * none (they reach the published ports on the node's address).
     */
    joinedByNodeOf(node: Node): docker.Network[] {
        return node.registersContainerAddresses ? [...(this.byNode.get(node.name)?.values() ?? [])] : [];
    }

    /**
     * The subnets instances are registered in on service networks (the gateway's trust rules:
     * networks/backends), as the engine picked them; only where container addresses are registered.
     */
    registeredSubnets(nodes: readonly Node[]): pulumi.Output<string[]> {
        const subnets = nodes.flatMap((node) =>
            this.joinedByNodeOf(node).map((n) => n.ipamConfigs.apply((c) => (c ?? []).flatMap((x) => (x.subnet ? [x.subnet] : [])))),
        );
        return pulumi.all(subnets).apply((lists) => [...new Set(lists.flat())]);
    }
}
