// The gateway's container and trust rules on a real engine, as `pulumi up` leaves them: it runs
// as a non-root user with no-new-privileges and no capability, yet serves on port 80; its
// controller finds the container's own addresses, so a registration pointing back at the gateway
// (or at Consul, or at the node's published gateway port) is skipped and logged while the routes
// keep answering; and a client's X-Forwarded-For is replaced.
import assert from "node:assert/strict";
import * as http from "node:http";
import * as https from "node:https";
import { before, describe, test } from "node:test";
import { hello, hostnameOf, operator, replicasOf, rotationIs } from "../harness/scenario";
import { e2eName, eventually, type Stack } from "../harness/stack";

const GATEWAY = e2eName("gateway");
const CONSUL = e2eName("consul");

export function gatewayTrustSuite(up: () => Stack): void {
    describe("the dev stack's config on a real engine (stack e2e): the gateway's privileges and trust rules", () => {
        let stack: Stack;
        before(() => {
            stack = up();
        });

        /** A request to Consul's published HTTPS API as the operator (the stack's CA and management token). */
        function consulPut(path: string, body: unknown): Promise<number> {
            const api = stack.outputs.consulUiUrl.replace(/\/ui\/?$/, "");
            const { ca, token } = operator(stack);
            return new Promise((resolve, reject) => {
                const req = https.request(`${api}${path}`, { method: "PUT", ca, headers: { "X-Consul-Token": token }, agent: false }, (res) => {
                    res.resume();
                    res.on("end", () => resolve(res.statusCode ?? 0));
                });
                req.on("error", reject);
                req.end(body === undefined ? undefined : JSON.stringify(body));
            });
        }

        async function addressOn(container: string): Promise<string> {
            const networks = (await stack.docker.inspectContainer(container)).NetworkSettings.Networks as Record<string, { IPAddress: string }>;
            const address = Object.values(networks)[0]?.IPAddress;
            assert.ok(address, `${container} has an address`);
            return address;
        }

        test("the gateway runs as a non-root user, no-new-privileges, no capability, and serves on port 80", async () => {
            const inspect = await stack.docker.inspectContainer(GATEWAY);
            assert.ok((inspect.HostConfig.SecurityOpt as string[]).includes("no-new-privileges:true"), JSON.stringify(inspect.HostConfig.SecurityOpt));
            assert.deepEqual(inspect.HostConfig.CapDrop, ["ALL"]);
            assert.deepEqual(inspect.HostConfig.Sysctls, { "net.ipv4.ip_unprivileged_port_start": "80" });
            assert.equal((await stack.exec(GATEWAY, ["id", "-u"])).trim(), "10080");
            // Every process of the container: the init, the controller (node), HAProxy's master and worker
            // (started once the controller has rendered its first configuration: waited for).
            const statusLines = async (): Promise<string[]> =>
                (
                    await stack.exec(GATEWAY, [
                        "bash",
                        "-c",
                        "for s in /proc/[0-9]*/status; do grep -E '^(Name|Uid|NoNewPrivs|CapEff|CapPrm|CapBnd):' \"$s\" | tr '\\n' ' '; echo; done",
                    ])
                )
                    .trim()
                    .split("\n")
                    .filter((l) => /Name:/.test(l));
            const procs = await eventually("HAProxy and the controller running in the gateway container", async () => {
                const lines = await statusLines();
                return lines.some((l) => /Name:\s+haproxy/.test(l)) && lines.some((l) => /Name:\s+node/.test(l)) ? lines : undefined;
            });
            for (const p of procs) {
                assert.match(p, /Uid:\s+10080\s/, p);
                assert.match(p, /NoNewPrivs:\s+1/, p);
                assert.match(p, /CapEff:\s+0{16}/, p);
                assert.match(p, /CapPrm:\s+0{16}/, p);
                assert.match(p, /CapBnd:\s+0{16}/, p);
            }
            // Port 80 in the container, published on the stack's gateway port.
            const listening = await stack.exec(GATEWAY, [
                "bash",
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /-/health HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3",
            ]);
            assert.match(listening, /^HTTP\/1\.[01] 200/);
            const v1 = replicasOf(stack, "hello-v1");
            await rotationIs(
                stack,
                "/hello/v1/",
                v1.map((c) => hostnameOf(stack, c)),
            );
        });

        test("without the namespaced sysctl the same user cannot bind port 80: file capabilities would not help under no-new-privileges", async () => {
            // The gateway image as the stack runs it, once with the stack's sysctl and once with the
            // kernel's default (1024): only the first binds port 80.
            const image = String(stack.containerResource(GATEWAY).inputs.image);
            const bind80 =
                "printf 'defaults\\n  mode http\\n  timeout client 1s\\n  timeout server 1s\\n  timeout connect 1s\\nfrontend f\\n  bind :80\\n' > /run/gateway/bind80.cfg && timeout 2 haproxy -db -f /run/gateway/bind80.cfg; echo exit=$?";
            const run = async (start: string, extra: string[] = []) =>
                await stack.docker.cli(
                    [
                        "run",
                        "--rm",
                        "--network",
                        "none",
                        "--security-opt",
                        "no-new-privileges:true",
                        "--cap-drop",
                        "ALL",
                        ...extra,
                        "--sysctl",
                        `net.ipv4.ip_unprivileged_port_start=${start}`,
                        "--entrypoint",
                        "bash",
                        image,
                        "-c",
                        bind80,
                    ],
                    { allowFailure: true, timeoutMs: 60_000 },
                );
            const shipped = await run("80");
            assert.match(shipped.stdout, /exit=124/, `HAProxy kept running on port 80 until timeout:\n${shipped.stdout}${shipped.stderr}`);
            const kernelDefault = await run("1024");
            assert.match(`${kernelDefault.stdout}${kernelDefault.stderr}`, /Permission denied/, `${kernelDefault.stdout}${kernelDefault.stderr}`);
            // Docker's capability for it is no way out for a non-root user either: the engine gives a
            // non-root process no ambient capabilities, so the added one never becomes effective.
            const withCap = await run("1024", ["--cap-add", "NET_BIND_SERVICE"]);
            assert.match(`${withCap.stdout}${withCap.stderr}`, /Permission denied/, `${withCap.stdout}${withCap.stderr}`);
        });

        test("a registration pointing back at the gateway, at Consul or at the node's gateway port is skipped, logged once, and the routes keep answering", async () => {
            const v1 = replicasOf(stack, "hello-v1");
            const hosts = v1.map((c) => hostnameOf(stack, c));
            await rotationIs(stack, "/hello/v1/", hosts);
            const gateway = await addressOn(GATEWAY);
            const consul = await addressOn(CONSUL);
            const node = String(stack.configValue("network").subnet).replace(/0\/[0-9]+$/, "1");
            const rogues = [
                { id: "e2e-rogue-own", address: gateway, port: 80, reason: "an address of the gateway itself (GATEWAY_OWN_ADDRESSES)" },
                { id: "e2e-rogue-consul", address: consul, port: 8501, reason: "port 8501 is Consul's or the Docker API's" },
                { id: "e2e-rogue-node", address: node, port: 80, reason: "port 80 of a node is the gateway's, Consul's or SSH (GATEWAY_NODE_PORTS)" },
            ];
            try {
                for (const r of rogues) {
                    assert.equal(
                        await consulPut("/v1/agent/service/register", {
                            ID: r.id,
                            Name: "hello-v1",
                            Tags: ["rest", "check=/health"],
                            Address: r.address,
                            Port: r.port,
                        }),
                        200,
                    );
                }
                for (const r of rogues) {
                    const line = `gateway: skipped: hello-v1 instance ${r.address}:${r.port}: ${r.reason}`;
                    await eventually(
                        `"${line}" in the gateway's log`,
                        async () => ((await stack.docker.logs(GATEWAY, 2000)).split("\n").includes(line) ? true : undefined),
                        30_000,
                    );
                }
                // Requests keep going to the real replicas only.
                await rotationIs(stack, "/hello/v1/", hosts);
                const logs = (await stack.docker.logs(GATEWAY, 5000)).split("\n");
                for (const r of rogues) {
                    assert.equal(
                        logs.filter((l) => l === `gateway: skipped: hello-v1 instance ${r.address}:${r.port}: ${r.reason}`).length,
                        1,
                        `${r.id} logged once`,
                    );
                }
            } finally {
                for (const r of rogues) await consulPut(`/v1/agent/service/deregister/${r.id}`, undefined).catch(() => 0);
            }
        });

        test("a client's X-Forwarded-For and X-Forwarded-Prefix are replaced (no trusted proxy configured)", async () => {
            const r = await new Promise<{ forwarded_for: string; forwarded_prefix: string }>((resolve, reject) => {
                const url = new URL(`${stack.outputs.gatewayUrl}/hello/v1/xff`);
                const req = http.get(url, { agent: false, headers: { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Prefix": "/evil" } }, (res) => {
                    let body = "";
                    res.setEncoding("utf8");
                    res.on("data", (d: string) => (body += d));
                    res.on("end", () => resolve(JSON.parse(body)));
                });
                req.on("error", reject);
            });
            assert.notEqual(r.forwarded_for, "203.0.113.9");
            assert.match(r.forwarded_for, /^[0-9.]+$/, "one address: the client as the gateway sees it");
            assert.equal(r.forwarded_prefix, "/hello/v1");
            assert.equal((await hello(stack, "/hello/v1/")).forwarded_prefix, "/hello/v1");
        });
    });
}
