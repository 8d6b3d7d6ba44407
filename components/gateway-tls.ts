// The certificates the stack gives its gateways (docs/security.md, "TLS at the edge"), written
// to Consul KV under service/haproxy/tls/ for every gateway to follow at run time:
//   tls/certificates/<name>/chain   the certificate and its chain, PEM (public)
//   tls/certificates/<name>/key     its private key, sealed (controller/sealed.ts) with the stack's
//                                   sealing key and bound to this path
// by source (gateway.tls.source):
//   self-signed  a CA of the stack's own (@pulumi/tls) and a certificate for gateway.tls.hosts
//                signed by it, renewed by the `pulumi up` within 30 days of expiry; the CA's PEM is
//                the stack output gatewayCaPem (`curl --cacert`)
//   provided     the secrets gatewayTlsCertificate and gatewayTlsPrivateKey: rotation is a
//                `pulumi up` with new values, applied by the gateways without a reload
//   acme         nothing here but the EAB HMAC key (tls/acme/eab-hmac-key, sealed) when the CA
//                needs one: the gateways order the certificate themselves (controller/acme.ts)
// Sealing runs in an apply over the secret outputs; its result is a secret too.
import * as consul from "@pulumi/consul";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { Settings } from "./config";
import { KV_PREFIX, TLS_KV } from "./images/gateway/controller/rules";
import { parseSealingKey, seal } from "./images/gateway/controller/sealed";

const KEY = { algorithm: "ECDSA", ecdsaCurve: "P256" } as const;
const CA_VALIDITY_HOURS = 10 * 365 * 24;
const CERT_VALIDITY_HOURS = 365 * 24;
/** A `pulumi up` within 30 days of expiry issues a new certificate (applied at run time). */
const CERT_EARLY_RENEWAL_HOURS = 30 * 24;

export interface GatewayTlsArgs {
    readonly settings: Settings;
    /** The gateways' sealing key (64 hex digits, secret). */
    readonly sealingKey: pulumi.Input<string>;
    /** A provider whose token may write the gateway's KV prefix. */
    readonly provider: consul.Provider;
}

/** A value sealed with the stack's key at its KV path: a secret. */
export function sealedAt(sealingKey: pulumi.Input<string>, path: string, value: pulumi.Input<string>): pulumi.Output<string> {
    return pulumi.secret(pulumi.all([sealingKey, value]).apply(([k, v]) => seal(parseSealingKey(k), path, v)));
}

export class GatewayTls extends pulumi.ComponentResource {
    /** self-signed: the stack's gateway CA (public): `curl --cacert`. */
    public readonly caPem?: pulumi.Output<string>;
    /** The KV keys written (none for acme without external account binding). */
    public readonly keys?: consul.Keys;

    constructor(name: string, args: GatewayTlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:gateway:GatewayTls", name, {}, opts);
        const t = args.settings.gateway.tls;
        const o = { parent: this };
        const entries: { path: string; value: pulumi.Input<string>; delete: true }[] = [];
        const certificate = (certName: string, chain: pulumi.Input<string>, key: pulumi.Input<string>): void => {
            const keyPath = `${KV_PREFIX}/${TLS_KV.key(certName)}`;
            entries.push(
                { path: `${KV_PREFIX}/${TLS_KV.chain(certName)}`, value: chain, delete: true },
                { path: keyPath, value: sealedAt(args.sealingKey, keyPath, key), delete: true },
            );
        };

        if (t.source === "self-signed") {
            const s = args.settings;
            const caKey = new tls.PrivateKey(`${name}-ca-key`, KEY, o);
            const ca = new tls.SelfSignedCert(
                `${name}-ca`,
                {
                    privateKeyPem: caKey.privateKeyPem,
                    subject: { commonName: `Gateway CA ${s.project}-${s.stack}`, organization: s.project },
                    isCaCertificate: true,
                    validityPeriodHours: CA_VALIDITY_HOURS,
                    allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
                },
                o,
            );
            const key = new tls.PrivateKey(`${name}-key`, KEY, o);
            const request = new tls.CertRequest(
                `${name}-csr`,
                { privateKeyPem: key.privateKeyPem, subject: { commonName: t.hosts[0]!, organization: s.project }, dnsNames: [...t.hosts] },
                o,
            );
            const cert = new tls.LocallySignedCert(
                `${name}-cert`,
                {
                    certRequestPem: request.certRequestPem,
                    caPrivateKeyPem: caKey.privateKeyPem,
                    caCertPem: ca.certPem,
                    validityPeriodHours: CERT_VALIDITY_HOURS,
                    earlyRenewalHours: CERT_EARLY_RENEWAL_HOURS,
                    allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
                },
                o,
            );
            this.caPem = ca.certPem;
            certificate("self-signed", cert.certPem, pulumi.secret(key.privateKeyPem));
        } else if (t.source === "provided") {
            if (!t.certificate || !t.privateKey) throw new Error("gateway.tls.source provided: gatewayTlsCertificate and gatewayTlsPrivateKey are not set");
            certificate("provided", t.certificate, t.privateKey);
        }
        if (t.source === "acme" && t.eabHmacKey) {
            const path = `${KV_PREFIX}/${TLS_KV.acmeEabHmacKey}`;
            entries.push({ path, value: sealedAt(args.sealingKey, path, t.eabHmacKey), delete: true });
        }

        if (entries.length > 0) this.keys = new consul.Keys(name, { keys: entries }, { parent: this, provider: args.provider });
        this.registerOutputs({ caPem: this.caPem });
    }
}
