// The test ports (test/support/ports.ts): the control-plane files run in several workers at once
// (test/run-controlplane.sh), each with its own slice of the range, so two processes never pick the same port.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freePort, portRange } from "../support/ports";

describe("test ports: slices for concurrent workers", () => {
    it("unset or empty: the whole range", () => {
        assert.deepEqual(portRange(undefined), { from: 20000, to: 32767 });
        assert.deepEqual(portRange(""), { from: 20000, to: 32767 });
    });

    it("the slices of n are disjoint, in order, and inside the whole range", () => {
        for (const n of [2, 3, 5]) {
            const slices = Array.from({ length: n }, (_, i) => portRange(`${i}/${n}`));
            slices.forEach((s, i) => {
                assert.ok(s.from <= s.to && s.from >= 20000 && s.to <= 32767, `${i}/${n}: ${JSON.stringify(s)}`);
                if (i > 0) assert.ok(s.from > slices[i - 1]!.to, `${i}/${n} overlaps ${i - 1}/${n}`);
            });
        }
        assert.deepEqual(portRange("0/2"), { from: 20000, to: 26383 });
        assert.deepEqual(portRange("1/2"), { from: 26384, to: 32767 });
    });

    it("a malformed slice is refused with what is allowed", () => {
        for (const bad of ["2/2", "1", "a/b", "0/0", "-1/2", "0/17"])
            assert.throws(() => portRange(bad), new RegExp(`SD_TEST_PORT_SLICE=${bad.replace(/[/]/g, "\\/")} is not allowed; expected <i>/<n>`));
    });

    it("freePort hands out ports of this process's slice, never one twice", async () => {
        const range = portRange(process.env.SD_TEST_PORT_SLICE);
        const seen = new Set<number>();
        for (let i = 0; i < 20; i++) {
            const p = await freePort();
            assert.ok(p >= range.from && p <= range.to, `${p} outside ${JSON.stringify(range)}`);
            assert.ok(!seen.has(p), `${p} handed out twice`);
            seen.add(p);
        }
    });
});
