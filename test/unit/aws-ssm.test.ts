// aws.access ssm (docs/operations.md, "SSM-only access"): port 22 open to no one; the Docker
// providers, the image builds and the readiness check reach each node as ssh://<user>@<instance ID>,
// which the operator's SSH config carries through a Systems Manager session, with the pinned host
// key only. The config key and its errors; the graph under Pulumi's mocks; and the readiness
// script run for real by sh against a stand-in `ssh` that fails before it answers.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { ssmReadinessScript } from "../../components/aws-nodes";
import { parseSettings } from "../../components/config";
import { PreflightProject } from "../support/preflight-project";
import { devWith, evaluate, TEST_ADMIN_CIDR, TEST_SSH_KEY, type Program } from "../support/program";
import { dev, rejects } from "./config-support";

const P = "service-discovery";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const AWS = { adminCidr: TEST_ADMIN_CIDR, publicKey: TEST_SSH_KEY };
/** The ID Pulumi's mocks give instance `dev-node-<n>` (test/support/evaluate.ts: `<name>-id`). */
const instanceId = (n: number): string => `dev-node-${n}-id`;
const READINESS = "cloud-init status --wait >/dev/null; sudo docker info --format '{{.ServerVersion}}'";

describe("config: aws.access", () => {
    it("ssh unless the stack says ssm", () => {
        assert.equal(parseSettings(dev({ target: "aws", aws: AWS }), "aws").aws.access, "ssh");
        assert.equal(parseSettings(dev({ target: "aws", aws: { ...AWS, access: "ssm" } }), "aws").aws.access, "ssm");
    });

    it("anything else, or a preview network with ssm, is refused naming the key", () => {
        rejects(dev({ target: "aws", aws: { ...AWS, access: "sftp" } }), `${P}:aws.access: "sftp" is not allowed; expected ssh or ssm`);
        rejects(
            dev({ target: "aws", aws: { ...AWS, access: "ssm", previewCidr: "198.51.100.7/32" } }),
            `${P}:aws.previewCidr: "198.51.100.7/32" is not allowed with aws.access ssm; expected it unset (with ssm port 22 is closed to everyone: previews reach the nodes through Systems Manager sessions, as deploys do)`,
        );
    });
});

describe("aws.access ssm: what the program declares", () => {
    let dir: string;
    let p: Program;
    let ssh: Program;
    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "aws-ssm-"));
        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS = path.join(dir, "known_hosts");
        p = await evaluate(devWith({ target: "aws", nodeCount: 2, aws: { ...AWS, access: "ssm" } }));
        assert.equal(p.error, null);
        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS = path.join(dir, "ssh_known_hosts");
        ssh = await evaluate(devWith({ target: "aws", nodeCount: 2, aws: AWS }));
        assert.equal(ssh.error, null);
        delete process.env.SERVICE_DISCOVERY_KNOWN_HOSTS;
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("port 22 is open to no one (with ssh it is open to the admin network only)", () => {
        const port22 = (prog: Program) =>
            prog.ofType(INGRESS).filter((r) => Number(r.inputs.fromPort) <= 22 && Number(r.inputs.toPort) >= 22 && r.inputs.ipProtocol !== "udp");
        assert.deepEqual(port22(p), []);
        assert.deepEqual(
            port22(ssh).map((r) => [r.inputs.fromPort, r.inputs.cidrIpv4]),
            [[22, TEST_ADMIN_CIDR]],
        );
    });

    it("the Docker and build providers reach ssh://admin@<instance ID>, whose pinned host key is recorded before they connect", () => {
        const lines = fs.readFileSync(path.join(dir, "known_hosts"), "utf8").trim().split("\n");
        assert.equal(lines.length, 2, lines.join("\n"));
        for (const n of [1, 2]) {
            const id = instanceId(n);
            const provider = p.one("pulumi:providers:docker", `dev-node-${n}`);
            assert.equal(provider.inputs.host, `ssh://admin@${id}`);
            assert.equal(provider.inputs.sshOpts, JSON.stringify(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]));
            assert.equal(p.one("pulumi:providers:docker-build", `dev-node-${n}-build`).inputs.host, `ssh://admin@${id}`);
            const line = lines.find((l) => l.startsWith(`${id} `));
            assert.ok(line, `${id} pinned: ${lines.join(" | ")}`);
            assert.match(line, new RegExp(`^${id} ssh-ed25519 \\S+ service-discovery dev dev-node-${n}$`));
        }
    });

    it("the readiness check is the system's ssh to user@<instance ID>, retried while the SSM agent registers; the providers wait for it", () => {
        assert.deepEqual(p.ofType("command:remote:Command"), [], "nothing dials port 22 itself");
        for (const n of [1, 2]) {
            const id = instanceId(n);
            const ready = p.one("command:local:Command", `dev-node-${n}-docker-ready`);
            assert.equal(ready.inputs.create, ssmReadinessScript(READINESS));
            assert.deepEqual(ready.inputs.environment, { SD_NODE: `admin@${id}` });
            assert.deepEqual(ready.inputs.triggers, [id], "a replaced instance is checked again");
            const provider = p.one("pulumi:providers:docker", `dev-node-${n}`);
            assert.ok(provider.dependencies.some((d) => d.endsWith(`::dev-node-${n}-docker-ready`)));
        }
        // With ssh, as before: the remote command with the pinned key.
        assert.equal(ssh.ofType("command:remote:Command").length, 2);
    });
});

