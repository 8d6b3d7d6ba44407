// Routes belong to declared replicas (docs/security.md), on the real Consul (ACLs, TLS), HAProxy
// and controller: a container of another service registers itself, through Registrator's agent
// API and token, as an instance of a declared service — a well-formed registration, Registrator's
// ID shape, an address in the stack's network, a passing check, the service's own check path.
// The gateway never sends it a request, the declared replicas keep serving, and the rejection is
// in the controller's log and metrics. A service no replica of the stack registers is routed only
// while KV routing/undeclared says true.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { RouteTable } from "../../components/images/gateway/controller/routes";
import { hello, Harness, httpRequest, waitFor, type Backend } from "./harness";

const PREFIX = "service/haproxy";

describe("routes belong to declared replicas", { timeout: 120_000 }, () => {
    let h: Harness;
    let replicas: Backend[];
    let intruder: Backend;

    before(
        async () => {
            h = await Harness.start();
            // What the program writes for a declared service (components/gateway-kv.ts): its check
            // path and its replicas' names, which the harness's backends use as container names.
            await h.consul.kvPut(`${PREFIX}/services/billing-v1/check`, "/health");
            await h.consul.kvPut(`${PREFIX}/services/billing-v1/replicas`, "dev-billing-v1-1 dev-billing-v1-2");
            await h.consul.kvPut(`${PREFIX}/routing/undeclared`, "false");
            replicas = [await h.addInstance("billing-v1", "dev-billing-v1-1-0123abcd"), await h.addInstance("billing-v1", "dev-billing-v1-2-89abcdef")];
            for (const r of replicas) await h.waitForRoute("/billing/v1/", { instance: r.instance });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    const auth = (): string => Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
    async function metric(name: string): Promise<number | undefined> {
        const res = await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/metrics/controller`, { headers: { authorization: `Basic ${auth()}` } });
        assert.equal(res.status, 200, res.body);
        const line = res.body.split("\n").find((l) => l.startsWith(`${name} `));
        return line === undefined ? undefined : Number(line.split(" ")[1]);
    }
    async function routes(): Promise<RouteTable> {
        const res = await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/routes`, { headers: { authorization: `Basic ${auth()}` } });
        assert.equal(res.status, 200, res.body);
        return JSON.parse(res.body) as RouteTable;
    }
    const logLines = (): string[] => (h.gateway.proc?.stderr.toString() ?? "").split("\n");
    /** Who answers `n` requests to `path`, by hostname. */
    async function answeredBy(path: string, n: number): Promise<Map<string, number>> {
        const seen = new Map<string, number>();
        for (let i = 0; i < n; i++) {
            const res = await h.gateway.get(path);
            assert.equal(res.status, 200, `${path}: ${res.status} ${res.body}`);
            const host = hello(res).hostname;
            seen.set(host, (seen.get(host) ?? 0) + 1);
        }
        return seen;
    }

    it("a foreign container claiming a declared service gets no request; the replicas keep serving; the rejection is logged once and counted", async () => {
        assert.equal(await metric("gateway_controller_foreign_instances"), 0);
        // Another service's container (an image with ENV SERVICE_<port>_NAME=billing-v1): its
        // registration is Registrator's, only its container is not one of billing-v1's replicas.
        intruder = await h.startBackend("hello", "dev-hello-v1-1-0123abcd", "v1");
        await h.consul.register(intruder.registration("billing-v1", { status: "passing" }));
        assert.equal(await h.consul.checkStatus(intruder.id), "passing", "the intruder passes the service's own check");

        const line = `gateway: rejected: billing-v1 instance ${intruder.serverName}: container dev-hello-v1-1-0123abcd is not a declared replica of billing-v1 (KV ${PREFIX}/services/billing-v1/replicas); not routed`;
        await waitFor(async () => (await metric("gateway_controller_foreign_instances")) === 1, {
            timeoutMs: 10_000,
            message: `gateway_controller_foreign_instances is 1\n${h.diagnostics()}`,
        });
        await waitFor(() => logLines().includes(line), { timeoutMs: 5000, message: `the log says: ${line}\n${h.diagnostics()}` });

        // Only the replicas answer, both of them.
        const seen = await answeredBy("/billing/v1/who", 40);
        assert.deepEqual([...seen.keys()].sort(), replicas.map((r) => r.instance).sort(), JSON.stringify([...seen]));
        // Not a server of the gateway's at all: neither in the file HAProxy runs nor in its running state.
        const servers = h.gateway
            .readRenderedConfig("live")
            .split("\n")
            .filter((l) => /^\s+server /.test(l));
        assert.ok(servers.some((l) => l.includes(replicas[0]!.serverName)) && !servers.some((l) => l.includes(intruder.serverName)), servers.join("\n"));
        assert.ok(!(await h.gateway.admin("show servers state svc_billing-v1")).includes(intruder.serverName), "the intruder is no running server");
        const billing = (await routes()).http.find((r) => r.service === "billing-v1");
        assert.equal(billing?.servers, 2, JSON.stringify(billing));
        // Logged once, however many models were built since.
        await h.addInstance("billing-v1", "dev-billing-v1-2-fedcba98");
        await h.waitForRoute("/billing/v1/", { instance: "dev-billing-v1-2-fedcba98" });
        assert.equal(logLines().filter((l) => l === line).length, 1, "logged once");

        // Gone from Consul, gone from the count.
        await h.consul.deregister(intruder.id);
        await waitFor(async () => (await metric("gateway_controller_foreign_instances")) === 0, { timeoutMs: 10_000, message: "the count back to 0" });
    });

    it("a service the stack does not declare is routed only while KV routing/undeclared is true", async () => {
        await h.addInstance("adhoc-v1", "adhoc-a");
        const skipped = `gateway: skipped: service adhoc-v1: the stack does not declare it (no KV ${PREFIX}/services/adhoc-v1/replicas) and KV ${PREFIX}/routing/undeclared is not true`;
        await waitFor(() => logLines().includes(skipped), { timeoutMs: 10_000, message: `the log says: ${skipped}\n${h.diagnostics()}` });
        assert.equal((await h.gateway.get("/adhoc/v1/")).status, 404);
        assert.equal(
            (await routes()).http.find((r) => r.service === "adhoc-v1"),
            undefined,
        );

        await h.consul.kvPut(`${PREFIX}/routing/undeclared`, "true");
        await h.waitForRoute("/adhoc/v1/", { instance: "adhoc-a" });
        // Being routed as undeclared is no way into a declared service: billing-v1 still refuses a foreign container.
        const again = await h.startBackend("hello", "dev-hello-v1-2-0123abcd", "v1");
        await h.consul.register(again.registration("billing-v1", { status: "passing" }));
        let counted: number | undefined;
        await waitFor(async () => (counted = await metric("gateway_controller_foreign_instances")) === 1, {
            timeoutMs: 10_000,
            message: `the second intruder counted (${counted})\n${h.diagnostics()}`,
        });
        assert.ok(!(await answeredBy("/billing/v1/who", 30)).has(again.instance), "the intruder got no request");

        await h.consul.kvPut(`${PREFIX}/routing/undeclared`, "false");
        await h.waitForRoute("/adhoc/v1/", { status: 404 });
    });
});
