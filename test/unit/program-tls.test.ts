// TLS at the edge in the graph the program declares (docs/security.md, "TLS at the edge"), under
// Pulumi's mocks: each certificate source's KV keys (chain public, key sealed with the stack's
// sealing key and secret), the sealing key as a file only the gateway's user reads (never in
// its environment), the gateway's TLS variables and HTTPS port, the CA output of the dev stack,
// the gateway's ACL policy with ACME, and on aws the load balancer's 443 with the PROXY
// protocol v2; the policy pack's edge-tls rule on these graphs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSealingKey, unseal } from "../../components/images/gateway/controller/sealed";
import { policies } from "../../policy/policies";
import { devWith, envOf, evaluate, shippedAws, isSecret, secretValue, stackConfig, uploadsOf, type Program } from "../support/program";

const KEYS = "consul:index/keys:Keys";
const LISTENER = "aws:lb/listener:Listener";
const TARGET_GROUP = "aws:lb/targetGroup:TargetGroup";
const ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const ACL_POLICY = "consul:index/aclPolicy:AclPolicy";
const ADMIN = "203.0.113.7/32";
/** What the mocks make of the sealing key (test/support/mocks.ts, random.RandomId). */
const MOCK_SEALING_KEY = Buffer.from("generated-key-secrets-gateway-sealing-key".padEnd(32, "x").slice(0, 32)).toString("hex");

/** The KV keys a Keys resource writes: path -> value (secrets unwrapped) and whether it is secret. */
function kvOf(p: Program, name: string): Map<string, { value: string; secret: boolean }> {
    const raw = p.one(KEYS, name).inputs.keys;
    // A secret value makes the whole list a secret.
    const keys = (isSecret(raw) ? secretValue(raw) : raw) as { path: string; value: unknown }[];
    return new Map(
        keys.map((k) => [k.path, { value: String(isSecret(k.value) ? secretValue(k.value) : k.value), secret: isSecret(raw) || isSecret(k.value) }]),
    );
}

/** The edge-tls policy over a program's graph, as the policy server calls it for `stack`. */
function edgeTlsViolations(p: Program, stack: string): string[] {
    const policy: any = policies.find((x) => x.name === "edge-tls");
    const found: string[] = [];
    const isTypeOf = (type: string) => (cls: any) => cls.__pulumiType === type;
    const unwrap = (v: any): any => (isSecret(v) ? unwrap(secretValue(v)) : v);
    policy.validateStack(
        {
            resources: p.resources.map((r) => ({
                type: r.type,
                name: r.name,
                urn: `urn:pulumi:${stack}::service-discovery::${r.type}::${r.name}`,
                props: r.inputs,
                isType: isTypeOf(r.type),
                asType: (c: any) => (isTypeOf(r.type)(c) ? { ...r.inputs, envs: unwrap(r.inputs.envs) } : undefined),
            })),
            getConfig: () => ({}),
        },
        (m: string) => found.push(m),
    );
    return found;
}

