// Graceful drain on the stack side (docs/services.md, "Graceful drain"): every service container is told
// its grace period (DRAIN_SECONDS) and gets a stop timeout, for `docker stop` and for the
// provider's own deletions, that outlasts the grace plus time for the requests in flight.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { parseSettings } from "../../components/config";
import { DEFAULT_DRAIN_SECONDS, IN_FLIGHT_SECONDS, MAX_DRAIN_SECONDS, stopTimings } from "../../components/drain";
import { devWith, envOf, evaluate, Program, ROOT, stackConfig } from "../support/program";
import { dev as devRaw, rejects } from "./config-support";

/** The service replicas of a program (the containers of VersionedService components). */
function replicas(p: Program): ReturnType<Program["containers"]> {
    return p.containers().filter((c) => /-hello-v[0-9]+-[0-9]+-[0-9a-f]{8}$/.test(String(c.inputs.name)));
}

describe("graceful drain: stop timings", () => {
    it("the stop timeout is the grace plus time for the requests in flight, always above the grace", () => {
        assert.equal(IN_FLIGHT_SECONDS, 30, "the gateway's default haproxy.timeouts.server");
        assert.deepEqual(stopTimings(), { drainSeconds: DEFAULT_DRAIN_SECONDS, stopTimeoutSeconds: DEFAULT_DRAIN_SECONDS + 30 });
        assert.deepEqual(stopTimings(0), { drainSeconds: 0, stopTimeoutSeconds: 30 });
        assert.deepEqual(stopTimings(MAX_DRAIN_SECONDS), { drainSeconds: MAX_DRAIN_SECONDS, stopTimeoutSeconds: MAX_DRAIN_SECONDS + 30 });
        for (const bad of [-1, 1.5, MAX_DRAIN_SECONDS + 1, Number.NaN]) {
            assert.throws(
                () => stopTimings(bad),
                new RegExp(`^Error: drain grace ${bad} is not allowed; expected an integer number of seconds from 0 to ${MAX_DRAIN_SECONDS}$`),
            );
        }
    });

    it("hello.py's own default grace is the one the program passes", () => {
        const source = fs.readFileSync(path.join(ROOT, "components/images/hello/hello.py"), "utf8");
        const m = /os\.environ\.get\("DRAIN_SECONDS", "([0-9]+)"\)/.exec(source);
        assert.ok(m, "hello.py reads DRAIN_SECONDS with a default");
        assert.equal(Number(m[1]), DEFAULT_DRAIN_SECONDS);
    });
});

describe("graceful drain: service containers", () => {
    let dev: Program;
    let longServerTimeout: Program;
    before(async () => {
        [dev, longServerTimeout] = await Promise.all([evaluate(stackConfig("dev")), evaluate(devWith({ haproxy: { timeouts: { server: "2m" } } }))]);
        assert.equal(dev.error, null);
        assert.equal(longServerTimeout.error, null);
    });

    it(`each replica gets DRAIN_SECONDS=${DEFAULT_DRAIN_SECONDS} and a stop timeout of ${DEFAULT_DRAIN_SECONDS + IN_FLIGHT_SECONDS} s, for docker stop and for the provider's deletions`, () => {
        const rs = replicas(dev);
        // Not vacuous: the dev stack runs hello v1 x2 and v2 x1.
        assert.deepEqual(rs.map((c) => c.inputs.hostname).sort(), ["dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"]);
        for (const c of rs) {
            const { env } = envOf(c);
            assert.equal(env.DRAIN_SECONDS, String(DEFAULT_DRAIN_SECONDS), `${c.inputs.name}: DRAIN_SECONDS`);
            assert.equal(c.inputs.stopTimeout, DEFAULT_DRAIN_SECONDS + IN_FLIGHT_SECONDS, `${c.inputs.name}: stopTimeout`);
            assert.equal(
                c.inputs.destroyGraceSeconds,
                c.inputs.stopTimeout,
                `${c.inputs.name}: destroyGraceSeconds (else the provider removes it with force, no drain)`,
            );
            assert.ok(c.inputs.stopTimeout > Number(env.DRAIN_SECONDS), `${c.inputs.name}: the stop timeout outlasts the grace`);
            // The image's STOPSIGNAL (SIGTERM for hello) stays: a user image may drain on another signal.
            assert.equal(c.inputs.stopSignal, undefined, `${c.inputs.name}: stopSignal`);
        }
    });

    it("a gateway setting (haproxy.timeouts.server) changes no service container: it would replace them all", () => {
        const before_ = new Map(replicas(dev).map((c) => [String(c.inputs.name).replace(/^dev-/, ""), c.inputs]));
        const after_ = replicas(longServerTimeout);
        assert.equal(after_.length, before_.size);
        for (const c of after_) {
            assert.deepEqual(c.inputs, before_.get(String(c.inputs.name).replace(/^dev-/, "")), `${c.inputs.name}: inputs unchanged`);
        }
    });
});

describe("graceful drain: services[i].drainSeconds", () => {
    const hello = (drainSeconds: unknown) => ({
        services: [
            { name: "hello", version: "v1", build: "components/images/hello", replicas: 2, drainSeconds },
            { name: "hello", version: "v2", build: "components/images/hello" },
        ],
    });
    let tuned: Program;
    before(async () => {
        tuned = await evaluate(devWith(hello(120)));
        assert.equal(tuned.error, null);
    });

    it("sets one service's grace and stop timeout, and leaves the others at the default", () => {
        const rs = replicas(tuned);
        assert.equal(rs.length, 3);
        for (const c of rs) {
            const expected = String(c.inputs.hostname).startsWith("dev-hello-v1-") ? 120 : DEFAULT_DRAIN_SECONDS;
            assert.equal(envOf(c).env.DRAIN_SECONDS, String(expected), `${c.inputs.hostname}: DRAIN_SECONDS`);
            assert.equal(c.inputs.stopTimeout, expected + IN_FLIGHT_SECONDS, `${c.inputs.hostname}: stopTimeout`);
            assert.equal(c.inputs.destroyGraceSeconds, expected + IN_FLIGHT_SECONDS, `${c.inputs.hostname}: destroyGraceSeconds`);
        }
    });

    it("takes 0 (no grace: the stop signal's own handling) and the maximum", () => {
        for (const seconds of [0, MAX_DRAIN_SECONDS]) assert.equal(parseSettings(devRaw(hello(seconds)), "dev").services[0].drainSeconds, seconds);
        assert.equal(parseSettings(devRaw(hello(undefined)), "dev").services[0].drainSeconds, DEFAULT_DRAIN_SECONDS);
    });

    for (const bad of [-1, MAX_DRAIN_SECONDS + 1, 1.5, "10", null, true]) {
        it(`refuses ${JSON.stringify(bad)} with the key named`, () => {
            rejects(
                devRaw(hello(bad)),
                `service-discovery:services[0].drainSeconds: ${JSON.stringify(bad)} is not allowed; expected an integer from 0 to ${MAX_DRAIN_SECONDS}`,
            );
        });
    }
});
