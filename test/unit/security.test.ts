// Consul ACLs and TLS in the resource graph: every token is a secret, least privilege by role,
// no secret in any command line, and the order in which `pulumi up` must create things.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { POLICIES } from "../../components/consul-policies";
import { GATEWAY_CONSUL_TOKEN_FILE, GATEWAY_STATS_PASSWORD_FILE, GATEWAY_UID } from "../../components/gateway";
import { REGISTRATOR_ENTRYPOINT, REGISTRATOR_TOKEN_FILE } from "../../components/registrator";
import { Declared } from "../support/mocks";
import { agentConfigOf, devWith, envOf, evaluate, shippedAws, isSecret, Program, secretValue, stackConfig, TEST_SSH_KEY, uploadsOf } from "../support/program";

const MANAGEMENT = "00000000-0000-4000-8000-000000000000";

/** Every string anywhere in a value, secrets unwrapped. */
function strings(value: unknown): string[] {
    if (typeof value === "string") return [value];
    if (Array.isArray(value)) return value.flatMap(strings);
    if (value && typeof value === "object") return Object.values(value as Record<string, unknown>).flatMap(strings);
    return [];
}

describe("security: ACLs and TLS in the dev stack", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(stackConfig("dev"));
        assert.equal(p.error, null);
    });

    it("generates the management token as a secret UUID and never puts a secret on a command line", () => {
        assert.equal(p.ofType("random:index/randomUuid:RandomUuid").length, 1);
        const secrets = [MANAGEMENT, "generated-password-secrets-stats-password", agentConfigOf(p.container("dev-consul")).encrypt as string, "secret-of-"];
        for (const c of p.containers()) {
            for (const arg of [...strings(c.inputs.command), ...strings(c.inputs.entrypoints)]) {
                for (const s of secrets) assert.ok(!arg.includes(s), `${c.inputs.name}: a secret in its command line: ${arg}`);
            }
        }
        for (const cmd of p.ofType("command:local:Command")) {
            for (const s of secrets) assert.ok(!String(cmd.inputs.create).includes(s), `${cmd.name}: a secret in its command: ${cmd.inputs.create}`);
        }
    });

    it("creates one policy per role with the rules of components/consul-policies.ts", () => {
        const policies = p.ofType("consul:index/aclPolicy:AclPolicy");
        assert.deepEqual(
            policies.map((x) => x.inputs.name).sort(),
            Object.values(POLICIES)
                .map((x) => x.name)
                .sort(),
        );
        for (const policy of Object.values(POLICIES)) {
            const declared = policies.find((x) => x.inputs.name === policy.name)!;
            assert.equal(declared.inputs.rules, policy.rules);
        }
        for (const r of [...policies, ...p.ofType("consul:index/aclToken:AclToken")]) {
            assert.ok(r.provider.includes("::consul-provider::"), `${r.name} is created with the management provider: ${r.provider}`);
        }
        const anonymous = p.one("consul:index/aclTokenPolicyAttachment:AclTokenPolicyAttachment", "consul-acl-anonymous");
        assert.equal(anonymous.inputs.tokenId, "00000000-0000-0000-0000-000000000002");
        assert.equal(anonymous.inputs.policy, POLICIES.anonymous.name);
        // Least privilege, as rules: only Registrator writes services, only Pulumi's token writes KV.
        assert.doesNotMatch(POLICIES.gateway.rules, /write/);
        assert.doesNotMatch(POLICIES.anonymous.rules, /write|key/);
        assert.doesNotMatch(POLICIES.registrator.rules, /key|node_prefix "" \{ policy = "write"/);
        assert.match(POLICIES.kvWriter.rules, /^key_prefix "service\/haproxy\/" \{ policy = "write" \}$/);
    });

    it("gives operators a token of their own, read-only and without ACL rights, as a secret output beside the management token", () => {
        const token = p.one("consul:index/aclToken:AclToken", "consul-acl-operator");
        assert.deepEqual(token.inputs.policies, [POLICIES.operator.name]);
        assert.deepEqual(p.outputs.consulOperatorToken, { $secret: "secret-of-consul-acl-operator-id" });
        assert.notDeepEqual(p.outputs.consulOperatorToken, p.outputs.consulManagementToken);
        assert.doesNotMatch(POLICIES.operator.rules, /write|acl/, "reads only; no ACL management");
        assert.match(POLICIES.operator.rules, /^key_prefix "service\/haproxy\/" \{ policy = "read" \}$/m);
        assert.doesNotMatch(POLICIES.operator.rules, /key_prefix "" /, "no KV outside the gateway settings");
    });

    it("gives each node's agent a token scoped to its own node, set once the agent runs", () => {
        const agentToken = p.one("consul:index/aclToken:AclToken", "consul-acl-agent-dev-node-1");
        assert.deepEqual(agentToken.inputs.nodeIdentities, [{ nodeName: "dev-consul", datacenter: "dc1" }]);
        assert.equal(agentToken.inputs.policies, undefined, "a node identity only: node write for that node, nothing else");
        const set = p.one("command:local:Command", "consul-acl-agent-dev-node-1-set");
        assert.equal(set.inputs.create, "node components/local-commands/consul-agent-token.mjs");
        const env = set.inputs.environment as Record<string, unknown>;
        for (const key of ["CONSUL_HTTP_TOKEN", "CONSUL_AGENT_TOKEN"]) assert.ok(isSecret(env[key]) || isSecret(set.inputs.environment), `${key} is a secret`);
        const plain = (isSecret(set.inputs.environment) ? secretValue(set.inputs.environment) : env) as Record<string, unknown>;
        const value = (k: string) => (isSecret(plain[k]) ? secretValue(plain[k]) : plain[k]);
        assert.equal(value("CONSUL_HTTP_ADDR"), "https://127.0.0.1:8501");
        assert.equal(value("CONSUL_AGENT_TOKEN"), "secret-of-consul-acl-agent-dev-node-1-id");
        assert.equal(value("CONSUL_HTTP_TOKEN"), MANAGEMENT);
        assert.ok(
            set.dependencies.some((d) => d.endsWith("::consul-dev-node-1")),
            "runs after the agent container",
        );
        for (const c of [p.container("dev-node-1-registrator"), p.container("dev-gateway"), p.replica("dev-hello-v1-1")]) {
            const name = c.inputs.name;
            assert.ok(
                c.dependencies.some((d) => d.endsWith("::consul-acl-agent-dev-node-1-set")),
                `${name} starts once the agent has its token`,
            );
        }
    });

    it("hands Registrator and the gateway their own tokens as uploaded files, as secrets, never in their environment", () => {
        const r = p.container("dev-node-1-registrator");
        assert.equal(uploadsOf(r).get(REGISTRATOR_TOKEN_FILE)?.content, "secret-of-consul-acl-registrator-id");
        assert.deepEqual(r.inputs.entrypoints, [...REGISTRATOR_ENTRYPOINT], "its entrypoint exports the file's token to Registrator alone");
        assert.equal(envOf(r).env.CONSUL_HTTP_TOKEN, undefined);
        assert.ok((r.inputs.command as string[]).includes("consul-unix:///consul/run/http.sock"), "its node's agent's socket, on no network");
        assert.ok(r.dependencies.some((d) => d.endsWith("::consul-dev-node-1-run")) || JSON.stringify(r.inputs.volumes).includes("dev-consul-run"));
        const gw = p.container("dev-gateway");
        assert.equal(uploadsOf(gw).get(GATEWAY_CONSUL_TOKEN_FILE)?.content, "secret-of-consul-acl-gateway-id");
        assert.equal(envOf(gw).env.CONSUL_HTTP_TOKEN_FILE, GATEWAY_CONSUL_TOKEN_FILE);
        assert.equal(envOf(gw).env.CONSUL_HTTP_TOKEN, undefined);
        // Service containers get no token at all: anonymous, read-only.
        for (const c of p.containers().filter((x) => String(x.inputs.name).startsWith("dev-hello-"))) {
            assert.equal(envOf(c).env.CONSUL_HTTP_TOKEN, undefined);
            assert.equal(envOf(c).env.CONSUL_HTTP_TOKEN_FILE, undefined);
        }
    });

    it("issues the agent's certificate from the stack's CA for server.dc1.consul, consul, localhost and 127.0.0.1", () => {
        const ca = p.one("tls:index/selfSignedCert:SelfSignedCert", "consul-tls-ca");
        assert.equal(ca.inputs.isCaCertificate, true);
        const csr = p.one("tls:index/certRequest:CertRequest", "consul-tls-dev-node-1-csr");
        assert.deepEqual(csr.inputs.dnsNames, ["server.dc1.consul", "consul", "localhost"]);
        assert.ok((csr.inputs.ipAddresses as string[]).includes("127.0.0.1"), "Pulumi and users reach the API on 127.0.0.1");
        const cert = p.one("tls:index/locallySignedCert:LocallySignedCert", "consul-tls-dev-node-1-cert");
        assert.deepEqual(cert.inputs.allowedUses, ["digital_signature", "key_encipherment", "server_auth", "client_auth"]);
        assert.ok(Number(cert.inputs.earlyRenewalHours) > 0, "renewed by a pulumi up before it expires");
        for (const key of p.ofType("tls:index/privateKey:PrivateKey")) assert.equal(key.inputs.algorithm, "ECDSA");
        assert.deepEqual(p.outputs.consulCaPem, "-----BEGIN CERTIFICATE-----\nmock-consul-tls-ca\n-----END CERTIFICATE-----\n");
    });
});

