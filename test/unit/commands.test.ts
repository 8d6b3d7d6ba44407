// One backend and one stack for every command a user is given: `npm run up` and every `pulumi`
// command in README.md and docs/*.md run against the backend Pulumi.yaml names (PULUMI_BACKEND_URL
// being the only override), every stack they name exists as a Pulumi.<stack>.yaml, or is created
// by that very command, and the npm scripts take their stack from STACK (default dev).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { ROOT } from "../support/program";

const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
/** README.md and every page of docs/: where a user is given commands. */
const DOCS = [
    README,
    ...fs
        .readdirSync(path.join(ROOT, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => fs.readFileSync(path.join(ROOT, "docs", f), "utf8")),
];
const PROJECT = parseYaml(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { name: string; backend?: { url?: string } };
const SCRIPTS: Record<string, string> = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts;
const stackFile = (stack: string): boolean => fs.existsSync(path.join(ROOT, `Pulumi.${stack}.yaml`));

/** Code a user may run: fenced blocks (not diagrams or config files) and inline code spans. */
function codeOf(markdown: string): string[] {
    const out: string[] = [];
    const fence = /^[ \t]*```([a-z]*)\n([\s\S]*?)^[ \t]*```$/gm;
    for (const m of markdown.matchAll(fence)) if (!["mermaid", "yaml"].includes(m[1])) out.push(...m[2].split("\n"));
    const prose = markdown.replace(fence, "");
    for (const m of prose.matchAll(/`([^`\n]+)`/g)) out.push(m[1]);
    return out;
}

const SUBCOMMANDS = "up|preview|destroy|refresh|stack|config|login|logout|whoami|state|import|cancel|new|env|org|plugin|about|version|policy|install";

/** Each `pulumi <subcommand> …` invocation in a piece of shell, up to the next operator. */
function pulumiCommands(code: string): string[] {
    return [...code.matchAll(new RegExp(`(?:^|[\\s;&|($"])((?:[A-Z_]+=\\S+\\s+)*pulumi\\s+(?:${SUBCOMMANDS})\\b[^;&|()\`\\n#]*)`, "g"))].map((m) =>
        m[1].trim(),
    );
}

/** The stack a command names, and whether it creates that stack. */
function stackOf(command: string): { stack?: string; creates: boolean } {
    const words = command.replace(/"([^"]*)"/g, "$1").split(/\s+/);
    const flag = words.findIndex((w) => w === "--stack" || w === "-s");
    if (flag >= 0) return { stack: words[flag + 1], creates: false };
    const inline = words.find((w) => w.startsWith("--stack="));
    if (inline) return { stack: inline.slice("--stack=".length), creates: false };
    const sub = words.indexOf("stack");
    if (sub >= 0 && ["init", "select", "rm"].includes(words[sub + 1])) {
        const name = words.slice(sub + 2).find((w) => !w.startsWith("-"));
        return { stack: name, creates: words[sub + 1] === "init" || (words[sub + 1] === "select" && words.includes("--create")) };
    }
    return { creates: false };
}

describe("one backend for every command", () => {
    const readmeCommands = DOCS.flatMap(codeOf).flatMap(pulumiCommands);

    it("Pulumi.yaml names the backend: local file state by default", () => {
        assert.equal(PROJECT.name, "service-discovery");
        assert.equal(PROJECT.backend?.url, "file://~");
    });

    it("the README says which backend that is, and that PULUMI_BACKEND_URL overrides it", () => {
        assert.ok(README.includes(`backend.url: ${PROJECT.backend!.url}`), "README names Pulumi.yaml's backend.url");
        assert.match(README, /`PULUMI_BACKEND_URL`\s+overrides it for all of them/);
    });

    it("npm run up: preflight first, then the dependencies, then creates or selects the stack (STACK, default dev) and deploys it", () => {
        const steps = SCRIPTS.up.split("&&").map((s) => s.trim());
        assert.deepEqual(steps, [
            'node scripts/preflight.mjs --stack "${STACK:-dev}"',
            "npm run deps",
            'pulumi stack select --create "${STACK:-dev}"',
            'pulumi up --stack "${STACK:-dev}"',
        ]);
        assert.ok(stackFile("dev"));
    });

    it("the dependencies leave the tree as it was: npm ci (which never writes package-lock.json), only when node_modules is missing or older", () => {
        assert.equal(
            SCRIPTS.deps,
            "[ node_modules/.package-lock.json -nt package-lock.json ] && [ node_modules/.package-lock.json -nt package.json ] || npm ci --no-audit --no-fund",
        );
        for (const [name, script] of Object.entries(SCRIPTS)) assert.doesNotMatch(script, /npm (install|i)\b/, `npm run ${name} may rewrite package-lock.json`);
    });

    it("every script that works on a stack takes it from STACK (default dev), the preflight included", () => {
        for (const name of ["up", "preview", "destroy", "operator"]) {
            const script = SCRIPTS[name];
            assert.ok(script, `npm run ${name}`);
            assert.doesNotMatch(script, /--stack (dev|aws)\b|--create (dev|aws)\b/, `npm run ${name}: ${script}`);
            for (const m of script.matchAll(/--stack (\S+)/g)) assert.equal(m[1], '"${STACK:-dev}"', `npm run ${name}: ${script}`);
        }
        assert.match(SCRIPTS.destroy, /--no-ports/, "destroy binds no port: the preflight does not check them");
        assert.match(SCRIPTS.operator, /^node scripts\/operator\.mjs --stack "\$\{STACK:-dev\}"$/);
    });

    it("no npm script sets a backend of its own or logs in, and every stack it names has its file", () => {
        for (const [name, script] of Object.entries(SCRIPTS)) {
            assert.doesNotMatch(script, /PULUMI_BACKEND_URL|pulumi login|--cloud-url|file:\/\//, `npm run ${name}`);
            for (const command of pulumiCommands(script)) {
                const { stack } = stackOf(command.replace(/\$\{STACK:-([a-z0-9-]+)\}/, "$1"));
                if (stack !== undefined) assert.ok(stackFile(stack), `npm run ${name}: ${command}: no Pulumi.${stack}.yaml`);
            }
        }
        for (const name of ["up", "preview", "destroy"])
            assert.match(SCRIPTS[name], /^node scripts\/preflight\.mjs\b/, `npm run ${name} starts with the preflight`);
    });

    it("finds the pulumi commands of README.md and docs/ (the check below has something to check)", () => {
        assert.ok(readmeCommands.length >= 15, readmeCommands.join("\n"));
        for (const expected of ["pulumi stack output statsPassword --show-secrets", "pulumi stack init aws", "pulumi config set nodeCount 5"]) {
            assert.ok(
                readmeCommands.some((c) => c.startsWith(expected)),
                `${expected} in ${readmeCommands.join(" | ")}`,
            );
        }
    });

    it("no documented command picks another backend: no login, no --cloud-url, no PULUMI_BACKEND_URL of its own, no other project folder", () => {
        for (const command of readmeCommands) {
            assert.doesNotMatch(command, /pulumi\s+log(in|out)\b|--cloud-url|PULUMI_BACKEND_URL=|\s(-C|--cwd)\s/, command);
        }
        for (const line of DOCS.flatMap(codeOf)) assert.doesNotMatch(line, /export\s+PULUMI_BACKEND_URL=|pulumi\s+login/, line);
    });

    it("every stack a documented command uses exists as a stack file, or the command creates it", () => {
        const named: string[] = [];
        for (const command of readmeCommands) {
            const { stack, creates } = stackOf(command);
            if (stack === undefined || /^[<$]/.test(stack)) continue;
            named.push(stack);
            assert.ok(creates || stackFile(stack), `${command}: no Pulumi.${stack}.yaml and it does not create the stack`);
        }
        assert.ok(named.includes("dev") && named.includes("aws"), named.join(", "));
    });

    it("removing a stack in the docs keeps its tracked Pulumi.<stack>.yaml", () => {
        const removals = readmeCommands.filter((c) => /pulumi\s+stack\s+rm\b/.test(c));
        assert.ok(removals.length >= 1);
        for (const command of removals) assert.match(command, /--preserve-config/, command);
    });

    it("every `npm run` README.md and docs/ mention exists", () => {
        const mentioned = new Set(DOCS.flatMap((text) => [...text.matchAll(/npm run (?:-s )?([a-z][a-z0-9:-]*)/g)].map((m) => m[1])));
        assert.ok(mentioned.has("up") && mentioned.has("destroy") && mentioned.has("operator"));
        for (const name of mentioned) assert.ok(name in SCRIPTS, `npm run ${name} is not a script`);
    });
});

describe("one Node.js for the program, the tests, CI and the workflows", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    const wanted = Number(/^>=\s*([0-9]+)$/.exec(pkg.engines.node)?.[1]);

    it("engines asks for a Node.js that is not end of life (22 LTS or newer)", () => {
        assert.ok(wanted >= 22, `engines.node ${pkg.engines.node}`);
    });

    it("@types/node describes that Node.js", () => {
        assert.equal(Number(/([0-9]+)\./.exec(pkg.devDependencies["@types/node"])?.[1]), wanted, pkg.devDependencies["@types/node"]);
    });

    it("every workflow sets up that Node.js", () => {
        const dir = path.join(ROOT, ".github/workflows");
        const versions = fs
            .readdirSync(dir)
            .filter((f) => f.endsWith(".yml"))
            .flatMap((f) => [...fs.readFileSync(path.join(dir, f), "utf8").matchAll(/node-version:\s*["']?([0-9.x]+)["']?/g)].map((m) => `${f}:${m[1]}`));
        assert.ok(versions.length >= 2, versions.join(", "));
        for (const v of versions) assert.equal(v.split(":")[1], String(wanted), v);
    });

    it("CI (.ci/run) provides that Node.js when the machine's is older", () => {
        const ci = fs.readFileSync(path.join(ROOT, ".ci/run"), "utf8");
        assert.match(ci, new RegExp(`if \\[ "\\$node_major" -lt ${wanted} \\]`));
        assert.match(ci, new RegExp(`"\\$node_pkg@${wanted}"`));
        assert.match(ci, /export PATH="\$node_bin:\$PATH"/);
    });
});
