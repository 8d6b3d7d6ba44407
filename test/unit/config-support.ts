// Shared by the stack config tests (config.test.ts, config-invalid.test.ts): the shipped dev stack
// as raw config with overrides, and the check that a config fails with exactly one message.
import assert from "node:assert/strict";
import { ConfigError, parseSettings, RawConfig } from "../../components/config";
import { stackConfig } from "../support/program";

/** The dev stack file as raw project config (keys without the namespace). */
export function dev(overrides: Record<string, unknown> = {}): RawConfig {
    const raw: RawConfig = {};
    for (const [key, value] of Object.entries(stackConfig("dev"))) {
        if (key.startsWith("service-discovery:")) raw[key.slice("service-discovery:".length)] = value;
    }
    for (const [key, value] of Object.entries(overrides)) {
        raw[key] = value === undefined ? undefined : typeof value === "string" ? value : JSON.stringify(value);
    }
    return raw;
}

export function rejects(raw: RawConfig, message: string): void {
    assert.throws(
        () => parseSettings(raw, "dev"),
        (e: unknown) => {
            assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
            assert.equal(e.message, message);
            return true;
        },
    );
}
