// The real programs the control-plane and e2e tests run, as test/tools/install.sh built and
// recorded them in <cache>/tools.env. A variable set in the environment wins over the file.
import * as fs from "node:fs";
import * as path from "node:path";
import { cacheDir } from "./paths";

export interface Tools {
    CONSUL_BIN: string;
    HAPROXY_BIN: string;
    WRK_BIN: string;
    PYTHON_BIN: string;
}

/**
 * CONSUL_TEMPLATE_BIN: only the benchmark's previous design runs it (install.sh --bench).
 * PEBBLE_BIN: Let's Encrypt's ACME test server, only the ACME tests run it.
 */
export type ToolName = keyof Tools | "CONSUL_TEMPLATE_BIN" | "PEBBLE_BIN";

/** Tools without an entry in tools.env: found on PATH by name. */
const ON_PATH: Partial<Record<ToolName, string>> = { PYTHON_BIN: "python3" };

/** The path of the tools file (it may not exist yet). */
export function toolsFile(): string {
    return path.join(cacheDir(), "tools.env");
}

function fromFile(file: string): Record<string, string> {
    const vars: Record<string, string> = {};
    if (!fs.existsSync(file)) return vars;
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
        const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
        if (m) vars[m[1]!] = m[2]!;
    }
    return vars;
}

function pick(name: ToolName, vars: Record<string, string>, file: string): string {
    const value = process.env[name] || vars[name] || ON_PATH[name];
    // A path must exist; a bare name (python3) is looked up on PATH when it runs.
    if (!value || (value.includes("/") && !fs.existsSync(value))) {
        throw new Error(
            `${name} is ${value ? `${value}, which does not exist` : "not set"}: run bash test/tools/install.sh (npm run test:controlplane and npm run e2e do), which writes ${file}`,
        );
    }
    return value;
}

/** One tool; throws naming the variable and how to get it. */
export function readTool(name: ToolName): string {
    const file = toolsFile();
    return pick(name, fromFile(file), file);
}

/** Every tool install.sh provides; throws naming the first one missing. */
export function readTools(): Tools {
    const file = toolsFile();
    const vars = fromFile(file);
    return {
        CONSUL_BIN: pick("CONSUL_BIN", vars, file),
        HAPROXY_BIN: pick("HAPROXY_BIN", vars, file),
        WRK_BIN: pick("WRK_BIN", vars, file),
        PYTHON_BIN: pick("PYTHON_BIN", vars, file),
    };
}
