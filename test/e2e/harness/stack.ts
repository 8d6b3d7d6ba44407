// The dev stack's config on a real engine, for the scenarios: acquires the engine, makes the
// images that cannot be pulled, evaluates index.ts with the dev stack config (plus the few
// overrides a user of this engine would set) as stack `e2e`, so that nothing it creates shares
// a name with a running `dev` stack, and applies what it declares; tears it all down again.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before } from "node:test";
import { DEFAULT_REGISTRATOR_IMAGE } from "../../../components/config";
import { httpRequest, type HttpResult } from "../../support/http";
import { freePort } from "../../support/ports";
import { devWith, PROJECT, ROOT, stackConfig } from "../../support/program";
import { waitFor } from "../../support/wait";
import type { Done, ResourceAnswer, ResourceRequest } from "../applier/child";
import { type Applied, Applier } from "../applier";
import { Docker } from "./docker";
import { acquireEngine, E2E_LABEL, type Engine, log } from "./engine";
import { ensureBaseImage, ensureConsulImage, prepareGatewayContext, readTools } from "./images";

/**
 * The suite's stack name. Everything the program names after its stack (containers e2e-consul,
 * e2e-gateway, e2e-hello-v1-1, ..., the network, the Consul volume, the image tags) differs
 * from the `dev` stack of `npm run up`, which may be running on the same engine.
 */
export const E2E_STACK = "e2e";
/** The Docker name of a container the program names `<stack>-<suffix>`, in the suite's stack. */
export const e2eName = (suffix: string): string => `${E2E_STACK}-${suffix}`;

export interface UpOptions {
    /** Runs on the engine once the base images exist, before the stack is configured and applied. */
    beforeApply?: (docker: Docker) => Promise<void>;
    /** Stack config keys set on top of the dev stack's (and the suite's own), e.g. `services`. */
    config?: Record<string, unknown>;
}

/** IPv4 routes of this machine (/proc/net/route), to pick a subnet nothing else uses. */
function hostRoutes(): { net: number; mask: number }[] {
    if (!fs.existsSync("/proc/net/route")) return [];
    const le = (hex: string): number => Buffer.from(hex, "hex").readUInt32LE(0);
    return fs
        .readFileSync("/proc/net/route", "utf8")
        .split("\n")
        .slice(1)
        .filter(Boolean)
        .map((line) => {
            const f = line.trim().split(/\s+/);
            return { net: le(f[1]), mask: le(f[7]) };
        })
        .filter((r) => r.mask !== 0);
}

const ipToInt = (ip: string): number => ip.split(".").reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);

/** The dev default 172.28.0.0/24 when free, else the next free /24 in 172.28-31.x. */
async function freeSubnet(docker: Docker): Promise<string> {
    const used: { net: number; mask: number }[] = hostRoutes();
    const networks: any[] = await docker.request("GET", "/networks");
    for (const n of networks) {
        for (const c of n.IPAM?.Config ?? []) {
            const m = /^([0-9.]+)\/([0-9]+)$/.exec(c.Subnet ?? "");
            if (m) used.push({ net: ipToInt(m[1]), mask: Number(m[2]) === 0 ? 0 : (0xffffffff << (32 - Number(m[2]))) >>> 0 });
        }
    }
    const mask24 = 0xffffff00;
    for (let i = 0; i < 4 * 256; i++) {
        const candidate = ipToInt(`172.${28 + Math.floor(i / 256)}.${i % 256}.0`);
        const clash = used.some((u) => {
            const m = (u.mask & mask24) >>> 0;
            return (candidate & m) >>> 0 === (u.net & m) >>> 0;
        });
        if (!clash) return `172.${28 + Math.floor(i / 256)}.${i % 256}.0/24`;
    }
    throw new Error("no free /24 in 172.28.0.0/14 for the stack network");
}

export type HttpAnswer = HttpResult;

