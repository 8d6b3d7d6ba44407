// The routing plan and a running gateway agree: the KV keys and the registrations the plan
// assumes for a stack file (plan/input.ts), written to a real Consul (ACLs, TLS) and followed by
// the real gateway, give at /routes the very table `npm run plan` computes (host routes included); and
// `npm run plan -- --gateway` against that gateway finds no change.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import type { RouteTable } from "../../components/images/gateway/controller/routes";
import { stackTable } from "../../plan";
import { modelInput } from "../../plan/input";
import { TEST_SSH_KEY } from "../support/program";
import { freePort, Harness, httpRequest, makeTempDir, REPO_ROOT, waitFor } from "./harness";

describe("routing plan and running gateway: one route table", { timeout: 120_000 }, () => {
    let h: Harness;
    let planned: RouteTable;
    const stackFile = path.join(makeTempDir("plan"), "Pulumi.plan-agreement-test.yaml");
    const auth = (): string => Buffer.from(`${h.gateway.statsUser}:${h.gateway.statsPassword}`).toString("base64");
    const routes = () => httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/routes`, { headers: { authorization: `Basic ${auth()}` } });

    before(
        async () => {
            // The aws stack file (versions, a 90/10 split, a tcp service), its tcp listener moved to a free port.
            const config = (parseYaml(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.aws.yaml"), "utf8")) as { config: Record<string, any> }).config;
            config["service-discovery:aws"] = { ...config["service-discovery:aws"], adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY };
            const listen = await freePort();
            for (const s of config["service-discovery:services"]) if (s.protocol === "tcp") s.listenPort = listen;
            // And host routes: v2 (the canary) also answers on a name of its own.
            config["service-discovery:services"].find((s: { version?: string }) => s.version === "v2").hosts = ["canary.example.com"];
            fs.writeFileSync(stackFile, `config: ${JSON.stringify(config)}\n`);
            const t = stackTable(config, "plan-agreement-test");
            assert.ok("table" in t);
            planned = t.table;

            h = await Harness.start();
            const input = modelInput(t.settings);
            for (const [key, value] of input.kv) await h.consul.kvPut(key, value);
            const ops = [...input.nodes].flatMap((n) => [
                { Node: { Verb: "set", Node: { Node: n.node, Address: n.address } } },
                ...n.services.map((s) => ({
                    Service: { Verb: "set", Node: n.node, Service: { ID: s.id, Service: s.service, Tags: s.tags, Address: s.address, Port: s.port } },
                })),
            ]);
            const res = await h.consul.api("PUT", "/v1/txn", ops, undefined, 30_000);
            assert.equal(res.status, 200, res.body);
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    it("/routes needs the stats login", async () => {
        assert.equal((await httpRequest(`http://127.0.0.1:${h.gateway.statsPort}/routes`)).status, 401);
    });

    it("the gateway routes what the plan says: prefixes, versions' shares, replicas, the tcp listener", async () => {
        const served = await waitFor(
            async () => {
                const res = await routes();
                if (res.status !== 200) return undefined;
                const table = JSON.parse(res.body) as RouteTable;
                return table.http.length === planned.http.length && table.tcp.length === planned.tcp.length && table.hosts?.length === planned.hosts.length
                    ? table
                    : undefined;
            },
            { timeoutMs: 20_000, message: "the gateway serves the stack's routes" },
        );
        assert.deepEqual(served.http, planned.http, h.diagnostics());
        assert.deepEqual(served.tcp, planned.tcp);
        assert.deepEqual(served.hosts, planned.hosts);
        assert.deepEqual(
            planned.hosts,
            [{ host: "canary.example.com", service: "hello-v2", servers: 1, drained: 0 }],
            "host routes were part of what was compared",
        );
        assert.equal(planned.http.find((e) => e.prefix === "/hello/")?.split?.[0]?.share, 90.1, "the split is part of what was compared");
        // And HAProxy runs it: the split's servers carry the weights the shares came from.
        const cfg = h.gateway.readRenderedConfig("live");
        assert.match(cfg, /backend svc_hello\b/);
        assert.match(cfg, new RegExp(`bind [^\\n]*:${planned.tcp[0]!.port}\\b`));
    });

    it("npm run plan -- --gateway: no change against the gateway running the same stack", async () => {
        const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
            execFile(
                process.execPath,
                [
                    "--import",
                    "tsx",
                    "scripts/plan.ts",
                    "--stack",
                    "plan-agreement-test",
                    "--stack-file",
                    stackFile,
                    "--gateway",
                    `http://127.0.0.1:${h.gateway.statsPort}`,
                ],
                { cwd: REPO_ROOT, env: { ...process.env, STATS_USER: h.gateway.statsUser, STATS_PASSWORD: h.gateway.statsPassword } },
                (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
            ),
        );
        assert.equal(result.code, 0, result.stdout + result.stderr);
        assert.match(result.stdout, /against the gateway at http:\/\/127\.0\.0\.1:\d+\n/);
        assert.match(result.stdout, /\nNo route changes\.\n/);
    });
});
