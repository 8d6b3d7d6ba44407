// A real Consul agent for the control-plane tests, configured, bootstrapped and reached as the
// stack does it: its own agentConfig(), ACL policies, tokens and agent-token script.
import { randomBytes, randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { AGENT_TOKEN_SCRIPT, agentConfig } from "../../../components/consul-agent-config";
import { ANONYMOUS_TOKEN_ACCESSOR_ID, POLICIES, type Role } from "../../../components/consul-policies";
import { httpRequest, type HttpResult } from "../../support/http";
import { ROOT as REPO_ROOT } from "../../support/paths";
import { freePort } from "../../support/ports";
import type { Tools } from "../../support/tools";
import { waitFor } from "../../support/wait";
import { testPki, type TestPki } from "./pki";
import { makeTempDir, Proc, removeTempDir } from "./processes";

/** As the stack configures Consul (components/consul.ts): Consul's default; a gateway holds 2 + nodes blocking queries. */
export const PRODUCTION_MAX_CONNS_PER_CLIENT = 200;
export const PRODUCTION_CONSUL_LIMITS = `limits { http_max_conns_per_client = ${PRODUCTION_MAX_CONNS_PER_CLIENT} }`;

export interface ConsulPorts {
    /** Plain HTTP, loopback only (as in the container). */
    http: number;
    https: number;
    dns: number;
    serfLan: number;
    serfWan: number;
    server: number;
}

/** Free loopback ports for an agent (DNS and Serf also need UDP). */
export async function freeConsulPorts(): Promise<ConsulPorts> {
    return {
        http: await freePort(),
        https: await freePort(),
        dns: await freePort(true),
        serfLan: await freePort(true),
        serfWan: await freePort(true),
        server: await freePort(),
    };
}

export interface Check {
    HTTP?: string;
    /** host:port: a TCP connect check (Registrator's SERVICE_CHECK_TCP). */
    TCP?: string;
    Interval?: string;
    Timeout?: string;
    Status?: "passing" | "warning" | "critical";
}

/** A service registration in Registrator's shape. */
export interface Registration {
    ID: string;
    Name: string;
    Tags?: string[];
    Address?: string;
    Port?: number;
    Check?: Check;
}

/** The tokens of a Consul agent started here, one per role as the stack creates them. */
export interface ConsulTokens {
    management: string;
    registrator: string;
    gateway: string;
    kvWriter: string;
    operator: string;
}

/** What a client process needs to reach the agent: the variables Consul's clients read. */
export interface ConsulClientEnv {
    CONSUL_HTTP_ADDR: string;
    CONSUL_HTTP_SSL: "true";
    CONSUL_CACERT: string;
    CONSUL_HTTP_TOKEN: string;
}

/**
 * A real Consul server configured by the stack's own agentConfig() (ACLs default deny, TLS with
 * verify_incoming/outgoing/server_hostname, encrypted gossip, HTTP on loopback, API over HTTPS),
 * bootstrapped with the stack's own policies (components/consul-policies.ts) and its agent token
 * set by the stack's own script. Only ports and file locations differ from a deployment.
 */
export class ConsulAgent {
    proc: Proc | undefined;
    readonly dir: string;
    readonly tls: TestPki;
    readonly nodeName = "controlplane-test";
    readonly encryptKey = randomBytes(32).toString("base64");
    tokens: ConsulTokens;

    private constructor(
        private readonly tools: Tools,
        readonly ports: ConsulPorts,
        private readonly extraHcl: string[],
    ) {
        this.dir = makeTempDir("consul");
        fs.mkdirSync(path.join(this.dir, "data"));
        fs.mkdirSync(path.join(this.dir, "tmp"));
        this.tls = testPki();
        this.tokens = { management: randomUUID(), registrator: "", gateway: "", kvWriter: "", operator: "" };
    }

    /**
     * Starts a single server (bootstrap_expect 1, state in its data dir as deployed) on free
     * loopback ports, and creates the ACL policies and tokens. `hcl` adds settings on top.
     * `persistent` is accepted for compatibility: every agent keeps its state across restart().
     */
    static async start(tools: Tools, opts: { hcl?: string[]; persistent?: boolean } = {}): Promise<ConsulAgent> {
        const ports = await freeConsulPorts();
        const agent = new ConsulAgent(tools, ports, opts.hcl ?? []);
        agent.writeConfig();
        await agent.launch();
        await agent.bootstrapAcls();
        return agent;
    }

    /** host:port of the HTTPS API. */
    get addr(): string {
        return `127.0.0.1:${this.ports.https}`;
    }

    get url(): string {
        return `https://${this.addr}`;
    }

    /** The agent's HTTP socket: how Registrator reaches it (components/registrator.ts). */
    get socketPath(): string {
        return path.join(this.dir, "http.sock");
    }

    get configFile(): string {
        return path.join(this.dir, "agent.json");
    }

    /** The environment a client of `role` gets in the stack (gateway, Registrator, ...). */
    clientEnv(role: keyof ConsulTokens = "gateway"): ConsulClientEnv {
        return { CONSUL_HTTP_ADDR: this.addr, CONSUL_HTTP_SSL: "true", CONSUL_CACERT: this.tls.caFile, CONSUL_HTTP_TOKEN: this.tokens[role] };
    }

    private writeConfig(): void {
        const config = agentConfig({
            datacenter: "dc1",
            nodeName: this.nodeName,
            server: true,
            bootstrapExpect: 1,
            encryptKey: this.encryptKey,
            initialManagementToken: this.tokens.management,
            retryJoin: [],
            maxConnsPerClient: PRODUCTION_MAX_CONNS_PER_CLIENT,
            paths: {
                dataDir: path.join(this.dir, "data"),
                caFile: this.tls.caFile,
                certFile: this.tls.serverCert,
                keyFile: this.tls.serverKey,
                httpSocket: this.socketPath,
            },
            ports: this.ports,
            clientAddr: "127.0.0.1",
            bindAddr: "127.0.0.1",
            advertiseAddr: "127.0.0.1",
        });
        fs.writeFileSync(this.configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    }

    private async launch(): Promise<void> {
        const args = ["agent", "-config-file", this.configFile, "-log-level", "warn", "-hcl", "performance { raft_multiplier = 1 }"];
        for (const h of this.extraHcl) args.push("-hcl", h);
        const env = { ...process.env, TMPDIR: path.join(this.dir, "tmp") };
        this.proc = new Proc("consul", this.tools.CONSUL_BIN, args, { env });
        this.proc.stdout.watch(ConsulAgent.ACL_BLOCKED);
        const proc = this.proc;
        await waitFor(
            async () => {
                if (!proc.running) throw new Error(`consul exited:\n${proc.output()}`);
                const leader = await this.api("GET", "/v1/status/leader", undefined, "", 1000).catch(() => undefined);
                if (!leader || leader.status !== 200 || leader.body.trim() === '""') return false;
                const nodes = await this.api("GET", "/v1/catalog/nodes", undefined, this.tokens.management, 1000).catch(() => undefined);
                return nodes?.status === 200 && nodes.body.includes(this.nodeName);
            },
            { timeoutMs: 30_000, intervalMs: 50, message: "Consul leader" },
        );
    }

    /** As components/consul-acl.ts does with the management token, through the same API. */
    private async bootstrapAcls(): Promise<void> {
        const m = this.tokens.management;
        for (const role of Object.keys(POLICIES) as Role[]) {
            const p = POLICIES[role];
            await this.ok("PUT", "/v1/acl/policy", { Name: p.name, Description: p.description, Rules: p.rules, Datacenters: ["dc1"] }, m);
        }
        await this.ok("PUT", `/v1/acl/token/${ANONYMOUS_TOKEN_ACCESSOR_ID}`, { Policies: [{ Name: POLICIES.anonymous.name }] }, m);
        const create = async (body: unknown): Promise<string> => JSON.parse((await this.ok("PUT", "/v1/acl/token", body, m)).body).SecretID as string;
        this.tokens.registrator = await create({ Description: "registrator", Policies: [{ Name: POLICIES.registrator.name }] });
        this.tokens.gateway = await create({ Description: "gateway", Policies: [{ Name: POLICIES.gateway.name }] });
        this.tokens.kvWriter = await create({ Description: "kv writer", Policies: [{ Name: POLICIES.kvWriter.name }] });
        this.tokens.operator = await create({ Description: "operator", Policies: [{ Name: POLICIES.operator.name }] });
        const agentToken = await create({ Description: "agent", NodeIdentities: [{ NodeName: this.nodeName, Datacenter: "dc1" }] });
        // The stack's own script sets it, with the management token from the environment.
        const r = spawnSync(process.execPath, [path.join(REPO_ROOT, AGENT_TOKEN_SCRIPT)], {
            env: {
                ...process.env,
                CONSUL_HTTP_ADDR: this.url,
                CONSUL_CACERT_PEM: fs.readFileSync(this.tls.caFile, "utf8"),
                CONSUL_HTTP_TOKEN: m,
                CONSUL_AGENT_TOKEN: agentToken,
                CONSUL_NODE: this.nodeName,
                TIMEOUT_SECONDS: "30",
            },
            encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`setting the agent token failed: ${r.stdout}${r.stderr}`);
        this.tokenSetAt = Date.now();
    }

    /** The agent's own updates refused by ACLs: expected until its agent token is set, never after. */
    static readonly ACL_BLOCKED = /blocked by ACLs/;
    private tokenSetAt = Infinity;

    /**
     * "… blocked by ACLs" warnings the agent logged (by their own timestamps) from 500 ms after its
     * agent token was set: a sync that started just before may still be refused and logged a moment
     * after, and the log reaches us later still.
     */
    aclBlocksSinceToken(): number {
        const lines = (this.proc?.output() ?? "").split("\n").filter((l) => ConsulAgent.ACL_BLOCKED.test(l));
        return lines.filter((l) => {
            const at = Date.parse(/^\s*(\S+Z) /.exec(l)?.[1] ?? "");
            return !Number.isFinite(at) || at > this.tokenSetAt + 500;
        }).length;
    }

    /** Stops the agent (its data dir and ports stay reserved for restart()). */
    async stop(): Promise<void> {
        await this.proc?.stop(5000, "SIGINT");
        this.proc = undefined;
    }

    /** Starts the agent again on the same ports and data dir; ACLs and tokens persist. */
    async restart(): Promise<void> {
        if (this.proc) await this.stop();
        await this.launch();
    }

    /** Stops the agent and removes its temp dir. */
    async destroy(): Promise<void> {
        await this.stop();
        removeTempDir(this.dir);
    }

    /** One request to the HTTPS API; `token` defaults to the management token ("" for none). */
    async api(method: string, apiPath: string, body?: unknown, token: string = this.tokens.management, timeoutMs = 5000): Promise<HttpResult> {
        const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
        return httpRequest(`${this.url}${apiPath}`, {
            method,
            body: payload,
            timeoutMs,
            ca: this.tls.caPem,
            headers: token ? { "X-Consul-Token": token } : {},
        });
    }

    private async ok(method: string, apiPath: string, body?: unknown, token?: string): Promise<HttpResult> {
        const res = await this.api(method, apiPath, body, token);
        if (res.status !== 200) throw new Error(`${method} ${apiPath}: HTTP ${res.status}: ${res.body}`);
        return res;
    }

    /** One request as Registrator makes it: over the agent's UNIX socket, with Registrator's token. */
    async registratorApi(method: string, apiPath: string, body?: unknown): Promise<HttpResult> {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        return httpRequest(`http://consul${apiPath}`, {
            method,
            body: payload,
            timeoutMs: 5000,
            socketPath: this.socketPath,
            headers: { "X-Consul-Token": this.tokens.registrator },
        });
    }

    /** Registers through the agent API as Registrator does (its socket, its token); throws on a non-200 answer. */
    async register(reg: Registration): Promise<void> {
        const res = await this.registratorApi("PUT", "/v1/agent/service/register", reg);
        if (res.status !== 200) throw new Error(`register ${reg.ID}: HTTP ${res.status}: ${res.body}`);
    }

    /** Like register() but returns the HTTP status (Consul rejects some hostile input). */
    async tryRegister(reg: Registration, token: string = this.tokens.registrator): Promise<HttpResult> {
        return this.api("PUT", "/v1/agent/service/register", reg, token);
    }

    async deregister(id: string): Promise<void> {
        const res = await this.registratorApi("PUT", `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
        if (res.status !== 200) throw new Error(`deregister ${id}: HTTP ${res.status}: ${res.body}`);
    }

    /** Writes a KV key with the token Pulumi uses for the gateway settings. */
    async kvPut(key: string, value: string): Promise<void> {
        const res = await this.ok("PUT", `/v1/kv/${key}`, value, this.tokens.kvWriter);
        if (res.body.trim() !== "true") throw new Error(`KV put ${key} failed: ${res.body}`);
    }

    async kvDelete(key: string): Promise<void> {
        await this.ok("DELETE", `/v1/kv/${key}`, undefined, this.tokens.kvWriter);
    }

    /** Health state of one service instance in the catalog ("passing", "critical", ...). */
    async checkStatus(serviceId: string): Promise<string | undefined> {
        const res = await this.api("GET", `/v1/agent/health/service/id/${encodeURIComponent(serviceId)}?format=text`);
        return res.status === 404 ? undefined : res.body.trim();
    }
}
