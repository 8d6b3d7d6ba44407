// Secrets as files, never in a container's environment (docker inspect shows it): the gateway
// controller reads its stats password and Consul token from files and refuses them in its
// environment; Registrator's entrypoint exports its token from a file to Registrator alone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { EnvError, readEnv, readSecretFile, SECRET_VARIABLES } from "../../components/images/gateway/controller/env";
import { REGISTRATOR_ENTRYPOINT, REGISTRATOR_TOKEN_FILE, registratorWrapper } from "../../components/registrator";
import { registratorToken } from "../e2e/harness/registrator";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-secret-files-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content, { mode: 0o400 });
    return f;
};

describe("gateway controller: secrets from files only", () => {
    const password = file("stats.password", "Zq8XbW3kP0tLm2Rv9sYc4HnJ\n");
    const token = file("consul.token", "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab\n");
    const base = {
        STATS_USER: "stats",
        STATS_PASSWORD_FILE: password,
        CONSUL_HTTP_TOKEN_FILE: token,
        GATEWAY_OWN_ADDRESSES: "10.0.0.2",
        GATEWAY_FD_LIMIT: "100000",
    };
    const read = (env: Record<string, string | undefined>) => readEnv({ ...base, ...env }, () => undefined);
    const refuses = (env: Record<string, string | undefined>, message: RegExp) =>
        assert.throws(
            () => read(env),
            (e: unknown) => e instanceof EnvError && e.exitCode === 64 && message.test(e.message) && !/Zq8XbW3k|6f1c3a2e/.test(e.message),
        );

    it("hands HAProxy the password from its file (haproxy.cfg's ${STATS_PASSWORD}), without the line break", () => {
        const e = read({});
        assert.equal(e.haproxyEnv.STATS_PASSWORD, "Zq8XbW3kP0tLm2Rv9sYc4HnJ");
        assert.equal(e.haproxyEnv.CONSUL_HTTP_TOKEN, undefined, "HAProxy gets no token");
        assert.equal(e.haproxyEnv.CONSUL_HTTP_TOKEN_FILE, undefined, "nor where it is");
        assert.equal(
            read({ STATS_PASSWORD_FILE: file("crlf.password", "Zq8XbW3kP0tLm2Rv9sYc4HnJ\r\n") }).haproxyEnv.STATS_PASSWORD,
            "Zq8XbW3kP0tLm2Rv9sYc4HnJ",
        );
    });

    it("refuses the secrets in its environment, naming the file variable to use instead", () => {
        assert.deepEqual(SECRET_VARIABLES, { CONSUL_HTTP_TOKEN: "CONSUL_HTTP_TOKEN_FILE", STATS_PASSWORD: "STATS_PASSWORD_FILE" });
        refuses(
            { STATS_PASSWORD: "Zq8XbW3kP0tLm2Rv9sYc4HnJ" },
            /^STATS_PASSWORD in the environment: the gateway reads its secrets from files only \(`docker inspect` shows a container's environment\); set STATS_PASSWORD_FILE to a file instead$/,
        );
        refuses(
            { CONSUL_HTTP_TOKEN: "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab" },
            /^CONSUL_HTTP_TOKEN in the environment: .* set CONSUL_HTTP_TOKEN_FILE to a file instead$/,
        );
        refuses(
            { CONSUL_HTTP_TOKEN: "6f1c3a2e", STATS_PASSWORD: "Zq8XbW3k" },
            /^CONSUL_HTTP_TOKEN and STATS_PASSWORD in the environment: .*CONSUL_HTTP_TOKEN_FILE and STATS_PASSWORD_FILE/,
        );
        // Empty is unset (an image or a harness that clears a variable).
        assert.equal(read({ CONSUL_HTTP_TOKEN: "", STATS_PASSWORD: "" }).haproxyEnv.STATS_PASSWORD, "Zq8XbW3kP0tLm2Rv9sYc4HnJ");
    });

    it("fails at start on a missing, unreadable, empty or multi-line file, naming the variable and never the content", () => {
        refuses({ STATS_PASSWORD_FILE: undefined }, /^STATS_PASSWORD_FILE must name the file that holds the stats password/);
        refuses({ STATS_USER: undefined }, /^STATS_USER must be set/);
        refuses({ STATS_PASSWORD_FILE: path.join(dir, "missing") }, /^STATS_PASSWORD_FILE=.*missing is not a readable file \(no such file or directory/);
        refuses({ STATS_PASSWORD_FILE: dir }, /^STATS_PASSWORD_FILE=.* is not a readable file \(illegal operation on a directory/);
        refuses({ STATS_PASSWORD_FILE: file("empty.password", "\n") }, /^STATS_PASSWORD_FILE=.*empty\.password is empty; it must hold the stats password/);
        refuses({ STATS_PASSWORD_FILE: file("two.password", "Zq8XbW3kP0tLm2Rv9sYc4HnJ\nsecond\n") }, /holds a control character or several lines/);
        refuses({ CONSUL_HTTP_TOKEN_FILE: path.join(dir, "nope") }, /^CONSUL_HTTP_TOKEN_FILE=.*nope is not a readable file/);
        refuses(
            { CONSUL_HTTP_TOKEN_FILE: file("empty.token", "") },
            /^CONSUL_HTTP_TOKEN_FILE=.*empty\.token is empty; it must hold the gateway's Consul ACL token$/,
        );
        // Without the variable at all: Consul without ACLs (main.ts warns), as before.
        assert.doesNotThrow(() => read({ CONSUL_HTTP_TOKEN_FILE: undefined }));
    });

    it("readSecretFile keeps the secret as written, but the one trailing line break", () => {
        assert.equal(readSecretFile("X_FILE", file("spaces", "  a b  \n"), "x"), "  a b  ");
        assert.throws(() => readSecretFile("X_FILE", "", "x"), /^Error: X_FILE must name the file that holds x$/);
    });
});

describe("Registrator: the token from a file, exported to Registrator alone", () => {
    // A stand-in for /bin/registrator: prints the token it was given, what the wrapper left, its arguments.
    const fake = path.join(dir, "registrator");
    fs.writeFileSync(fake, `#!/bin/sh\nprintf 'token=%s\\nleft=%s\\n' "$CONSUL_HTTP_TOKEN" "\${token-unset}"\nprintf 'arg=%s\\n' "$0" "$@"\n`, { mode: 0o755 });
    const run = (tokenFile: string, args: string[]) =>
        spawnSync("/bin/sh", ["-c", registratorWrapper(tokenFile, fake), "registrator", ...args], { encoding: "utf8", env: {} });

    it("runs the image's binary with the container's command and CONSUL_HTTP_TOKEN from the file", () => {
        const r = run(file("registrator.token", "6f1c3a2e-1b2c-4d5e-8f90-0123456789ab\n"), ["-internal", "-resync=30", "consul-unix:///consul/run/http.sock"]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(
            r.stdout,
            `token=6f1c3a2e-1b2c-4d5e-8f90-0123456789ab\nleft=unset\narg=${fake}\narg=-internal\narg=-resync=30\narg=consul-unix:///consul/run/http.sock\n`,
        );
    });

    it("stops with EX_CONFIG (78) and a message naming the file when it is missing or empty", () => {
        const missing = run(path.join(dir, "absent.token"), []);
        assert.equal(missing.status, 78);
        assert.match(missing.stderr, /registrator: cannot read its Consul ACL token from .*absent\.token/);
        assert.equal(missing.stdout, "", "Registrator never starts");
        const empty = run(file("empty-registrator.token", ""), []);
        assert.equal(empty.status, 78);
        assert.match(empty.stderr, /registrator: .*empty-registrator\.token is empty \(its Consul ACL token\)/);
    });

    it("the container's entrypoint is that wrapper around the v7 image's /bin/registrator, the token file named, never a token", () => {
        assert.deepEqual(REGISTRATOR_ENTRYPOINT, ["/bin/sh", "-c", registratorWrapper(REGISTRATOR_TOKEN_FILE, "/bin/registrator"), "registrator"]);
        assert.ok(REGISTRATOR_ENTRYPOINT[2]!.includes(`'${REGISTRATOR_TOKEN_FILE}'`));
        assert.ok(REGISTRATOR_ENTRYPOINT[2]!.includes(`exec '/bin/registrator' "$@"`));
    });
});

describe("Registrator's e2e stand-in: the token its process would have", () => {
    const upload = (content: string) => [{ file: REGISTRATOR_TOKEN_FILE, content: Buffer.from(content) }];
    it("the program's wrapper: the uploaded file's content, the container's variable ignored", () => {
        assert.equal(registratorToken(REGISTRATOR_ENTRYPOINT, { CONSUL_HTTP_TOKEN: "from-env" }, upload("from-file\n")), "from-file");
    });
    it("the image's own entrypoint: CONSUL_HTTP_TOKEN from the container's environment", () => {
        assert.equal(registratorToken(undefined, { CONSUL_HTTP_TOKEN: "from-env" }, upload("from-file")), "from-env");
        assert.equal(registratorToken(["/bin/registrator"], {}, []), undefined);
    });
    it("fails as the container would: no file, an empty file; and refuses an entrypoint it does not know", () => {
        assert.throws(() => registratorToken(REGISTRATOR_ENTRYPOINT, {}, []), /cannot read its Consul ACL token from .*exit 78/);
        assert.throws(() => registratorToken(REGISTRATOR_ENTRYPOINT, {}, upload("\n")), /is empty .*exit 78/);
        const changed = [...REGISTRATOR_ENTRYPOINT];
        changed[2] = changed[2]!.replace("exec", "exec env");
        assert.throws(() => registratorToken(changed, {}, upload("t")), /is not emulated/);
        assert.throws(() => registratorToken(["/bin/sh", "-c", "exec /bin/registrator"], {}, upload("t")), /is not emulated/);
    });
});
