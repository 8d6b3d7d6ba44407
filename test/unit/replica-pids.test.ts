// The replicas' process limit (services[i].pidsLimit; components/containment.ts, pidsLimitScript):
// the command the program declares beside each replica on every target (how it reaches the node's
// engine, what it sets, what re-runs it), and the script itself, run by `sh` against stand-ins for
// `docker` and `ssh` that record what they are asked and answer as the engine would (or would not).
// The engine's side, a real `docker update` and what a replica can then start, is in
// test/e2e/shared/replica-hardening.ts; the policy's in policy.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { PIDS_LIMIT_ENV, pidsLimitScript } from "../../components/containment";
import { PINNED_SSH_OPTS } from "../../components/host-keys";
import { type Declared } from "../support/mocks";
import { PreflightProject } from "../support/preflight-project";
import { devWith, evaluate, Program, shippedAws, stackConfig } from "../support/program";

const COMMAND = "command:local:Command";
const hello = { name: "hello", version: "v1", build: "components/images/hello" };

/** The containers of VersionedService components: the service replicas. */
function replicas(p: Program): Declared[] {
    return p.containers().filter((c) => c.parent.includes("::service-discovery:service:VersionedService::"));
}

/** The process-limit command of a replica's container: `<container's resource name>-pids`, beside it. */
function pidsCommandOf(p: Program, c: Declared): Declared {
    const found = p.ofType(COMMAND).filter((r) => r.name === `${c.name}-pids`);
    assert.equal(found.length, 1, `one process-limit command for ${c.name}`);
    assert.equal(found[0].parent, c.parent, `${c.name}-pids: a child of the replica's service, as its container`);
    return found[0];
}

const env = (r: Declared) => r.inputs.environment as Record<string, string>;

