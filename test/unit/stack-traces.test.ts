// components/stack-traces.ts: stack traces are off only between suspend and resume, and never
// when PULUMI_DEBUG_PROMISE_LEAKS asks for them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { suspendStackTraces } from "../../components/stack-traces";

const frames = (): number => (new Error("x").stack ?? "").split("\n").filter((l) => l.trim().startsWith("at ")).length;

describe("stack traces while the program declares its resources", () => {
    it("off between suspend and resume, the previous limit back after", () => {
        const before = Error.stackTraceLimit;
        assert.ok(frames() > 0);
        const resume = suspendStackTraces();
        assert.equal(frames(), 0);
        resume();
        assert.equal(Error.stackTraceLimit, before);
        assert.ok(frames() > 0);
    });

    it("kept when PULUMI_DEBUG_PROMISE_LEAKS is set", () => {
        process.env.PULUMI_DEBUG_PROMISE_LEAKS = "true";
        try {
            const resume = suspendStackTraces();
            assert.ok(frames() > 0);
            resume();
        } finally {
            delete process.env.PULUMI_DEBUG_PROMISE_LEAKS;
        }
    });
});