/** How a request authenticates: basic auth (stats), or Consul's CA and an ACL token (operator). */
export interface Credentials {
    user?: string;
    password?: string;
    /** https:// URLs: the CA to verify the server with. */
    ca?: string;
    /** X-Consul-Token. */
    token?: string;
}

/** One GET on a new connection (no keep-alive between calls), optional credentials. */
export function get(url: string, auth?: Credentials, timeoutMs = 5000): Promise<HttpAnswer> {
    const headers: http.OutgoingHttpHeaders = { Connection: "close" };
    if (auth?.user !== undefined) headers.Authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password ?? ""}`).toString("base64")}`;
    if (auth?.token) headers["X-Consul-Token"] = auth.token;
    return httpRequest(url, { headers, timeoutMs, ...(auth?.ca ? { ca: auth.ca } : {}) });
}

/**
 * waitFor() as the scenarios read: `what` first, a slower pace for containers (30 s, every
 * 250 ms). The probe returns a value when done, undefined while not; a fatal() error ends it.
 */
export function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 250): Promise<NonNullable<T>> {
    return waitFor(probe, { message: what, timeoutMs, intervalMs: everyMs });
}

export interface StackOutputs {
    gatewayUrl: string;
    statsUrl: string;
    statsUser: string;
    statsPassword: string;
    consulUiUrl: string;
    consulCaPem: string;
    consulManagementToken: string;
    serviceUrls: Record<string, string>;
}

export class Stack {
    private applier?: Applier;
    private constructor(
        readonly engine: Engine,
        readonly config: Record<string, string>,
        readonly runId: string,
    ) {}

    get docker(): Docker {
        return this.engine.docker;
    }
    /** Stack outputs of the last evaluation, as `pulumi stack output` would show them. */
    outputs!: StackOutputs;
    /** Timings of the bring-up, for the report. */
    readonly timings: Record<string, number> = {};

    /** Engine, images, config, first apply. On failure everything acquired so far is released. */
    static async up(options: UpOptions = {}): Promise<Stack> {
        const t0 = Date.now();
        const engine = await acquireEngine();
        const runId = randomBytes(4).toString("hex");
        let stack: Stack | undefined;
        try {
            const tools = readTools();
            const docker = engine.docker;
            await removeLeftovers(docker);
            const t1 = Date.now();
            await ensureBaseImage(docker);
            const consulImage = await ensureConsulImage(docker, tools.consul);
            prepareGatewayContext();
            if (options.beforeApply) await options.beforeApply(docker);
            const t2 = Date.now();
            const dev = stackConfig("dev");
            const devValue = (key: string): Record<string, unknown> => JSON.parse(dev[`${PROJECT}:${key}`] ?? "{}");
            // Distinct ports (freePort never hands one out twice); Consul DNS is published as UDP.
            // The gateway's HTTPS port too: a `dev` stack (or another run) on this engine holds 443.
            const [httpPort, httpsPort, statsPort, consulHttp] = [await freePort(), await freePort(), await freePort(), await freePort()];
            const consulDns = await freePort(true);
            const config = devWith({
                buildNetwork: "host",
                network: { subnet: await freeSubnet(docker) },
                consul: { ...devValue("consul"), image: consulImage, httpsPort: consulHttp, dnsPort: consulDns },
                // No bindAddress: the program's default on local (127.0.0.1), which the tests reach.
                gateway: { ...devValue("gateway"), httpPort, httpsPort, statsPort, nodeSource: "context" },
                ...options.config,
            });
            stack = new Stack(engine, config, runId);
            await stack.apply(config);
            stack.timings.engineSeconds = (t1 - t0) / 1000;
            stack.timings.baseImagesSeconds = (t2 - t1) / 1000;
            stack.timings.applySeconds = (Date.now() - t2) / 1000;
            log(
                `stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s (engine ${stack.timings.engineSeconds.toFixed(1)} s, base images ${stack.timings.baseImagesSeconds.toFixed(1)} s, apply ${stack.timings.applySeconds.toFixed(1)} s)`,
            );
            return stack;
        } catch (e) {
            if (stack) await stack.down().catch((d) => log(`teardown after failed bring-up: ${(d as Error).message}`));
            else await engine.release().catch(() => undefined);
            throw e;
        }
    }