describe("program: TLS at the edge, Pulumi.dev.yaml (self-signed)", () => {
    let p: Program;

    it("evaluates", async () => {
        p = await evaluate(stackConfig("dev"));
        assert.equal(p.error, null, String(p.error));
    });

    it("a stack CA and a certificate for localhost from @pulumi/tls, the CA's PEM as the output gatewayCaPem", () => {
        const ca = p.one("tls:index/selfSignedCert:SelfSignedCert", "gateway-tls-ca");
        assert.equal(ca.inputs.isCaCertificate, true);
        const csr = p.one("tls:index/certRequest:CertRequest", "gateway-tls-csr");
        assert.deepEqual(csr.inputs.dnsNames, ["localhost"]);
        const cert = p.one("tls:index/locallySignedCert:LocallySignedCert", "gateway-tls-cert");
        assert.deepEqual(cert.inputs.allowedUses, ["digital_signature", "key_encipherment", "server_auth"]);
        assert.equal(p.outputs.gatewayCaPem, "-----BEGIN CERTIFICATE-----\nmock-gateway-tls-ca\n-----END CERTIFICATE-----\n");
        assert.equal(p.outputs.gatewayHttpsUrl, "https://localhost");
        assert.equal(p.outputs.gatewayUrl, "http://127.0.0.1", "the quick start's URL stays plain HTTP");
    });

    it("writes the certificate to KV: its chain in clear, its key sealed at its path, a secret", () => {
        const kv = kvOf(p, "gateway-tls");
        assert.deepEqual([...kv.keys()], ["service/haproxy/tls/certificates/self-signed/chain", "service/haproxy/tls/certificates/self-signed/key"]);
        assert.equal(
            kv.get("service/haproxy/tls/certificates/self-signed/chain")!.value,
            "-----BEGIN CERTIFICATE-----\nmock-gateway-tls-cert\n-----END CERTIFICATE-----\n",
        );
        const key = kv.get("service/haproxy/tls/certificates/self-signed/key")!;
        assert.equal(key.secret, true);
        assert.match(key.value, /^sealed-v1:/);
        assert.ok(!key.value.includes("PRIVATE KEY"));
        assert.equal(
            unseal(parseSealingKey(MOCK_SEALING_KEY), "service/haproxy/tls/certificates/self-signed/key", key.value),
            "-----BEGIN EC PRIVATE KEY-----\nmock-gateway-tls-key\n-----END EC PRIVATE KEY-----\n",
        );
        const keys = p.one(KEYS, "gateway-tls");
        assert.ok(keys.provider.includes("consul-acl-kv-provider"), "written with the KV writer's token");
    });

    it("gives the gateway the sealing key as a file for its user alone, never in its environment; HTTPS on 443 beside HTTP", () => {
        const gw = p.container("dev-gateway");
        const file = uploadsOf(gw).get("/etc/gateway/secrets/sealing.key");
        assert.deepEqual(file, { content: MOCK_SEALING_KEY, secret: true, permissions: "0400", owner: "10080", group: "10080" });
        const { env } = envOf(gw);
        assert.ok(!Object.values(env).some((v) => v.includes(MOCK_SEALING_KEY)), "the sealing key is in no variable");
        assert.equal(env.GATEWAY_TLS_SOURCE, "self-signed");
        assert.equal(env.GATEWAY_HTTPS_PORT, "443");
        assert.equal(env.GATEWAY_PUBLIC_HTTPS_PORT, "443");
        assert.equal(env.GATEWAY_TLS_REDIRECT, "false");
        assert.equal(env.GATEWAY_HSTS_SECONDS, "0");
        assert.equal(env.GATEWAY_SEALING_KEY_FILE, "/etc/gateway/secrets/sealing.key");
        assert.equal(env.GATEWAY_ACCEPT_PROXY, undefined);
        assert.equal(env.SERVICE_443_NAME, "gateway-https", "registered, never routed");
        assert.match(env.GATEWAY_NODE_PORTS, /^80 443 /);
        assert.ok(
            gw.dependencies.some((d) => d.endsWith("::gateway-tls")),
            "the gateway starts once its certificate is in KV",
        );
        const secret = p.one("random:index/randomId:RandomId", "secrets-gateway-sealing-key");
        assert.equal(secret.inputs.byteLength, 32);
    });

    it("the gateway's ACL policy stays read-only without ACME", () => {
        const policy = p.one(ACL_POLICY, "consul-acl-gateway");
        assert.doesNotMatch(String(policy.inputs.rules), /write|session/);
    });

    it("edge-tls passes: the edge has TLS", () => {
        assert.deepEqual(edgeTlsViolations(p, "dev"), []);
        assert.deepEqual(edgeTlsViolations(p, "prod"), []);
    });
});

