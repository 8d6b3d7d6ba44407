// gateway.tls.source acm (docs/security.md, "TLS at the edge", "On aws"): the config keys and
// every invalid value refused with one message naming the key; and the graph the program declares
// under Pulumi's mocks: the load balancer's 443 terminates TLS with the ACM certificate (TLS 1.2+
// policy, ALPN h2) and forwards to the gateways' offload port with PROXY v2, that port open to
// the VPC only; no certificate, no sealing key at the gateways; gatewayUrl https.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSettings, type RawConfig } from "../../components/config";
import { DEFAULT_NLB_SSL_POLICY } from "../../components/config/schema";
import { policies } from "../../policy/policies";
import { envOf, evaluate, shippedAws, isSecret, secretValue, TEST_SSH_KEY, uploadsOf, type Program } from "../support/program";
import { dev, rejects } from "./config-support";

const LISTENER = "aws:lb/listener:Listener";
const TARGET_GROUP = "aws:lb/targetGroup:TargetGroup";
const ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const ADMIN = "203.0.113.7/32";
const ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const P = "service-discovery";
const AWS = { target: "aws", aws: { adminCidr: ADMIN, publicKey: TEST_SSH_KEY } };
const acmOf = (tls: Record<string, unknown>, more: Record<string, unknown> = {}) =>
    dev({ ...AWS, gateway: { tls: { source: "acm", acmCertificateArn: ARN, ...tls } }, ...more });

