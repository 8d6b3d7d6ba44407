// The Docker hosts ("nodes") the stack runs on, behind one interface the rest of the
// program uses: a Docker provider, the node's address, its network, and what must be ready
// before its engine is used. Which machines they are is chosen by `target`:
//   local       the engine of the machine running Pulumi (one node)
//   virtualbox  nodeCount docker-machine VMs (VirtualBox driver), reached over TLS
//   hosts       an explicit list of existing Docker hosts (tcp with certificates, or ssh)
//   aws         nodeCount EC2 instances (components/aws-nodes.ts), reached over SSH
// An SSH connection trusts only the node's pinned host key (components/host-keys.ts).
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import * as os from "node:os";
import * as path from "node:path";
import { AwsNodes } from "./aws-nodes";
import { Settings, Target } from "./config";
import { PINNED_SSH_OPTS, pinnedHost } from "./host-keys";

/**
 * How a command run by Pulumi, on the machine running it, reaches a node's engine with the Docker
 * CLI, as the node's Docker provider does (a replica's process limit: components/containment.ts).
 */
export interface EngineEndpoint {
    /**
     * The provider's host: unset for the local engine (the CLI then reads DOCKER_HOST, else the
     * default socket, as the provider does); tcp://; or ssh://user@host[:port].
     */
    readonly host?: pulumi.Input<string>;
    /** With a tcp:// host: the folder of the client certificates (ca.pem, cert.pem, key.pem). */
    readonly certPath?: pulumi.Input<string>;
    /** Whether `host` is an ssh:// URL: the command then runs the node's own Docker CLI over SSH. */
    readonly ssh: boolean;
}

export interface Node {
    /** Stable name, `<stack>-node-<n>`; also the hostname Registrator puts in service IDs. */
    readonly name: string;
    /** 1-based position; decides the Consul role and which replicas land here. */
    readonly index: number;
    readonly provider: docker.Provider;
    /** Where `provider` reaches the engine: how a command run by Pulumi reaches it with the Docker CLI too. */
    readonly engine: EngineEndpoint;
    /** Builds images into this node's engine; undefined for the local engine (the default builder). */
    readonly buildProvider?: dockerBuild.Provider;
    /** Address other nodes and the gateway reach this node's published ports on. */
    readonly address: pulumi.Output<string>;
    /** Address users reach the node on (the gateway, stats, the Consul UI). */
    readonly publicAddress: pulumi.Output<string>;
    /** The user-defined bridge network the node's containers share (DNS by name). */
    readonly network: docker.Network;
    /** The subnet (CIDR) of `network`: the addresses its containers get. */
    readonly subnet: string;
    /**
     * How Registrator registers the service instances of this node. true: with each container's
     * own address on `network` (inside `subnet`) and its container port, nothing published on
     * the host (Registrator `-internal`; a single node, where every gateway shares that network).
     * false: with the node `address` and a host port published on it (Registrator `-ip`), which
     * the gateways of other nodes reach.
     */
    readonly registersContainerAddresses: boolean;
    /** Resources that must exist before the node's engine can be used (VM created, Docker installed). */
    readonly ready: pulumi.Resource[];
}

/**
 * Whether the instances of a target are registered with their container addresses (see
 * `Node.registersContainerAddresses`): only on `local`, one engine whose containers all share
 * one network, so no host-owned address is needed (Docker Desktop, Colima and rootless engines
 * cannot publish on the bridge's gateway address).
 */
export function registersContainerAddresses(target: Target): boolean {
    return target === "local";
}

/**
 * The host address a port is published on, on `node`: the stack's bindAddress, or the node's own
 * address when it sets none (config: bindAddressDefault).
 */
export function bindAddressOn(node: Pick<Node, "address">, bindAddress: string | undefined): pulumi.Output<string> {
    return bindAddress === undefined ? node.address : pulumi.output(bindAddress);
}

export interface NodesArgs {
    readonly settings: Settings;
}

interface Engine {
    readonly host?: pulumi.Input<string>;
    readonly certPath?: string;
    /** Whether `host` is an ssh:// URL. */
    readonly ssh?: boolean;
    readonly sshOpts?: readonly string[];
    readonly address: pulumi.Input<string>;
    readonly publicAddress: pulumi.Input<string>;
    readonly ready: pulumi.Resource[];
}

/**
 * The nodes of every target (one of which is `hosts`, a list of existing Docker hosts).
 * Formerly the `Hosts` component: the alias keeps the URNs of stacks created before the rename
 * (its children's names are built from the instance's name, which the program keeps), so the
 * rename replaces nothing.
 */
export class Nodes extends pulumi.ComponentResource {
    public readonly nodes: Node[];
    /** AWS only: the load balancer in front of the gateways. */
    public readonly loadBalancerDns?: pulumi.Output<string>;

