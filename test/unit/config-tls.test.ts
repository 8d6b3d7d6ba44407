// gateway.tls and gateway.httpsPort (docs/security.md, "TLS at the edge"): what each certificate
// source becomes, its defaults, and every invalid value refused with one message naming the key,
// the value and what is allowed (as config-invalid.test.ts does for the other keys).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { parseSettings, RESERVED_LISTEN_PORTS, type RawConfig } from "../../components/config";
import { LETS_ENCRYPT_DIRECTORY } from "../../components/images/gateway/controller/rules";
import { TEST_SSH_KEY as SSH_KEY } from "../support/program";
import { dev, rejects } from "./config-support";

const AWS = { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY } };
const tlsOf = (tls: unknown, more: Record<string, unknown> = {}) => dev({ gateway: { httpPort: 80, tls }, ...more });

describe("config: gateway.tls, what each source becomes", () => {
    it("Pulumi.dev.yaml: self-signed for localhost beside plain HTTP (no redirect, no HSTS), HTTPS on 443", () => {
        const s = parseSettings(dev(), "dev");
        assert.equal(s.gateway.httpsPort, 443);
        const { certificate, privateKey, eabHmacKey, ...tls } = s.gateway.tls;
        assert.deepEqual(tls, { source: "self-signed", hosts: ["localhost"], redirect: false, hstsSeconds: 0 });
        assert.equal(certificate ?? privateKey ?? eabHmacKey, undefined);
    });

    it("none by default: no HTTPS listener, no redirect, no HSTS", () => {
        assert.deepEqual(parseSettings({}, "dev").gateway.tls, { source: "none", hosts: [], redirect: false, hstsSeconds: 0 });
    });

    it("a source redirects HTTP and sends HSTS for 180 days unless told otherwise", () => {
        const s = parseSettings(tlsOf({ source: "self-signed", hosts: ["app.test", "www.app.test"] }), "dev").gateway.tls;
        assert.deepEqual(s, { source: "self-signed", hosts: ["app.test", "www.app.test"], redirect: true, hstsSeconds: 15552000 });
        assert.equal(parseSettings(tlsOf({ source: "self-signed", redirect: true, hstsSeconds: 0 }), "dev").gateway.tls.hstsSeconds, 0);
        assert.equal(parseSettings(tlsOf({ source: "self-signed", redirect: false, hstsSeconds: 600 }), "dev").gateway.tls.hstsSeconds, 600);
    });

    it("acme: Let's Encrypt by default, renewal 30 days before expiry, the e-mail and hosts required", () => {
        const s = parseSettings(tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com" } }), "dev").gateway.tls;
        assert.deepEqual(s.acme, { directoryUrl: LETS_ENCRYPT_DIRECTORY, email: "ops@example.com", renewBeforeDays: 30 });
        assert.deepEqual(s.hosts, ["app.example.com"]);
        const eab = parseSettings(
            {
                ...tlsOf({
                    source: "acme",
                    hosts: ["a.example.com"],
                    acme: { email: "o@example.com", eabKid: "kid-1", directoryUrl: "https://acme.example.net/dir" },
                }),
                gatewayAcmeEabHmacKey: "aG1hYw",
            },
            "dev",
            { gatewayAcmeEabHmacKey: pulumi.output("aG1hYw") },
        ).gateway.tls;
        assert.equal(eab.acme?.eabKid, "kid-1");
        assert.equal(eab.acme?.directoryUrl, "https://acme.example.net/dir");
        assert.ok(eab.eabHmacKey);
    });

    it("provided: the certificate and key from the secrets, as Outputs", () => {
        const cert = pulumi.output("chain");
        const key = pulumi.output("key");
        const s = parseSettings({ ...tlsOf({ source: "provided" }), gatewayTlsCertificate: "chain", gatewayTlsPrivateKey: "key" }, "dev", {
            gatewayTlsCertificate: cert,
            gatewayTlsPrivateKey: key,
        }).gateway.tls;
        assert.equal(s.certificate, cert);
        assert.equal(s.privateKey, key);
        assert.deepEqual(s.hosts, []);
    });

    it("aws: the shipped stack orders from Let's Encrypt; any source but none is accepted", () => {
        for (const source of ["acme", "provided", "self-signed"]) {
            const tls = source === "acme" ? { source, hosts: ["app.example.com"], acme: { email: "ops@example.com" } } : { source };
            const secrets = source === "provided" ? { gatewayTlsCertificate: "c", gatewayTlsPrivateKey: "k" } : {};
            assert.equal(parseSettings({ ...dev({ ...AWS, gateway: { tls } }), ...secrets }, "aws").gateway.tls.source, source);
        }
    });

    it("443 is reserved for the gateway container's HTTPS", () => {
        assert.ok(RESERVED_LISTEN_PORTS.some((r) => r.from === 443 && r.to === 443));
    });
});

describe("config: gateway.tls, invalid values", () => {
    const cases: [string, RawConfig, string][] = [
        [
            "an unknown source",
            tlsOf({ source: "letsencrypt" }),
            'service-discovery:gateway.tls.source: "letsencrypt" is not allowed; expected none (no HTTPS listener), self-signed (a stack CA, for dev), provided (gatewayTlsCertificate and gatewayTlsPrivateKey), acme (the gateways order from an ACME CA such as Let\'s Encrypt) or acm (target aws: the load balancer terminates TLS with an ACM certificate)',
        ],
        [
            "an unknown key",
            tlsOf({ source: "acme", certificate: "x" }),
            "service-discovery:gateway.tls.certificate: an unknown key is not allowed; expected an object with source, hosts, redirect, hstsSeconds, acmCertificateArn, sslPolicy, offloadPort, acme",
        ],
        [
            "no source on aws",
            dev({ ...AWS, gateway: { httpPort: 80 } }),
            "service-discovery:gateway.tls.source: missing is not allowed; expected acme, acm, provided or self-signed for target aws (its gateways face the internet behind the load balancer: users get HTTPS, and HTTP is redirected; acme gets a real certificate, acm has the load balancer terminate TLS with an ACM certificate)",
        ],
        [
            "source none on aws",
            dev({ ...AWS, gateway: { tls: { source: "none" } } }),
            'service-discovery:gateway.tls.source: "none" is not allowed; expected acme, acm, provided or self-signed for target aws (its gateways face the internet behind the load balancer: users get HTTPS, and HTTP is redirected; acme gets a real certificate, acm has the load balancer terminate TLS with an ACM certificate)',
        ],
        [
            "a wildcard host",
            tlsOf({ source: "acme", hosts: ["*.example.com"], acme: { email: "ops@example.com" } }),
            'service-discovery:gateway.tls.hosts[0]: "*.example.com" is not allowed; expected a lowercase DNS name such as app.example.com (no wildcard: the HTTP-01 challenge cannot prove one)',
        ],
        [
            "an empty host list",
            tlsOf({ source: "self-signed", hosts: [] }),
            'service-discovery:gateway.tls.hosts: [] is not allowed; expected a non-empty list of DNS names such as ["app.example.com"]',
        ],
        [
            "acme without hosts",
            tlsOf({ source: "acme", acme: { email: "ops@example.com" } }),
            'service-discovery:gateway.tls.hosts: missing is not allowed; expected the DNS names the certificate covers, such as ["app.example.com"] (required with source acme unless services declare hosts, which it then covers)',
        ],
        [
            "acme without an e-mail",
            tlsOf({ source: "acme", hosts: ["app.example.com"] }),
            "service-discovery:gateway.tls.acme.email: missing is not allowed; expected the ACME account's contact e-mail address, such as ops@example.com (required with source acme: the CA writes there about expiring certificates and its terms)",
        ],
        [
            "an e-mail that is not one",
            tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops" } }),
            'service-discovery:gateway.tls.acme.email: "ops" is not allowed; expected the ACME account\'s contact e-mail address, such as ops@example.com',
        ],
        [
            "a directory over plain HTTP",
            tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com", directoryUrl: "http://acme.example.com/dir" } }),
            'service-discovery:gateway.tls.acme.directoryUrl: "http://acme.example.com/dir" is not allowed; expected an https:// ACME directory URL such as https://acme-staging-v02.api.letsencrypt.org/directory',
        ],
        [
            "renewal 0 days before expiry",
            tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com", renewBeforeDays: 0 } }),
            "service-discovery:gateway.tls.acme.renewBeforeDays: 0 is not allowed; expected an integer from 1 to 60: days before expiry",
        ],
        [
            "an EAB key ID without its HMAC key",
            tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com", eabKid: "kid-1" } }),
            'service-discovery:gatewayAcmeEabHmacKey: missing is not allowed; expected the HMAC key of the external account binding "kid-1" (a secret: pulumi config set --secret gatewayAcmeEabHmacKey <key>)',
        ],
        [
            "an EAB HMAC key without its key ID",
            { ...tlsOf({ source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com" } }), gatewayAcmeEabHmacKey: "aG1hYw" },
            "service-discovery:gatewayAcmeEabHmacKey: the value set is not allowed; expected it only with gateway.tls.acme.eabKid (source acme)",
        ],
        [
            "an acme section with another source",
            tlsOf({ source: "self-signed", acme: { email: "ops@example.com" } }),
            'service-discovery:gateway.tls.acme: {"email":"ops@example.com"} is not allowed; expected no acme section with source self-signed (it configures source acme)',
        ],
        [
            "hosts with source provided",
            { ...tlsOf({ source: "provided", hosts: ["app.test"] }), gatewayTlsCertificate: "c", gatewayTlsPrivateKey: "k" },
            'service-discovery:gateway.tls.hosts: ["app.test"] is not allowed; expected no hosts with source provided (the certificate in gatewayTlsCertificate names its hosts)',
        ],
        [
            "provided without the certificate",
            { ...tlsOf({ source: "provided" }), gatewayTlsPrivateKey: "k" },
            "service-discovery:gatewayTlsCertificate: missing is not allowed; expected the certificate and its chain (PEM) with gateway.tls.source provided, set as a secret: pulumi config set --secret gatewayTlsCertificate < chain.pem",
        ],
        [
            "provided without the key",
            { ...tlsOf({ source: "provided" }), gatewayTlsCertificate: "c" },
            "service-discovery:gatewayTlsPrivateKey: missing is not allowed; expected the certificate's private key (PEM) with gateway.tls.source provided, set as a secret: pulumi config set --secret gatewayTlsPrivateKey < key.pem",
        ],
        [
            "a certificate secret with another source",
            { ...tlsOf({ source: "self-signed" }), gatewayTlsCertificate: "c" },
            "service-discovery:gatewayTlsCertificate: the value set is not allowed; expected it only with gateway.tls.source provided (the source is self-signed)",
        ],
        [
            "redirect with source none",
            tlsOf({ source: "none", redirect: true }),
            "service-discovery:gateway.tls.redirect: true is not allowed; expected no redirect with source none (no HTTPS listener)",
        ],
        [
            "redirect not a boolean",
            tlsOf({ source: "self-signed", redirect: "yes" }),
            'service-discovery:gateway.tls.redirect: "yes" is not allowed; expected true or false',
        ],
        [
            "HSTS for more than two years",
            tlsOf({ source: "self-signed", hstsSeconds: 63072001 }),
            "service-discovery:gateway.tls.hstsSeconds: 63072001 is not allowed; expected an integer from 0 (no HSTS) to 63072000 (two years): seconds",
        ],
        [
            "the HTTPS port taken by the HTTP port",
            dev({ gateway: { httpPort: 8443, httpsPort: 8443, tls: { source: "self-signed" } } }),
            "service-discovery:gateway.httpsPort: 8443 is not allowed; expected a host port not already used by gateway.httpPort",
        ],
        [
            "an HTTPS port out of range",
            dev({ gateway: { httpsPort: 70000 } }),
            "service-discovery:gateway.httpsPort: 70000 is not allowed; expected an integer from 1 to 65535",
        ],
        [
            "a tcp service on the HTTPS port",
            dev({ services: [{ name: "pg", image: "postgres:16", protocol: "tcp", listenPort: 443 }] }),
            "service-discovery:services[0].listenPort: 443 is not allowed; expected a port not already used by gateway.httpsPort",
        ],
    ];
    for (const [title, raw, message] of cases) {
        it(`rejects ${title}`, () => rejects(raw, message));
    }

    it("never shows a secret's value", () => {
        assert.throws(
            () => parseSettings({ ...tlsOf({ source: "none" }), gatewayTlsCertificate: "-----BEGIN CERTIFICATE-----secret" }, "dev"),
            (e: Error) => !e.message.includes("BEGIN") && /gatewayTlsCertificate: the value set is not allowed/.test(e.message),
        );
    });
});
