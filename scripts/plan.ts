// npm run plan [-- options]: the routing plan of a stack (plan/index.ts). Exit status 1 when the
// lint finds an error, 2 on a usage error. docs/routing-plan.md says what each part means.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import type { RouteTable } from "../components/images/gateway/controller/routes";
import { failed, plan } from "../plan";
import { markdown, text } from "../plan/report";

const ROOT = path.resolve(__dirname, "..");

const USAGE = `usage: npm run plan -- [--stack NAME] [--base GIT-REF | --base-file FILE | --gateway URL] [--format text|markdown|json] [--out FILE] [--weight-step N]
  --stack        the stack file Pulumi.<NAME>.yaml (default: $STACK, else dev)
  --stack-file   read the stack's config from FILE instead
  --base         compare with the same stack file at a git revision (e.g. origin/main)
  --base-file    compare with another stack file
  --gateway      compare with what a running gateway routes: its stats URL, e.g. http://127.0.0.1:1936
                 (login from STATS_USER and STATS_PASSWORD; --cacert FILE for https)
  --format       text (default), markdown (the pull request's comment) or json
  --out          also write the plan to FILE
  --weight-step  warn when a version's share moves by more points than this without sticky (default 25)`;

function usage(message: string): never {
    process.stderr.write(`plan: ${message}\n${USAGE}\n`);
    process.exit(2);
}

/** The `config:` section of a stack file's text ({} for an empty file). */
function configOf(yamlText: string, where: string): Record<string, unknown> {
    let doc: unknown;
    try {
        doc = parseYaml(yamlText);
    } catch (e) {
        usage(`${where} is not YAML: ${(e as Error).message}`);
    }
    return ((doc as { config?: Record<string, unknown> } | null)?.config ?? {}) as Record<string, unknown>;
}

function readStackFile(file: string): Record<string, unknown> {
    if (!fs.existsSync(file)) usage(`${path.relative(process.cwd(), file) || file} does not exist`);
    return configOf(fs.readFileSync(file, "utf8"), file);
}

/** The stack file at a git revision; undefined when the revision has no such file (a new stack). */
function gitStackFile(ref: string, name: string): Record<string, unknown> | undefined {
    try {
        execFileSync("git", ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { cwd: ROOT, stdio: "ignore" });
    } catch {
        usage(`--base ${ref}: no such git revision here (fetch it first, e.g. git fetch origin main)`);
    }
    try {
        return configOf(
            execFileSync("git", ["show", `${ref}:${name}`], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
            `${ref}:${name}`,
        );
    } catch {
        return undefined;
    }
}

function gatewayTable(url: string, cacert: string | undefined): Promise<RouteTable> {
    const user = process.env.STATS_USER;
    const password = process.env.STATS_PASSWORD;
    if (!user || !password) usage("--gateway needs the stats login in STATS_USER and STATS_PASSWORD (`npm run operator` prints how to read it)");
    const target = new URL("/routes", url);
    const request = target.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
        const req = request(
            target,
            {
                headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` },
                timeout: 10_000,
                ...(cacert ? { ca: fs.readFileSync(cacert) } : {}),
            },
            (res) => {
                let body = "";
                res.setEncoding("utf8");
                res.on("data", (d: string) => (body += d));
                res.on("end", () => {
                    if (res.statusCode !== 200) return reject(new Error(`${target.href}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
                    try {
                        resolve(JSON.parse(body) as RouteTable);
                    } catch {
                        reject(new Error(`${target.href}: not a route table`));
                    }
                });
            },
        );
        req.on("timeout", () => req.destroy(new Error(`${target.href}: no answer in 10 s`)));
        req.on("error", reject);
        req.end();
    });
}

async function main(): Promise<void> {
    let values;
    try {
        ({ values } = parseArgs({
            options: {
                stack: { type: "string" },
                "stack-file": { type: "string" },
                base: { type: "string" },
                "base-file": { type: "string" },
                gateway: { type: "string" },
                cacert: { type: "string" },
                format: { type: "string", default: "text" },
                out: { type: "string" },
                "weight-step": { type: "string", default: "25" },
                help: { type: "boolean", short: "h" },
            },
            strict: true,
        }));
    } catch (e) {
        usage((e as Error).message);
    }
    if (values.help) {
        process.stdout.write(`${USAGE}\n`);
        return;
    }
    const stack = values.stack ?? process.env.STACK ?? "dev";
    if (!/^[A-Za-z0-9._-]+$/.test(stack)) usage(`--stack ${JSON.stringify(stack)}: a stack name is letters, digits, . _ and -`);
    const format = values.format;
    if (format !== "text" && format !== "markdown" && format !== "json") usage(`--format ${format}: text, markdown or json`);
    const weightStep = Number(values["weight-step"]);
    if (!Number.isFinite(weightStep) || weightStep < 0 || weightStep > 100) usage(`--weight-step ${values["weight-step"]}: a number of points from 0 to 100`);
    const bases = [values.base, values["base-file"], values.gateway].filter((b) => b !== undefined);
    if (bases.length > 1) usage("--base, --base-file and --gateway exclude each other");

    const fileName = `Pulumi.${stack}.yaml`;
    const head = readStackFile(values["stack-file"] !== undefined ? path.resolve(values["stack-file"]) : path.join(ROOT, fileName));
    let base: Parameters<typeof plan>[2];
    if (values.base !== undefined) {
        const config = gitStackFile(values.base, fileName);
        base = { name: `${values.base}'s ${fileName}${config ? "" : " (absent: a new stack)"}`, ...(config ? { config } : {}) };
    } else if (values["base-file"] !== undefined) {
        base = { name: path.basename(values["base-file"]), config: readStackFile(path.resolve(values["base-file"])) };
    } else if (values.gateway !== undefined) {
        try {
            base = { name: `the gateway at ${values.gateway}`, table: await gatewayTable(values.gateway, values.cacert) };
        } catch (e) {
            process.stderr.write(`plan: cannot read the running gateway's routes: ${(e as Error).message}\n`);
            process.exit(2);
        }
    }

    const result = plan(stack, head, base, { weightStep });
    const output = format === "json" ? `${JSON.stringify(result, null, 2)}\n` : format === "markdown" ? markdown(result) : text(result);
    process.stdout.write(output);
    if (values.out) fs.writeFileSync(values.out, output);
    process.exitCode = failed(result) ? 1 : 0;
}

void main();
