// Consul: service registry and KV store. One agent per node: servers on the first
// `consul.servers` nodes (1, or 3 from three nodes on, always odd), client agents on the
// rest, joined with retry-join to the servers' addresses (or cloud auto-join by tag on AWS when
// chosen). Secure by default: ACLs with default deny (components/consul-acl.ts), TLS on RPC and
// on the HTTP API (components/consul-tls.ts), encrypted gossip. Each agent's configuration is a
// file uploaded into its container (components/consul-agent-config.ts): the gossip key and the
// management token never appear in a command line or the container's environment.
// Every node's containers reach their local agent as https://consul:8501; plain HTTP answers
// only on the agent's own loopback. Data lives on a volume so the state survives a restart.
//
// Rolling replacement: an agent's container keeps its fixed name, so a change that replaces it
// (a new consul.image, a new setting in its config) deletes it before creating it again. The
// servers are chained so that a `pulumi up` never stops two at once: each server has a gate (a
// local command, components/local-commands/consul-server-ready.mjs) that waits until that server
// is back among the raft voters with a leader and every server healthy, and whose triggers hold
// the server's container id (replaced with it, run again); server i+1's container depends on
// server i's gate, the client agents on the last server's gate (servers first, then clients).
// Only dependsOn points at a gate, never an input: nothing is replaced because a gate is.
import * as command from "@pulumi/command";
import * as consul from "@pulumi/consul";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { addressesIn, agentConfig, CONSUL_FILE_OWNER, CONSUL_HOST, CONSUL_PATHS, CONSUL_PORTS, SERVER_READY_SCRIPT } from "./consul-agent-config";
import { ConsulTls } from "./consul-tls";
import { ALL_ADDRESSES, Settings } from "./config";
import { LOG_LIMITS } from "./container-defaults";
import { bindAddressOn, Node } from "./nodes";
import { PerNode } from "./per-node";

export { CONSUL_HOST } from "./consul-agent-config";

export interface ConsulClusterArgs {
    readonly settings: Settings;
    readonly nodes: readonly Node[];
    /** Gossip encryption key (secret). */
    readonly encryptKey: pulumi.Input<string>;
    /** The initial management token the servers bootstrap the ACL system with (secret UUID). */
    readonly managementToken: pulumi.Input<string>;
    readonly tls: ConsulTls;
    /**
     * The services' networks the agent of a node joins (ServiceNetworks.joinedByNodeOf): on one
     * node, every one, as it checks the replicas at their container addresses; it then listens on
     * the node network only. A change of that set replaces the agent's container.
     */
    readonly serviceNetworksOn?: (node: Node) => readonly docker.Network[];
}

/** How long `docker stop` waits for a Consul agent before SIGKILL when the stack removes or replaces it. */
export const CONSUL_STOP_GRACE_SECONDS = 15;

export class ConsulCluster extends pulumi.ComponentResource {
    public readonly servers: number;
    /** HTTPS address of the node-local agent for containers on any node's network. */
    public readonly internalAddress: pulumi.Output<string>;
    /** HTTPS URL of the first server's API from the machine running Pulumi. */
    public readonly apiUrl: pulumi.Output<string>;
    public readonly uiUrl: pulumi.Output<string>;
    /** The CA the agents' certificates are signed by: API clients verify with it. */
    public readonly caPem: pulumi.Output<string>;
    /** A Consul provider with the management token: creates the ACL policies and tokens. */
    public readonly provider: consul.Provider;
    private readonly agents = new PerNode<docker.Container>("Consul agent");
    private readonly gates = new PerNode<command.local.Command>("Consul server gate");
    private readonly apiUrls = new PerNode<pulumi.Output<string>>("Consul agent");
    private readonly nodeNames = new PerNode<string>("Consul agent");
    private readonly runVolumes = new PerNode<pulumi.Output<string>>("Consul agent");

