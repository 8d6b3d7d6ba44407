// Runs the program under mocks in a child process (test/support/evaluate.ts) and returns
// what it declared, with helpers to find resources and read secrets.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { Declared, Evaluation } from "./mocks";
import { ROOT } from "./paths";

export { ROOT };
export const PROJECT = "service-discovery";

/** Pulumi's own flattening of a stack file: each value a string, objects as JSON. */
export function stackConfig(stack: string): Record<string, string> {
    const doc = parseYaml(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config?: Record<string, unknown> };
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        out[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return out;
}

/**
 * Evaluates the program in a child process. `compiled` points at a tsc output folder of this
 * project to run plain JavaScript instead of TypeScript through tsx (used by the benchmark).
 */
export async function evaluate(config: Record<string, string>, stack = "dev", compiled?: string): Promise<Program> {
    const cached = evaluationCacheFile(config, stack, compiled);
    if (cached !== undefined && fs.existsSync(cached)) return new Program(JSON.parse(fs.readFileSync(cached, "utf8")) as Evaluation);
    const args = compiled ? [path.join(compiled, "test/support/evaluate.js")] : ["--import", "tsx", path.join(__dirname, "evaluate.ts")];
    const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
            process.execPath,
            args,
            {
                cwd: ROOT,
                // The program pins SSH host keys in a known_hosts file (components/host-keys.ts): never
                // the user's own under test.
                env: {
                    ...process.env,
                    SERVICE_DISCOVERY_KNOWN_HOSTS:
                        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS ?? path.join(os.tmpdir(), `service-discovery-test-known-hosts-${process.pid}`),
                    EVAL_CONFIG: JSON.stringify(config),
                    EVAL_STACK: stack,
                },
                maxBuffer: 64 * 1024 * 1024,
            },
            (err, out, errOut) => (err ? reject(new Error(`evaluation crashed: ${errOut || err.message}`)) : resolve(out)),
        );
    });
    const evaluation = JSON.parse(stdout) as Evaluation;
    if (cached !== undefined) {
        fs.writeFileSync(`${cached}.${process.pid}`, stdout);
        fs.renameSync(`${cached}.${process.pid}`, cached);
    }
    return new Program(evaluation);
}

/**
 * Where an evaluation of this config is kept for the rest of the run, or undefined: `npm test`
 * (test/run.sh) sets SD_EVAL_CACHE to a directory of its own, removed when it ends, so that the
 * test files that evaluate the same config (the dev stack's, most of all) evaluate it once; nothing
 * changes the sources during a run. Not when the evaluation has an effect outside its answer: a
 * caller that chose the known_hosts file the program edits (SERVICE_DISCOVERY_KNOWN_HOSTS) reads it
 * afterwards, and PULUMI_DEBUG_PROMISE_LEAKS changes what the program prints.
 */
function evaluationCacheFile(config: Record<string, string>, stack: string, compiled: string | undefined): string | undefined {
    const dir = process.env.SD_EVAL_CACHE;
    if (!dir || process.env.SERVICE_DISCOVERY_KNOWN_HOSTS !== undefined || process.env.PULUMI_DEBUG_PROMISE_LEAKS !== undefined) return undefined;
    const key = createHash("sha256")
        .update(JSON.stringify([Object.entries(config).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), stack, compiled ?? ""]))
        .digest("hex");
    return path.join(dir, `${key}.json`);
}

/** A well-formed SSH public key for the aws target's config (no private key exists for it). */
export const TEST_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZ0dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleXQ operator@example";

/** The admin network the tests give the aws target (documentation range). */
export const TEST_ADMIN_CIDR = "203.0.113.7/32";

/**
 * Pulumi.aws.yaml with the two values the operator sets before the first `pulumi up` (the admin
 * CIDR and the SSH key), and `overrides` (top-level keys, objects as they are) on top.
 */
