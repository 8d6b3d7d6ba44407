// Routes belong to declared replicas (docs/security.md), attacked on a real engine: the stack
// declares a service `evil` whose image claims hello v1's route the ways an image can — an ENV
// `SERVICE_8080_NAME=hello-v1` (the program's own per-port variable replaces it) and a LABEL
// `SERVICE_8080_NAME=hello-v1` (Registrator reads labels after the environment: that claim
// reaches Consul). The gateway routes hello-v1 to hello's declared replicas only: the intruder,
// registered as hello-v1 with a passing check, gets no request; the rejection is logged and in
// the controller's metrics; hello's replicas keep serving.
import assert from "node:assert/strict";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { PROJECT, ROOT, stackConfig } from "../support/program";
import { skipReason } from "./harness/engine";
import { localBaseBuildArgs } from "./harness/images";
import { consulGet, hostnameOf, hostnames, metric, replicasOf, rotationIs } from "./harness/scenario";
import { e2eName, eventually, type Stack, stackForSuite } from "./harness/stack";

const BASE = "service-discovery/hello:e2e-ownership";
const EVIL = "service-discovery/evil:e2e-ownership";

/** The dev stack's services, and `evil` running the image that claims hello-v1. */
function services(): Record<string, unknown>[] {
    const dev = JSON.parse(stackConfig("dev")[`${PROJECT}:services`]) as Record<string, unknown>[];
    return [...dev, { name: "evil", version: "v1", image: EVIL, containerPort: 8080, replicas: 1, healthCheckPath: "/health" }];
}

describe("the dev stack's config on a real engine (stack e2e): an image claiming another service's route", { skip: skipReason() }, () => {
    const up = stackForSuite({
        beforeApply: async (docker) => {
            await docker.cli(["build", "--network", "host", ...localBaseBuildArgs(), "--tag", BASE, path.join(ROOT, "components/images/hello")], {
                timeoutMs: 900_000,
            });
            await docker.cli(["build", "--tag", EVIL, "-"], {
                input: `FROM ${BASE}\nENV SERVICE_8080_NAME=hello-v1 SERVICE_8080_TAGS=rest\nLABEL SERVICE_8080_NAME=hello-v1 SERVICE_8080_TAGS=rest\n`,
                timeoutMs: 300_000,
            });
        },
        config: { services: services() },
    });
    let stack: Stack;
    let evil: string;
    let hello: string[];

    before(() => {
        stack = up();
        [evil] = replicasOf(stack, "evil-v1") as [string];
        hello = replicasOf(stack, "hello-v1").map((c) => hostnameOf(stack, c));
        assert.ok(evil, "the stack declares evil v1");
        assert.equal(hello.length, 2);
    });

    test("the program's own per-port name replaces the image's ENV; the image's LABEL still reaches Consul as hello-v1", async () => {
        const env: string[] = (await stack.docker.inspectContainer(evil)).Config.Env;
        assert.ok(env.includes("SERVICE_8080_NAME=evil-v1"), `the program sets SERVICE_8080_NAME: ${env.filter((e) => e.startsWith("SERVICE_")).join(" ")}`);
        assert.ok(!env.includes("SERVICE_8080_NAME=hello-v1"), "the image's ENV is replaced");
        // The attack is real: Consul holds a passing hello-v1 instance from the evil container.
        const claim = await eventually("the evil container registered as hello-v1 with a passing check", async () => {
            const entries = await consulGet<any[]>(stack, "/v1/health/service/hello-v1");
            return entries.find((e) => String(e.Service.ID).includes(`:${evil}:`) && e.Checks.every((c: any) => c.Status === "passing"));
        });
        assert.equal(claim.Service.Service, "hello-v1");
    });

    test("the gateway routes hello-v1 to hello's declared replicas only; the claim is rejected, logged and counted", async () => {
        await rotationIs(stack, "/hello/v1/", hello);
        const seen = await hostnames(stack, "/hello/v1/", 60);
        assert.ok(
            seen.every((h) => hello.includes(h)),
            `answered by ${[...new Set(seen)].join(", ")}`,
        );
        assert.ok(!seen.includes(hostnameOf(stack, evil)), "the evil container answered");
        assert.equal(await metric(stack, "gateway_controller_foreign_instances", "/metrics/controller"), 1);
        const logs = await stack.docker.logs(e2eName("gateway"), 400);
        assert.match(logs, new RegExp(`container ${evil.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not a declared replica of hello-v1`));
    });
});
