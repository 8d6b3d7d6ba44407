// Evaluates the Pulumi program (index.ts) once under Pulumi's official mocks and prints
// what it declared as JSON on stdout: every resource (type, name, parent chain, inputs with
// secrets marked, provider, dependencies) and the stack outputs. Runs in its own process so
// each evaluation starts from a fresh module cache and Pulumi runtime.
//   input (env): EVAL_CONFIG = JSON map of config key -> string value (as Pulumi stores it)
//                EVAL_STACK  = stack name (default "dev")
import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { mockCall, mockOutputs, Declared, Evaluation } from "./mocks";
import { recordRegistrations, type RegistrationExtras } from "./pulumi-monitor";
import { mapSecrets } from "./secrets";

/** Replaces Pulumi's wire form of a secret with {"$secret": value}, recursively. */
function markSecrets(value: unknown): unknown {
    return mapSecrets(value, (inner) => ({ $secret: inner }));
}

async function main(): Promise<void> {
    const stack = process.env.EVAL_STACK ?? "dev";
    const config: Record<string, string> = JSON.parse(process.env.EVAL_CONFIG ?? "{}");
    const resources: Declared[] = [];
    const calls: string[] = [];

    // The mocks are handed the inputs but not the parent or the dependencies: those come from
    // the registration request itself (test/support/pulumi-monitor.ts).
    const pending = new Map<string, RegistrationExtras>();

    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const extra = pending.get(`${args.type}::${args.name}`);
                const inputs = markSecrets(args.inputs) as Record<string, unknown>;
                const state = { ...args.inputs, ...mockOutputs(args.type, args.name, args.inputs) };
                const id = `${args.name}-id`;
                resources.push({
                    type: args.type,
                    name: args.name,
                    custom: args.custom ?? false,
                    inputs,
                    parent: extra?.parent ?? "",
                    dependencies: extra?.dependencies ?? [],
                    provider: args.provider ?? "",
                    deleteBeforeReplace: extra?.deleteBeforeReplaceDefined ? extra.deleteBeforeReplace : undefined,
                    aliases: extra?.aliases ?? [],
                    ignoreChanges: extra?.ignoreChanges ?? [],
                    urn: "",
                });
                return { id, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                calls.push(args.token);
                return mockCall(args.token, args.inputs);
            },
        },
        "service-discovery",
        stack,
        false,
    );
    recordRegistrations((extra) => pending.set(`${extra.type}::${extra.name}`, extra));
    pulumi.runtime.setAllConfig(config);

    const result: Evaluation = { resources, outputs: {}, error: null, calls };
    const failures: string[] = [];
    process.on("unhandledRejection", (e) => failures.push(e instanceof Error ? e.message : String(e)));
    try {
        process.chdir(path.resolve(__dirname, "../.."));
        const started = process.hrtime.bigint();
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const program = require("../../index");
        for (const [key, value] of Object.entries(program)) {
            if (pulumi.Output.isInstance(value)) {
                const isSecret = await (value as any).isSecret;
                const plain = await new Promise((resolve) => (value as pulumi.Output<unknown>).apply(resolve));
                result.outputs[key] = isSecret ? { $secret: plain } : plain;
            } else {
                result.outputs[key] = value;
            }
        }
        // Every registration answered (disconnect() drains the SDK's queue of pending calls first).
        await pulumi.runtime.disconnect();
        result.programMs = Number(process.hrtime.bigint() - started) / 1e6;
    } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
    }
    result.error = failures.length > 0 ? failures[0] : null;
    // Exit only once the (possibly large) JSON has reached the pipe.
    await new Promise<void>((resolve) => process.stdout.write(JSON.stringify(result), () => resolve()));
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(String((e && e.stack) || e));
        process.exit(1);
    },
);
