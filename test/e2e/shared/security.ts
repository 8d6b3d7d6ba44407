// The secured control plane on a real engine, as `pulumi up` leaves it: Consul with ACLs (default
// deny), TLS and its secrets in a 0600 config file, driven from inside a container of the service
// image on the node network (where a replica with sharedNetwork true runs: a replica on its own
// network does not reach Consul at all, test/e2e/shared/replica-hardening.ts), as an attacker who got
// code running there would.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { CONSUL_PATHS } from "../../../components/consul-agent-config";
import { GATEWAY_CONSUL_TOKEN_FILE, GATEWAY_STATS_PASSWORD_FILE, GATEWAY_UID } from "../../../components/gateway";
import { REGISTRATOR_ENTRYPOINT, REGISTRATOR_TOKEN_FILE } from "../../../components/registrator";
import { consulGet, rotationIs, replicasOf, hostnameOf } from "../harness/scenario";
import { e2eName, get, type Stack } from "../harness/stack";

const CONSUL = e2eName("consul");
const GATEWAY = e2eName("gateway");
const REGISTRATOR = e2eName("node-1-registrator");

/**
 * Requests from inside a container, with Python's standard library (the example image has no
 * curl). TLS verification is off, as an attacker would turn it off. Prints one JSON line per
 * request: the status, or the error.
 */
const ATTACK = String.raw`
import json, ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
for method, url, body in json.loads(sys.argv[1]):
    try:
        req = urllib.request.Request(url, data=None if body is None else body.encode(), method=method)
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            print(json.dumps({"url": url, "status": r.status}))
    except urllib.error.HTTPError as e:
        print(json.dumps({"url": url, "status": e.code}))
    except Exception as e:
        print(json.dumps({"url": url, "error": type(e).__name__}))
`;

