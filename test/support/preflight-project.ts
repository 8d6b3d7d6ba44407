// scripts/preflight.mjs run in a project folder of its own: the project's files it reads, one stack
// file, and a PATH holding node, a Pulumi CLI and the stand-ins a test gives, nothing else.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT } from "./paths";

export interface PreflightRun {
    code: number | null;
    text: string;
    /** The problems reported, one line each (the Node.js version's left out). */
    problems: string[];
}

export class PreflightProject {
    private readonly temps: string[] = [];

    private temp(prefix: string): string {
        const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
        this.temps.push(d);
        return d;
    }

    /** A project folder with the preflight and `Pulumi.prod.yaml` holding `stackFile`; the script's path. */
    project(stackFile: string): string {
        const dir = this.temp("sd-preflight-");
        for (const f of ["package.json", "Pulumi.yaml", "scripts/preflight.mjs"]) {
            fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
            fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
        }
        fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), stackFile);
        return path.join(dir, "scripts/preflight.mjs");
    }

    /** Runs `script` for stack prod with node, a Pulumi CLI and `tools` (name -> sh body) on PATH. */
    run(script: string, tools: Record<string, string>): PreflightRun {
        const dir = this.temp("sd-preflight-bin-");
        fs.symlinkSync(process.execPath, path.join(dir, "node"));
        for (const [name, body] of Object.entries({ pulumi: "echo v3.210.0", ...tools }))
            fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
        const r = spawnSync(process.execPath, [script, "--stack", "prod", "--no-ports"], {
            encoding: "utf8",
            timeout: 30_000,
            env: { PATH: dir, HOME: os.homedir(), PULUMI_CONFIG_PASSPHRASE: "x" },
        });
        const text = `${r.stdout}${r.stderr}`;
        const problems = text
            .split("\n")
            .filter((l) => l.startsWith("  - "))
            .map((l) => l.slice(4))
            .filter((l) => !l.startsWith("Node.js"));
        return { code: r.status, text, problems };
    }

    /** Removes every folder made. */
    cleanup(): void {
        for (const d of this.temps.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    }
}
