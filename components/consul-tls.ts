// TLS material for the Consul cluster, made by Pulumi (@pulumi/tls) and kept in the stack state
// as secrets: a CA of the stack's own, and one certificate per agent signed by it. Servers carry
// server.<datacenter>.consul (verify_server_hostname: nothing else may act as a server); client
// agents carry client.<datacenter>.consul. Every certificate also names what API clients dial:
// `consul` (the alias on the node network), localhost, 127.0.0.1 and the node's addresses.
// Certificates are renewed by the `pulumi up` that runs within earlyRenewalHours of expiry.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { clientTlsName, CONSUL_HOST, serverTlsName } from "./consul-agent-config";
import { Settings } from "./config";
import { Node } from "./nodes";

const KEY = { algorithm: "ECDSA", ecdsaCurve: "P256" } as const;
const CA_VALIDITY_HOURS = 10 * 365 * 24;
const AGENT_VALIDITY_HOURS = 365 * 24;
/** A `pulumi up` within 30 days of expiry issues a new certificate (and restarts the agent). */
const AGENT_EARLY_RENEWAL_HOURS = 30 * 24;

export interface ConsulTlsArgs {
    readonly settings: Settings;
    readonly nodes: readonly Node[];
    /** How many of the first nodes run a Consul server. */
    readonly servers: number;
}

export interface AgentCertificate {
    readonly certPem: pulumi.Output<string>;
    /** Secret. */
    readonly keyPem: pulumi.Output<string>;
}

export class ConsulTls extends pulumi.ComponentResource {
    /** The CA every agent and API client trusts (public). */
    public readonly caPem: pulumi.Output<string>;
    /** Certificates by node name. */
    private readonly certificates = new Map<string, AgentCertificate>();

    constructor(name: string, args: ConsulTlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:consul:ConsulTls", name, {}, opts);
        const { settings, nodes } = args;
        const dc = settings.consul.datacenter;
        const o = { parent: this };

        const caKey = new tls.PrivateKey(`${name}-ca-key`, KEY, o);
        const ca = new tls.SelfSignedCert(
            `${name}-ca`,
            {
                privateKeyPem: caKey.privateKeyPem,
                subject: { commonName: `Consul CA ${settings.project}-${settings.stack}`, organization: settings.project },
                isCaCertificate: true,
                validityPeriodHours: CA_VALIDITY_HOURS,
                allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
            },
            o,
        );
        this.caPem = ca.certPem;

        for (const node of nodes) {
            const isServer = node.index <= args.servers;
            const role = isServer ? serverTlsName(dc) : clientTlsName(dc);
            const key = new tls.PrivateKey(`${name}-${node.name}-key`, KEY, o);
            const addresses = pulumi.all([node.address, node.publicAddress]).apply(([a, p]) => [...new Set(["127.0.0.1", a, p])]);
            const request = new tls.CertRequest(
                `${name}-${node.name}-csr`,
                {
                    privateKeyPem: key.privateKeyPem,
                    subject: { commonName: role, organization: settings.project },
                    dnsNames: [role, CONSUL_HOST, "localhost"],
                    ipAddresses: addresses,
                },
                o,
            );
            const cert = new tls.LocallySignedCert(
                `${name}-${node.name}-cert`,
                {
                    certRequestPem: request.certRequestPem,
                    caPrivateKeyPem: caKey.privateKeyPem,
                    caCertPem: ca.certPem,
                    validityPeriodHours: AGENT_VALIDITY_HOURS,
                    earlyRenewalHours: AGENT_EARLY_RENEWAL_HOURS,
                    // Agents are TLS servers (RPC, HTTPS) and clients (RPC to the servers).
                    allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
                },
                o,
            );
            this.certificates.set(node.name, { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) });
        }

        this.registerOutputs({ caPem: this.caPem });
    }

    /** The certificate of the agent on `node`. */
    certificateFor(node: Node): AgentCertificate {
        const cert = this.certificates.get(node.name);
        if (!cert) throw new Error(`no Consul certificate for node ${node.name}`);
        return cert;
    }
}
