// The Docker socket proxy on a real engine (stack e2e): the proxy the program builds and runs is
// the only container with the engine's socket; Registrator (emulated when its image is missing,
// reading DOCKER_HOST from its container's environment as Registrator does) reads the engine
// through it, events included; an ordinary service container cannot use it to create a container.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { E2E_LABEL, log } from "../harness/engine";
import { healthy, replicasOf } from "../harness/scenario";
import { e2eName, eventually, type Stack } from "../harness/stack";

const PROXY = e2eName("node-1-docker-socket-proxy");
const REGISTRATOR = e2eName("node-1-registrator");
const API_NETWORK = "service-discovery-e2e-docker-api";

export function socketProxySuite(up: () => Stack): void {
    describe("the Docker socket proxy on a real engine (stack e2e)", () => {
        let stack: Stack;
        before(() => {
            stack = up();
        });

        /** The proxy's log lines of requests, let through (refused=-) or refused. */
        async function proxyLog(): Promise<string[]> {
            const r = await stack.docker.cli(["logs", PROXY], { allowFailure: true });
            return `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /^socket-proxy: \S+ \S+ "/.test(l));
        }

        test("the proxy is the only container with the engine's socket, alone with Registrator on an internal network, and healthy", async () => {
            await healthy(stack, PROXY, 60_000);
            const ours: any[] = await stack.docker.request(
                "GET",
                `/containers/json?all=true&filters=${encodeURIComponent(JSON.stringify({ label: [`${E2E_LABEL}=${stack.runId}`] }))}`,
            );
            assert.ok(ours.length >= 5, `containers of this run: ${ours.map((c) => c.Names).join(" ")}`);
            for (const c of ours) {
                const name = String(c.Names[0]).replace(/^\//, "");
                const mounts = (await stack.docker.inspectContainer(c.Id)).Mounts as { Type: string; Source: string }[];
                const sockets = mounts.filter((m) => m.Type === "bind" && /\.sock$/.test(m.Source));
                assert.deepEqual(sockets.length, name === PROXY ? 1 : 0, `${name} binds ${sockets.map((m) => m.Source)}`);
            }
            const declared = stack.applied.containers.get(REGISTRATOR)!;
            // No socket mount: only its node's Consul agent's socket volume, read-only.
            assert.deepEqual(
                declared.volumes.map((v: { volumeName?: string; hostPath?: string; readOnly?: boolean }) => [v.volumeName, v.hostPath, v.readOnly]),
                [["e2e-consul-run", undefined, true]],
                "Registrator mounts only the Consul agent's socket volume",
            );
            assert.ok(declared.envs.includes("DOCKER_HOST=tcp://docker-socket-proxy:2375"), "Registrator reads Docker through the proxy");

            const proxy = await stack.docker.inspectContainer(PROXY);
            assert.deepEqual(Object.keys(proxy.NetworkSettings.Networks), [API_NETWORK]);
            assert.deepEqual(proxy.NetworkSettings.Ports ?? {}, {}, "nothing published");
            assert.ok(proxy.HostConfig.SecurityOpt.includes("no-new-privileges:true"));
            assert.deepEqual(proxy.HostConfig.CapDrop, ["ALL"]);
            assert.equal(proxy.HostConfig.ReadonlyRootfs, true);
            const network = await stack.docker.request("GET", `/networks/${API_NETWORK}`);
            assert.equal(network.Internal, true, "the Docker API network has no route out");
            // Registrator, when it runs for real, is the proxy's only neighbour there.
            const members = Object.values(network.Containers ?? {})
                .map((m: any) => m.Name)
                .sort();
            assert.deepEqual(members, stack.applied.emulated.includes(REGISTRATOR) ? [PROXY] : [PROXY, REGISTRATOR].sort());

            // HAProxy itself runs unprivileged whenever the engine's socket is group-writable.
            const status = await stack.exec(PROXY, ["cat", "/proc/1/status"]);
            const socket = (await stack.exec(PROXY, ["stat", "-c", "%a %u:%g", "/var/run/docker.sock"])).trim();
            const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1].trim().split(/\s+/) ?? [];
            assert.equal(field("Name")[0], "haproxy");
            assert.equal(field("CapEff")[0], "0000000000000000", "no capabilities");
            assert.equal(field("NoNewPrivs")[0], "1");
            if (/^[0-7]?[0-7][67][0-7] /.test(socket)) {
                assert.equal(field("Uid")[0], "65534", `socket ${socket}: HAProxy as nobody`);
                assert.equal(field("Gid")[0], socket.split(":")[1], "with the socket's group");
            }
        });

        test("Registrator reads the engine through the proxy, events included", async () => {
            if (stack.applied.emulated.includes(REGISTRATOR)) {
                // The stand-in connects where Registrator's DOCKER_HOST points: the proxy, on the
                // internal network, never the engine's own socket.
                const engine = stack.applied.registratorEngine;
                assert.equal(engine?.dockerHost, "tcp://docker-socket-proxy:2375");
                assert.equal(engine?.container, PROXY);
                const proxyIp = (await stack.docker.inspectContainer(PROXY)).NetworkSettings.Networks[API_NETWORK].IPAddress;
                assert.equal(engine?.endpoint, `tcp://${proxyIp}:2375`);
            }
            await stack.registratorSettled();
            const lines = await proxyLog();
            assert.ok(
                lines.some((l) => / GET "\/containers\/json[?"].* 200 .* refused=-$/.test(l)),
                `a container listing went through:\n${lines.slice(-20).join("\n")}`,
            );

            // A restart is seen only on the /events stream (the container keeps its id, so a resync
            // would not look at it again): Registrator inspects it again, through the proxy.
            const [v2] = replicasOf(stack, "hello-v2");
            const id = (await stack.docker.inspectContainer(v2)).Id as string;
            const inspections = async () => (await proxyLog()).filter((l) => l.includes(` GET "/containers/${id}/json" HTTP/1.1 200 `)).length;
            const before = await inspections();
            await stack.docker.request("POST", `/containers/${v2}/restart?t=1`);
            await eventually(
                "Registrator's inspection of the restarted container, through the proxy",
                async () => {
                    await stack.registratorSettled();
                    return (await inspections()) > before ? true : undefined;
                },
                30_000,
                500,
            );
            const refused = (await proxyLog()).filter((l) => !/ refused=-$/.test(l));
            assert.deepEqual(refused, [], "Registrator needed nothing the proxy refuses");
        });

        test("from an ordinary service container, the proxy cannot be used to create a container", async () => {
            const [service] = replicasOf(stack, "hello-v1");
            const evil = `${e2eName("escape")}-${stack.runId}`;
            const proxyIp = (await stack.docker.inspectContainer(PROXY)).NetworkSettings.Networks[API_NETWORK].IPAddress as string;
            assert.ok(proxyIp, "the proxy has an address on its network");
            const script = [
                "import http.client, json, sys",
                "out = {}",
                "for host in sys.argv[2:]:",
                "    try:",
                "        c = http.client.HTTPConnection(host, 2375, timeout=5)",
                "        c.request('POST', '/containers/create?name=' + sys.argv[1], body=json.dumps({'Image': 'debian:bookworm-slim', 'HostConfig': {'Binds': ['/:/host']}}), headers={'Content-Type': 'application/json'})",
                "        r = c.getresponse()",
                "        out[host] = {'status': r.status, 'body': r.read(200).decode('latin1')}",
                "    except Exception as e:",
                "        out[host] = {'error': type(e).__name__ + ': ' + str(e)}",
                "print(json.dumps(out))",
            ].join("\n");
            const r = await stack.docker.cli(["exec", service, "python3", "-c", script, evil, "docker-socket-proxy", proxyIp], {
                allowFailure: true,
                timeoutMs: 60_000,
            });
            assert.equal(r.code, 0, r.stderr);
            const out = JSON.parse(r.stdout.trim()) as Record<string, { status?: number; body?: string; error?: string }>;
            log(`POST /containers/create from ${service}: ${JSON.stringify(out)}`);
            // By name: the alias exists only on the proxy's network.
            assert.ok(out["docker-socket-proxy"].error, `by name: ${JSON.stringify(out["docker-socket-proxy"])}`);
            // By address: no route to it, or the proxy's refusal.
            const byIp = out[proxyIp];
            assert.ok(byIp.error !== undefined || byIp.status === 403, `by address ${proxyIp}: ${JSON.stringify(byIp)}`);
            await assert.rejects(stack.docker.inspectContainer(evil), / 404 /, "no container was created");
        });
    });
}