export function shippedAws(overrides: Record<string, unknown> = {}): Record<string, string> {
    const config = stackConfig("aws");
    const aws = JSON.parse(config[`${PROJECT}:aws`] ?? "{}");
    config[`${PROJECT}:aws`] = JSON.stringify({ ...aws, adminCidr: TEST_ADMIN_CIDR, publicKey: TEST_SSH_KEY });
    for (const [key, value] of Object.entries(overrides)) config[`${PROJECT}:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
    return config;
}

/** Merges overrides into the dev stack's config; `undefined` removes a key. */
export function devWith(overrides: Record<string, unknown>): Record<string, string> {
    const config = stackConfig("dev");
    for (const [key, value] of Object.entries(overrides)) {
        const full = key.includes(":") ? key : `${PROJECT}:${key}`;
        if (value === undefined) delete config[full];
        else config[full] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return config;
}

export class Program {
    constructor(public readonly evaluation: Evaluation) {}

    get error(): string | null {
        return this.evaluation.error;
    }
    get outputs(): Record<string, unknown> {
        return this.evaluation.outputs;
    }
    get resources(): Declared[] {
        return this.evaluation.resources;
    }

    ofType(type: string): Declared[] {
        return this.resources.filter((r) => r.type === type);
    }

    one(type: string, name: string): Declared {
        const found = this.resources.filter((r) => r.type === type && r.name === name);
        if (found.length !== 1) {
            throw new Error(
                `expected one ${type} named ${name}, found ${found.length}; declared: ${this.resources.map((r) => `${r.type}/${r.name}`).join(", ")}`,
            );
        }
        return found[0];
    }

    containers(): Declared[] {
        return this.ofType("docker:index/container:Container");
    }

    container(dockerName: string): Declared {
        const found = this.containers().filter((c) => c.inputs.name === dockerName);
        if (found.length !== 1) throw new Error(`expected one container named ${dockerName}, found ${found.map((c) => c.inputs.name).join(", ")}`);
        return found[0];
    }

    /** The container of a service replica, by the replica's name: it is named `<replica>-<generation>`. */
    replica(replicaName: string): Declared {
        const found = this.containers().filter((c) => {
            const name = String(c.inputs.name);
            return GENERATION_SUFFIX.test(name) && withoutGeneration(name) === replicaName;
        });
        if (found.length !== 1) {
            throw new Error(
                `expected one container of replica ${replicaName}, found ${found.length}; containers: ${this.containers()
                    .map((c) => c.inputs.name)
                    .join(", ")}`,
            );
        }
        return found[0];
    }
}

/** The generation suffix of a service replica's container name (components/service.ts). */
export const GENERATION_SUFFIX = /-[0-9a-f]{8}$/;

/** A container's name without its generation suffix: a replica's name (e.g. dev-hello-v1-1). */
export function withoutGeneration(dockerName: string): string {
    return dockerName.replace(GENERATION_SUFFIX, "");
}

/** The value behind {"$secret": v}; throws if the value is not a secret. */
export function secretValue(value: unknown): unknown {
    if (value && typeof value === "object" && "$secret" in (value as object)) return (value as { $secret: unknown }).$secret;
    throw new Error(`expected a secret, got ${JSON.stringify(value)}`);
}

export function isSecret(value: unknown): boolean {
    return !!value && typeof value === "object" && "$secret" in (value as object);
}

/** Container env as a map; secret env lists are unwrapped (and reported). */
export function envOf(container: Declared): { env: Record<string, string>; secret: boolean } {
    const raw = container.inputs.envs;
    const secret = isSecret(raw);
    const list = (secret ? secretValue(raw) : raw) as string[] | undefined;
    const env: Record<string, string> = {};
    for (const item of list ?? []) {
        const i = item.indexOf("=");
        env[item.slice(0, i)] = item.slice(i + 1);
    }
    return { env, secret };
}

/** The uploads of a container (secret content unwrapped), by file path. */
export function uploadsOf(c: Declared): Map<string, { content: unknown; secret: boolean; permissions?: string; owner?: string; group?: string }> {
    const out = new Map<string, { content: unknown; secret: boolean; permissions?: string; owner?: string; group?: string }>();
    const raw = isSecret(c.inputs.uploads) ? secretValue(c.inputs.uploads) : c.inputs.uploads;
    for (const u of (raw ?? []) as Record<string, unknown>[]) {
        out.set(String(u.file), {
            content: isSecret(u.content) ? secretValue(u.content) : u.content,
            secret: isSecret(u.content) || isSecret(c.inputs.uploads),
            permissions: u.permissions as string | undefined,
            owner: u.owner as string | undefined,
            group: u.group as string | undefined,
        });
    }
    return out;
}

/** The Consul agent configuration uploaded into an agent container (components/consul-agent-config.ts). */
export function agentConfigOf(c: Declared): Record<string, any> {
    const file = uploadsOf(c).get("/consul/config/agent.json");
    if (!file) throw new Error(`${String(c.inputs.name)} has no /consul/config/agent.json upload`);
    return JSON.parse(String(file.content));
}
