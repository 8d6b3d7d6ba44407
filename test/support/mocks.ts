// Shared between the graph tests and the evaluation script: the outputs a provider would
// compute for each resource type, and the shape of what an evaluation reports.

export interface Declared {
    type: string;
    name: string;
    custom: boolean;
    /** Inputs as the program set them; secrets appear as {"$secret": value}. */
    inputs: Record<string, unknown>;
    parent: string;
    dependencies: string[];
    provider: string;
    /**
     * The deleteBeforeReplace resource option (a fixed name cannot exist twice); undefined when the
     * program leaves it unset, and the provider's default decides.
     */
    deleteBeforeReplace?: boolean;
    /** Former names and types whose URNs the resource keeps (the aliases resource option). */
    aliases: { name: string; type: string }[];
    /** The ignoreChanges resource option (inputs whose changes never update or replace it). */
    ignoreChanges: string[];
    urn: string;
}

export interface Evaluation {
    resources: Declared[];
    outputs: Record<string, unknown>;
    error: string | null;
    /** Provider functions the program called, by token. */
    calls: string[];
    /** Time from loading the program to all its resources registered, in ms. */
    programMs?: number;
}

/** The trailing number of a resource name: `dev-node-7` -> 7. */
function ordinal(name: string): number {
    const m = /([0-9]+)$/.exec(name);
    return m ? Number(m[1]) : 0;
}

/** Deterministic stand-ins for provider-computed outputs. */
export function mockOutputs(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> {
    switch (type) {
        case "aws:ec2/instance:Instance":
            return { privateIp: `10.42.0.${10 + ordinal(name)}`, publicIp: `198.51.100.${10 + ordinal(name)}` };
        case "aws:lb/loadBalancer:LoadBalancer":
            return { dnsName: `${name}.elb.example.com`, arn: `arn:aws:elasticloadbalancing:::loadbalancer/${name}` };
        case "aws:lb/targetGroup:TargetGroup":
            return { arn: `arn:aws:elasticloadbalancing:::targetgroup/${name}` };
        case "aws:ec2/keyPair:KeyPair":
        case "aws:iam/role:Role":
        case "aws:iam/instanceProfile:InstanceProfile":
            return { keyName: name, name };
        case "command:remote:Command":
            return { stdout: "20.10.24\n" };
        case "random:index/randomUuid:RandomUuid":
            return { result: `00000000-0000-4000-8000-${String(ordinal(name)).padStart(12, "0")}` };
        case "tls:index/privateKey:PrivateKey":
            if (inputs.algorithm === "ED25519") {
                // A key blob of the right type (ssh-ed25519) with the name in it: distinct per key.
                const blob = Buffer.concat([
                    Buffer.from([0, 0, 0, 11]),
                    Buffer.from("ssh-ed25519"),
                    Buffer.from([0, 0, 0, 32]),
                    Buffer.from(name.padEnd(32, "k").slice(0, 32)),
                ]);
                return {
                    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\nmock-${name}\n-----END OPENSSH PRIVATE KEY-----\n`,
                    publicKeyOpenssh: `ssh-ed25519 ${blob.toString("base64")}\n`,
                };
            }
            return { privateKeyPem: `-----BEGIN EC PRIVATE KEY-----\nmock-${name}\n-----END EC PRIVATE KEY-----\n`, publicKeyPem: `mock-public-${name}` };
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
            return { certPem: `-----BEGIN CERTIFICATE-----\nmock-${name}\n-----END CERTIFICATE-----\n` };
        case "tls:index/certRequest:CertRequest":
            return { certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\nmock-${name}\n-----END CERTIFICATE REQUEST-----\n` };
        case "consul:index/aclToken:AclToken":
            return { accessorId: `${name}-accessor` };
        case "command:local:Command":
            if (name.endsWith("-machine")) return { stdout: `192.168.99.${100 + ordinal(name.replace(/-machine$/, ""))}\n` };
            return { stdout: "" };
        case "random:index/randomPassword:RandomPassword":
            return { result: `generated-password-${name}` };
        case "random:index/randomId:RandomId":
            return {
                b64Std: Buffer.from(`generated-key-${name}`.padEnd(32, "x").slice(0, 32)).toString("base64"),
                hex: Buffer.from(`generated-key-${name}`.padEnd(32, "x").slice(0, 32)).toString("hex"),
            };
        case "docker-build:index:Image":
            return { ref: `${(inputs.tags ?? [name])[0]}@sha256:${"0".repeat(64)}`, digest: `sha256:${"0".repeat(64)}` };
        case "docker:index/network:Network": {
            // The engine picks a subnet when none is given: one per name, stable.
            if (inputs.ipamConfigs !== undefined) return {};
            const n = [...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 250, 7);
            return { ipamConfigs: [{ subnet: `10.200.${n}.0/24`, gateway: `10.200.${n}.1` }] };
        }
        case "docker:index/remoteImage:RemoteImage":
            return { imageId: `${inputs.name}@sha256:${"1".repeat(64)}`, repoDigest: `${inputs.name}@sha256:${"1".repeat(64)}` };
        default:
            return {};
    }
}

/** Deterministic answers to provider functions (data sources). */
export function mockCall(token: string, inputs: Record<string, any>): Record<string, unknown> {
    switch (token) {
        case "aws:index/getAvailabilityZones:getAvailabilityZones":
            return { names: ["eu-west-1a", "eu-west-1b", "eu-west-1c"], zoneIds: ["euw1-az1", "euw1-az2", "euw1-az3"] };
        case "aws:ec2/getAmi:getAmi":
            return { id: "ami-0123456789abcdef0", name: "debian-12-amd64-20261101-0000" };
        case "consul:index/getAclTokenSecretId:getAclTokenSecretId":
            return { accessorId: inputs.accessorId, secretId: `secret-of-${inputs.accessorId}`, id: inputs.accessorId };
        default:
            throw new Error(`no mock for provider function ${token} (inputs ${JSON.stringify(inputs)})`);
    }
}