describe("program: TLS at the edge, the other sources", () => {
    it("provided: the operator's certificate from the secrets, its key sealed; no CA", async () => {
        const p = await evaluate({
            ...devWith({ gateway: { tls: { source: "provided" } } }),
            "service-discovery:gatewayTlsCertificate": "-----BEGIN CERTIFICATE-----\nmine\n-----END CERTIFICATE-----\n",
            "service-discovery:gatewayTlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nmine\n-----END PRIVATE KEY-----\n",
        });
        assert.equal(p.error, null, String(p.error));
        assert.equal(p.ofType("tls:index/selfSignedCert:SelfSignedCert").filter((r) => r.name.startsWith("gateway-tls")).length, 0);
        const kv = kvOf(p, "gateway-tls");
        assert.equal(kv.get("service/haproxy/tls/certificates/provided/chain")!.value, "-----BEGIN CERTIFICATE-----\nmine\n-----END CERTIFICATE-----\n");
        const key = kv.get("service/haproxy/tls/certificates/provided/key")!;
        assert.ok(key.secret);
        assert.equal(
            unseal(parseSealingKey(MOCK_SEALING_KEY), "service/haproxy/tls/certificates/provided/key", key.value),
            "-----BEGIN PRIVATE KEY-----\nmine\n-----END PRIVATE KEY-----\n",
        );
        assert.equal(p.outputs.gatewayCaPem, undefined);
        const { env } = envOf(p.container("dev-gateway"));
        assert.equal(env.GATEWAY_TLS_SOURCE, "provided");
        assert.equal(env.GATEWAY_TLS_REDIRECT, "true");
        assert.equal(env.GATEWAY_HSTS_SECONDS, "15552000");
    });

    it("none: no HTTPS port, no sealing key, no certificate; edge-tls fails it outside the plain-HTTP stacks", async () => {
        const p = await evaluate(devWith({ gateway: { httpPort: 80, tls: { source: "none" } } }));
        assert.equal(p.error, null, String(p.error));
        const gw = p.container("dev-gateway");
        assert.equal(envOf(gw).env.GATEWAY_TLS_SOURCE, "none");
        assert.ok(!(gw.inputs.ports as { internal: number }[]).some((x) => x.internal === 443));
        assert.equal(uploadsOf(gw).has("/etc/gateway/secrets/sealing.key"), false);
        assert.equal(p.ofType("random:index/randomId:RandomId").filter((r) => r.name === "secrets-gateway-sealing-key").length, 0);
        assert.equal(p.resources.filter((r) => r.name === "gateway-tls").length, 0);
        assert.deepEqual(edgeTlsViolations(p, "dev"), []);
        const v = edgeTlsViolations(p, "staging");
        assert.equal(v.length, 1);
        assert.match(v[0]!, /^gateway dev-gateway serves plain HTTP only \(GATEWAY_TLS_SOURCE none\) on stack staging: set gateway\.tls\.source/);
    });

    it("acme with external account binding: the HMAC key sealed in KV, the key ID in the gateway's environment", async () => {
        const p = await evaluate({
            ...devWith({ gateway: { tls: { source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com", eabKid: "kid-7" } } } }),
            "service-discovery:gatewayAcmeEabHmacKey": "aG1hYy1rZXk",
        });
        assert.equal(p.error, null, String(p.error));
        const kv = kvOf(p, "gateway-tls");
        assert.deepEqual([...kv.keys()], ["service/haproxy/tls/acme/eab-hmac-key"]);
        assert.equal(
            unseal(parseSealingKey(MOCK_SEALING_KEY), "service/haproxy/tls/acme/eab-hmac-key", kv.get("service/haproxy/tls/acme/eab-hmac-key")!.value),
            "aG1hYy1rZXk",
        );
        const { env } = envOf(p.container("dev-gateway"));
        assert.equal(env.GATEWAY_ACME_EAB_KID, "kid-7");
        assert.ok(!Object.values(env).some((v) => v.includes("aG1hYy1rZXk")));
    });
});

describe("program: TLS at the edge, Pulumi.aws.yaml (acme behind the load balancer)", () => {
    let p: Program;

    it("evaluates", async () => {
        p = await evaluate(shippedAws(), "aws");
        assert.equal(p.error, null, String(p.error));
    });

    it("the gateways order from Let's Encrypt for the stack's hosts, redirect HTTP and send HSTS; HTTPS takes the PROXY protocol", () => {
        for (const gw of p.containers().filter((c) => c.inputs.name === "aws-gateway")) {
            const { env } = envOf(gw);
            assert.equal(env.GATEWAY_TLS_SOURCE, "acme");
            assert.equal(env.GATEWAY_ACME_DIRECTORY, "https://acme-v02.api.letsencrypt.org/directory");
            assert.equal(env.GATEWAY_ACME_EMAIL, "ops@example.com");
            assert.equal(env.GATEWAY_ACME_HOSTS, "app.example.com");
            assert.equal(env.GATEWAY_ACME_RENEW_BEFORE_SECONDS, String(30 * 86400));
            assert.equal(env.GATEWAY_TLS_REDIRECT, "true");
            assert.equal(env.GATEWAY_HSTS_SECONDS, "15552000");
            assert.equal(env.GATEWAY_PUBLIC_HTTPS_PORT, "443");
            assert.equal(env.GATEWAY_ACCEPT_PROXY, "https");
        }
        assert.equal(p.ofType(KEYS).filter((k) => k.name === "gateway-tls").length, 0, "nothing for Pulumi to write: the gateways order");
        assert.match(String(p.outputs.gatewayUrl), /^https:\/\//);
    });

    it("the gateway's token may write its ACME keys and certificate and hold a session, nothing more", () => {
        const rules = String(p.one(ACL_POLICY, "consul-acl-gateway").inputs.rules);
        assert.deepEqual(
            rules.split("\n").filter((l) => /write/.test(l)),
            [
                'key_prefix "service/haproxy/tls/acme/" { policy = "write" }',
                'key_prefix "service/haproxy/tls/certificates/acme/" { policy = "write" }',
                'session_prefix "" { policy = "write" }',
            ],
        );
    });

    it("the load balancer passes TCP 443 to every edge gateway's HTTPS port with PROXY protocol v2; 443 is open to the world", () => {
        const listeners = p.ofType(LISTENER).map((l) => [l.inputs.port, l.inputs.protocol]);
        assert.deepEqual(listeners, [
            [80, "TCP"],
            [443, "TCP"],
        ]);
        const tg = p.one(TARGET_GROUP, "hosts-aws-gateway-https");
        assert.equal(tg.inputs.port, 443);
        assert.equal(tg.inputs.protocol, "TCP");
        assert.equal(tg.inputs.proxyProtocolV2, true);
        assert.deepEqual(tg.inputs.healthCheck, { protocol: "TCP", port: "traffic-port", interval: 10 });
        const https = p.one(LISTENER, "hosts-aws-gateway-https");
        assert.deepEqual(https.inputs.defaultActions, [
            { type: "forward", targetGroupArn: "arn:aws:elasticloadbalancing:::targetgroup/hosts-aws-gateway-https" },
        ]);
        assert.deepEqual(
            p
                .ofType(ATTACHMENT)
                .filter((a) => a.name.startsWith("hosts-aws-gateway-https-"))
                .map((a) => [a.name, a.inputs.port]),
            [
                ["hosts-aws-gateway-https-1", 443],
                ["hosts-aws-gateway-https-2", 443],
                ["hosts-aws-gateway-https-3", 443],
            ],
        );
        const plain = p.one(TARGET_GROUP, "hosts-aws-gateway");
        assert.equal(plain.inputs.proxyProtocolV2, undefined, "HTTP stays as it was (the instance target keeps the client's address)");
        const rule = p.one(INGRESS, "hosts-aws-gateway-https");
        assert.deepEqual([rule.inputs.fromPort, rule.inputs.toPort, rule.inputs.cidrIpv4], [443, 443, "0.0.0.0/0"]);
        const stats = p.one(INGRESS, "hosts-aws-stats");
        assert.equal(stats.inputs.cidrIpv4, ADMIN, "stats are not world-reachable");
    });

    it("edge-tls passes; without the 443 listener it would not", () => {
        assert.deepEqual(edgeTlsViolations(p, "aws"), []);
        const withoutHttps = { ...p, resources: p.resources.filter((r) => !(r.type === LISTENER && r.inputs.port === 443)) } as Program;
        assert.deepEqual(edgeTlsViolations(withoutHttps, "aws"), [
            "the load balancer listens on 80 but not on 443: the edge has no HTTPS (gateway.tls.source none on target aws)",
        ]);
    });
});
