// The few Consul writes the gateway makes, only when it orders certificates itself (acme.ts):
// KV reads and writes under service/haproxy/tls/acme/ and tls/certificates/acme/, one transaction
// fenced by the lock, and the session that holds the lock. The gateway's ACL token allows exactly
// these when the stack's TLS source is acme (components/consul-policies.ts), nothing otherwise.
import * as fs from "node:fs";
import { Agent, request } from "undici";
import { consulOrigin, type ConsulConnection } from "./watch";

export interface KvTxnOp {
    readonly verb: "set" | "delete" | "check-session";
    readonly key: string;
    readonly value?: string;
    readonly session?: string;
}

export class ConsulApi {
    private readonly origin: string;
    private readonly agent: Agent;

    constructor(private readonly conn: ConsulConnection) {
        this.origin = consulOrigin(conn);
        const ca = conn.https && conn.caFile ? fs.readFileSync(conn.caFile, "utf8") : undefined;
        this.agent = new Agent({ connect: { timeout: 10_000, ...(ca ? { ca } : {}), ...(conn.serverName ? { servername: conn.serverName } : {}) } });
    }

    private token(): string | undefined {
        if (this.conn.tokenFile) {
            try {
                return fs.readFileSync(this.conn.tokenFile, "utf8").trim() || this.conn.token;
            } catch {
                return this.conn.token;
            }
        }
        return this.conn.token;
    }

    /** One request; throws with Consul's answer on a status other than 200 (and 404 when `missingOk`). */
    private async call(method: string, path: string, body?: string, missingOk = false): Promise<{ status: number; text: string }> {
        const token = this.token();
        const res = await request(`${this.origin}${path}`, {
            method: method as "GET",
            dispatcher: this.agent,
            headers: { ...(token ? { "x-consul-token": token } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
            ...(body !== undefined ? { body } : {}),
            headersTimeout: 15_000,
            bodyTimeout: 15_000,
        });
        const text = await res.body.text();
        if (res.statusCode === 200 || (missingOk && res.statusCode === 404)) return { status: res.statusCode, text };
        throw new Error(`Consul answered ${res.statusCode} to ${method} ${path.replace(/\?.*$/, "")}: ${text.trim().slice(0, 200)}`);
    }

    /** A key's value (consistent read), undefined when absent. */
    async get(key: string): Promise<string | undefined> {
        const r = await this.call("GET", `/v1/kv/${encodeKey(key)}?consistent`, undefined, true);
        if (r.status === 404) return undefined;
        const [entry] = JSON.parse(r.text) as { Value: string | null }[];
        return entry?.Value == null ? "" : Buffer.from(entry.Value, "base64").toString("utf8");
    }

    /** The keys under a prefix (consistent read). */
    async keys(prefix: string): Promise<string[]> {
        const r = await this.call("GET", `/v1/kv/${encodeKey(prefix)}?keys&consistent`, undefined, true);
        return r.status === 404 ? [] : (JSON.parse(r.text) as string[]);
    }

    async put(key: string, value: string): Promise<void> {
        const r = await this.call("PUT", `/v1/kv/${encodeKey(key)}`, value);
        if (r.text.trim() !== "true") throw new Error(`Consul did not write ${key}`);
    }

    async delete(key: string): Promise<void> {
        await this.call("DELETE", `/v1/kv/${encodeKey(key)}`);
    }

    /** Takes the lock `key` for `session`: true when this session holds it now. */
    async acquire(key: string, session: string, holder: string): Promise<boolean> {
        const r = await this.call("PUT", `/v1/kv/${encodeKey(key)}?acquire=${encodeURIComponent(session)}`, JSON.stringify({ holder }));
        return r.text.trim() === "true";
    }

    async release(key: string, session: string): Promise<void> {
        await this.call("PUT", `/v1/kv/${encodeKey(key)}?release=${encodeURIComponent(session)}`, "");
    }

    /** The session holding the lock `key`, undefined when none does. */
    async lockHolder(key: string): Promise<string | undefined> {
        const r = await this.call("GET", `/v1/kv/${encodeKey(key)}?consistent`, undefined, true);
        if (r.status === 404) return undefined;
        const [entry] = JSON.parse(r.text) as { Session?: string }[];
        return entry?.Session || undefined;
    }

    /** All of the operations or none (Consul's KV transaction). */
    async txn(ops: readonly KvTxnOp[]): Promise<void> {
        const body = ops.map((o) => ({
            KV: {
                Verb: o.verb,
                Key: o.key,
                ...(o.value !== undefined ? { Value: Buffer.from(o.value, "utf8").toString("base64") } : {}),
                ...(o.session !== undefined ? { Session: o.session } : {}),
            },
        }));
        const token = this.token();
        const res = await request(`${this.origin}/v1/txn`, {
            method: "PUT",
            dispatcher: this.agent,
            headers: { "content-type": "application/json", ...(token ? { "x-consul-token": token } : {}) },
            body: JSON.stringify(body),
            headersTimeout: 15_000,
            bodyTimeout: 15_000,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`Consul refused the transaction (${res.statusCode}): ${text.trim().slice(0, 300)}`);
    }

    /** A session that lapses `ttlSeconds` after its last renewal (Consul may take up to twice that), its locks released then. */
    async createSession(name: string, ttlSeconds: number): Promise<string> {
        const r = await this.call("PUT", "/v1/session/create", JSON.stringify({ Name: name, TTL: `${ttlSeconds}s`, Behavior: "release", LockDelay: "1s" }));
        return (JSON.parse(r.text) as { ID: string }).ID;
    }

    /** false when the session is gone (it lapsed, or was destroyed). */
    async renewSession(id: string): Promise<boolean> {
        const r = await this.call("PUT", `/v1/session/renew/${encodeURIComponent(id)}`, "", true);
        return r.status === 200;
    }

    async destroySession(id: string): Promise<void> {
        await this.call("PUT", `/v1/session/destroy/${encodeURIComponent(id)}`, "");
    }

    async close(): Promise<void> {
        await this.agent.close();
    }
}

function encodeKey(key: string): string {
    return key.split("/").map(encodeURIComponent).join("/");
}
