// Inside the cluster: a Consul server as the stack runs it, and client agents configured by the
// stack's own agentConfig() joining it, each with one thing different. Only an agent with the
// gossip key and a certificate from the stack's CA becomes part of the cluster.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { agentConfig, clientTlsName, CONSUL_HOST } from "../../components/consul-agent-config";
import { ConsulAgent, freeConsulPorts, httpRequest, makeTempDir, Proc, readTools, sleep, TestCa, testPki, waitFor, type Tools } from "./harness";

interface Client {
    proc: Proc;
    name: string;
    httpsUrl: string;
}

describe("cluster: gossip encryption and TLS between agents", { timeout: 180_000 }, () => {
    let tools: Tools;
    let server: ConsulAgent;
    const clients: Client[] = [];

    before(
        async () => {
            tools = readTools();
            server = await ConsulAgent.start(tools);
        },
        { timeout: 60_000 },
    );

    after(async () => {
        for (const c of clients) await c.proc.stop(5000, "SIGINT");
        await server?.destroy();
    });

    /** Starts a client agent joining the server; `over` changes the key or the certificate. */
    async function startClient(name: string, over: { encryptKey?: string; cert?: { cert: string; key: string }; caFile?: string } = {}): Promise<Client> {
        const dir = makeTempDir(`consul-${name}`);
        const cert = over.cert ?? testPki().ca.issue([clientTlsName("dc1"), CONSUL_HOST, "localhost"]);
        const ports = await freeConsulPorts();
        const config = agentConfig({
            datacenter: "dc1",
            nodeName: name,
            server: false,
            encryptKey: over.encryptKey ?? server.encryptKey,
            retryJoin: [`127.0.0.1:${server.ports.serfLan}`],
            maxConnsPerClient: 8192,
            paths: {
                dataDir: path.join(dir, "data"),
                caFile: over.caFile ?? testPki().caFile,
                certFile: cert.cert,
                keyFile: cert.key,
                httpSocket: path.join(dir, "http.sock"),
            },
            ports,
            clientAddr: "127.0.0.1",
            bindAddr: "127.0.0.1",
            advertiseAddr: "127.0.0.1",
        });
        const file = path.join(dir, "agent.json");
        fs.writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
        const proc = new Proc(`consul-${name}`, tools.CONSUL_BIN, ["agent", "-config-file", file, "-log-level", "info"], {
            env: { ...process.env, TMPDIR: dir },
        });
        const client = { proc, name, httpsUrl: `https://127.0.0.1:${ports.https}` };
        clients.push(client);
        return client;
    }

    async function isMember(name: string): Promise<boolean> {
        const res = await server.api("GET", "/v1/agent/members");
        return res.status === 200 && (JSON.parse(res.body) as { Name: string; Status: number }[]).some((m) => m.Name === name && m.Status === 1);
    }

    /** A catalog read through the client agent: it must forward it to a server over TLS RPC. */
    function readThrough(client: Client) {
        return httpRequest(`${client.httpsUrl}/v1/catalog/services`, {
            ca: testPki().caPem,
            headers: { "X-Consul-Token": server.tokens.management },
            timeoutMs: 5000,
        });
    }

    it("an agent with the gossip key and a certificate from the stack's CA joins and reaches the servers", async () => {
        const good = await startClient("good-agent");
        await waitFor(() => isMember("good-agent"), { timeoutMs: 30_000, message: "good-agent a member" });
        const res = await waitFor(
            async () => {
                const r = await readThrough(good).catch(() => undefined);
                return r?.status === 200 ? r : undefined;
            },
            { timeoutMs: 30_000, message: "a catalog read through good-agent" },
        );
        assert.equal(res.status, 200);
    });

    it("an agent with another gossip key is never a member", async () => {
        const rogue = await startClient("wrong-key-agent", { encryptKey: randomBytes(32).toString("base64") });
        await sleep(8000);
        assert.equal(await isMember("wrong-key-agent"), false);
        assert.match(rogue.proc.output(), /No installed keys could decrypt|Failed to join|failed to join/i);
    });

    it("an agent with the gossip key but a certificate from another CA cannot talk to the servers", async () => {
        const other = new TestCa(makeTempDir("other-ca"), "Another CA");
        const rogue = await startClient("other-ca-agent", { cert: other.issue([clientTlsName("dc1"), "localhost"]), caFile: other.caFile });
        await sleep(8000);
        const res = await httpRequest(`${rogue.httpsUrl}/v1/catalog/services`, {
            ca: other.caPem,
            headers: { "X-Consul-Token": server.tokens.management },
            timeoutMs: 5000,
        }).catch((e: Error) => e);
        assert.ok(
            res instanceof Error || res.status !== 200,
            `a catalog read through the rogue agent must fail: ${res instanceof Error ? res.message : `${res.status} ${res.body}`}`,
        );
        assert.match(rogue.proc.output(), /certificate|x509|tls|bad certificate/i);
    });
});
