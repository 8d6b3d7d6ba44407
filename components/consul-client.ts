// What a container needs to talk to its node's Consul agent with its own ACL token: over HTTPS
// on the node network, or over the agent's UNIX socket in a volume shared with it.
import * as pulumi from "@pulumi/pulumi";

export interface ConsulClient {
    /** host:port of the agent's HTTPS API on the node network (`consul:8501`). */
    readonly address: pulumi.Input<string>;
    /** The CA the agent's certificate is signed by (PEM). */
    readonly caPem: pulumi.Input<string>;
    /** The container's ACL token (secret): an uploaded file, never in its environment. */
    readonly token: pulumi.Input<string>;
}

export interface ConsulSocketClient {
    /** The Docker volume holding the agent's HTTP socket (components/consul.ts). */
    readonly socketVolume: pulumi.Input<string>;
    /** The container's ACL token (secret): an uploaded file, never in its environment. */
    readonly token: pulumi.Input<string>;
}