    /** Config key (as in the stack file) → the object value of the current config. */
    configValue(key: string): any {
        return JSON.parse(this.config[`${PROJECT}:${key}`] ?? "null");
    }

    /**
     * Evaluates index.ts with `config` and applies what it declares, like `pulumi up`: the first
     * time everything is created; later, unchanged resources stay, changed consul.Keys are updated.
     */
    async apply(config: Record<string, string>): Promise<void> {
        const registratorImage = JSON.parse(config[`${PROJECT}:registrator`] ?? "{}").image ?? DEFAULT_REGISTRATOR_IMAGE;
        this.applier ??= new Applier(this.docker, {
            registratorImage,
            runId: this.runId,
            engineSocket: this.docker.host.startsWith("unix://") ? this.docker.host.slice("unix://".length) : undefined,
        });
        const applier = this.applier;
        applier.beginEvaluation();
        const env: NodeJS.ProcessEnv = { ...process.env, EVAL_CONFIG: JSON.stringify(config), EVAL_STACK: E2E_STACK, DOCKER_HOST: this.docker.host };
        const child = fork(path.join(__dirname, "..", "applier", "child.ts"), [], {
            cwd: ROOT,
            env,
            execArgv: ["--import", "tsx"],
            stdio: ["ignore", "inherit", "pipe", "ipc"],
        });
        let stderr = "";
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        const failures: string[] = [];
        const done = await new Promise<Done>((resolve, reject) => {
            let killer: NodeJS.Timeout | undefined;
            child.on("message", (m: ResourceRequest | Done) => {
                if (m.kind === "done") {
                    resolve(m);
                    return;
                }
                const work =
                    m.kind === "invoke"
                        ? applier.invoke(m.type, m.inputs, m.provider).then((outputs) => ({ id: "", outputs }))
                        : applier.apply(m.type, m.name, m.inputs, m.provider, { deleteBeforeReplace: m.deleteBeforeReplace });
                work.then(
                    (r) => child.send({ kind: "answer", seq: m.seq, id: r.id, outputs: r.outputs } satisfies ResourceAnswer),
                    (e: Error) => {
                        failures.push(e.message);
                        child.send({ kind: "answer", seq: m.seq, error: e.message } satisfies ResourceAnswer);
                        // Outputs that depend on a failed resource never resolve: do not wait long.
                        killer ??= setTimeout(() => child.kill("SIGKILL"), 10_000);
                    },
                );
            });
            child.on("exit", (code) => {
                if (killer) clearTimeout(killer);
                reject(
                    new Error(failures[0] ?? `the program's evaluation exited (${code}) before finishing:\n${stderr.trim().split("\n").slice(-20).join("\n")}`),
                );
            });
        });
        await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.on("exit", r)));
        if (failures.length > 0) throw new Error(`applying the program failed: ${failures[0]}`);
        if (done.error) throw new Error(`evaluating the program failed: ${done.error}`);
        await applier.endEvaluation();
        this.outputs = done.outputs as unknown as StackOutputs;
    }

    /** Re-evaluates the program with overrides on top of this stack's config (a second `pulumi up`). */
    async update(overrides: Record<string, unknown>): Promise<void> {
        const next = { ...this.config };
        for (const [key, value] of Object.entries(overrides)) next[`${PROJECT}:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
        await this.apply(next);
    }

    /** The applier's record of what was declared and applied. */
    get applied(): Applier {
        if (!this.applier) throw new Error("stack not applied");
        return this.applier;
    }

    /** What was applied for the container the program names `dockerName` (e.g. e2e-gateway). */
    containerResource(dockerName: string): Applied {
        const found = [...this.applied.state.values()].filter((r) => r.type === "docker:index/container:Container" && r.inputs.name === dockerName);
        if (found.length !== 1) throw new Error(`expected one declared container named ${dockerName}, found ${found.length}`);
        return found[0];
    }

    /** The image build (docker-build:index:Image) whose ref a container runs. */
    buildOf(dockerName: string): Applied {
        const image = this.containerResource(dockerName).inputs.image;
        const found = [...this.applied.state.values()].filter((r) => r.type === "docker-build:index:Image" && r.outputs.ref === image);
        if (found.length !== 1) throw new Error(`expected one image build with ref ${image}, found ${found.length}`);
        return found[0];
    }

    /** Containers declared by the program, by Docker name. */
    declaredContainers(): string[] {
        return [...this.applied.containers.keys()];
    }

    /** Runs a command in a container (docker exec); throws when it fails. */
    async exec(container: string, cmd: string[]): Promise<string> {
        return (await this.docker.cli(["exec", container, ...cmd])).stdout;
    }

    /** Lets the (emulated) Registrator catch up with the engine's events. */
    async registratorSettled(): Promise<void> {
        await this.applier?.registrator?.settle();
        const errors = this.applier?.registrator?.errors ?? [];
        if (errors.length > 0) throw new Error(`emulated Registrator: ${errors.join("; ")}`);
    }

    /** Removes what was created, in reverse order; stops the engine if we started it (unless keepEngine). */
    async down(options: { keepEngine?: boolean } = {}): Promise<void> {
        const problems: string[] = [];
        try {
            await this.applier?.registrator?.stop();
            for (const item of [...(this.applier?.created ?? [])].reverse()) {
                try {
                    if (item.kind === "container") await this.docker.request("DELETE", `/containers/${encodeURIComponent(item.name)}?force=true&v=true`);
                    else if (item.kind === "network") await this.docker.request("DELETE", `/networks/${encodeURIComponent(item.name)}`);
                    else await this.docker.request("DELETE", `/volumes/${encodeURIComponent(item.name)}?force=true`);
                } catch (e) {
                    if (!/ 404 /.test((e as Error).message)) problems.push((e as Error).message);
                }
            }
            await removeLeftovers(this.docker).catch((e) => problems.push((e as Error).message));
        } finally {
            // keepEngine: the caller still looks at the engine, then releases it (stack.engine).
            if (!options.keepEngine) await this.engine.release();
        }
        if (problems.length > 0) throw new Error(`teardown: ${problems.join("; ")}`);
    }
}

/** Removes containers, networks and volumes an earlier e2e run left behind (our label only). */
async function removeLeftovers(docker: Docker): Promise<void> {
    const filters = encodeURIComponent(JSON.stringify({ label: [E2E_LABEL] }));
    const containers: any[] = await docker.request("GET", `/containers/json?all=true&filters=${filters}`);
    for (const c of containers) await docker.request("DELETE", `/containers/${c.Id}?force=true&v=true`);
    const networks: any[] = await docker.request("GET", `/networks?filters=${filters}`);
    for (const n of networks) await docker.request("DELETE", `/networks/${n.Id}`);
    const volumes: any = await docker.request("GET", `/volumes?filters=${filters}`);
    for (const v of volumes.Volumes ?? []) await docker.request("DELETE", `/volumes/${encodeURIComponent(v.Name)}?force=true`);
    if (containers.length + networks.length + (volumes.Volumes ?? []).length > 0) {
        log(`removed leftovers of an earlier e2e run: ${containers.length} containers, ${networks.length} networks, ${(volumes.Volumes ?? []).length} volumes`);
    }
}

/**
 * The suite's stack: brought up before its first test (the program applied for real), torn down
 * after its last. Returns a getter, for tests and helpers to reach the running stack.
 */
export function stackForSuite(options: UpOptions = {}): () => Stack {
    let stack: Stack | undefined;
    before(
        async () => {
            stack = await Stack.up(options);
        },
        { timeout: 20 * 60_000 },
    );
    after(
        async () => {
            await stack?.down();
        },
        { timeout: 120_000 },
    );
    return () => {
        if (!stack) throw new Error("the suite's stack is not up");
        return stack;
    };
}
