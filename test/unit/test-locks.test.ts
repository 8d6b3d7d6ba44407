// The pid lock files the harnesses share (test/support/proc.ts, takePidLock): the Docker layer's
// cached data roots and the Debian root file system both use it while npm test runs the Docker and
// cluster layers at once.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { lockHolder, takePidLock } from "../support/proc";

describe("test locks: one live holder at a time", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-locks-"));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("taken when free, with this process's pid in it; refused while a live process holds it", () => {
        const file = path.join(dir, "free.lock");
        assert.equal(lockHolder(file), undefined);
        assert.equal(takePidLock(file), true);
        assert.equal(lockHolder(file), process.pid);
        // The parent of this test process is alive: its lock is not taken.
        const held = path.join(dir, "held.lock");
        fs.writeFileSync(held, String(process.ppid));
        assert.equal(takePidLock(held), false);
        assert.equal(lockHolder(held), process.ppid);
    });

    it("a lock left by a process that died is taken over", () => {
        const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
        const pid = Number(dead.stdout.trim());
        assert.ok(pid > 0);
        const file = path.join(dir, "dead.lock");
        fs.writeFileSync(file, String(pid));
        assert.equal(takePidLock(file), true);
        assert.equal(lockHolder(file), process.pid);
    });
});