describe("security: config", () => {
    it("uses a management token from config, as a secret, and generates none", async () => {
        const token = "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab";
        const p = await evaluate(devWith({ consulManagementToken: token }));
        assert.equal(p.error, null);
        assert.equal(p.ofType("random:index/randomUuid:RandomUuid").length, 0);
        assert.equal(agentConfigOf(p.container("dev-consul")).acl.tokens.initial_management, token);
        assert.deepEqual(p.outputs.consulManagementToken, { $secret: token });
    });

    it("refuses a management token that is not a UUID, naming the key", async () => {
        const p = await evaluate(devWith({ consulManagementToken: "root" }));
        assert.match(String(p.error), /^service-discovery:consulManagementToken: the value set is not allowed; expected a lowercase UUID/);
        assert.doesNotMatch(String(p.error), /root/, "a secret is never echoed");
        assert.deepEqual(p.resources, []);
    });

    it("refuses consul.httpPort with the reason: the API is HTTPS only", async () => {
        const p = await evaluate(devWith({ consul: { httpPort: 8500 } }));
        assert.equal(
            p.error,
            "service-discovery:consul.httpPort: 8500 is not allowed; expected consul.httpsPort instead (the Consul API is served over HTTPS only; plain HTTP answers on each agent's loopback)",
        );
        assert.deepEqual(p.resources, []);
    });

    it("aws: client agents get client certificates, never the server name", async () => {
        const p = await evaluate(devWith({ target: "aws", nodeCount: 4, aws: { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY } }));
        assert.equal(p.error, null);
        const names = (node: number) => p.one("tls:index/certRequest:CertRequest", `consul-tls-dev-node-${node}-csr`).inputs.dnsNames as string[];
        assert.equal(names(3)[0], "server.dc1.consul");
        assert.deepEqual(names(4), ["client.dc1.consul", "consul", "localhost"]);
        const agents = p.containers().filter((c: Declared) => String(c.inputs.name) === "dev-consul");
        assert.equal(agents.filter((a) => agentConfigOf(a).acl.tokens !== undefined).length, 3, "only the servers hold the management token");
    });
});

