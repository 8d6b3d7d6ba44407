// Evaluates the Pulumi program (index.ts) once under Pulumi's official mocks and prints
// what it declared as JSON on stdout: every resource (type, name, parent chain, inputs with
// secrets marked, provider, dependencies) and the stack outputs. Runs in its own process so
// each evaluation starts from a fresh module cache and Pulumi runtime.
//   input (env): EVAL_CONFIG = JSON map of config key -> string value (as Pulumi stores it)
//                EVAL_STACK  = stack name (default "dev")
import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { mockCall, mockOutputs, Declared, Evaluation } from "./mocks";

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** Replaces Pulumi's wire form of a secret with {"$secret": value}, recursively. */
function markSecrets(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(markSecrets);
    if (value && typeof value === "object") {
        const obj = value as Record<string, unknown>;
        if (obj[SECRET_SIG_KEY] === SECRET_SIG) return { $secret: markSecrets(obj.value) };
        return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, markSecrets(v)]));
    }
    return value;
}

async function main(): Promise<void> {
    const stack = process.env.EVAL_STACK ?? "dev";
    const config: Record<string, string> = JSON.parse(process.env.EVAL_CONFIG ?? "{}");
    const resources: Declared[] = [];
    const calls: string[] = [];

    // The mock monitor hands mocks the inputs but not the parent or the dependencies;
    // record those from the registration request itself.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mocksModule = require("@pulumi/pulumi/runtime/mocks");
    const monitorProto = mocksModule.MockMonitor.prototype;
    const original = monitorProto.registerResource;
    const pending = new Map<string, { parent: string; dependencies: string[]; provider: string; deleteBeforeReplace: boolean }>();
    monitorProto.registerResource = function (req: any, callback: any) {
        pending.set(`${req.getType()}::${req.getName()}`, {
            parent: req.getParent(),
            dependencies: req.getDependenciesList(),
            provider: req.getProvider(),
            deleteBeforeReplace: req.getDeletebeforereplace(),
        });
        return original.call(this, req, callback);
    };

    pulumi.runtime.setMocks({
        newResource(args: pulumi.runtime.MockResourceArgs) {
            const extra = pending.get(`${args.type}::${args.name}`);
            const inputs = markSecrets(args.inputs) as Record<string, unknown>;
            const state = { ...args.inputs, ...mockOutputs(args.type, args.name, args.inputs) };
            const id = `${args.name}-id`;
            resources.push({
                type: args.type, name: args.name, custom: args.custom ?? false, inputs,
                parent: extra?.parent ?? "", dependencies: extra?.dependencies ?? [], provider: extra?.provider ?? "",
                deleteBeforeReplace: extra?.deleteBeforeReplace ?? false,
                urn: "",
            });
            return { id, state };
        },
        call(args: pulumi.runtime.MockCallArgs) {
            calls.push(args.token);
            return mockCall(args.token, args.inputs);
        },
    }, "service-discovery", stack, false);
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
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await require("@pulumi/pulumi/runtime/settings").waitForRPCs();
        result.programMs = Number(process.hrtime.bigint() - started) / 1e6;
    } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
    }
    result.error = failures.length > 0 ? failures[0] : null;
    // Exit only once the (possibly large) JSON has reached the pipe.
    await new Promise<void>((resolve) => process.stdout.write(JSON.stringify(result), () => resolve()));
}

main().then(() => process.exit(0), (e) => {
    process.stderr.write(String(e && e.stack || e));
    process.exit(1);
});
