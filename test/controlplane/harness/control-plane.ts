// Harness: Consul + gateway + backends, started together with the stack's defaults and torn
// down together.
import type { HttpResult } from "../../support/http";
import { readTools, type Tools } from "../../support/tools";
import { sleep, waitFor } from "../../support/wait";
import { Backend, StaticBackend } from "./backends";
import { ConsulAgent, PRODUCTION_CONSUL_LIMITS, type Check } from "./consul";
import { Gateway } from "./gateway";

export class Harness {
    readonly backends: Backend[] = [];
    private readonly extras: Array<() => Promise<void>> = [];

    private constructor(
        readonly tools: Tools,
        readonly consul: ConsulAgent,
        readonly gateway: Gateway,
    ) {}

    /** `gatewayEnv`: variables for the gateway on top of the test defaults (e.g. GATEWAY_TRUSTED_PROXIES). */
    /** `gatewayConfDir`: another version of the gateway image's folder (the benchmark's previous design). */
    /** `gatewayCpus`: the CPUs the gateway may run on (taskset -c). */
    static async start(
        opts: {
            consulHcl?: string[];
            persistentConsul?: boolean;
            gatewayEnv?: NodeJS.ProcessEnv;
            gatewayConfDir?: string;
            gatewayNofile?: number;
            gatewayCpus?: string;
        } = {},
    ): Promise<Harness> {
        const tools = readTools();
        const consul = await ConsulAgent.start(tools, {
            hcl: opts.consulHcl ?? [PRODUCTION_CONSUL_LIMITS],
            persistent: opts.persistentConsul ?? false,
        });
        let gateway: Gateway;
        try {
            gateway = await Gateway.start(tools, consul, {
                env: opts.gatewayEnv ?? {},
                ...(opts.gatewayConfDir ? { confDir: opts.gatewayConfDir } : {}),
                ...(opts.gatewayNofile ? { nofile: opts.gatewayNofile } : {}),
                ...(opts.gatewayCpus ? { cpus: opts.gatewayCpus } : {}),
            });
        } catch (err) {
            await consul.destroy();
            throw err;
        }
        return new Harness(tools, consul, gateway);
    }

    /** A StaticBackend, stopped with the harness. */
    async startStaticBackend(instance: string): Promise<StaticBackend> {
        const b = await StaticBackend.start(this.tools, instance);
        this.onStop(() => b.stop());
        return b;
    }

    async startBackend(service: string, instance: string, version?: string): Promise<Backend> {
        const opts: { service: string; version?: string; instance: string } = { service, instance };
        if (version !== undefined) opts.version = version;
        const b = await Backend.start(this.tools, opts);
        this.backends.push(b);
        return b;
    }

    /** Starts a backend and registers it under `name` (Registrator's shape, check passing). */
    async addInstance(name: string, instance: string, opts: { tags?: string[] } = {}): Promise<Backend> {
        const m = /^(.*)-(v[0-9]+)$/.exec(name);
        const b = await this.startBackend(m ? m[1]! : name, instance, m ? m[2] : undefined);
        const regOpts: { tags?: string[]; status: Check["Status"] } = { status: "passing" };
        if (opts.tags) regOpts.tags = opts.tags;
        await this.consul.register(b.registration(name, regOpts));
        return b;
    }

    /** Registers a cleanup action run by stop() (e.g. closing a server a test created). */
    onStop(fn: () => Promise<void>): void {
        this.extras.push(fn);
    }

    /** Polls the gateway until a path answers with the expected status (and instance, if given). */
    async waitForRoute(p: string, opts: { status?: number; instance?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
        const status = opts.status ?? 200;
        return waitFor(
            async () => {
                const res = await this.gateway.get(p, { timeoutMs: 2000 });
                if (res.status !== status) return undefined;
                if (opts.instance !== undefined && !res.body.includes(`"hostname": "${opts.instance}"`)) return undefined;
                // The status once more, 150 ms later: for a moment after a reload the previous
                // worker may still accept a connection, and answer with the routes it had.
                await sleep(150);
                return (await this.gateway.get(p, { timeoutMs: 2000 })).status === status ? res : undefined;
            },
            {
                timeoutMs: opts.timeoutMs ?? 10_000,
                message: `GET ${p} -> ${status}${opts.instance ? ` from ${opts.instance}` : ""}`,
            },
        );
    }

    /** Waits until the rendered config (and, when live, the swapped-in one) satisfies predicate. */
    async waitForConfig(predicate: (cfg: string) => boolean, message: string, timeoutMs = 10_000): Promise<string> {
        return waitFor(
            () => {
                const cfg = this.gateway.readRenderedConfig("live");
                return predicate(cfg) ? cfg : undefined;
            },
            { timeoutMs, message },
        );
    }

    /** Diagnostics for a failed assertion: process outputs and the rendered config. */
    diagnostics(): string {
        const tail = (s: string, n: number): string => (s.length > n ? `[...]${s.slice(-n)}` : s);
        const parts = [tail(this.gateway.proc?.output() ?? "", 6000), tail(this.consul.proc?.output() ?? "", 2000)];
        try {
            parts.push(`--- haproxy.cfg ---\n${tail(this.gateway.readRenderedConfig("live"), 6000)}`);
        } catch {
            /* not rendered */
        }
        return parts.join("\n");
    }

    async stop(): Promise<void> {
        const errors: unknown[] = [];
        const attempt = async (fn: () => Promise<void>): Promise<void> => {
            try {
                await fn();
            } catch (err) {
                errors.push(err);
            }
        };
        for (const fn of this.extras.splice(0)) await attempt(fn);
        await attempt(() => this.gateway.destroy());
        await attempt(() => this.consul.destroy());
        await Promise.all(this.backends.splice(0).map((b) => attempt(() => b.stop())));
        if (errors.length) throw errors[0];
    }
}