/** Every string inside a Pulumi secret anywhere in a value: what must never be in an environment. */
function secretStrings(value: unknown, inSecret = false): string[] {
    if (typeof value === "string") return inSecret ? [value] : [];
    if (Array.isArray(value)) return value.flatMap((v) => secretStrings(v, inSecret));
    if (value && typeof value === "object") {
        if ("$secret" in value) return secretStrings((value as { $secret: unknown }).$secret, true);
        return Object.values(value as Record<string, unknown>).flatMap((v) => secretStrings(v, inSecret));
    }
    return [];
}

const SECRET_ENV_NAME = /(^|_)(TOKEN|PASSWORD|PASSWD|SECRET|PASSPHRASE|PRIVATE_KEY|ENCRYPT_KEY|HMAC_KEY)$/;

for (const s of [
    { title: "Pulumi.dev.yaml", stack: "dev", config: () => stackConfig("dev") },
    { title: "Pulumi.aws.yaml (3 nodes, ACME)", stack: "aws", config: () => shippedAws() },
    {
        title: "dev with every secret from config (stats password, gossip key, management token, provided certificate)",
        stack: "dev",
        config: () => ({
            ...devWith({
                statsPassword: "from-config-stats-password-0123",
                consulEncryptKey: Buffer.alloc(32, 7).toString("base64"),
                consulManagementToken: "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab",
                gateway: { tls: { source: "provided" } },
            }),
            "service-discovery:gatewayTlsCertificate": "-----BEGIN CERTIFICATE-----\nmine\n-----END CERTIFICATE-----\n",
            "service-discovery:gatewayTlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nmine\n-----END PRIVATE KEY-----\n",
        }),
    },
    {
        title: "virtualbox, 3 nodes, ACME with external account binding",
        stack: "vbox",
        config: () => ({
            ...devWith({
                target: "virtualbox",
                nodeCount: 3,
                gateway: { tls: { source: "acme", hosts: ["app.example.com"], acme: { email: "ops@example.com", eabKid: "kid-7" } } },
            }),
            "service-discovery:gatewayAcmeEabHmacKey": "aG1hYy1rZXk",
        }),
    },
]) {
    describe(`security: no secret in any container's environment, ${s.title}`, () => {
        let p: Program;
        before(async () => {
            p = await evaluate(s.config(), s.stack);
            assert.equal(p.error, null, String(p.error));
        });

        it("no container's environment holds a secret value or a secret's variable (docker inspect shows them)", () => {
            // Every secret the graph holds, generated or from config: secret inputs (uploads aside,
            // whose file names are no secret), the secret files' contents, the agents' secrets.
            const found = p.resources.flatMap((r) => secretStrings({ ...r.inputs, uploads: undefined }));
            for (const c of p.containers()) {
                for (const u of uploadsOf(c).values()) if (u.secret) found.push(String(u.content));
                if (uploadsOf(c).has("/consul/config/agent.json")) {
                    const agent = agentConfigOf(c);
                    found.push(String(agent.encrypt), ...Object.values((agent.acl?.tokens ?? {}) as Record<string, string>));
                }
            }
            const secrets = [...new Set(found)].filter((x) => x.length >= 8);
            // Not vacuous: the tokens, the stats password and the gossip key are among them.
            for (const expected of [/^secret-of-consul-acl-gateway/, /^secret-of-consul-acl-registrator/, /stats-password/, /^[A-Za-z0-9+/]{43}=$/])
                assert.ok(
                    secrets.some((x) => expected.test(x)),
                    `${expected} among ${secrets.length} secrets`,
                );
            const containers = p.containers();
            assert.ok(containers.some((c) => /-registrator$/.test(String(c.inputs.name))) && containers.some((c) => /-gateway$/.test(String(c.inputs.name))));
            for (const c of containers) {
                const { env, secret } = envOf(c);
                assert.equal(secret, false, `${c.inputs.name}: its environment is no Pulumi secret, for it holds none`);
                for (const [name, value] of Object.entries(env)) {
                    assert.doesNotMatch(name, SECRET_ENV_NAME, `${c.inputs.name}: ${name} in its environment`);
                    for (const x of secrets) assert.ok(!value.includes(x), `${c.inputs.name}: ${name} holds a secret`);
                }
            }
        });

        it("the gateways' token and stats password, and Registrator's token, are secret files their user alone reads", () => {
            const generated = p.ofType("random:index/randomPassword:RandomPassword").some((r) => r.name === "secrets-stats-password");
            const gateways = p.containers().filter((c) => /-gateway$/.test(String(c.inputs.name)));
            assert.ok(gateways.length >= 1);
            for (const gw of gateways) {
                const { env } = envOf(gw);
                const files = uploadsOf(gw);
                for (const [variable, file] of [
                    ["CONSUL_HTTP_TOKEN_FILE", GATEWAY_CONSUL_TOKEN_FILE],
                    ["STATS_PASSWORD_FILE", GATEWAY_STATS_PASSWORD_FILE],
                ] as const) {
                    assert.equal(env[variable], file, `${gw.inputs.name}: ${variable}`);
                    const u = files.get(file);
                    assert.ok(u, `${gw.inputs.name}: ${file} uploaded`);
                    assert.deepEqual(
                        { secret: u.secret, permissions: u.permissions, owner: u.owner, group: u.group },
                        { secret: true, permissions: "0400", owner: String(GATEWAY_UID), group: String(GATEWAY_UID) },
                        `${gw.inputs.name}: ${file}`,
                    );
                    assert.ok(String(u.content).length >= 16, `${gw.inputs.name}: ${file} has content`);
                }
                assert.match(String(files.get(GATEWAY_CONSUL_TOKEN_FILE)!.content), /^secret-of-consul-acl-gateway/);
                assert.equal(
                    files.get(GATEWAY_STATS_PASSWORD_FILE)!.content,
                    generated ? "generated-password-secrets-stats-password" : "from-config-stats-password-0123",
                );
            }
            const registrators = p.containers().filter((c) => /-registrator$/.test(String(c.inputs.name)));
            assert.ok(registrators.length >= 1);
            for (const r of registrators) {
                const u = uploadsOf(r).get(REGISTRATOR_TOKEN_FILE);
                assert.ok(u, `${r.inputs.name}: ${REGISTRATOR_TOKEN_FILE} uploaded`);
                assert.deepEqual(
                    { secret: u.secret, permissions: u.permissions, owner: u.owner, group: u.group },
                    { secret: true, permissions: "0400", owner: "0", group: "0" },
                );
                assert.match(String(u.content), /^secret-of-consul-acl-registrator/);
                assert.deepEqual(r.inputs.entrypoints, [...REGISTRATOR_ENTRYPOINT]);
            }
        });
    });
}