describe("replica process limit: the declared commands", () => {
    it("the dev stack: one per replica, on the local engine (the CLI reads the user's DOCKER_HOST, as the provider), 512, re-run for each new container", async () => {
        const p = await evaluate(stackConfig("dev"), "dev");
        assert.equal(p.error, null);
        const rs = replicas(p);
        assert.ok(rs.length >= 3);
        for (const c of rs) {
            const cmd = pidsCommandOf(p, c);
            assert.deepEqual(env(cmd), { SD_REPLICA: c.inputs.name, SD_PIDS_LIMIT: "512" }, c.name);
            assert.equal(cmd.inputs.create, pidsLimitScript(false));
            assert.deepEqual(cmd.inputs.triggers, [`${c.name}-id`], "a new container (its ID) runs it again");
            assert.equal(cmd.inputs.delete, undefined, "nothing to undo: the limit goes with its container");
            // Created, not started by the provider: the command starts it once the limit is there.
            assert.deepEqual({ start: c.inputs.start, mustRun: c.inputs.mustRun }, { start: false, mustRun: false }, c.name);
            assert.ok(
                cmd.dependencies.some((d) => d.endsWith(`::${c.name}`)),
                `${cmd.name} waits for its container`,
            );
        }
        assert.equal(p.ofType(COMMAND).filter((r) => r.name.endsWith("-pids")).length, rs.length, "none for the other containers");
        for (const c of p.containers().filter((x) => !rs.includes(x))) assert.equal(c.inputs.start, undefined, `${c.name}: started by the provider`);
    });

    it("aws: over SSH to each replica's node (SD_NODE, the provider's ssh:// host), SSH or SSM access alike", async () => {
        for (const access of ["ssh", "ssm"]) {
            const config = shippedAws();
            const aws = JSON.parse(config["service-discovery:aws"]!);
            if (access === "ssm") delete aws.previewCidr;
            config["service-discovery:aws"] = JSON.stringify({ ...aws, access });
            const p = await evaluate(config, "aws");
            assert.equal(p.error, null, access);
            for (const c of replicas(p)) {
                const cmd = pidsCommandOf(p, c);
                const provider = p.ofType("pulumi:providers:docker").find((d) => c.provider.includes(`::${d.name}::`));
                assert.ok(provider, `${c.name}'s provider`);
                assert.match(String(provider.inputs.host), /^ssh:\/\//);
                assert.deepEqual(env(cmd), { SD_REPLICA: c.inputs.name, SD_PIDS_LIMIT: "512", SD_NODE: provider.inputs.host }, `${access}: ${c.name}`);
                assert.equal(cmd.inputs.create, pidsLimitScript(true));
            }
        }
    });

    it("hosts and virtualbox: an ssh:// host over SSH, a tcp:// host with its certificates, as the node's provider", async () => {
        const hosts = [
            { name: "a", host: "ssh://ops@10.1.0.1:2222", address: "10.1.0.1" },
            { name: "b", host: "tcp://10.1.0.2:2376", address: "10.1.0.2", certPath: "~/certs/b" },
        ];
        const services = [{ ...hello, replicas: 2 }];
        const onHosts = await evaluate(devWith({ target: "hosts", nodeCount: undefined, hosts, services }));
        assert.equal(onHosts.error, null);
        const [first, second] = [1, 2].map((i) => pidsCommandOf(onHosts, onHosts.replica(`dev-hello-v1-${i}`)));
        assert.deepEqual(env(first), { SD_REPLICA: onHosts.replica("dev-hello-v1-1").inputs.name, SD_PIDS_LIMIT: "512", SD_NODE: "ssh://ops@10.1.0.1:2222" });
        assert.equal(first.inputs.create, pidsLimitScript(true));
        assert.deepEqual(env(second), {
            SD_REPLICA: onHosts.replica("dev-hello-v1-2").inputs.name,
            SD_PIDS_LIMIT: "512",
            DOCKER_HOST: "tcp://10.1.0.2:2376",
            DOCKER_TLS_VERIFY: "1",
            DOCKER_CERT_PATH: "~/certs/b",
        });
        assert.equal(second.inputs.create, pidsLimitScript(false));

        const onVms = await evaluate(devWith({ target: "virtualbox", nodeCount: 2, services }));
        assert.equal(onVms.error, null);
        for (const i of [1, 2]) {
            const e = env(pidsCommandOf(onVms, onVms.replica(`dev-hello-v1-${i}`)));
            assert.equal(e.DOCKER_HOST, `tcp://192.168.99.${100 + i}:2376`);
            assert.equal(e.DOCKER_TLS_VERIFY, "1");
            assert.equal(e.DOCKER_CERT_PATH, path.join(os.homedir(), ".docker", "machine", "machines", `service-discovery-dev-node-${i}`));
        }
    });

    it("pidsLimit: that service's commands only, and no replica replaced (the engine changes the limit of a running container)", async () => {
        const v2 = { name: "hello", version: "v2", build: "components/images/hello" };
        const [base, relaxed] = await Promise.all([
            evaluate(devWith({ services: [{ ...hello, replicas: 2 }, v2] })),
            evaluate(devWith({ services: [{ ...hello, replicas: 2, pidsLimit: 2048 }, v2] })),
        ]);
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"]) {
            assert.equal(relaxed.replica(r).inputs.name, base.replica(r).inputs.name, `${r}: the same container`);
            const limit = env(pidsCommandOf(relaxed, relaxed.replica(r))).SD_PIDS_LIMIT;
            assert.equal(limit, r.includes("-v1-") ? "2048" : "512", r);
        }
    });
});