describe("config: gateway.tls.source acm", () => {
    it("the certificate's ARN, the default TLS 1.2+ policy and offload port, redirect and HSTS as with any source", () => {
        const t = parseSettings(acmOf({}), "aws").gateway.tls;
        assert.deepEqual(t.acm, { certificateArn: ARN, sslPolicy: DEFAULT_NLB_SSL_POLICY, offloadPort: 8443 });
        assert.equal(DEFAULT_NLB_SSL_POLICY, "ELBSecurityPolicy-TLS13-1-2-2021-06");
        assert.deepEqual([t.source, t.redirect, t.hstsSeconds, t.hosts], ["acm", true, 15552000, []]);
        assert.equal(t.certificate, undefined);
    });

    it("accepts other partitions and TLS 1.2+ policies, a port of its own, redirect and HSTS keys", () => {
        for (const [arn, policy] of [
            ["arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/abc-1", "ELBSecurityPolicy-TLS13-1-3-2021-06"],
            ["arn:aws-cn:acm:cn-north-1:123456789012:certificate/abc-2", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06"],
            [ARN, "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04"],
            [ARN, "ELBSecurityPolicy-FS-1-2-Res-2020-10"],
        ] as const) {
            const t = parseSettings(acmOf({ acmCertificateArn: arn, sslPolicy: policy, offloadPort: 9443, redirect: false, hstsSeconds: 0 }), "aws").gateway
                .tls;
            assert.deepEqual(t.acm, { certificateArn: arn, sslPolicy: policy, offloadPort: 9443 });
            assert.deepEqual([t.redirect, t.hstsSeconds], [false, 0]);
        }
    });

    const ARN_ALLOWED =
        "an ACM certificate ARN such as arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789 (the certificate, in the stack's region, the load balancer serves)";
    const POLICY_ALLOWED = `a TLS 1.2+ security policy of the load balancer, such as ${DEFAULT_NLB_SSL_POLICY} (the default): ELBSecurityPolicy-TLS13-1-2-..., ELBSecurityPolicy-TLS13-1-3-..., ELBSecurityPolicy-TLS-1-2-... or ELBSecurityPolicy-FS-1-2-... (policies that allow TLS 1.0 or 1.1 are refused)`;
    const cases: [string, RawConfig, string][] = [
        [
            "acm off aws",
            dev({ gateway: { tls: { source: "acm", acmCertificateArn: ARN } } }),
            `${P}:gateway.tls.source: "acm" is not allowed; expected acme, provided or self-signed for target local (acm has the AWS load balancer terminate TLS: target aws only)`,
        ],
        [
            "no certificate ARN",
            dev({ ...AWS, gateway: { tls: { source: "acm" } } }),
            `${P}:gateway.tls.acmCertificateArn: missing is not allowed; expected the ARN of the ACM certificate the load balancer serves, such as arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789 (required with source acm; the certificate must be issued, in the stack's region)`,
        ],
        [
            "an IAM server certificate",
            acmOf({ acmCertificateArn: "arn:aws:iam::123456789012:server-certificate/x" }),
            `${P}:gateway.tls.acmCertificateArn: "arn:aws:iam::123456789012:server-certificate/x" is not allowed; expected ${ARN_ALLOWED}`,
        ],
        [
            "an account that is not 12 digits",
            acmOf({ acmCertificateArn: "arn:aws:acm:eu-west-1:1234:certificate/x" }),
            `${P}:gateway.tls.acmCertificateArn: "arn:aws:acm:eu-west-1:1234:certificate/x" is not allowed; expected ${ARN_ALLOWED}`,
        ],
        [
            "no region",
            acmOf({ acmCertificateArn: "arn:aws:acm::123456789012:certificate/x" }),
            `${P}:gateway.tls.acmCertificateArn: "arn:aws:acm::123456789012:certificate/x" is not allowed; expected ${ARN_ALLOWED}`,
        ],
        [
            "a TLS 1.0 policy",
            acmOf({ sslPolicy: "ELBSecurityPolicy-2016-08" }),
            `${P}:gateway.tls.sslPolicy: "ELBSecurityPolicy-2016-08" is not allowed; expected ${POLICY_ALLOWED}`,
        ],
        [
            "a TLS13 policy that allows TLS 1.0",
            acmOf({ sslPolicy: "ELBSecurityPolicy-TLS13-1-0-2021-06" }),
            `${P}:gateway.tls.sslPolicy: "ELBSecurityPolicy-TLS13-1-0-2021-06" is not allowed; expected ${POLICY_ALLOWED}`,
        ],
        [
            "a TLS13 policy that allows TLS 1.1",
            acmOf({ sslPolicy: "ELBSecurityPolicy-TLS13-1-1-2021-06" }),
            `${P}:gateway.tls.sslPolicy: "ELBSecurityPolicy-TLS13-1-1-2021-06" is not allowed; expected ${POLICY_ALLOWED}`,
        ],
        [
            "a privileged offload port",
            acmOf({ offloadPort: 443 }),
            `${P}:gateway.tls.offloadPort: 443 is not allowed; expected a port from 1024 to 65535 for the gateway's offload listener, such as 8443 (the default)`,
        ],
        [
            "a reserved offload port",
            acmOf({ offloadPort: 8500 }),
            `${P}:gateway.tls.offloadPort: 8500 is not allowed; expected a port the stack does not use itself, such as 8443: 8500-8503 are Consul's HTTP, HTTPS and gRPC ports`,
        ],
        [
            "an offload port the stack publishes already",
            dev({ ...AWS, gateway: { statsPort: 9000, tls: { source: "acm", acmCertificateArn: ARN, offloadPort: 9000 } } }),
            `${P}:gateway.statsPort: 9000 is not allowed; expected a host port not already used by gateway.tls.offloadPort`,
        ],
        [
            "hosts with acm",
            acmOf({ hosts: ["app.example.com"] }),
            `${P}:gateway.tls.hosts: ["app.example.com"] is not allowed; expected no hosts with source acm (the ACM certificate names its hosts)`,
        ],
        [
            "an acme section with acm",
            acmOf({ acme: { email: "ops@example.com" } }),
            `${P}:gateway.tls.acme: {"email":"ops@example.com"} is not allowed; expected no acme section with source acm (it configures source acme)`,
        ],
        ...(["acmCertificateArn", "sslPolicy", "offloadPort"] as const).map((k): [string, RawConfig, string] => {
            const value = k === "acmCertificateArn" ? "arn:aws:acm:eu-west-1:123456789012:certificate/x" : k === "sslPolicy" ? DEFAULT_NLB_SSL_POLICY : 9443;
            return [
                `${k} with another source`,
                dev({ ...AWS, gateway: { tls: { source: "self-signed", [k]: value } } }),
                `${P}:gateway.tls.${k}: ${JSON.stringify(value)} is not allowed; expected no ${k} with source self-signed (it configures source acm, target aws)`,
            ];
        }),
        [
            "a tcp listenPort on the offload port",
            acmOf({}, { services: [{ name: "db", image: "postgres:16", protocol: "tcp", listenPort: 8443, containerPort: 5432 }] }),
            `${P}:services[0].listenPort: 8443 is not allowed; expected a port not already used by gateway.tls.offloadPort`,
        ],
        [
            "a tcp service's SNI hosts",
            acmOf({}, { services: [{ name: "db", image: "postgres:16", protocol: "tcp", hosts: ["db.example.com"], containerPort: 5432 }] }),
            `${P}:services[0].hosts: ["db.example.com"] is not allowed; expected no hosts for protocol tcp while gateway.tls.source is acm (the load balancer terminates every TLS connection on 443, so none can be passed through by SNI: give the service a listenPort instead)`,
        ],
        [
            "the provided certificate's secrets",
            { ...acmOf({}), gatewayTlsCertificate: "c" },
            `${P}:gatewayTlsCertificate: the value set is not allowed; expected it only with gateway.tls.source provided (the source is acm)`,
        ],
    ];
    for (const [what, raw, message] of cases) it(`refuses ${what}`, () => rejects(raw, message));
});

function awsAcm(tls: Record<string, unknown> = {}): Record<string, string> {
    const c = shippedAws();
    c[`${P}:gateway`] = JSON.stringify({ ...JSON.parse(c[`${P}:gateway`]!), tls: { source: "acm", acmCertificateArn: ARN, ...tls } });
    return c;
}

describe("program: gateway.tls.source acm on aws (the load balancer terminates TLS)", () => {
    let p: Program;

    it("evaluates", async () => {
        p = await evaluate(awsAcm(), "aws");
        assert.equal(p.error, null, String(p.error));
    });

    it("443 is a TLS listener with the ACM certificate, the TLS 1.2+ policy and ALPN h2, forwarding to the offload target group", () => {
        assert.deepEqual(
            p.ofType(LISTENER).map((l) => [l.inputs.port, l.inputs.protocol]),
            [
                [80, "TCP"],
                [443, "TLS"],
            ],
        );
        const https = p.one(LISTENER, "hosts-aws-gateway-https");
        assert.equal(https.inputs.certificateArn, ARN);
        assert.equal(https.inputs.sslPolicy, "ELBSecurityPolicy-TLS13-1-2-2021-06");
        assert.equal(https.inputs.alpnPolicy, "HTTP2Preferred");
        assert.deepEqual(https.inputs.defaultActions, [
            { type: "forward", targetGroupArn: "arn:aws:elasticloadbalancing:::targetgroup/hosts-aws-gateway-offload" },
        ]);
        assert.equal(p.ofType(LISTENER).filter((l) => l.inputs.protocol === "TCP" && l.inputs.port === 443).length, 0, "no TCP pass-through on 443");
    });

    it("the offload target group: plain TCP to port 8443 with PROXY v2, not keeping the client's address; health /-/health on HTTP", () => {
        const tg = p.one(TARGET_GROUP, "hosts-aws-gateway-offload");
        assert.deepEqual([tg.inputs.port, tg.inputs.protocol, tg.inputs.proxyProtocolV2, tg.inputs.preserveClientIp], [8443, "TCP", true, "false"]);
        assert.deepEqual(tg.inputs.healthCheck, { protocol: "HTTP", path: "/-/health", port: "80", interval: 10 });
        assert.equal(p.ofType(TARGET_GROUP).filter((t) => t.name === "hosts-aws-gateway-https").length, 0);
        assert.deepEqual(
            p
                .ofType(ATTACHMENT)
                .filter((a) => a.name.startsWith("hosts-aws-gateway-offload-"))
                .map((a) => [a.name, a.inputs.port]),
            [
                ["hosts-aws-gateway-offload-1", 8443],
                ["hosts-aws-gateway-offload-2", 8443],
                ["hosts-aws-gateway-offload-3", 8443],
            ],
        );
    });

    it("the offload port is open to the VPC only; no world-open HTTPS port on the nodes; only-gateway-port-public passes", () => {
        const rule = p.one(INGRESS, "hosts-aws-gateway-offload");
        assert.deepEqual([rule.inputs.fromPort, rule.inputs.toPort, rule.inputs.cidrIpv4], [8443, 8443, "10.42.0.0/16"]);
        assert.equal(p.ofType(INGRESS).filter((r) => r.name === "hosts-aws-gateway-https").length, 0);
        const world = p.ofType(INGRESS).filter((r) => r.inputs.cidrIpv4 === "0.0.0.0/0");
        assert.deepEqual(
            world.map((r) => r.inputs.fromPort),
            [80],
        );
        const policy: any = policies.find((x) => x.name === "only-gateway-port-public");
        const found: string[] = [];
        const check = (r: { inputs: Record<string, unknown> }) =>
            policy.validateResource[0](
                { type: INGRESS, props: r.inputs, getConfig: () => ({ gatewayPort: 80 }), isType: () => true, asType: () => r.inputs },
                (m: string) => found.push(m),
            );
        for (const r of p.ofType(INGRESS)) check(r);
        assert.deepEqual(found, []);
        check({ inputs: { ...rule.inputs, cidrIpv4: "0.0.0.0/0" } });
        assert.deepEqual(found, ["ingress tcp 8443-8443 is open to the world; only tcp 80, 443 may be (gatewayPort, gatewayHttpsPort)"]);
    });

    it("the gateways: source acm, the offload port published, no HTTPS port, no sealing key, no certificate in KV; gatewayUrl https", () => {
        for (const gw of p.containers().filter((c) => c.inputs.name === "aws-gateway")) {
            const { env } = envOf(gw);
            assert.equal(env.GATEWAY_TLS_SOURCE, "acm");
            assert.equal(env.GATEWAY_HTTPS_PORT, "8443");
            assert.equal(env.GATEWAY_PUBLIC_HTTPS_PORT, "443");
            assert.equal(env.GATEWAY_TLS_REDIRECT, "true");
            assert.equal(env.GATEWAY_HSTS_SECONDS, "15552000");
            assert.equal(env.GATEWAY_ACCEPT_PROXY, undefined, "the offload listener takes PROXY by itself; HTTP stays plain");
            assert.equal(env.GATEWAY_SEALING_KEY_FILE, undefined);
            assert.equal(env.SERVICE_8443_IGNORE, "true");
            assert.match(env.GATEWAY_NODE_PORTS!, /(^| )8443( |$)/);
            assert.doesNotMatch(env.GATEWAY_NODE_PORTS!, /(^| )443( |$)/);
            const ports = (gw.inputs.ports as { internal: number; external: number }[]).map((x) => [x.internal, x.external]);
            assert.ok(
                ports.some(([i, e]) => i === 8443 && e === 8443),
                JSON.stringify(ports),
            );
            assert.ok(!ports.some(([i]) => i === 443), "no HTTPS listener at the gateway");
            assert.equal(uploadsOf(gw).has("/etc/gateway/secrets/sealing.key"), false);
        }
        assert.equal(p.ofType("random:index/randomId:RandomId").filter((r) => r.name === "secrets-gateway-sealing-key").length, 0);
        assert.equal(p.resources.filter((r) => r.name === "gateway-tls").length, 0);
        assert.match(String(p.outputs.gatewayUrl), /^https:\/\//);
    });

    it("edge-tls passes (the gateways have a source, the load balancer listens on 443)", () => {
        const policy: any = policies.find((x) => x.name === "edge-tls");
        const found: string[] = [];
        const isTypeOf = (type: string) => (cls: any) => cls.__pulumiType === type;
        const unwrap = (v: any): any => (isSecret(v) ? unwrap(secretValue(v)) : v);
        policy.validateStack(
            {
                resources: p.resources.map((r) => ({
                    type: r.type,
                    name: r.name,
                    urn: `urn:pulumi:aws::service-discovery::${r.type}::${r.name}`,
                    props: r.inputs,
                    isType: isTypeOf(r.type),
                    asType: (c: any) => (isTypeOf(r.type)(c) ? { ...r.inputs, envs: unwrap(r.inputs.envs) } : undefined),
                })),
                getConfig: () => ({}),
            },
            (m: string) => found.push(m),
        );
        assert.deepEqual(found, []);
    });

    it("another policy and port reach the listener and the rules", async () => {
        const q = await evaluate(awsAcm({ sslPolicy: "ELBSecurityPolicy-TLS13-1-3-2021-06", offloadPort: 9443 }), "aws");
        assert.equal(q.error, null, String(q.error));
        assert.equal(q.one(LISTENER, "hosts-aws-gateway-https").inputs.sslPolicy, "ELBSecurityPolicy-TLS13-1-3-2021-06");
        assert.equal(q.one(TARGET_GROUP, "hosts-aws-gateway-offload").inputs.port, 9443);
        assert.equal(q.one(INGRESS, "hosts-aws-gateway-offload").inputs.fromPort, 9443);
    });
});