export function securitySuite(up: () => Stack): void {
    describe("the dev stack's config on a real engine (stack e2e): ACLs and TLS", () => {
        let stack: Stack;
        before(() => {
            stack = up();
        });

        /** The hello image, run once on the node network, where the Consul agent is named and listens. */
        async function fromServiceContainer(requests: [string, string, string | null][]): Promise<{ url: string; status?: number; error?: string }[]> {
            const image = (await stack.docker.inspectContainer(replicasOf(stack, "hello-v1")[0]!)).Image as string;
            const networks = (await stack.docker.inspectContainer(CONSUL)).NetworkSettings.Networks as Record<string, { Aliases?: string[] | null }>;
            const nodeNetwork = Object.entries(networks).find(([, n]) => (n.Aliases ?? []).includes("consul"))?.[0];
            assert.ok(nodeNetwork, `the network Consul is named on: ${Object.keys(networks)}`);
            const r = await stack.docker.cli(
                ["run", "--rm", "--network", nodeNetwork, "--cap-drop", "ALL", "--entrypoint", "python3", image, "-c", ATTACK, JSON.stringify(requests)],
                { timeoutMs: 120_000 },
            );
            const out = r.stdout;
            return out
                .trim()
                .split("\n")
                .map((l) => JSON.parse(l));
        }

        test("from a service container on the node network: no register, no deregister, no KV write; the routes keep answering", async () => {
            const v1 = replicasOf(stack, "hello-v1");
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
            );
            const services = await consulGet<Record<string, { ID: string; Service: string }>>(stack, "/v1/agent/services");
            const victim = Object.values(services).find((s) => s.Service === "hello-v1")!;
            const rogue = JSON.stringify({ ID: "rogue", Name: "hello-v1", Tags: ["rest"], Address: "10.0.0.1", Port: 80 });
            const results = await fromServiceContainer([
                ["PUT", "https://consul:8501/v1/agent/service/register", rogue],
                ["PUT", `https://consul:8501/v1/agent/service/deregister/${encodeURIComponent(victim.ID)}`, ""],
                ["PUT", "https://consul:8501/v1/kv/service/haproxy/maxconn", "1"],
                [
                    "PUT",
                    "https://consul:8501/v1/catalog/register",
                    JSON.stringify({ Node: "rogue", Address: "10.0.0.1", Service: { Service: "hello-v1", Tags: ["rest"], Port: 80 } }),
                ],
                ["PUT", "https://consul:8501/v1/acl/bootstrap", ""],
                // Plain HTTP answers only on the agent's own loopback.
                ["PUT", "http://consul:8500/v1/agent/service/register", rogue],
            ]);
            assert.deepEqual(
                results.slice(0, 4).map((r) => r.status),
                [403, 403, 403, 403],
                JSON.stringify(results),
            );
            assert.ok(results[4]!.status !== undefined && results[4]!.status >= 400, `ACL bootstrap again: ${JSON.stringify(results[4])}`);
            assert.ok(results[5]!.error !== undefined, `plain HTTP from another container must not connect: ${JSON.stringify(results[5])}`);
            const after = await consulGet<Record<string, { ID: string }>>(stack, "/v1/agent/services");
            assert.ok(!("rogue" in after), "the rogue registration is not in the catalog");
            assert.ok(victim.ID in after, "the real instance is still registered");
            assert.notEqual(await consulGet<string>(stack, "/v1/kv/service/haproxy/maxconn?raw").catch(() => "absent"), 1);
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
            );
        });

        test("the Consul API is HTTPS with the stack's CA; without a token it refuses writes", async () => {
            // consulGet verifies the certificate against the stack's CA output.
            assert.ok(Array.isArray(await consulGet(stack, "/v1/catalog/nodes")));
            const anonymous = await fromServiceContainer([["GET", "https://consul:8501/v1/acl/tokens", null]]);
            assert.equal(anonymous[0]!.status, 403, JSON.stringify(anonymous));
        });

        test("no secret in the Consul container's command line or environment; its config file is 0600 for the consul user", async () => {
            const c = await stack.docker.inspectContainer(CONSUL);
            const visible = JSON.stringify([c.Config.Cmd, c.Config.Entrypoint, c.Config.Env, c.Args]);
            assert.ok(!visible.includes(stack.outputs.consulManagementToken), "management token visible in docker inspect");
            const config = JSON.parse(await stack.exec(CONSUL, ["cat", CONSUL_PATHS.configFile]));
            assert.ok(!visible.includes(config.encrypt), "gossip key visible in docker inspect");
            assert.equal(config.acl.tokens.initial_management, stack.outputs.consulManagementToken);
            for (const file of [CONSUL_PATHS.configFile, CONSUL_PATHS.keyFile]) {
                assert.equal((await stack.exec(CONSUL, ["stat", "-c", "%a %u", file])).trim(), "600 100", `${file} mode and owner`);
            }
            // Consul itself runs as the unprivileged user the files belong to.
            const status = await stack.exec(CONSUL, [
                "sh",
                "-c",
                "for p in /proc/[0-9]*; do if [ \"$(cat $p/comm 2>/dev/null)\" = consul ]; then grep '^Uid:' $p/status; fi; done",
            ]);
            assert.match(status, /^Uid:\s+100\s/m, status);
        });

        test("no token or password in docker inspect of the gateway and Registrator: files their process's user alone reads", async () => {
            const uploaded = (container: string, file: string): string => {
                const u = (stack.applied.containers.get(container)?.uploads ?? []).find((x: { file: string }) => x.file === file);
                assert.ok(u, `${container}: ${file} is declared`);
                return String(u.content);
            };
            const gatewayToken = uploaded(GATEWAY, GATEWAY_CONSUL_TOKEN_FILE);
            const registratorToken = uploaded(REGISTRATOR, REGISTRATOR_TOKEN_FILE);
            assert.equal(uploaded(GATEWAY, GATEWAY_STATS_PASSWORD_FILE), stack.outputs.statsPassword);
            const secrets = [gatewayToken, registratorToken, stack.outputs.statsPassword, stack.outputs.consulManagementToken];
            for (const x of secrets) assert.match(x, /^[A-Za-z0-9-]{32,}$/, "a real secret (a UUID or the generated password)");
            const hidden = (what: string, visible: unknown): void => {
                const text = JSON.stringify(visible);
                secrets.forEach((x, i) => assert.ok(!text.includes(x), `${what}: secret ${i} visible`));
            };

            // The gateway: `docker inspect` (and the Docker API Registrator reads) shows file names only.
            const gw = await stack.docker.inspectContainer(GATEWAY);
            hidden("docker inspect of the gateway", [gw.Config.Env, gw.Config.Cmd, gw.Config.Entrypoint, gw.Args]);
            assert.ok(
                gw.Config.Env.includes(`CONSUL_HTTP_TOKEN_FILE=${GATEWAY_CONSUL_TOKEN_FILE}`) &&
                    gw.Config.Env.includes(`STATS_PASSWORD_FILE=${GATEWAY_STATS_PASSWORD_FILE}`),
            );
            for (const file of [GATEWAY_CONSUL_TOKEN_FILE, GATEWAY_STATS_PASSWORD_FILE])
                assert.equal((await stack.exec(GATEWAY, ["stat", "-c", "%a %u:%g", file])).trim(), `400 ${GATEWAY_UID}:${GATEWAY_UID}`, file);
            // Inside: the token in no process's environment; the password in HAProxy's alone, where its config expands it.
            const environs = await stack.exec(GATEWAY, [
                "sh",
                "-c",
                'for p in /proc/[0-9]*; do [ -r "$p/environ" ] && printf "%s\\t%s\\n" "$(cat $p/comm)" "$(tr "\\0" " " < $p/environ)"; done; true',
            ]);
            const byProcess = environs
                .trim()
                .split("\n")
                .map((l) => ({ comm: l.slice(0, l.indexOf("\t")), environ: l.slice(l.indexOf("\t") + 1) }));
            assert.ok(byProcess.some((x) => x.comm === "node") && byProcess.some((x) => x.comm === "haproxy"), environs);
            for (const x of byProcess) {
                assert.ok(!x.environ.includes(gatewayToken), `${x.comm}: the token in its environment`);
                assert.equal(x.environ.includes(stack.outputs.statsPassword), x.comm === "haproxy", `${x.comm}: the stats password in its environment`);
            }
            assert.equal((await get(stack.outputs.statsUrl, { user: stack.outputs.statsUser, password: stack.outputs.statsPassword })).status, 200);

            // Registrator: the program's entrypoint exports the file's token to Registrator alone.
            const declared = stack.applied.containers.get(REGISTRATOR)!;
            assert.deepEqual(declared.entrypoints, [...REGISTRATOR_ENTRYPOINT]);
            hidden("Registrator's declared environment and command", [declared.envs, declared.command, declared.entrypoints]);
            if (stack.applied.emulated.includes(REGISTRATOR)) {
                // No image, no container: the stand-in takes the token as the entrypoint would, from the file.
                assert.equal(stack.applied.registrator?.client.token, registratorToken);
            } else {
                const r = await stack.docker.inspectContainer(REGISTRATOR);
                hidden("docker inspect of Registrator", [r.Config.Env, r.Config.Cmd, r.Config.Entrypoint, r.Args]);
                assert.equal((await stack.exec(REGISTRATOR, ["stat", "-c", "%a %u:%g", REGISTRATOR_TOKEN_FILE])).trim(), "400 0:0");
                assert.ok((await stack.exec(REGISTRATOR, ["cat", "/proc/1/environ"])).split("\0").includes(`CONSUL_HTTP_TOKEN=${registratorToken}`));
            }
        });

        test("the agent has its token: its node is registered in the catalog (that needs node write)", async () => {
            const nodes = await consulGet<{ Node: string }[]>(stack, "/v1/catalog/nodes");
            assert.ok(
                nodes.some((n) => n.Node === "e2e-consul"),
                JSON.stringify(nodes),
            );
        });
    });
}
