// The evaluations `npm test` shares between test files (test/support/program.ts,
// evaluationCacheFile): the same config is evaluated once per run, a different one is not taken
// for it, and an evaluation with an effect outside its answer (the known_hosts file it edits) is
// never taken from the cache.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { devWith, evaluate, PROJECT, stackConfig } from "../support/program";

/** The dev stack with the gateway on another HTTP port: a config of its own. */
const withPort = (httpPort: number): Record<string, string> =>
    devWith({ gateway: { ...JSON.parse(stackConfig("dev")[`${PROJECT}:gateway`] ?? "{}"), httpPort } });

describe("test support: one evaluation per config and run", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-eval-cache-test-"));
    const saved = { cache: process.env.SD_EVAL_CACHE, knownHosts: process.env.SERVICE_DISCOVERY_KNOWN_HOSTS };
    process.env.SD_EVAL_CACHE = dir;
    delete process.env.SERVICE_DISCOVERY_KNOWN_HOSTS;
    after(() => {
        for (const [k, v] of [
            ["SD_EVAL_CACHE", saved.cache],
            ["SERVICE_DISCOVERY_KNOWN_HOSTS", saved.knownHosts],
        ] as const) {
            if (v === undefined) delete process.env[k];
            else process.env[k] = v;
        }
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("the same config: evaluated once, then read back equal; another config: evaluated on its own", async () => {
        const config = withPort(18081);
        const first = await evaluate(config);
        assert.equal(first.error, null);
        const files = fs.readdirSync(dir);
        assert.equal(files.length, 1, `one evaluation kept: ${files}`);
        // A marker in the kept evaluation shows that the second call read it instead of evaluating.
        const kept = path.join(dir, files[0]!);
        const evaluation = JSON.parse(fs.readFileSync(kept, "utf8"));
        evaluation.outputs.cacheMarker = "read back";
        fs.writeFileSync(kept, JSON.stringify(evaluation));
        const second = await evaluate({ ...config });
        assert.equal(second.outputs.cacheMarker, "read back");
        assert.deepEqual(second.resources, first.resources);
        const other = await evaluate(withPort(18082));
        assert.equal(other.outputs.cacheMarker, undefined);
        assert.equal(fs.readdirSync(dir).length, 2);
    });

    it("with the known_hosts file chosen by the caller: evaluated every time, nothing kept", async () => {
        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS = path.join(dir, "known_hosts");
        try {
            const before = fs.readdirSync(dir).length;
            const program = await evaluate(withPort(18083));
            assert.equal(program.error, null);
            assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith(".json")).length, before);
        } finally {
            delete process.env.SERVICE_DISCOVERY_KNOWN_HOSTS;
        }
    });
});
