// Secrets the stack needs: taken from config when set (`pulumi config set --secret`),
// generated once otherwise and kept in the stack state. Never a default value.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface StackSecretsArgs {
    /** `statsPassword` from config, if the user set one. */
    readonly statsPassword?: pulumi.Output<string>;
    /** `consulEncryptKey` from config (32 bytes, base64), if the user set one. */
    readonly consulEncryptKey?: pulumi.Output<string>;
    /** `consulManagementToken` from config (a UUID), if the user set one. */
    readonly consulManagementToken?: pulumi.Output<string>;
    /** Whether the gateways need the sealing key (a TLS source other than none). */
    readonly sealing?: boolean;
}

export class StackSecrets extends pulumi.ComponentResource {
    /** Password of the gateway's stats page and metrics (basic auth). */
    public readonly statsPassword: pulumi.Output<string>;
    /** Consul gossip encryption key: 32 random bytes, base64. */
    public readonly consulEncryptKey: pulumi.Output<string>;
    /** Consul's initial management token (full rights): bootstraps the ACL system. */
    public readonly consulManagementToken: pulumi.Output<string>;
    /**
     * The gateways' sealing key: 32 random bytes as 64 hex digits, generated once (args.sealing).
     * It seals the private keys kept in Consul KV (controller/sealed.ts); each gateway gets it as a
     * file, never in its environment.
     */
    public readonly gatewaySealingKey?: pulumi.Output<string>;

    constructor(name: string, args: StackSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:secrets:StackSecrets", name, {}, opts);

        // Letters and digits only: the password is placed in haproxy.cfg through an
        // environment variable and must not need quoting there.
        this.statsPassword = args.statsPassword
            ? pulumi.secret(args.statsPassword)
            : pulumi.secret(new random.RandomPassword(`${name}-stats-password`, { length: 32, special: false }, { parent: this }).result);
        this.consulEncryptKey = args.consulEncryptKey
            ? pulumi.secret(args.consulEncryptKey)
            : pulumi.secret(new random.RandomId(`${name}-consul-gossip-key`, { byteLength: 32 }, { parent: this }).b64Std);

        this.consulManagementToken = args.consulManagementToken
            ? pulumi.secret(args.consulManagementToken)
            : pulumi.secret(new random.RandomUuid(`${name}-consul-management-token`, {}, { parent: this }).result);

        if (args.sealing) {
            this.gatewaySealingKey = pulumi.secret(new random.RandomId(`${name}-gateway-sealing-key`, { byteLength: 32 }, { parent: this }).hex);
        }

        this.registerOutputs({ statsPassword: this.statsPassword, consulEncryptKey: this.consulEncryptKey, consulManagementToken: this.consulManagementToken });
    }
}
