// The config schema is the one source of the keys: every key list an error shows is exactly the
// keys the schema accepts, and every CIDR is read by one parser.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { ConfigError, parseCidr, parseSettings, RawConfig } from "../../components/config";
import { configSchema } from "../../components/config/schema";
import { TEST_SSH_KEY } from "../support/program";

/** The message parseSettings throws for `raw` (fails the test when it does not throw). */
function messageOf(raw: Record<string, unknown>): string {
    const config: RawConfig = {};
    for (const [key, value] of Object.entries(raw)) config[key] = typeof value === "string" ? value : JSON.stringify(value);
    try {
        parseSettings(config, "dev");
    } catch (e) {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        return e.message;
    }
    assert.fail(`accepted ${JSON.stringify(raw)}`);
}

/** The keys of an object schema, through its default/prefault/optional wrappers and the
 * preprocessing that answers removed keys. */
function keysOf(schema: z.ZodType): string[] {
    if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
    if (schema instanceof z.ZodPipe) return keysOf(schema.out as z.ZodType);
    assert.ok("unwrap" in schema && typeof schema.unwrap === "function", `no object inside ${schema.constructor.name}`);
    return keysOf(schema.unwrap() as z.ZodType);
}

/** The keys an "expected an object with a, b and optionally c" / "only the keys a, b" text lists. */
function listed(message: string): string[] {
    const m = /expected (?:an object with|only the keys) (.+)$/.exec(message);
    assert.ok(m, `no key list in: ${message}`);
    return m[1].split(/, | and optionally /);
}

const shape = configSchema.shape;
const host = { name: "a", host: "ssh://u@h", address: "10.0.0.5" };
const service = { name: "web", image: "example/web:1.0" };
// Each object of the config: how to put a key into it, and its schema.
const SECTIONS: { key: string; put: (k: string, v: unknown) => Record<string, unknown>; schema: z.ZodType }[] = [
    ...(["virtualbox", "aws", "network", "consul", "registrator", "gateway", "haproxy"] as const).map((section) => ({
        key: section,
        put: (k: string, v: unknown) => ({ [section]: { [k]: v } }),
        schema: shape[section] as z.ZodType,
    })),
    { key: "haproxy.timeouts", put: (k, v) => ({ haproxy: { timeouts: { [k]: v } } }), schema: keysSchema(shape.haproxy, "timeouts") },
    { key: "hosts[0]", put: (k, v) => ({ target: "hosts", hosts: [{ ...host, [k]: v }] }), schema: shape.hosts.unwrap().element },
    { key: "services[0]", put: (k, v) => ({ services: [{ ...service, [k]: v }] }), schema: shape.services.unwrap().element },
];

function keysSchema(section: z.ZodType, key: string): z.ZodType {
    let s: z.ZodType = section;
    while (!(s instanceof z.ZodObject)) s = (s as unknown as { unwrap(): z.ZodType }).unwrap();
    return s.shape[key] as z.ZodType;
}

describe("config schema: key lists", () => {
    for (const section of SECTIONS) {
        it(`${section.key}: an unknown key's error lists every key of the schema, each of them accepted`, () => {
            const message = messageOf(section.put("bogus", 1));
            assert.ok(message.startsWith(`service-discovery:${section.key}.bogus: an unknown key is not allowed; expected `), message);
            const keys = listed(message);
            assert.deepEqual([...keys].sort(), keysOf(section.schema).sort());
            for (const key of keys) {
                // A key the list names is read as that key: a bad value is refused as a value, never as unknown.
                assert.match(
                    messageOf(section.put(key, null)),
                    new RegExp(`^service-discovery:${section.key.replace(/[.[\]]/g, "\\$&")}\\.${key}: null is not allowed; expected `),
                    key,
                );
            }
        });
    }

    it("the consul section names servers among its keys", () => {
        assert.equal(
            messageOf({ consul: { server: 3 } }),
            "service-discovery:consul.server: an unknown key is not allowed; expected an object with image, datacenter, httpsPort, dnsPort, bindAddress, maxConnsPerClient, servers, join",
        );
    });

    it("the top-level unknown-key error lists every schema key, secrets included, each of them accepted", () => {
        const message = messageOf({ bogus: "1" });
        const keys = /allowed keys: (.+)$/.exec(message)![1].split(", ");
        assert.deepEqual(keys, Object.keys(shape));
        for (const key of ["statsPassword", "consulEncryptKey", "consulManagementToken"]) assert.ok(keys.includes(key), key);
        for (const key of keys) {
            let message: string | undefined;
            try {
                parseSettings({ [key]: "null" }, "dev");
            } catch (e) {
                message = (e as Error).message;
            }
            assert.doesNotMatch(message ?? "", /unknown config key/, key);
        }
    });
});

describe("config schema: secrets", () => {
    it("never parses a secret as JSON nor shows it: broken JSON is a valid password, a bad token is named without its value", () => {
        const s = parseSettings({ statsPassword: '{"not json', consulEncryptKey: "[1," }, "dev");
        assert.equal(s.stats.user, "stats");
        assert.ok(!JSON.stringify(s).includes("not json"), "the raw secret is not part of the settings");
        const message = messageOf({ consulManagementToken: '{"hunter2' });
        assert.equal(
            message,
            "service-discovery:consulManagementToken: the value set is not allowed; expected a lowercase UUID such as 6f1c3a2e-1b2c-4d5e-8f90-0123456789ab, or unset it to have one generated",
        );
    });
});

describe("config schema: CIDR blocks", () => {
    it("parses a block into its address and prefix, and refuses anything else", () => {
        assert.deepEqual(parseCidr("10.42.16.0/20"), { base: "10.42.16.0", address: 10 * 256 ** 3 + 42 * 256 ** 2 + 16 * 256, prefix: 20 });
        for (const bad of ["10.0.0.0/33", "256.0.0.0/8", "10.0.0/8", "10.0.0.0", "10.0.0.0/8\n", " 10.0.0.0/8", "10.0.0.0/-1", "10.0.0.0/100"]) {
            assert.equal(parseCidr(bad), undefined, JSON.stringify(bad));
        }
    });

    it("reads /00 as /0: refused for trusted proxies and the AWS admin network", () => {
        assert.equal(
            messageOf({ gateway: { trustedProxies: ["0.0.0.0/00"] } }),
            'service-discovery:gateway.trustedProxies[0]: "0.0.0.0/00" is not allowed; expected a CIDR block narrower than /0 (trusting every client would keep spoofed X-Forwarded-For)',
        );
        assert.equal(
            messageOf({ target: "aws", aws: { adminCidr: "0.0.0.0/00", publicKey: TEST_SSH_KEY } }),
            'service-discovery:aws.adminCidr: "0.0.0.0/00" is not allowed; expected a CIDR block narrower than /0 (only the gateway port is open to the world)',
        );
    });

    it("takes the network gateway as the subnet's first address", () => {
        assert.equal(parseSettings({ network: JSON.stringify({ subnet: "10.20.0.0/16" }) }, "dev").network.gateway, "10.20.0.1");
        assert.equal(parseSettings({ network: JSON.stringify({ subnet: "192.168.7.0/28" }) }, "dev").network.gateway, "192.168.7.1");
    });
});
