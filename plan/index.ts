// The routing plan of a stack: the route table its config gives (the gateway's own model, fed
// what the program writes and registers: input.ts), its difference from another config's or a
// running gateway's table (diff.ts), and the lint (lint.ts). `npm run plan` prints it
// (scripts/plan.ts); the pull-request workflow posts it beside Pulumi's diff.
import { ConfigError, type Settings } from "../components/config";
import { buildModel } from "../components/images/gateway/controller/model";
import { routeTable, type RouteTable } from "../components/images/gateway/controller/routes";
import { diffTables, type RouteChange } from "./diff";
import { modelInput, rawConfig, settingsOf } from "./input";
import { DEFAULT_LINT, lint, type Finding, type LintOptions } from "./lint";

export type { RouteChange } from "./diff";
export type { Finding } from "./lint";

/** A stack's table, or the config error that stops `pulumi up` (and the plan) before any route. */
export type StackTable = { readonly settings: Settings; readonly table: RouteTable } | { readonly error: Finding };

/** The route table of a stack file's `config:` section. */
export function stackTable(config: Record<string, unknown>, stack: string): StackTable {
    let settings: Settings;
    try {
        settings = settingsOf(rawConfig(config), stack);
    } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        // Config errors name their key first: "service-discovery:<key>: <what is wrong>".
        const key = /^(service-discovery:[^\s:]+): /.exec(e.message)?.[1];
        return { error: { level: "error", rule: "config", key: key ?? "service-discovery", message: key ? e.message.slice(key.length + 2) : e.message } };
    }
    return { settings, table: routeTable(buildModel(modelInput(settings))) };
}

export interface Plan {
    readonly stack: string;
    /** undefined when the config is refused (the finding says why). */
    readonly table?: RouteTable;
    /** What the base is: "main's Pulumi.dev.yaml", "the running gateway", or undefined for none. */
    readonly baseName?: string;
    readonly changes: readonly RouteChange[];
    readonly findings: readonly Finding[];
}

/**
 * The plan of `head` against `base` (a table, or a config whose table is computed; undefined: no
 * comparison, an empty object: a stack file that does not exist there yet).
 */
export function plan(
    stack: string,
    head: Record<string, unknown>,
    base?: { readonly name: string; readonly config?: Record<string, unknown>; readonly table?: RouteTable },
    options: LintOptions = DEFAULT_LINT,
): Plan {
    const h = stackTable(head, stack);
    let baseTable: RouteTable | undefined;
    if (base) {
        if (base.table) baseTable = base.table;
        else if (base.config) {
            const b = stackTable(base.config, stack);
            // A base that was refused compares as empty: everything the head routes is new.
            baseTable = "table" in b ? b.table : { hosts: [], sni: [], http: [], tcp: [], notes: [] };
        } else baseTable = { hosts: [], sni: [], http: [], tcp: [], notes: [] };
    }
    if ("error" in h) return { stack, ...(base ? { baseName: base.name } : {}), changes: [], findings: [h.error] };
    return {
        stack,
        table: h.table,
        ...(base ? { baseName: base.name } : {}),
        changes: baseTable ? diffTables(baseTable, h.table) : [],
        findings: lint(h.settings, h.table, baseTable, options),
    };
}

export const failed = (p: Plan): boolean => p.findings.some((f) => f.level === "error");
