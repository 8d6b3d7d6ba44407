// Pinned SSH host keys (components/host-keys.ts): the known_hosts editing the program does before a
// node's engine is used, the cloud-init that installs a generated key on aws, and what the program
// declares: the Docker providers trust only a recorded key, the aws nodes get theirs as a secret,
// `hosts` pins hostKey when given. Nothing in the project accepts a key on first use.
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { cloudInit } from "../../components/aws-nodes";
import { isOpensshPublicKey } from "../../components/config/fields";
import { cloudInitHostKey, hostFieldNames, knownHostsName, knownHostsNameOfUrl, pinHostKeys, writePinnedHostKeys } from "../../components/host-keys";
import { devWith, evaluate, isSecret, Program, ROOT, secretValue, TEST_SSH_KEY } from "../support/program";

/** An ssh-ed25519 public key line whose blob holds `seed`. */
function ed25519(seed: string): string {
    const blob = Buffer.concat([
        Buffer.from([0, 0, 0, 11]),
        Buffer.from("ssh-ed25519"),
        Buffer.from([0, 0, 0, 32]),
        Buffer.from(seed.padEnd(32, "s").slice(0, 32)),
    ]);
    return `ssh-ed25519 ${blob.toString("base64")}`;
}

/** A hashed known_hosts host field, as `ssh-keygen -H` writes it. */
function hashed(name: string): string {
    const salt = crypto.randomBytes(20);
    return `|1|${salt.toString("base64")}|${crypto.createHmac("sha1", salt).update(name).digest("base64")}`;
}

const KEY_A = ed25519("a");
const KEY_B = ed25519("b");