    constructor(name: string, args: ConsulClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:consul:ConsulCluster", name, {}, opts);
        const { settings, nodes } = args;
        const c = settings.consul;
        this.servers = c.servers;
        const multiNode = nodes.length > 1;
        const serverAddresses = nodes.slice(0, c.servers).map((n) => n.address);
        const cluster = `${settings.project}-${settings.stack}`;
        this.caPem = args.tls.caPem;
        const nodeNameOf = (node: Node): string => (multiNode ? node.name : `${settings.stack}-consul`);
        const apiUrlOf = (node: Node): pulumi.Output<string> =>
            settings.target === "local"
                ? pulumi.output(`https://${c.bindAddress === undefined || c.bindAddress === ALL_ADDRESSES ? "127.0.0.1" : c.bindAddress}:${c.httpsPort}`)
                : pulumi.interpolate`https://${node.publicAddress}:${c.httpsPort}`;
        // The servers in the order a rolling replacement takes them; each one's gate, once declared.
        const serverNodes = [...nodes].filter((n) => n.index <= c.servers).sort((a, b) => a.index - b.index);
        let previousGate: command.local.Command | undefined;

        for (const node of [...nodes].sort((a, b) => a.index - b.index)) {
            const isServer = node.index <= c.servers;
            const nodeName = nodeNameOf(node);
            this.nodeNames.set(node, nodeName);
            const dockerOpts = { parent: this, provider: node.provider, dependsOn: node.ready };
            const image = new docker.RemoteImage(`${name}-${node.name}-image`, { name: c.image, keepLocally: true }, dockerOpts);
            const volume = new docker.Volume(`${name}-${node.name}-data`, { name: `${settings.stack}-consul-data` }, dockerOpts);
            // The agent's HTTP socket, shared with the node's Registrator: in memory, owned by
            // the consul user (a new volume is root's, and Consul runs unprivileged).
            const run = new docker.Volume(
                `${name}-${node.name}-run`,
                {
                    name: `${settings.stack}-consul-run`,
                    driver: "local",
                    driverOpts: { type: "tmpfs", device: "tmpfs", o: `uid=${CONSUL_FILE_OWNER.uid},gid=${CONSUL_FILE_OWNER.gid},mode=0750` },
                },
                dockerOpts,
            );
            this.runVolumes.set(node, run.name);
            const certificate = args.tls.certificateFor(node);
            const serviceNetworks = args.serviceNetworksOn?.(node) ?? [];
            // On the services' networks too (it checks their replicas there): its listeners, gossip
            // and RPC on its node-network address only (several private addresses would also stop
            // Consul from picking one itself).
            const listenOn = serviceNetworks.length > 0 ? addressesIn(node.subnet) : undefined;

            const retryJoin =
                c.join === "aws-tags"
                    ? pulumi.output([`provider=aws tag_key=consul-cluster tag_value=${cluster}`])
                    : pulumi.all(serverAddresses).apply((addresses) => addresses.filter((_, i) => i + 1 !== node.index));
            const config = pulumi.secret(
                pulumi.all([args.encryptKey, args.managementToken, node.address, retryJoin]).apply(([key, token, address, joins]) =>
                    JSON.stringify(
                        agentConfig({
                            datacenter: c.datacenter,
                            nodeName,
                            server: isServer,
                            bootstrapExpect: isServer ? c.servers : undefined,
                            encryptKey: key,
                            initialManagementToken: isServer ? token : undefined,
                            retryJoin: multiNode ? joins : [],
                            // Across hosts, agents gossip through ports published on the node address.
                            advertiseAddr: multiNode ? address : undefined,
                            maxConnsPerClient: c.maxConnsPerClient,
                            ...(listenOn ? { bindAddr: listenOn, clientAddr: listenOn } : {}),
                        }),
                        null,
                        2,
                    ),
                ),
            );
            const secretFile = { permissions: "0600", owner: CONSUL_FILE_OWNER.uid, group: CONSUL_FILE_OWNER.gid };
            const clusterPorts = multiNode
                ? [
                      { internal: CONSUL_PORTS.server, external: CONSUL_PORTS.server, ip: node.address, protocol: "tcp" },
                      { internal: CONSUL_PORTS.serfLan, external: CONSUL_PORTS.serfLan, ip: node.address, protocol: "tcp" },
                      { internal: CONSUL_PORTS.serfLan, external: CONSUL_PORTS.serfLan, ip: node.address, protocol: "udp" },
                  ]
                : [];

            const container = new docker.Container(
                `${name}-${node.name}`,
                {
                    name: `${settings.stack}-consul`,
                    hostname: `${settings.stack}-consul`,
                    image: image.imageId,
                    // The image's entrypoint adds -data-dir and -config-dir (which holds agent.json)
                    // and runs Consul as its unprivileged user.
                    command: ["agent"],
                    envs: [
                        "SERVICE_IGNORE=true", // Registrator: Consul is not a routed service
                        // The user the secret files are uploaded for (the image's `consul` user).
                        `CONSUL_UID=${CONSUL_FILE_OWNER.uid}`,
                        `CONSUL_GID=${CONSUL_FILE_OWNER.gid}`,
                    ],
                    uploads: [
                        { file: CONSUL_PATHS.configFile, content: config, ...secretFile },
                        { file: CONSUL_PATHS.keyFile, content: certificate.keyPem, ...secretFile },
                        { file: CONSUL_PATHS.certFile, content: certificate.certPem, permissions: "0644" },
                        { file: CONSUL_PATHS.caFile, content: args.tls.caPem, permissions: "0644" },
                    ],
                    ports: [
                        // The loopback on local, else the node's own address (bindAddressOn), which Pulumi reaches.
                        { internal: CONSUL_PORTS.https, external: c.httpsPort, ip: bindAddressOn(node, c.bindAddress), protocol: "tcp" },
                        { internal: CONSUL_PORTS.dns, external: c.dnsPort, ip: bindAddressOn(node, c.bindAddress), protocol: "udp" },
                        ...clusterPorts,
                    ],
                    volumes: [
                        { volumeName: volume.name, containerPath: CONSUL_PATHS.dataDir },
                        { volumeName: run.name, containerPath: CONSUL_PATHS.runDir },
                    ],
                    // Named only on the node network, where it listens; on each service network it joins
                    // (one node) it only connects out, to check the replicas.
                    networksAdvanced: [{ name: node.network.name, aliases: [CONSUL_HOST] }, ...serviceNetworks.map((n) => ({ name: n.name }))],
                    restart: "unless-stopped",
                    // Stopped (SIGTERM) before it is removed, not killed: a client agent then leaves the
                    // cluster (Consul's leave_on_terminate, on for clients), so a node taken out of the
                    // stack is "left" with its services deregistered, not a failed member whose
                    // registrations stay until Consul reaps it (72 h); a server shuts down cleanly and,
                    // not leaving (off for servers), keeps its raft seat for its replacement.
                    destroyGraceSeconds: CONSUL_STOP_GRACE_SECONDS,
                    ...LOG_LIMITS,
                    healthcheck: {
                        // Healthy once the agent sees a cluster with a leader: `consul info` passes
                        // seconds earlier, and a KV write then is refused with "No cluster leader".
                        // Over the loopback HTTP listener; the anonymous token may read the catalog.
                        tests: ["CMD", "consul", "catalog", "nodes"],
                        interval: "2s",
                        timeout: "2s",
                        retries: 30,
                        startPeriod: "2s",
                    },
                    // Wait for a healthy agent (a leader known): the ACL policies and KV keys are
                    // written right after. Not a server followed by others: on the first `pulumi up`
                    // no leader exists before the later servers run, and they wait for its gate.
                    wait: !isServer || node.index === c.servers,
                    waitTimeout: 120,
                    // A fixed name: the old container goes first (its data volume stays).
                },
                // After the previous server's gate (a client: the last server's): never two servers down at once.
                { ...dockerOpts, dependsOn: [...node.ready, ...(previousGate ? [previousGate] : [])], deleteBeforeReplace: true },
            );
            this.agents.set(node, container);
            this.apiUrls.set(node, apiUrlOf(node));
            if (isServer) {
                const position = serverNodes.indexOf(node);
                const last = position === serverNodes.length - 1;
                // The server replaced next should not lead when this gate lets it go; after the
                // last one, the first (where the next rolling replacement starts).
                const avoid = serverNodes.length > 1 ? serverNodes[last ? 0 : position + 1] : undefined;
                const gate = new command.local.Command(
                    `${name}-${node.name}-ready`,
                    {
                        create: `node ${SERVER_READY_SCRIPT}`,
                        environment: {
                            CONSUL_HTTP_ADDR: apiUrlOf(node),
                            CONSUL_CACERT_PEM: args.tls.caPem,
                            CONSUL_HTTP_TOKEN: pulumi.secret(args.managementToken),
                            CONSUL_NODE: nodeName,
                            CONSUL_SERVERS: String(c.servers),
                            CONSUL_MAY_BOOTSTRAP: String(!last),
                            CONSUL_OTHER_ADDRS: pulumi.all(serverNodes.filter((n) => n !== node).map(apiUrlOf)).apply((urls) => urls.join(",")),
                            ...(avoid ? { CONSUL_AVOID_LEADER: nodeNameOf(avoid) } : {}),
                        },
                        // A new container (a replacement): wait for it again. Nothing else replaces the gate.
                        triggers: [container.id],
                    },
                    { parent: this, dependsOn: [container] },
                );
                this.gates.set(node, gate);
                previousGate = gate;
            }
        }

        this.internalAddress = pulumi.output(`${CONSUL_HOST}:${CONSUL_PORTS.https}`);
        this.apiUrl = this.apiUrlOn(nodes[0]);
        this.uiUrl = pulumi.interpolate`${this.apiUrl}/ui/`;
        this.provider = new consul.Provider(
            `${name}-provider`,
            {
                address: this.apiUrl,
                scheme: "https",
                caPem: this.caPem,
                datacenter: c.datacenter,
                token: pulumi.secret(args.managementToken),
            },
            // Every server back and healthy (the last gate waits for the whole cluster).
            { parent: this, dependsOn: serverNodes.flatMap((n) => [this.agentOn(n), this.serverReadyOn(n)]) },
        );

        this.registerOutputs({ internalAddress: this.internalAddress, apiUrl: this.apiUrl, uiUrl: this.uiUrl, servers: this.servers, caPem: this.caPem });
    }

    /** The agent container on `node`. */
    agentOn(node: Node): docker.Container {
        return this.agents.on(node);
    }

    /** Done once the server on `node` is back among the raft voters with every server healthy (a server's node only). */
    serverReadyOn(node: Node): command.local.Command {
        return this.gates.on(node);
    }

    /** The HTTPS API of the agent on `node`, from the machine running Pulumi. */
    apiUrlOn(node: Node): pulumi.Output<string> {
        return this.apiUrls.on(node);
    }

    /** The volume holding the HTTP socket of the agent on `node` (for the node's Registrator). */
    socketVolumeOn(node: Node): pulumi.Output<string> {
        return this.runVolumes.on(node);
    }

    /** The Consul node name of the agent on `node` (what its agent token is scoped to). */
    nodeNameOf(node: Node): string {
        return this.nodeNames.on(node);
    }
}
