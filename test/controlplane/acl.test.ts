// Who may change routing: Consul runs with ACLs (default deny) and TLS exactly as the stack
// configures it, with the stack's own policies. Each test is an attack a container on the node
// network could make with what it has (no token, Registrator's token, the gateway's token), and
// shows it is refused while the real instances keep serving.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { KV_PREFIX } from "../../components/gateway-kv";
import { bundleController } from "../../components/images/gateway/bundle";
import { Gateway, Harness, httpRequest, sleep, waitFor, type Backend } from "./harness";

describe("ACLs: default deny, least privilege per token", { timeout: 180_000 }, () => {
    let h: Harness;
    let a: Backend;
    let b: Backend;

    before(
        async () => {
            h = await Harness.start();
            a = await h.addInstance("acl-v1", "acl-a");
            b = await h.addInstance("acl-v1", "acl-b");
            await h.waitForRoute("/acl/v1/", { instance: "acl-a" });
            await h.waitForRoute("/acl/v1/", { instance: "acl-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    /** Both real instances still answer through the gateway. */
    async function stillServing(): Promise<void> {
        const seen = new Set<string>();
        for (let i = 0; i < 6; i++) {
            const res = await h.gateway.get("/acl/v1/x");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
            seen.add(JSON.parse(res.body).hostname);
        }
        assert.deepEqual([...seen].sort(), ["acl-a", "acl-b"]);
    }

    const rogue = (id: string) => ({
        ID: id,
        Name: "acl-v1",
        Tags: ["rest"],
        Address: "127.0.0.1",
        Port: a.port,
        Check: { HTTP: `http://127.0.0.1:${a.port}/health`, Interval: "1s", Status: "passing" as const },
    });

    it("refuses anonymous register, deregister and KV writes (403)", async () => {
        const reg = await h.consul.tryRegister(rogue("anon-rogue"), "");
        assert.equal(reg.status, 403, reg.body);
        const dereg = await h.consul.api("PUT", `/v1/agent/service/deregister/${encodeURIComponent(a.id)}`, undefined, "");
        assert.equal(dereg.status, 403, dereg.body);
        for (const key of [`${KV_PREFIX}/maxconn`, `${KV_PREFIX}/timeouts/client`, "anything/else"]) {
            const kv = await h.consul.api("PUT", `/v1/kv/${key}`, "1", "");
            assert.equal(kv.status, 403, `${key}: ${kv.body}`);
        }
        const catalog = await h.consul.api(
            "PUT",
            "/v1/catalog/register",
            { Node: h.consul.nodeName, Address: "127.0.0.1", Service: { Service: "acl-v1", Tags: ["rest"], Address: "127.0.0.1", Port: 1 } },
            "",
        );
        assert.equal(catalog.status, 403, catalog.body);
        // The agent's socket (Registrator's way in) is plain HTTP, but ACLs apply there too.
        const viaSocket = await httpRequest("http://consul/v1/agent/service/register", {
            method: "PUT",
            body: JSON.stringify(rogue("socket-rogue")),
            socketPath: h.consul.socketPath,
        });
        assert.equal(viaSocket.status, 403, viaSocket.body);
        // A token Consul does not know is no better than none.
        const forged = await h.consul.tryRegister(rogue("forged-rogue"), randomUUID());
        assert.equal(forged.status, 403, forged.body);
        await stillServing();
    });

    it("anonymous reads are what DNS needs: the catalog, not the KV store", async () => {
        const services = await h.consul.api("GET", "/v1/catalog/services", undefined, "");
        assert.equal(services.status, 200);
        assert.ok("acl-v1" in JSON.parse(services.body), services.body);
        const kv = await h.consul.api("GET", `/v1/kv/${KV_PREFIX}/?recurse`, undefined, "");
        assert.ok(kv.status === 403 || kv.status === 404, `anonymous KV read: ${kv.status} ${kv.body}`);
    });

    it("Registrator's token registers through its agent, but cannot write KV or the catalog under another node", async () => {
        const r = h.consul.tokens.registrator;
        for (const key of [`${KV_PREFIX}/maxconn`, "other/key"]) {
            const kv = await h.consul.api("PUT", `/v1/kv/${key}`, "1", r);
            assert.equal(kv.status, 403, `${key}: ${kv.body}`);
        }
        const other = await h.consul.api(
            "PUT",
            "/v1/catalog/register",
            { Node: "some-other-node", Address: "127.0.0.1", Service: { Service: "acl-v1", Tags: ["rest"], Address: "127.0.0.1", Port: a.port } },
            r,
        );
        assert.equal(other.status, 403, other.body);
        const own = await h.consul.api(
            "PUT",
            "/v1/catalog/register",
            { Node: h.consul.nodeName, Address: "127.0.0.1", Service: { Service: "acl-v1", Tags: ["rest"], Address: "127.0.0.1", Port: a.port } },
            r,
        );
        assert.equal(own.status, 403, `catalog writes need node write, Registrator has node read: ${own.body}`);
        const acl = await h.consul.api("PUT", "/v1/acl/token", { Description: "escalate", Policies: [{ Name: "global-management" }] }, r);
        assert.equal(acl.status, 403, acl.body);
        await stillServing();
    });

    it("the gateway's token reads what it renders and writes nothing", async () => {
        const g = h.consul.tokens.gateway;
        const reg = await h.consul.tryRegister(rogue("gw-rogue"), g);
        assert.equal(reg.status, 403, reg.body);
        const dereg = await h.consul.api("PUT", `/v1/agent/service/deregister/${encodeURIComponent(b.id)}`, undefined, g);
        assert.equal(dereg.status, 403, dereg.body);
        const kv = await h.consul.api("PUT", `/v1/kv/${KV_PREFIX}/maxconn`, "1", g);
        assert.equal(kv.status, 403, kv.body);
        const read = await h.consul.api("GET", `/v1/health/service/acl-v1`, undefined, g);
        assert.equal(read.status, 200);
        assert.equal(JSON.parse(read.body).length, 2);
        await stillServing();
    });

    it("the gateway's secrets are files: no token in the controller's or HAProxy's environment, the stats password in HAProxy's alone", async () => {
        const environ = (pid: number): Map<string, string> =>
            new Map(
                fs
                    .readFileSync(`/proc/${pid}/environ`, "utf8")
                    .split("\0")
                    .filter(Boolean)
                    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
            );
        const token = h.consul.tokens.gateway;
        const password = h.gateway.statsPassword;
        assert.ok(token.length > 0 && password.length > 0);
        const controller = environ(h.gateway.proc!.child.pid!);
        assert.equal(fs.readFileSync(controller.get("CONSUL_HTTP_TOKEN_FILE")!, "utf8"), token, "the token's file, as the stack uploads it");
        assert.equal(fs.readFileSync(controller.get("STATS_PASSWORD_FILE")!, "utf8"), password);
        const haproxy = environ(Number(fs.readFileSync(path.join(h.gateway.runDir, "haproxy.pid"), "utf8").trim().split(/\s+/)[0]));
        for (const [who, env] of [
            ["the controller", controller],
            ["HAProxy", haproxy],
        ] as const) {
            assert.ok(![...env.values()].some((v) => v.includes(token)), `${who}: the token in its environment`);
            assert.equal(env.has("CONSUL_HTTP_TOKEN"), false, who);
        }
        assert.ok(![...controller.values()].some((v) => v.includes(password)), "the controller: the password in its environment");
        // HAProxy expands "${STATS_PASSWORD}" in its config: its own environment, which the container's (docker inspect) is not.
        assert.equal(haproxy.get("STATS_PASSWORD"), password);
        assert.equal(haproxy.has("CONSUL_HTTP_TOKEN_FILE"), false, "HAProxy is not told where the token is");
        const stats = (pw: string) =>
            httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, {
                headers: { authorization: `Basic ${Buffer.from(`${h.gateway.statsUser}:${pw}`).toString("base64")}` },
            });
        assert.equal((await stats(password)).status, 200, "the password from the file opens the stats listener");
        assert.equal((await stats(`${password}x`)).status, 401);
    });

    it("the controller refuses a token or a password in its environment: exit 64, naming the file variable", () => {
        for (const [variable, value] of [
            ["CONSUL_HTTP_TOKEN", h.consul.tokens.gateway],
            ["STATS_PASSWORD", "Zq8XbW3kP0tLm2Rv9sYc4HnJ"],
        ] as const) {
            const r = spawnSync(process.execPath, ["--enable-source-maps", bundleController()], {
                env: { ...h.gateway.env, GATEWAY_RUN_DIR: path.join(h.gateway.runDir, "refused"), [variable]: value },
                encoding: "utf8",
                timeout: 20_000,
            });
            assert.equal(r.status, 64, `${variable}: ${r.stderr}`);
            assert.match(
                r.stderr,
                new RegExp(
                    `^gateway: ${variable} in the environment: the gateway reads its secrets from files only .*set ${variable}_FILE to a file instead$`,
                    "m",
                ),
            );
            assert.ok(!r.stderr.includes(value), "the secret is never echoed");
        }
    });

    it("Pulumi's KV token writes the gateway settings' prefix only", async () => {
        const w = h.consul.tokens.kvWriter;
        assert.equal((await h.consul.api("PUT", `/v1/kv/${KV_PREFIX}/acl-probe`, "1", w)).status, 200);
        assert.equal((await h.consul.api("DELETE", `/v1/kv/${KV_PREFIX}/acl-probe`, undefined, w)).status, 200);
        assert.equal((await h.consul.api("PUT", "/v1/kv/other/key", "1", w)).status, 403);
        assert.equal((await h.consul.tryRegister(rogue("kv-rogue"), w)).status, 403);
    });

    it("the operators' token reads what docs/operations.md does by hand, and changes nothing, ACLs least of all", async () => {
        const o = h.consul.tokens.operator;
        const status = async (method: string, apiPath: string, body?: unknown) => (await h.consul.api(method, apiPath, body, o)).status;
        // consul members, consul catalog services, health, the gateway settings, the raft peers.
        const members = await h.consul.api("GET", "/v1/agent/members", undefined, o);
        assert.equal(members.status, 200, members.body);
        assert.ok(members.body.includes(h.consul.nodeName), "members are listed");
        const services = await h.consul.api("GET", "/v1/catalog/services", undefined, o);
        assert.equal(services.status, 200);
        assert.ok("acl-v1" in JSON.parse(services.body), services.body);
        assert.equal(await status("GET", "/v1/health/state/critical"), 200);
        assert.equal(await status("GET", "/v1/health/service/acl-v1"), 200);
        assert.equal((await h.consul.api("PUT", `/v1/kv/${KV_PREFIX}/operator-probe`, "1")).status, 200, "written with the management token");
        assert.equal(await status("GET", `/v1/kv/${KV_PREFIX}/operator-probe`), 200);
        assert.equal(await status("GET", "/v1/operator/raft/configuration"), 200);
        // No writes: KV, services, the catalog, and no ACL reads or writes (no token minting).
        assert.equal(await status("PUT", `/v1/kv/${KV_PREFIX}/operator-probe`, "2"), 403);
        assert.equal(await status("DELETE", `/v1/kv/${KV_PREFIX}/operator-probe`), 403);
        assert.equal(await status("GET", "/v1/kv/other/key"), 403);
        assert.equal((await h.consul.tryRegister(rogue("operator-rogue"), o)).status, 403);
        assert.equal(await status("PUT", `/v1/agent/service/deregister/${encodeURIComponent(a.id)}`), 403);
        assert.equal(await status("GET", "/v1/acl/tokens"), 403);
        assert.equal(await status("GET", "/v1/acl/policies"), 403);
        assert.equal(await status("PUT", "/v1/acl/token", { Description: "minted", Policies: [{ Name: "gateway-settings-writer" }] }), 403);
        assert.equal(await status("POST", "/v1/operator/raft/transfer-leader"), 403);
        await h.consul.api("DELETE", `/v1/kv/${KV_PREFIX}/operator-probe`);
        await stillServing();
    });

    it("the API is HTTPS only, verified: plain HTTP and an unknown CA are refused", async () => {
        const plain = await httpRequest(`http://${h.consul.addr}/v1/status/leader`, { timeoutMs: 2000 }).catch((e: Error) => e);
        assert.ok(plain instanceof Error || plain.status === 400, `plain HTTP on the HTTPS port: ${plain instanceof Error ? plain.message : plain.status}`);
        const wrongCa = await httpRequest(`${h.consul.url}/v1/status/leader`, { timeoutMs: 2000 }).catch((e: Error) => e);
        assert.ok(
            wrongCa instanceof Error && /certificate/i.test(wrongCa.message),
            `without the cluster's CA: ${wrongCa instanceof Error ? wrongCa.message : wrongCa.status}`,
        );
    });

    it("the agent has its own token (its node syncs; no 'blocked by ACLs' warnings)", async () => {
        const node = await h.consul.api("GET", `/v1/catalog/node/${h.consul.nodeName}`);
        assert.equal(node.status, 200);
        assert.ok(JSON.parse(node.body).Node, node.body);
        // Before the token is set the agent warns "Node info update blocked by ACLs"; never after.
        await sleep(1500);
        assert.equal(h.consul.aclBlocksSinceToken(), 0, h.consul.proc!.output());
    });
});

describe("ACLs: a gateway whose token is denied keeps its last good config and says so", { timeout: 120_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
            await h.addInstance("deny-v1", "deny-a");
            await h.waitForRoute("/deny/v1/", { instance: "deny-a" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("a gateway started with an unknown token serves the bootstrap config and logs the denial", async () => {
        const gw = await Gateway.start(h.tools, { ...h.consul.clientEnv("gateway"), CONSUL_HTTP_TOKEN: randomUUID() }, { waitForRender: false });
        try {
            await waitFor(() => /ACL not found|Permission denied|403/.test(gw.proc!.output()), {
                timeoutMs: 15_000,
                message: "consul-template to log the ACL denial",
            });
            const res = await gw.get("/deny/v1/");
            assert.equal(res.status, 503, "no render from a denied token: never an empty route table");
            assert.match(res.body, /routes not loaded/);
        } finally {
            await gw.destroy();
        }
    });

    it("revoking the running gateway's token: it keeps serving the routes it had, and logs the denial", async () => {
        const self = await h.consul.api("GET", "/v1/acl/token/self", undefined, h.consul.tokens.gateway);
        assert.equal(self.status, 200, self.body);
        const accessor = JSON.parse(self.body).AccessorID as string;
        assert.equal((await h.consul.api("DELETE", `/v1/acl/token/${accessor}`)).status, 200);
        // A change the gateway can no longer see: it must not drop to an empty config.
        await h.addInstance("deny-v1", "deny-b");
        await waitFor(() => /ACL not found|Permission denied|403/.test(h.gateway.proc!.output()), {
            timeoutMs: 20_000,
            message: "consul-template to log the ACL denial",
        });
        for (let i = 0; i < 5; i++) {
            const res = await h.gateway.get("/deny/v1/x");
            assert.equal(res.status, 200, `${res.status} ${res.body}`);
        }
    });
});