describe("replica process limit: the script", () => {
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-pids-"));
        // Stand-ins: each call appends its arguments (one line) to calls.log; `docker` answers from
        // the variables UPDATE_OUT, UPDATE_EXIT, INSPECT_OUT (default: the limit asked, a container
        // never started) and START_EXIT; `ssh` drops its options and
        // destination and runs the remote command as a shell would, with the same `docker`.
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        fs.writeFileSync(
            path.join(bin, "docker"),
            [
                "#!/bin/sh",
                'echo "docker $* | cert=${DOCKER_CERT_PATH-} host=${DOCKER_HOST-}" >>"$CALLS"',
                'case "$1" in',
                '  update) printf "%s\\n" "${UPDATE_OUT-$4}"; exit "${UPDATE_EXIT-0}";;',
                '  inspect) printf "%s\\n" "${INSPECT_OUT-$SD_PIDS_LIMIT/created}";;',
                '  start) printf "%s\\n" "$2"; exit "${START_EXIT-0}";;',
                "esac",
            ].join("\n"),
            { mode: 0o755 },
        );
        fs.writeFileSync(
            path.join(bin, "ssh"),
            ["#!/bin/sh", 'echo "ssh $*" >>"$CALLS"', 'while [ "$1" = "-o" ]; do shift 2; done', "shift", 'sh -c "$*"'].join("\n"),
            { mode: 0o755 },
        );
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    function run(ssh: boolean, vars: Record<string, string>): { code: number | null; stdout: string; stderr: string; calls: string[] } {
        const calls = path.join(dir, `calls-${Math.random().toString(36).slice(2)}.log`);
        fs.writeFileSync(calls, "");
        const r = spawnSync("/bin/sh", ["-c", pidsLimitScript(ssh)], {
            env: { PATH: `${path.join(dir, "bin")}:/usr/bin:/bin`, HOME: "/home/op", CALLS: calls, [PIDS_LIMIT_ENV.limit]: "512", ...vars },
            encoding: "utf8",
        });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(calls, "utf8").trim().split("\n").filter(Boolean) };
    }
    const R = "dev-hello-v1-1-0a1b2c3d";

    const INSPECT = "inspect --format {{.HostConfig.PidsLimit}}/{{.State.Status}}";

    it("sets the limit, reads it back, then starts the replica (created, never started) and says so", () => {
        const r = run(false, { SD_REPLICA: R, DOCKER_HOST: "tcp://10.1.0.2:2376" });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `replica ${R}: at most 512 processes, started\n`);
        assert.deepEqual(r.calls, [
            `docker update --pids-limit 512 ${R} | cert= host=tcp://10.1.0.2:2376`,
            `docker ${INSPECT} ${R} | cert= host=tcp://10.1.0.2:2376`,
            `docker start ${R} | cert= host=tcp://10.1.0.2:2376`,
        ]);
    });

    it("a replica that has run (a new limit, in place): not started again, whatever its state", () => {
        for (const state of ["running", "exited", "paused"]) {
            const r = run(false, { SD_REPLICA: R, INSPECT_OUT: `512/${state}` });
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, `replica ${R}: at most 512 processes (${state})\n`);
            assert.ok(!r.calls.some((c) => c.startsWith("docker start")), state);
        }
    });

    it("the local engine: the provider's, DOCKER_HOST, else DOCKER_CONTEXT, else the default socket (not the CLI's own current context)", () => {
        const hostOf = (r: { calls: string[] }) => [...new Set(r.calls.map((c) => c.slice(c.indexOf(" host=") + 6)))];
        assert.deepEqual(hostOf(run(false, { SD_REPLICA: R })), ["unix:///var/run/docker.sock"]);
        assert.deepEqual(hostOf(run(false, { SD_REPLICA: R, DOCKER_CONTEXT: "colima" })), [""], "the context, as the provider");
        assert.deepEqual(hostOf(run(false, { SD_REPLICA: R, DOCKER_HOST: "unix:///run/user/1000/docker.sock" })), ["unix:///run/user/1000/docker.sock"]);
    });

    it("reads a certificate folder under ~ as the user's (as the provider does)", () => {
        const r = run(false, { SD_REPLICA: R, DOCKER_CERT_PATH: "~/certs/b" });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(
            r.calls.every((c) => c.includes("| cert=/home/op/certs/b ")),
            r.calls.join("\n"),
        );
    });

    it("over SSH: the node's own docker, with the pinned host key only, nothing asked", () => {
        const r = run(true, { SD_REPLICA: R, SD_NODE: "ssh://ops@10.1.0.1:2222" });
        assert.equal(r.code, 0, r.stderr);
        const ssh = `ssh ${PINNED_SSH_OPTS.join(" ")} -o ConnectTimeout=60 ssh://ops@10.1.0.1:2222 docker`;
        assert.deepEqual(
            r.calls.filter((c) => c.startsWith("ssh ")),
            [`${ssh} update --pids-limit 512 ${R}`, `${ssh} ${INSPECT} ${R}`, `${ssh} start ${R}`],
        );
        assert.ok(PINNED_SSH_OPTS.includes("StrictHostKeyChecking=yes") && PINNED_SSH_OPTS.includes("BatchMode=yes"));
        // The remote shell ran the same commands (the format is one word there too).
        assert.deepEqual(
            r.calls.filter((c) => c.startsWith("docker ")),
            [`docker update --pids-limit 512 ${R} | cert= host=`, `docker ${INSPECT} ${R} | cert= host=`, `docker start ${R} | cert= host=`],
        );
    });

    it("fails, saying why, when the engine discards the limit (no pids cgroup), when the update fails, or when another limit is read back", () => {
        const discarded = run(false, {
            SD_REPLICA: R,
            UPDATE_OUT: `Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.\n${R}`,
        });
        assert.equal(discarded.code, 1);
        assert.match(discarded.stderr, new RegExp(`^replica ${R}: the engine did not take the process limit 512: Your kernel does not support PIDs limit`));
        const failed = run(false, { SD_REPLICA: R, UPDATE_OUT: `Error response from daemon: No such container: ${R}`, UPDATE_EXIT: "1" });
        assert.equal(failed.code, 1);
        assert.equal(failed.stderr, `replica ${R}: docker update --pids-limit 512 failed: Error response from daemon: No such container: ${R}\n`);
        const other = run(false, { SD_REPLICA: R, INSPECT_OUT: "0/created" });
        assert.equal(other.code, 1);
        assert.equal(other.stderr, `replica ${R}: the engine reports a process limit of 0, not 512\n`);
        for (const r of [discarded, failed, other]) {
            assert.equal(r.stdout, "");
            assert.ok(!r.calls.some((c) => c.startsWith("docker start")), "a replica whose limit is not there is never started");
        }
        const notStarted = run(false, { SD_REPLICA: R, START_EXIT: "1" });
        assert.equal(notStarted.code, 1);
        assert.equal(notStarted.stderr, `replica ${R}: docker start failed: ${R}\n`);
    });

    it("refuses a name or a limit the program does not make before anything reaches the engine (a remote shell reads them over SSH)", () => {
        for (const name of ["", "x;reboot", "a b", "$(id)", "Dev-Hello"]) {
            const r = run(true, { SD_REPLICA: name, SD_NODE: "ssh://ops@10.1.0.1" });
            assert.equal(r.code, 1, JSON.stringify(name));
            assert.equal(r.stderr, `replica ${name}: not a container name the program makes\n`);
            assert.deepEqual(r.calls, [], "nothing ran");
        }
        for (const limit of ["", "-1", "5 12", "1e3"]) {
            const r = run(false, { SD_REPLICA: R, SD_PIDS_LIMIT: limit });
            assert.equal(r.code, 1, JSON.stringify(limit));
            assert.equal(r.stderr, `replica ${R}: process limit '${limit}' is not a number\n`);
            assert.deepEqual(r.calls, []);
        }
    });
});

