// reload.sh's guard: a rendered file that `haproxy -c` rejects is set aside, the running
// config stays live, the gateway keeps answering, and consul-template keeps following changes
// (a failing command would make consul-template exit and take the gateway down with it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { GATEWAY_CONF_DIR, Harness } from "./harness";

describe("reload guard", { timeout: 90_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
            await h.addInstance("guard-v1", "guard-a");
            await h.waitForRoute("/guard/v1/", { instance: "guard-a" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    test("a render haproxy -c rejects is set aside; the gateway keeps serving and following Consul", async () => {
        const live = fs.readFileSync(path.join(h.gateway.runDir, "haproxy.cfg"), "utf8");
        const broken = live.replace(/^defaults$/m, "defaults\n    this-is-not-a-directive on");
        fs.writeFileSync(path.join(h.gateway.runDir, "haproxy.cfg.new"), broken);

        const run = spawnSync("bash", [path.join(GATEWAY_CONF_DIR, "reload.sh")], { env: h.gateway.env, encoding: "utf8" });
        assert.equal(run.status, 0, `reload.sh must not fail its caller: ${run.stderr}`);
        assert.match(run.stderr, /rendered config rejected by haproxy -c/);
        assert.equal(fs.readFileSync(path.join(h.gateway.runDir, "haproxy.cfg.rejected"), "utf8"), broken);
        assert.equal(fs.readFileSync(path.join(h.gateway.runDir, "haproxy.cfg"), "utf8"), live, "the live config is untouched");
        assert.equal((await h.gateway.get("/guard/v1/x")).status, 200);

        // consul-template is still running and still renders: a new service gets routed.
        await h.addInstance("guard-v2", "guard-b");
        await h.waitForRoute("/guard/v2/", { instance: "guard-b" });
        assert.equal((await h.gateway.get("/guard/v1/x")).status, 200);
    });
});