    constructor(name: string, args: NodesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:nodes:Nodes", name, {}, { ...opts, aliases: [...(opts?.aliases ?? []), { type: "service-discovery:hosts:Hosts" }] });
        const { settings } = args;
        const names = Array.from({ length: settings.nodeCount }, (_, i) => `${settings.stack}-node-${i + 1}`);

        let engines: Engine[];
        switch (settings.target) {
            case "local":
                // Nothing of a service is published: the gateway reaches each container on the
                // shared network. The address is the host's on that network (the bridge gateway).
                engines = [{ address: settings.network.gateway, publicAddress: "127.0.0.1", ready: [] }];
                break;
            case "virtualbox":
                engines = names.map((node) => this.virtualMachine(node, settings));
                break;
            case "hosts":
                // An ssh:// host with hostKey: that key, pinned; without: the user's known_hosts decides
                // (an unknown host is refused, nothing is asked or trusted on first use).
                engines = settings.hosts.map((h, i) => ({
                    host: h.hostKey === undefined ? h.host : pinnedHost(h.host, h.hostKey, `${settings.project} ${settings.stack} ${names[i]}`),
                    certPath: h.certPath,
                    sshOpts: h.host.startsWith("ssh://") ? PINNED_SSH_OPTS : undefined,
                    ssh: h.host.startsWith("ssh://"),
                    address: h.address,
                    publicAddress: h.address,
                    ready: [],
                }));
                break;
            case "aws": {
                const aws = new AwsNodes(`${name}-aws`, { settings, nodeNames: names }, { parent: this });
                this.loadBalancerDns = aws.loadBalancerDns;
                engines = aws.instances.map((instance, i) => ({
                    // Over SSH to the public address, or (aws.access ssm) to the instance ID through a
                    // Systems Manager session; the host key Pulumi generated for the node, pinned.
                    host: aws.dockerHosts[i]!,
                    sshOpts: PINNED_SSH_OPTS,
                    ssh: true,
                    address: instance.privateIp,
                    publicAddress: instance.publicIp,
                    ready: [aws.dockerReady[i]],
                }));
                break;
            }
        }

        this.nodes = engines.map((engine, i) => {
            const node = names[i];
            const provider = new docker.Provider(
                node,
                {
                    host: engine.host,
                    certPath: engine.certPath,
                    sshOpts: engine.sshOpts === undefined ? undefined : [...engine.sshOpts],
                },
                { parent: this, dependsOn: engine.ready },
            );
            const buildProvider =
                engine.host === undefined
                    ? undefined
                    : new dockerBuild.Provider(`${node}-build`, { host: engine.host }, { parent: this, dependsOn: engine.ready });
            const network = new docker.Network(
                `${node}-network`,
                {
                    name: `${settings.network.name}-${settings.stack}`,
                    driver: "bridge",
                    ipamConfigs: [{ subnet: settings.network.subnet, gateway: settings.network.gateway }],
                },
                { parent: this, provider, dependsOn: engine.ready },
            );
            return {
                name: node,
                index: i + 1,
                provider,
                engine: { host: engine.host, certPath: engine.certPath, ssh: engine.ssh ?? false },
                buildProvider,
                network,
                ready: engine.ready,
                address: pulumi.output(engine.address),
                publicAddress: pulumi.output(engine.publicAddress),
                subnet: settings.network.subnet,
                registersContainerAddresses: registersContainerAddresses(settings.target),
            };
        });

        this.registerOutputs({ nodes: this.nodes.map((n) => ({ name: n.name, address: n.address })) });
    }

    /** The node with the 1-based number `n`, as the config names nodes (edgeNodes). */
    numbered(n: number): Node {
        const node = this.nodes.find((x) => x.index === n);
        if (!node) throw new Error(`no node number ${n}; the stack has nodes 1 to ${this.nodes.length}`);
        return node;
    }

    /** A docker-machine VM with the VirtualBox driver; its IP is the node address. */
    private virtualMachine(node: string, settings: Settings): Engine {
        const machine = `${settings.project}-${node}`;
        const vb = settings.virtualbox;
        const vm = new command.local.Command(
            `${node}-machine`,
            {
                create: [
                    `docker-machine create --driver virtualbox --virtualbox-cpu-count ${vb.cpus}`,
                    `--virtualbox-memory ${vb.memoryMb} --virtualbox-disk-size ${vb.diskMb} ${machine} >&2`,
                    `&& docker-machine ip ${machine}`,
                ].join(" "),
                delete: `docker-machine rm -y ${machine}`,
            },
            { parent: this },
        );
        const ip = vm.stdout.apply((out) => out.trim());
        return {
            host: pulumi.interpolate`tcp://${ip}:2376`,
            certPath: path.join(os.homedir(), ".docker", "machine", "machines", machine),
            address: ip,
            publicAddress: ip,
            ready: [vm],
        };
    }
}
