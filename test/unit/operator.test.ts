// The operator's shortcut (scripts/operator.mjs, `npm run operator`) on a stack's outputs as
// `pulumi stack output --json --show-secrets` prints them (a fixture: no Pulumi engine here): the
// CA file it writes, the CONSUL_HTTP_* exports a shell can eval, the URL table with how to read
// each login, and the fingerprint of the certificate the Consul UI serves, verified against the CA.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { ROOT } from "../support/program";

const temps: string[] = [];
after(() => temps.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const temp = (prefix: string): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    temps.push(dir);
    return dir;
};
const openssl = spawnSync("sh", ["-c", "command -v openssl"], { encoding: "utf8" }).stdout.trim();

/** A CA and a certificate it signs for 127.0.0.1, as the stack makes for each Consul agent. */
function pki(dir: string): { caPem: string; certPem: string; keyPem: string } {
    const sh = (cmd: string) => {
        const r = spawnSync("sh", ["-c", cmd], { cwd: dir, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=Consul CA service-discovery-ops'");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout agent.key -out agent.csr -subj '/CN=server.dc1.consul'");
    fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    sh("openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out agent.pem -days 2 -extfile san.ext");
    const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
    return { caPem: read("ca.pem"), certPem: read("agent.pem"), keyPem: read("agent.key") };
}

/** The outputs of a local stack (index.ts's names), its Consul UI at `uiPort`. */
function outputs(caPem: string, uiPort: number): Record<string, unknown> {
    return {
        gatewayUrl: "http://127.0.0.1",
        gatewayUrls: ["http://127.0.0.1"],
        serviceUrls: { "hello-v1": "http://127.0.0.1/hello/v1/", "hello-v2": "http://127.0.0.1/hello/v2/" },
        tcpEndpoints: { pg: "127.0.0.1:15432" },
        statsUrl: "http://127.0.0.1:1936/",
        statsUser: "stats",
        statsPassword: "s3cret-stats-password-0123456789",
        consulUiUrl: `https://127.0.0.1:${uiPort}/ui/`,
        consulCaPem: caPem,
        consulManagementToken: "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab",
        consulOperatorToken: "0b7e4d2c-9a8b-4c3d-8e2f-fedcba987654",
        nodes: [{ name: "ops-node-1", address: "172.28.0.1", consulServer: true }],
    };
}

/**
 * Runs a copy of the script in a project folder of its own, on outputs given with --from; not
 * blocking this process, whose TLS server plays the Consul UI.
 */
async function operator(outs: Record<string, unknown>, stack: string) {
    const project = temp("sd-operator-");
    fs.mkdirSync(path.join(project, "scripts"));
    fs.copyFileSync(path.join(ROOT, "scripts/operator.mjs"), path.join(project, "scripts/operator.mjs"));
    const from = path.join(project, "outputs.json");
    fs.writeFileSync(from, JSON.stringify(outs));
    const child = spawn(process.execPath, [path.join(project, "scripts/operator.mjs"), "--stack", stack, "--from", from], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { PATH: process.env.PATH, HOME: os.homedir() },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    return { code, stdout, stderr, project };
}

describe("npm run operator: one step to a shell that talks to the stack's Consul", { skip: openssl === "" && "no openssl to make a CA" }, () => {
    let ca: { caPem: string; certPem: string; keyPem: string };
    let server: tls.Server;
    let port = 0;
    before(async () => {
        ca = pki(temp("sd-pki-"));
        server = tls.createServer({ cert: ca.certPem, key: ca.keyPem }, (s) => s.end());
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        port = (server.address() as { port: number }).port;
    });
    after(() => server?.close());

    it("writes the CA where CONSUL_CACERT points, and prints the exports a shell can eval", async () => {
        const r = await operator(outputs(ca.caPem, port), "ops");
        assert.equal(r.code, 0, r.stderr);
        const caFile = path.join(r.project, ".pulumi/ops-consul-ca.pem");
        assert.equal(fs.readFileSync(caFile, "utf8"), ca.caPem);
        assert.equal(
            r.stdout,
            [
                `export CONSUL_HTTP_ADDR=https://127.0.0.1:${port}`,
                `export CONSUL_CACERT=${caFile}`,
                // The operators' read-only token, not the management token.
                "export CONSUL_HTTP_TOKEN=0b7e4d2c-9a8b-4c3d-8e2f-fedcba987654",
                "",
            ].join("\n"),
        );
        // What `eval "$(npm run -s operator)"` leaves in the shell.
        const env = spawnSync("sh", ["-c", `${r.stdout}\nprintf '%s|%s|%s' "$CONSUL_HTTP_ADDR" "$CONSUL_CACERT" "$CONSUL_HTTP_TOKEN"`], { encoding: "utf8" });
        assert.equal(env.stdout, `https://127.0.0.1:${port}|${caFile}|0b7e4d2c-9a8b-4c3d-8e2f-fedcba987654`);
        // Nothing secret goes to the screen (stderr): the passwords are read by a command shown.
        assert.doesNotMatch(r.stderr, /6f1c3a2e-1b2c|0b7e4d2c-9a8b|s3cret-stats/);
        assert.doesNotMatch(r.stdout + r.stderr, /6f1c3a2e-1b2c|consulManagementToken/, "the management token is never handed out");
    });

    it("refuses a stack without the operators' token rather than handing out the management token", async () => {
        const { consulOperatorToken: _operator, ...older } = outputs(ca.caPem, port);
        const r = await operator(older, "ops");
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        assert.match(r.stderr, /^operator: stack ops has no output consulOperatorToken: run `pulumi up`/);
    });

    it("names every URL with what it is and how to read its login", async () => {
        const r = await operator(outputs(ca.caPem, port), "ops");
        const rows = r.stderr.split("\n").filter((l) => /^  (https?:\/\/|127\.0\.0\.1:)/.test(l));
        const row = (url: string) => rows.find((l) => l.startsWith(`  ${url} `)) ?? assert.fail(`no row for ${url} in\n${r.stderr}`);
        assert.match(row("http://127.0.0.1/hello/v1/"), /service hello-v1, through the gateway\s+none$/);
        assert.match(row("http://127.0.0.1/hello/v2/"), /service hello-v2/);
        assert.match(row("127.0.0.1:15432 (tcp)"), /tcp service pg/);
        assert.match(row("http://127.0.0.1/"), /the gateway .*\s+none$/);
        assert.match(row("http://127.0.0.1:1936/"), /HAProxy stats page\s+user stats, password: pulumi stack output statsPassword --show-secrets --stack ops$/);
        assert.match(row("http://127.0.0.1:1936/metrics"), /Prometheus metrics/);
        assert.match(
            row(`https://127.0.0.1:${port}/ui/`),
            /Consul UI\s+the operator token \(\$CONSUL_HTTP_TOKEN, or pulumi stack output consulOperatorToken --show-secrets --stack ops\) at "Log in"$/,
        );
        assert.match(row(`https://127.0.0.1:${port}/v1/`), /Consul HTTP API .*X-Consul-Token/);
        assert.match(r.stderr, /eval "\$\(STACK=ops npm run -s operator\)", then\n  consul members\n  consul catalog services\n/);
        assert.match(r.stderr, /docker exec -e CONSUL_HTTP_TOKEN ops-consul consul members/);
    });

    it("gives both fingerprints, the UI's verified against the CA, and how to trust the CA in each browser", async () => {
        const r = await operator(outputs(ca.caPem, port), "ops");
        assert.ok(r.stderr.includes(`the CA: SHA-256 ${new X509Certificate(ca.caPem).fingerprint256}`), r.stderr);
        assert.ok(r.stderr.includes(`the UI's own certificate (verified against it): SHA-256 ${new X509Certificate(ca.certPem).fingerprint256}`), r.stderr);
        const caFile = path.join(r.project, ".pulumi/ops-consul-ca.pem");
        for (const how of [
            "Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import",
            `certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n consul-ops -i ${caFile}`,
            `security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db ${caFile}`,
            `certutil.exe -user -addstore Root "$(wslpath -w ${caFile})"`,
        ])
            assert.ok(r.stderr.includes(how), `${how} in\n${r.stderr}`);
    });

    it("a UI whose certificate the CA did not sign gets no fingerprint to compare", async () => {
        const other = pki(temp("sd-pki-"));
        const r = await operator(outputs(other.caPem, port), "ops");
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /the UI's own certificate: none to compare \(.*certificate.*\)/);
        assert.doesNotMatch(r.stderr, new RegExp(new X509Certificate(ca.certPem).fingerprint256));
    });

    it("the dev stack, and a stack that is not up: says so, writes nothing", async () => {
        const up = await operator({ ...outputs(ca.caPem, port) }, "dev");
        assert.match(up.stderr, /In this shell: eval "\$\(npm run -s operator\)", then/);
        const down = await operator({ gatewayUrl: "http://127.0.0.1" }, "dev");
        assert.equal(down.code, 1);
        assert.match(down.stderr, /^operator: stack dev has no output consulUiUrl: has `pulumi up` finished\?$/m);
        assert.equal(down.stdout, "");
        assert.ok(!fs.existsSync(path.join(down.project, ".pulumi")));
    });
});
