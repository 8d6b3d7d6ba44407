// Registrator on a node: watches the Docker engine through its socket (read-only) and
// registers every container's published ports in Consul, with the node's address.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { Node } from "./hosts";

export interface RegistratorArgs {
    readonly settings: Settings;
    readonly node: Node;
    /** Consul agent address reachable from the node's network, host:port. */
    readonly consulAddress: pulumi.Input<string>;
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class Registrator extends pulumi.ComponentResource {
    public readonly container: docker.Container;

    constructor(name: string, args: RegistratorArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:registrator:Registrator", name, {}, opts);
        const { settings, node } = args;
        const dockerOpts = { parent: this, provider: node.provider, dependsOn: node.ready };

        const image = new docker.RemoteImage(`${name}-image`, { name: settings.registrator.image, keepLocally: true }, dockerOpts);
        this.container = new docker.Container(name, {
            name: `${node.name}-registrator`,
            // Registrator's service IDs are <hostname>:<container>:<port>.
            hostname: node.name,
            image: image.imageId,
            command: pulumi.all([node.address, args.consulAddress]).apply(([address, consul]) => [
                `-ip=${address}`,                                   // register the node's address, not a guess
                `-resync=${settings.registrator.resyncSeconds}`,    // re-register what Consul lost
                "-cleanup",                                          // remove dangling services after restarts
                "-deregister=always",
                `consul://${consul}`,
            ]),
            volumes: [{ hostPath: settings.registrator.dockerSocket, containerPath: "/tmp/docker.sock", readOnly: true }],
            networksAdvanced: [{ name: node.network.name }],
            restart: "unless-stopped",
        }, { ...dockerOpts, dependsOn: [...node.ready, ...(args.dependsOn ?? [])] });

        this.registerOutputs({ containerName: this.container.name });
    }
}