describe("host keys: known_hosts editing", () => {
    it("names a host on port 22 plainly, another port in brackets; reads ssh:// URLs", () => {
        assert.equal(knownHostsName("198.51.100.1"), "198.51.100.1");
        assert.equal(knownHostsName("h.example", 2222), "[h.example]:2222");
        assert.equal(knownHostsNameOfUrl("ssh://ops@10.0.0.5"), "10.0.0.5");
        assert.equal(knownHostsNameOfUrl("ssh://ops@10.0.0.5:2222"), "[10.0.0.5]:2222");
        assert.throws(() => knownHostsNameOfUrl("tcp://10.0.0.5:2376"), /not an ssh:\/\/user@host/);
    });

    it("matches a host field in a comma list and hashed, not a prefix or another host", () => {
        assert.ok(hostFieldNames("other,198.51.100.1", "198.51.100.1"));
        assert.ok(hostFieldNames(hashed("198.51.100.1"), "198.51.100.1"));
        assert.ok(!hostFieldNames(hashed("198.51.100.1"), "198.51.100.10"));
        assert.ok(!hostFieldNames("198.51.100.10", "198.51.100.1"));
        assert.ok(!hostFieldNames("[198.51.100.1]:2222", "198.51.100.1"));
    });

    it("replaces every other key of a pinned host (plain, hashed, any type), keeps other hosts and markers", () => {
        const before = [
            "# mine",
            `198.51.100.1 ${KEY_B}`,
            `${hashed("198.51.100.1")} ecdsa-sha2-nistp256 AAAAE2VjZHNh`,
            `other.example ${KEY_B}`,
            `@revoked 198.51.100.1 ${KEY_B}`,
            "",
        ].join("\n");
        const after = pinHostKeys(before, [{ name: "198.51.100.1", key: `${KEY_A} root@node\n`, comment: "service-discovery dev dev-node-1" }]);
        assert.equal(
            after,
            ["# mine", `other.example ${KEY_B}`, `@revoked 198.51.100.1 ${KEY_B}`, `198.51.100.1 ${KEY_A} service-discovery dev dev-node-1`, ""].join("\n"),
        );
        // Idempotent: a second run changes nothing (a file holding exactly that is not rewritten).
        assert.equal(pinHostKeys(after, [{ name: "198.51.100.1", key: KEY_A, comment: "service-discovery dev dev-node-1" }]), after);
    });

    it("writes the file 0600 in a 0700 folder, only when it changes", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-keys-"));
        try {
            const file = path.join(dir, "ssh", "known_hosts");
            const pin = { name: "[10.0.0.5]:2222", key: KEY_A, comment: "c" };
            writePinnedHostKeys(file, [pin]);
            assert.equal(fs.readFileSync(file, "utf8"), `[10.0.0.5]:2222 ${KEY_A} c\n`);
            assert.equal(fs.statSync(file).mode & 0o777, 0o600);
            assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
            const mtime = fs.statSync(file).mtimeMs;
            fs.utimesSync(file, new Date(0), new Date(0));
            writePinnedHostKeys(file, [pin]);
            assert.equal(fs.statSync(file).mtimeMs, 0, "unchanged: not rewritten");
            assert.ok(mtime > 0);
            writePinnedHostKeys(file, [{ ...pin, key: KEY_B }]);
            assert.equal(fs.readFileSync(file, "utf8"), `[10.0.0.5]:2222 ${KEY_B} c\n`);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("validates a host key line: type, base64, and a key blob of that very type", () => {
        assert.ok(isOpensshPublicKey(KEY_A));
        assert.ok(isOpensshPublicKey(`${KEY_A} root@host`));
        assert.ok(isOpensshPublicKey(TEST_SSH_KEY));
        assert.ok(!isOpensshPublicKey(KEY_A.replace("ssh-ed25519", "ssh-rsa")), "an ed25519 blob under the ssh-rsa type");
        assert.ok(!isOpensshPublicKey("ssh-ed25519"));
        assert.ok(!isOpensshPublicKey(`${KEY_A}\n198.51.100.9 ${KEY_B}`), "one line only");
        assert.ok(!isOpensshPublicKey(`ssh-dss ${KEY_A.split(" ")[1]}`));
    });

    it("cloud-init installs the key pair, deletes the image's keys and generates no other", () => {
        const lines = cloudInitHostKey("-----BEGIN OPENSSH PRIVATE KEY-----\nAAA\nBBB\n-----END OPENSSH PRIVATE KEY-----\n", `${KEY_A}\n`);
        assert.deepEqual(lines, [
            "ssh_deletekeys: true",
            "ssh_genkeytypes: []",
            "ssh_keys:",
            "  ed25519_private: |",
            "    -----BEGIN OPENSSH PRIVATE KEY-----",
            "    AAA",
            "    BBB",
            "    -----END OPENSSH PRIVATE KEY-----",
            `  ed25519_public: ${KEY_A}`,
        ]);
        const doc = cloudInit("admin", {
            privateKeyOpenssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            publicKeyOpenssh: KEY_A,
        });
        assert.match(doc, /^#cloud-config\nssh_deletekeys: true\n/);
        assert.match(doc, /usermod -aG docker admin/);
    });

    it("nothing in the project accepts a host key on first use or ignores it", () => {
        const found: string[] = [];
        const walk = (dir: string) => {
            for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
                const full = path.join(dir, entry.name);
                if (entry.isDirectory()) {
                    if (!["node_modules", "dist", ".git", ".pulumi"].includes(entry.name)) walk(full);
                } else if (/\.(ts|mjs|js|sh|ya?ml|md)$/.test(entry.name) && !full.endsWith("host-keys.test.ts")) {
                    const text = fs.readFileSync(full, "utf8");
                    if (/StrictHostKeyChecking[= ](accept-new|no|off)\b|InsecureIgnoreHostKey/i.test(text)) found.push(path.relative(ROOT, full));
                }
            }
        };
        walk(ROOT);
        assert.deepEqual(found, []);
    });
});

describe("host keys: what the program declares", () => {
    const ADMIN = "203.0.113.7/32";
    let dir: string;
    let aws: Program;
    let hosts: Program;
    const HOST_KEY = ed25519("host-one");
    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-keys-graph-"));
        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS = path.join(dir, "aws_known_hosts");
        // An entry left by an earlier stack on a reused address: replaced by the pinned key.
        fs.writeFileSync(process.env.SERVICE_DISCOVERY_KNOWN_HOSTS, `198.51.100.12 ${KEY_B}\n`);
        aws = await evaluate(devWith({ target: "aws", nodeCount: 2, aws: { adminCidr: ADMIN, publicKey: TEST_SSH_KEY } }));
        assert.equal(aws.error, null);
        process.env.SERVICE_DISCOVERY_KNOWN_HOSTS = path.join(dir, "hosts_known_hosts");
        hosts = await evaluate(
            devWith({
                target: "hosts",
                nodeCount: undefined,
                hosts: [
                    { name: "h1", host: "ssh://ops@10.1.0.1:2222", address: "10.1.0.1", hostKey: `${HOST_KEY} root@h1` },
                    { name: "h2", host: "ssh://ops@10.1.0.2", address: "10.1.0.2" },
                ],
            }),
        );
        assert.equal(hosts.error, null);
        delete process.env.SERVICE_DISCOVERY_KNOWN_HOSTS;
    });

    it("aws: a generated ED25519 host key per node, in the node's user data, which is a secret", () => {
        const keys = aws.ofType("tls:index/privateKey:PrivateKey").filter((k) => k.name.endsWith("-host-key"));
        assert.deepEqual(
            keys.map((k) => [k.name, k.inputs.algorithm]),
            [
                ["dev-node-1-host-key", "ED25519"],
                ["dev-node-2-host-key", "ED25519"],
            ],
        );
        for (const n of [1, 2]) {
            const instance = aws.one("aws:ec2/instance:Instance", `dev-node-${n}`);
            assert.ok(isSecret(instance.inputs.userData), "the user data holds a private key: a secret");
            const userData = String(secretValue(instance.inputs.userData));
            assert.match(userData, new RegExp(`ed25519_private: \\|\\n {4}-----BEGIN OPENSSH PRIVATE KEY-----\\n {4}mock-dev-node-${n}-host-key\\n`));
            assert.match(userData, /^ssh_deletekeys: true$/m);
            assert.match(userData, /^ssh_genkeytypes: \[\]$/m);
            const ready = aws.one("command:remote:Command", `dev-node-${n}-docker-ready`);
            const pinned = (secretValue(ready.inputs.connection) as { hostKey: string }).hostKey;
            assert.ok(userData.includes(`  ed25519_public: ${pinned}\n`), "the key installed is the key pinned");
        }
    });

    it("aws: the Docker providers and the readiness check trust the pinned key only; it is recorded before they connect", () => {
        const file = fs.readFileSync(path.join(dir, "aws_known_hosts"), "utf8").trim().split("\n");
        assert.equal(file.length, 2, file.join("\n"));
        for (const n of [1, 2]) {
            const provider = aws.one("pulumi:providers:docker", `dev-node-${n}`);
            assert.equal(provider.inputs.sshOpts, JSON.stringify(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]));
            const ready = aws.one("command:remote:Command", `dev-node-${n}-docker-ready`);
            const connection = secretValue(ready.inputs.connection) as { host: string; hostKey: string };
            assert.match(connection.hostKey, /^ssh-ed25519 [A-Za-z0-9+/=]+$/);
            assert.ok(file.includes(`${connection.host} ${connection.hostKey} service-discovery dev dev-node-${n}`), `${connection.host} pinned`);
        }
        assert.ok(!file.some((l) => l.includes(KEY_B)), "the stale key of a reused address is gone");
        const keys = file.map((l) => l.split(" ")[2]);
        assert.notEqual(keys[0], keys[1], "a key per node");
    });

    it("aws: new user data never stops every running node at once (it reaches a node when it is replaced)", () => {
        for (const n of [1, 2]) assert.deepEqual(aws.one("aws:ec2/instance:Instance", `dev-node-${n}`).ignoreChanges, ["ami", "userData"]);
    });

    it("hosts: hostKey is pinned (port in brackets); without it the user's known_hosts decides, strictly", () => {
        assert.deepEqual(fs.readFileSync(path.join(dir, "hosts_known_hosts"), "utf8"), `[10.1.0.1]:2222 ${HOST_KEY} service-discovery dev dev-node-1\n`);
        for (const n of [1, 2]) {
            assert.equal(
                hosts.one("pulumi:providers:docker", `dev-node-${n}`).inputs.sshOpts,
                JSON.stringify(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]),
            );
        }
    });

    it("hosts: a malformed hostKey, or one on a tcp:// host, is refused naming the key", async () => {
        const bad = await evaluate(
            devWith({
                target: "hosts",
                nodeCount: undefined,
                hosts: [{ name: "h1", host: "ssh://ops@10.1.0.1", address: "10.1.0.1", hostKey: "ssh-ed25519 nope" }],
            }),
        );
        assert.match(String(bad.error), /hosts\[0\]\.hostKey/);
        assert.match(String(bad.error), /an OpenSSH public key line/);
        const tcp = await evaluate(
            devWith({
                target: "hosts",
                nodeCount: undefined,
                hosts: [{ name: "h1", host: "tcp://10.1.0.1:2376", address: "10.1.0.1", certPath: "certs/h1", hostKey: KEY_A }],
            }),
        );
        assert.match(String(tcp.error), /hosts\[0\]\.hostKey: a key is not allowed; expected no hostKey for tcp:\/\/10\.1\.0\.1:2376/);
    });
});
