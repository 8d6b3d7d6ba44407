// Sealed KV values (controller/sealed.ts): what a gateway can open, and what it refuses.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { parseSealingKey, seal, unseal } from "../../components/images/gateway/controller/sealed";

describe("sealed KV values", () => {
    const key = randomBytes(32);
    const path = "service/haproxy/tls/certificates/default";
    const pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n-----END PRIVATE KEY-----\n";

    it("opens with the same key at the same path, and hides the value", () => {
        const sealed = seal(key, path, pem);
        assert.match(sealed, /^sealed-v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
        assert.ok(!sealed.includes("PRIVATE KEY"));
        assert.equal(unseal(key, path, sealed), pem);
    });

    it("is the same text for the same value (no diff on every pulumi up), another for another value", () => {
        assert.equal(seal(key, path, pem), seal(key, path, pem));
        assert.notEqual(seal(key, path, pem), seal(key, path, `${pem} `));
        assert.notEqual(seal(key, path, pem), seal(key, `${path}x`, pem));
    });

    it("refuses another key, another path, an altered value and a malformed one", () => {
        const sealed = seal(key, path, pem);
        assert.throws(() => unseal(randomBytes(32), path, sealed), /does not open/);
        assert.throws(() => unseal(key, "service/haproxy/tls/certificates/other", sealed), /does not open/);
        const parts = sealed.split(":");
        const body = Buffer.from(parts[3]!, "base64");
        body[0] = body[0]! ^ 1;
        assert.throws(() => unseal(key, path, [...parts.slice(0, 3), body.toString("base64")].join(":")), /does not open/);
        for (const bad of ["", "sealed-v2:a:b:c", "sealed-v1:a:b", `sealed-v1:${Buffer.alloc(4).toString("base64")}:${parts[2]}:${parts[3]}`])
            assert.throws(() => unseal(key, path, bad), /not a sealed-v1 value/);
    });

    it("reads the key file's 64 hex digits and nothing else", () => {
        assert.equal(parseSealingKey(`${"ab".repeat(32)}\n`).length, 32);
        for (const bad of ["", "ab".repeat(31), "zz".repeat(32), "ab".repeat(33)]) assert.throws(() => parseSealingKey(bad), /not 64 hex digits/);
    });
});