describe("replica process limit: the preflight asks for what the commands run here", () => {
    const pre = new PreflightProject();
    after(() => pre.cleanup());
    const hostsStack = (hosts: string[]) =>
        pre.project(
            [
                "config:",
                "  service-discovery:target: hosts",
                "  service-discovery:hosts:",
                ...hosts.flatMap((h, i) => [
                    `    - name: n${i}`,
                    `      host: ${h}`,
                    `      address: 10.0.0.${i + 1}`,
                    ...(h.startsWith("tcp") ? ["      certPath: certs"] : []),
                ]),
                "",
            ].join("\n"),
        );
    const TCP = "tcp://10.0.0.2:2376";
    const SSH = "ssh://ops@10.0.0.1";

    it("hosts: the Docker CLI for a tcp:// engine, ssh for an ssh:// one, each named with its fix", () => {
        const r = pre.run(hostsStack([SSH, TCP]), {});
        assert.equal(r.code, 1);
        assert.deepEqual(r.problems, [
            `Docker CLI: \`docker\` is not on PATH (each replica's process limit is set with \`docker update\` on its node's engine: ${TCP})`,
            `SSH: the \`ssh\` command is not on PATH (the Docker providers and the replicas' process limits use it: ${SSH})`,
        ]);
        assert.match(r.text, /fix: install the Docker CLI/);
        assert.deepEqual(pre.run(hostsStack([SSH, TCP]), { docker: "exit 0", ssh: "exit 0" }).problems, [], "both there");
        assert.deepEqual(pre.run(hostsStack([SSH]), { ssh: "exit 0" }).problems, [], "ssh:// only: no Docker CLI needed here");
    });

    it("virtualbox: the Docker CLI; local and aws: nothing more (local's engine is checked with the CLI already)", () => {
        const vb = pre.project("config:\n  service-discovery:target: virtualbox\n");
        assert.deepEqual(pre.run(vb, {}).problems, [
            "Docker CLI: `docker` is not on PATH (each replica's process limit is set with `docker update` on its node's engine: every VM)",
        ]);
        assert.deepEqual(pre.run(vb, { docker: "exit 0" }).problems, []);
        const aws = pre.project("config:\n  service-discovery:target: aws\n  service-discovery:aws:\n    sshUser: admin\n");
        assert.deepEqual(pre.run(aws, {}).problems, []);
    });
});
