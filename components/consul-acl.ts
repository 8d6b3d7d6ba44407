// Consul's ACL policies and tokens, managed by Pulumi with the management token: one token per
// role, each least privilege (rules in components/consul-policies.ts), each a secret.
//   agents       a token per node with Consul's node identity (node write for that node only),
//                set on the agent through its API once it runs (components/local-commands/consul-agent-token.mjs)
//   registrator  registers/deregisters services through its node's agent; no KV, no catalog writes
//   gateway      reads the catalog, health and service/haproxy/; writes nothing (with ACME: its
//                ACME keys and certificate, and a session for the ACME lock)
//   kvWriter     what Pulumi itself uses to manage service/haproxy/
//   operator     people (`npm run operator`, the UI login): reads the catalog, health, agents,
//                service/haproxy/ and the raft peers; writes nothing, no ACLs. The management
//                token stays Pulumi's provider's (and break-glass)
//   anonymous    no token: catalog reads for DNS, nothing else
import * as command from "@pulumi/command";
import * as consul from "@pulumi/consul";
import * as pulumi from "@pulumi/pulumi";
import { ConsulCluster } from "./consul";
import { AGENT_TOKEN_SCRIPT } from "./consul-agent-config";
import { ANONYMOUS_TOKEN_ACCESSOR_ID, gatewayPolicy, POLICIES, Role, type RolePolicy } from "./consul-policies";
import { Settings } from "./config";
import { Node } from "./nodes";
import { PerNode } from "./per-node";

export { AGENT_TOKEN_SCRIPT } from "./consul-agent-config";

export interface ConsulAclArgs {
    readonly settings: Settings;
    readonly nodes: readonly Node[];
    readonly cluster: ConsulCluster;
    /** The management token (secret): sets the agents' tokens. */
    readonly managementToken: pulumi.Input<string>;
}

export class ConsulAcl extends pulumi.ComponentResource {
    /** Secret IDs (the tokens themselves), secrets. */
    public readonly registratorToken: pulumi.Output<string>;
    public readonly gatewayToken: pulumi.Output<string>;
    /** The operators' token (read-only; the stack output consulOperatorToken). */
    public readonly operatorToken: pulumi.Output<string>;
    /** A Consul provider that may only write the gateway settings' KV prefix. */
    public readonly kvProvider: consul.Provider;
    private readonly agentTokens = new PerNode<command.local.Command>("Consul agent token");

    constructor(name: string, args: ConsulAclArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:consul:ConsulAcl", name, {}, opts);
        const { settings, cluster } = args;
        const o = { parent: this, provider: cluster.provider };
        // The gateway's rules depend on the stack: ACME adds its own keys and a session (consul-policies.ts).
        const policyOf = (role: Role): RolePolicy => (role === "gateway" ? gatewayPolicy(settings.gateway.tls.source === "acme") : POLICIES[role]);

        const policies = Object.fromEntries(
            (Object.keys(POLICIES) as Role[]).map((role) => [
                role,
                new consul.AclPolicy(
                    `${name}-${POLICIES[role].name}`,
                    {
                        name: POLICIES[role].name,
                        description: policyOf(role).description,
                        rules: policyOf(role).rules,
                        datacenters: [settings.consul.datacenter],
                    },
                    o,
                ),
            ]),
        ) as Record<Role, consul.AclPolicy>;

        new consul.AclTokenPolicyAttachment(
            `${name}-anonymous`,
            {
                tokenId: ANONYMOUS_TOKEN_ACCESSOR_ID,
                policy: policies.anonymous.name,
            },
            o,
        );

        const secretOf = (token: consul.AclToken): pulumi.Output<string> =>
            pulumi.secret(consul.getAclTokenSecretIdOutput({ accessorId: token.id }, { parent: this, provider: cluster.provider }).secretId);
        const roleToken = (role: Exclude<Role, "anonymous">): pulumi.Output<string> =>
            secretOf(
                new consul.AclToken(
                    `${name}-${POLICIES[role].name}`,
                    {
                        description: POLICIES[role].description,
                        policies: [policies[role].name],
                    },
                    o,
                ),
            );
        this.registratorToken = roleToken("registrator");
        this.gatewayToken = roleToken("gateway");
        const kvWriterToken = roleToken("kvWriter");
        this.operatorToken = roleToken("operator");

        for (const node of args.nodes) {
            const nodeName = cluster.nodeNameOf(node);
            const agentToken = new consul.AclToken(
                `${name}-agent-${node.name}`,
                {
                    description: `Consul agent on ${nodeName}`,
                    nodeIdentities: [{ nodeName, datacenter: settings.consul.datacenter }],
                },
                o,
            );
            const agent = cluster.agentOn(node);
            this.agentTokens.set(
                node,
                new command.local.Command(
                    `${name}-agent-${node.name}-set`,
                    {
                        create: `node ${AGENT_TOKEN_SCRIPT}`,
                        environment: {
                            CONSUL_HTTP_ADDR: cluster.apiUrlOn(node),
                            CONSUL_CACERT_PEM: cluster.caPem,
                            CONSUL_HTTP_TOKEN: pulumi.secret(args.managementToken),
                            CONSUL_AGENT_TOKEN: secretOf(agentToken),
                            CONSUL_NODE: nodeName,
                        },
                        // A new container (its data volume may be new too) or a new token: set it again.
                        triggers: [agent.id, agentToken.id],
                    },
                    { parent: this, dependsOn: [agent] },
                ),
            );
        }

        this.kvProvider = new consul.Provider(
            `${name}-kv-provider`,
            {
                address: cluster.apiUrl,
                scheme: "https",
                caPem: cluster.caPem,
                datacenter: settings.consul.datacenter,
                token: kvWriterToken,
            },
            { parent: this },
        );

        this.registerOutputs({});
    }

    /** Done once the agent on `node` has its token: its node is registered, services sync. */
    agentTokenSetOn(node: Node): pulumi.Resource {
        return this.agentTokens.on(node);
    }
}