describe("the readiness script through Systems Manager, run by sh", () => {
    /** Runs the script with a stand-in ssh that fails `failures` times (saying why), then runs nothing and answers. */
    function run(failures: number, attempts: number) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssm-ready-"));
        try {
            const calls = path.join(dir, "calls");
            fs.writeFileSync(
                path.join(dir, "ssh"),
                [
                    "#!/bin/sh",
                    `n=$(($(cat "${calls}" 2>/dev/null | wc -l) + 1))`,
                    `for a in "$@"; do printf '%s\\n' "$a"; done > "${dir}/args"`,
                    `echo "call $n" >> "${calls}"`,
                    `if [ "$n" -le ${failures} ]; then echo "An error occurred (TargetNotConnected) when calling the StartSession operation: i-0abc is not connected. ($n)" >&2; exit 255; fi`,
                    "echo 20.10.24",
                ].join("\n"),
                { mode: 0o755 },
            );
            const r = spawnSync("/bin/sh", ["-c", ssmReadinessScript(READINESS, attempts, 0)], {
                env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, SD_NODE: "admin@i-0abc" },
                encoding: "utf8",
            });
            const args = fs.readFileSync(path.join(dir, "args"), "utf8").split("\n").slice(0, -1);
            const count = fs.readFileSync(calls, "utf8").trim().split("\n").length;
            return { status: r.status, stdout: r.stdout, stderr: r.stderr, args, count };
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }

    it("answers once the session opens: the pinned key only, the node, the check word for word", () => {
        const r = run(2, 5);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.count, 3);
        assert.equal(r.stdout.trim(), "20.10.24");
        assert.deepEqual(r.args, ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=60", "admin@i-0abc", READINESS]);
    });

    it("fails after its attempts, with the last error", () => {
        const r = run(10, 3);
        assert.equal(r.status, 1);
        assert.equal(r.count, 3);
        assert.match(r.stderr, /no SSH through Systems Manager to admin@i-0abc after 3 attempts, 0 s apart; the last said:/);
        assert.match(r.stderr, /TargetNotConnected.*\(3\)/);
    });
});

describe("preflight with aws.access ssm: the AWS CLI, its Session Manager plugin and the SSH config, each named with its fix", () => {
    const pre = new PreflightProject();
    after(() => pre.cleanup());
    /** A project folder with the preflight and a stack `prod` of the aws target with `aws` (YAML lines under it). */
    const project = (aws: string) => pre.project(`config:\n  service-discovery:target: aws\n  service-discovery:aws:\n${aws}`);
    const preflight = (script: string, tools: Record<string, string>) => pre.run(script, tools);
    const SSH_VIA_SSM = `echo "user admin"; echo "proxycommand sh -c \\"aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters 'portNumber=%p'\\""`;
    const SSH_PLAIN = `echo "user admin"; echo "hostname $2"`;

    it("all there: ok, and says so", () => {
        const r = preflight(project("    access: ssm\n"), { aws: "exit 0", "session-manager-plugin": "exit 0", ssh: SSH_VIA_SSM });
        assert.deepEqual(r.problems, [], r.text);
        assert.match(r.text, /preflight: ok: .*SSH to instance IDs through Systems Manager/);
    });

    it("none there: each one named, with where to get it", () => {
        const r = preflight(project("    access: ssm\n"), { ssh: SSH_PLAIN });
        assert.equal(r.code, 1);
        assert.deepEqual(r.problems, [
            "AWS CLI: `aws` is not on PATH (aws.access ssm opens each SSH session with `aws ssm start-session`)",
            "Session Manager plugin: `session-manager-plugin` is not on PATH (aws.access ssm)",
            "SSH: no ProxyCommand through Systems Manager for instance IDs (ssh -G i-0123456789abcdef0: none)",
        ]);
        assert.match(r.text, /fix: add to ~\/\.ssh\/config: {2}Host i-\* mi-\*/);
    });

    it("with access ssh (the default) none of it is asked for", () => {
        for (const aws of ["    access: ssh\n", "    sshUser: admin\n"]) {
            const r = preflight(project(aws), {});
            assert.deepEqual(r.problems, [], r.text);
            assert.doesNotMatch(r.text, /Systems Manager/);
        }
    });
});
