// Child process: evaluates the Pulumi program (index.ts) under Pulumi's official mocks, like
// test/support/evaluate.ts, but each resource the program declares is handed to the parent
// (the test process) over the IPC channel, which creates it for real on the test engine and
// answers with its real id and outputs. Pulumi's runtime orders the registrations by the
// program's dependencies (inputs and dependsOn), as `pulumi up` would.
//   input (env): EVAL_CONFIG = JSON map of config key -> string value; EVAL_STACK = stack name
import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { recordRegistrations } from "../../support/pulumi-monitor";

export interface ResourceRequest {
    /** newResource: create it; invoke: answer a provider function (type is its token). */
    kind: "newResource" | "invoke";
    seq: number;
    type: string;
    name: string;
    custom: boolean;
    provider: string;
    /** As Pulumi deserialized them: secrets are still in Pulumi's secret wrapper. */
    inputs: Record<string, unknown>;
    /** The deleteBeforeReplace resource option; undefined when unset (the provider's default decides). */
    deleteBeforeReplace?: boolean;
}
export interface ResourceAnswer {
    kind: "answer";
    seq: number;
    id?: string;
    outputs?: Record<string, unknown>;
    error?: string;
}
export interface Done {
    kind: "done";
    outputs: Record<string, unknown>;
    error: string | null;
}

const pending = new Map<number, { resolve: (a: ResourceAnswer) => void }>();
let seq = 0;

function ask(request: Omit<ResourceRequest, "kind" | "seq">, kind: ResourceRequest["kind"] = "newResource"): Promise<ResourceAnswer> {
    const id = ++seq;
    return new Promise((resolve) => {
        pending.set(id, { resolve });
        process.send!({ kind, seq: id, ...request } satisfies ResourceRequest);
    });
}

// The test process is gone (killed): nothing would answer, stop now.
process.on("disconnect", () => process.exit(1));

process.on("message", (m: ResourceAnswer) => {
    const p = pending.get(m.seq);
    if (p) {
        pending.delete(m.seq);
        p.resolve(m);
    }
});

async function main(): Promise<void> {
    if (!process.send) throw new Error("test/e2e/applier/child.ts runs as a child of the e2e harness (IPC channel needed)");
    const stack = process.env.EVAL_STACK ?? "dev";
    const config: Record<string, string> = JSON.parse(process.env.EVAL_CONFIG ?? "{}");
    const failures: string[] = [];
    process.on("unhandledRejection", (e) => failures.push(e instanceof Error ? e.message : String(e)));

    // The resource options the mocks are not handed (test/support/pulumi-monitor.ts).
    const dbr = new Map<string, boolean | undefined>();
    pulumi.runtime.setMocks(
        {
            async newResource(args: pulumi.runtime.MockResourceArgs) {
                const answer = await ask({
                    type: args.type,
                    name: args.name,
                    custom: args.custom ?? false,
                    provider: args.provider ?? "",
                    inputs: args.inputs,
                    deleteBeforeReplace: dbr.get(`${args.type}::${args.name}`),
                });
                if (answer.error !== undefined) {
                    failures.push(answer.error);
                    throw new Error(answer.error);
                }
                return { id: answer.id, state: { ...args.inputs, ...answer.outputs } };
            },
            async call(args: pulumi.runtime.MockCallArgs) {
                const answer = await ask({ type: args.token, name: "", custom: false, provider: args.provider ?? "", inputs: args.inputs }, "invoke");
                if (answer.error !== undefined) {
                    failures.push(answer.error);
                    throw new Error(answer.error);
                }
                return answer.outputs ?? {};
            },
        },
        "service-discovery",
        stack,
        false,
    );
    recordRegistrations((r) => dbr.set(`${r.type}::${r.name}`, r.deleteBeforeReplaceDefined ? r.deleteBeforeReplace : undefined));
    pulumi.runtime.setAllConfig(config);

    const outputs: Record<string, unknown> = {};
    try {
        process.chdir(path.resolve(__dirname, "../../.."));
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const program = require("../../../index");
        for (const [key, value] of Object.entries(program)) {
            outputs[key] = pulumi.Output.isInstance(value) ? await new Promise((resolve) => (value as pulumi.Output<unknown>).apply(resolve)) : value;
        }
        // Every registration answered (disconnect() drains the SDK's queue of pending calls first).
        await pulumi.runtime.disconnect();
    } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
    }
    const done: Done = { kind: "done", outputs, error: failures.length > 0 ? failures[0] : null };
    await new Promise<void>((resolve) => process.send!(done, () => resolve()));
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(String((e && e.stack) || e));
        process.exit(1);
    },
);
