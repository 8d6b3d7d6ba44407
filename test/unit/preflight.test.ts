// The preflight `npm run up` runs first (scripts/preflight.mjs): on a machine without the
// Pulumi CLI, without Docker, with a Docker socket it may not use, with an engine that hangs,
// without a passphrase and no terminal, or with a host port the stack publishes already taken, it
// stops within seconds and names what is missing (or what holds the port) and how to fix it.
// Tools are stand-ins on a PATH made for each case; the real preflight script runs.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { ROOT } from "../support/program";

const SCRIPT = path.join(ROOT, "scripts/preflight.mjs");
/** The Node.js major version package.json's engines asks for. */
const NODE_WANTED = Number(/>=\s*([0-9]+)/.exec(JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).engines.node)![1]);
const NODE_OK = Number(process.versions.node.split(".")[0]) >= NODE_WANTED;
const temps: string[] = [];
after(() => temps.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const PULUMI_OK = `echo v3.210.0`;
/** A Docker CLI whose engine answers (version, info). */
const DOCKER_OK = `case "$*" in *version*) echo 27.3.1 ;; *info*) echo '["name=seccomp,profile=builtin"]' ;; esac`;

/** A bin folder holding node and the given stand-ins (shell bodies), and nothing else. */
function bin(tools: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-preflight-"));
    temps.push(dir);
    fs.symlinkSync(process.execPath, path.join(dir, "node"));
    for (const [name, body] of Object.entries(tools)) {
        fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    return dir;
}

interface Result {
    code: number | null;
    text: string;
    ms: number;
}

/** Runs the preflight; the host ports of this machine are left out unless `script` is a project's copy. */
function preflight(dir: string, env: Record<string, string> = {}, args: string[] = [], script = SCRIPT): Result {
    const started = Date.now();
    // stdin is a pipe, never a terminal: as in CI, or `npm run up` piped.
    const r = spawnSync(process.execPath, [script, ...args, ...(script === SCRIPT ? ["--no-ports"] : [])], {
        encoding: "utf8",
        timeout: 30_000,
        stdio: ["pipe", "pipe", "pipe"],
        env: { PATH: dir, HOME: os.homedir(), ...env },
    });
    return { code: r.status, text: `${r.stdout}${r.stderr}`, ms: Date.now() - started };
}

/** The problems reported, one line each (the Node.js one left out when this Node is too old). */
function problems(r: Result): string[] {
    return r.text
        .split("\n")
        .filter((l) => l.startsWith("  - "))
        .map((l) => l.slice(4))
        .filter((l) => NODE_OK || !l.startsWith("Node.js"));
}

describe("preflight: names what is missing, within seconds", () => {
    it("no Pulumi CLI: says so and how to install it", () => {
        const r = preflight(bin({ docker: DOCKER_OK }), { PULUMI_CONFIG_PASSPHRASE: "x" });
        assert.equal(r.code, 1, r.text);
        assert.deepEqual(problems(r), ["Pulumi CLI: `pulumi` is not on PATH"], r.text);
        assert.match(r.text, /fix: install it \(https:\/\/www\.pulumi\.com\/docs\/install\/;.*brew install pulumi\/tap\/pulumi/);
        assert.match(r.text, /Linux, WSL 2: curl -fsSL https:\/\/get\.pulumi\.com \| sh/);
        assert.ok(r.ms < 5000, `${r.ms} ms`);
    });

    it("no Docker: says so and how to install it", () => {
        const r = preflight(bin({ pulumi: PULUMI_OK }), { PULUMI_CONFIG_PASSPHRASE: "x" });
        assert.equal(r.code, 1, r.text);
        assert.deepEqual(problems(r), ["Docker: the `docker` command is not on PATH"], r.text);
        assert.match(r.text, /fix: install Docker Desktop .*Docker Engine/);
        assert.ok(r.ms < 5000, `${r.ms} ms`);
    });

    it("neither: both named in one run", () => {
        const r = preflight(bin({}), { PULUMI_CONFIG_PASSPHRASE: "x" });
        assert.equal(r.code, 1);
        assert.deepEqual(problems(r), ["Pulumi CLI: `pulumi` is not on PATH", "Docker: the `docker` command is not on PATH"], r.text);
    });

    it("a Docker socket the user may not use: the docker group, or a rootless engine's socket", () => {
        const r = preflight(
            bin({
                pulumi: PULUMI_OK,
                docker: `echo 'permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": dial unix /var/run/docker.sock: connect: permission denied' >&2; exit 1`,
            }),
            { PULUMI_CONFIG_PASSPHRASE: "x" },
        );
        assert.equal(r.code, 1, r.text);
        assert.equal(problems(r).length, 1, r.text);
        assert.match(problems(r)[0], /^Docker: no engine answers at unix:\/\/\/var\/run\/docker\.sock: permission denied/);
        assert.match(r.text, /sudo usermod -aG docker "\$USER"/);
        assert.match(r.text, /DOCKER_HOST=unix:\/\/\$XDG_RUNTIME_DIR\/docker\.sock/);
    });

    it("an engine that does not answer: stops after the timeout, not later", () => {
        const r = preflight(bin({ pulumi: PULUMI_OK, docker: "exec /bin/sleep 30" }), { PULUMI_CONFIG_PASSPHRASE: "x", PREFLIGHT_DOCKER_TIMEOUT_MS: "1500" });
        assert.equal(r.code, 1, r.text);
        assert.deepEqual(problems(r), ["Docker: the engine at unix:///var/run/docker.sock did not answer within 1.5 s"], r.text);
        assert.ok(r.ms < 6000, `${r.ms} ms`);
    });

    it("the CLI's context points elsewhere (Colima, rootless, Podman): the DOCKER_HOST to export", () => {
        const colima = "unix:///home/u/.colima/default/docker.sock";
        const r = preflight(
            bin({
                pulumi: PULUMI_OK,
                docker: `case "$*" in *"context inspect"*) echo ${colima} ;; *) echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1 ;; esac`,
            }),
            { PULUMI_CONFIG_PASSPHRASE: "x" },
        );
        assert.equal(r.code, 1, r.text);
        assert.match(
            r.text,
            new RegExp(
                `fix: the docker CLI's current context uses ${colima.replace(/[./]/g, "\\$&")}, but Pulumi uses DOCKER_HOST or unix:///var/run/docker\\.sock: export DOCKER_HOST=${colima.replace(/[./]/g, "\\$&")}`,
            ),
        );
    });

    it("DOCKER_HOST is the engine tested", () => {
        const r = preflight(
            bin({
                pulumi: PULUMI_OK,
                docker: `[ "$DOCKER_HOST" = tcp://10.9.9.9:2376 ] || exit 3; echo 'error during connect: dial tcp 10.9.9.9:2376: connect: connection refused' >&2; exit 1`,
            }),
            { PULUMI_CONFIG_PASSPHRASE: "x", DOCKER_HOST: "tcp://10.9.9.9:2376" },
        );
        assert.equal(r.code, 1, r.text);
        assert.match(problems(r)[0], /^Docker: no engine answers at tcp:\/\/10\.9\.9\.9:2376 \(DOCKER_HOST\): error during connect/);
    });

    it("no passphrase and no terminal to ask for it: names both variables", () => {
        const r = preflight(bin({ pulumi: PULUMI_OK, docker: DOCKER_OK }));
        assert.equal(r.code, 1, r.text);
        assert.deepEqual(problems(r), ["passphrase: the dev stack's secrets are encrypted with a passphrase, and there is no terminal to ask for it"], r.text);
        assert.match(r.text, /fix: set PULUMI_CONFIG_PASSPHRASE, or PULUMI_CONFIG_PASSPHRASE_FILE=/);
        const missing = preflight(bin({ pulumi: PULUMI_OK, docker: DOCKER_OK }), { PULUMI_CONFIG_PASSPHRASE_FILE: "/nonexistent/passphrase" });
        assert.deepEqual(problems(missing), ["passphrase: PULUMI_CONFIG_PASSPHRASE_FILE=/nonexistent/passphrase cannot be read"], missing.text);
    });

    it("everything there: passes, and says which backend and stack every command uses", () => {
        const r = preflight(bin({ pulumi: PULUMI_OK, docker: DOCKER_OK }), { PULUMI_CONFIG_PASSPHRASE: "x" });
        assert.deepEqual(problems(r), [], r.text);
        assert.equal(r.code, NODE_OK ? 0 : 1, r.text);
        if (NODE_OK)
            assert.match(
                r.text,
                /^preflight: ok: node v[0-9.]+, pulumi v3\.210\.0, Docker 27\.3\.1 at unix:\/\/\/var\/run\/docker\.sock, passphrase from PULUMI_CONFIG_PASSPHRASE; backend file:\/\/~ \(Pulumi\.yaml\); stack dev$/m,
            );
        const other = preflight(bin({ pulumi: PULUMI_OK, docker: DOCKER_OK }), { PULUMI_CONFIG_PASSPHRASE: "x", PULUMI_BACKEND_URL: "s3://bucket/state" });
        if (NODE_OK) assert.match(other.text, /backend s3:\/\/bucket\/state \(PULUMI_BACKEND_URL\)/);
    });

    it("a Node.js older than package.json's engines is named first", () => {
        const old = bin({ pulumi: PULUMI_OK, docker: DOCKER_OK });
        // A stand-in `node` cannot run the script: give the real one a different version to report.
        const r = spawnSync(
            process.execPath,
            [
                "--input-type=module",
                "-e",
                `Object.defineProperty(process, "version", { value: "v18.20.0" }); Object.defineProperty(process.versions, "node", { value: "18.20.0" }); process.argv[1] = ${JSON.stringify(SCRIPT)}; await import(${JSON.stringify(`file://${SCRIPT}`)});`,
            ],
            {
                encoding: "utf8",
                timeout: 30_000,
                stdio: ["pipe", "pipe", "pipe"],
                env: { PATH: old, HOME: os.homedir(), PULUMI_CONFIG_PASSPHRASE: "x" },
            },
        );
        assert.equal(r.status, 1, r.stderr);
        assert.ok(NODE_WANTED > 18, `engines asks for ${NODE_WANTED}`);
        assert.ok(r.stderr.includes(`- Node.js v18.20.0 is too old: this project needs Node.js ${NODE_WANTED} or newer`), r.stderr);
        assert.ok(r.stderr.includes(`nvm install ${NODE_WANTED}`), r.stderr);
    });

    it("a stack on another target does not need this machine's Docker", () => {
        const r = preflight(bin({ pulumi: PULUMI_OK }), { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "aws"]);
        assert.deepEqual(problems(r), [], r.text);
    });
});

/** A project folder with the preflight and a stack file of the local target holding `config`. */
function project(stack: string, config: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-ports-"));
    temps.push(dir);
    for (const f of ["package.json", "Pulumi.yaml", "scripts/preflight.mjs"]) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
    }
    fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), `config:\n  service-discovery:target: local\n${config}`);
    return path.join(dir, "scripts/preflight.mjs");
}

/** A TCP port held open on every address until the tests end. */
async function holdTcp(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ port: 0, host: "0.0.0.0" }, resolve));
    after(() => server.close());
    return (server.address() as net.AddressInfo).port;
}

/** A UDP port held on every address until the tests end. */
async function holdUdp(): Promise<number> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind({ port: 0, address: "0.0.0.0" }, resolve));
    after(() => socket.close());
    return socket.address().port;
}

/** Port numbers free for TCP and UDP right now (taken, then let go). */
async function freePorts(n: number): Promise<number[]> {
    const out: number[] = [];
    while (out.length < n) {
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen({ port: 0, host: "0.0.0.0" }, resolve));
        const port = (server.address() as net.AddressInfo).port;
        await new Promise((resolve) => server.close(resolve));
        const socket = dgram.createSocket("udp4");
        const udpFree = await new Promise<boolean>((resolve) => {
            socket.once("error", () => resolve(false));
            socket.bind({ port, address: "0.0.0.0" }, () => resolve(true));
        });
        await new Promise<void>((resolve) => (udpFree ? socket.close(() => resolve()) : resolve()));
        if (udpFree && !out.includes(port)) out.push(port);
    }
    return out;
}

/** The gateway's and Consul's ports of a stack file. */
const portsConfig = (http: number, stats: number, https: number, dns: number, extra = "") =>
    `  service-discovery:gateway:\n    httpPort: ${http}\n    statsPort: ${stats}\n    bindAddress: 0.0.0.0\n  service-discovery:consul:\n    httpsPort: ${https}\n    dnsPort: ${dns}\n${extra}`;

/** A Docker CLI whose engine answers, its containers publishing `published` (`docker ps` lines). */
const dockerPublishing = (published: string[]) =>
    `case "$*" in *version*) echo 27.3.1 ;; *info*) echo '[]' ;; *" ps "*) printf '%s\\n' ${published.map((l) => `'${l}'`).join(" ")} ;; esac`;

/** `ss` from this machine, when it has one, so that the preflight can name a port's process. */
function withSs(dir: string): boolean {
    const ss = spawnSync("sh", ["-c", "command -v ss"], { encoding: "utf8" }).stdout.trim();
    if (ss) fs.symlinkSync(ss, path.join(dir, "ss"));
    return ss !== "";
}

describe("preflight: the host ports the local stack publishes", () => {
    it("a port in use on this machine: names the port, its config key and the process holding it", async () => {
        const held = await holdTcp();
        const [stats, https, dns] = await freePorts(3);
        const script = project("ports", portsConfig(held, stats, https, dns));
        const dir = bin({ pulumi: PULUMI_OK, docker: dockerPublishing([]) });
        const named = withSs(dir);
        const r = preflight(dir, { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "ports"], script);
        assert.equal(r.code, 1, r.text);
        const [only, ...rest] = problems(r);
        assert.deepEqual(rest, [], r.text);
        assert.ok(only.startsWith(`host port ${held}/tcp (gateway.httpPort, on 0.0.0.0) is in use by `), r.text);
        if (named) assert.ok(only.endsWith(`node (pid ${process.pid})`), r.text);
        assert.ok(
            r.text.includes(`fix: stop it, or give the stack another port: pulumi config set --path 'gateway.httpPort' <free port> --stack ports`),
            r.text,
        );
        assert.ok(r.ms < 5000, `${r.ms} ms`);
    });

    it("Consul's DNS port (udp) and a tcp service's listenPort are checked too", async () => {
        const udp = await holdUdp();
        const tcp = await holdTcp();
        const [http, stats, https] = await freePorts(3);
        const services = `  service-discovery:services:\n    - { name: hello, version: v1, build: components/images/hello }\n    - { name: pg, build: components/images/postgres, protocol: tcp, containerPort: 5432, listenPort: ${tcp} }  # a listener\n`;
        const script = project("ports", portsConfig(http, stats, https, udp, services));
        const r = preflight(bin({ pulumi: PULUMI_OK, docker: dockerPublishing([]) }), { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "ports"], script);
        assert.equal(r.code, 1, r.text);
        const found = problems(r);
        assert.equal(found.length, 2, r.text);
        assert.ok(found[0].startsWith(`host port ${udp}/udp (consul.dnsPort, on 127.0.0.1) is in use by `), r.text);
        assert.ok(found[1].startsWith(`host port ${tcp}/tcp (services[1].listenPort, on 0.0.0.0) is in use by `), r.text);
    });

    it("a port another container publishes: names the container", async () => {
        const [http, stats, https, dns] = await freePorts(4);
        const script = project("ports", portsConfig(http, stats, https, dns));
        const docker = dockerPublishing([`web\t0.0.0.0:${http}->8080/tcp, [::]:${http}->8080/tcp`, `db\t127.0.0.1:5432->5432/tcp`]);
        const r = preflight(bin({ pulumi: PULUMI_OK, docker }), { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "ports"], script);
        assert.equal(r.code, 1, r.text);
        assert.deepEqual(problems(r), [`host port ${http}/tcp (gateway.httpPort, on 0.0.0.0) is published by container web`], r.text);
    });

    it("the stack's own containers holding its ports (it is up already): passes", async () => {
        const [http, stats, https, dns] = await freePorts(4);
        const script = project("ports", portsConfig(http, stats, https, dns));
        const docker = dockerPublishing([
            `ports-gateway\t0.0.0.0:${http}->80/tcp, 0.0.0.0:${stats}->1936/tcp`,
            `ports-consul\t127.0.0.1:${https}->8501/tcp, 127.0.0.1:${dns}->8600/udp`,
        ]);
        const r = preflight(bin({ pulumi: PULUMI_OK, docker }), { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "ports"], script);
        assert.deepEqual(problems(r), [], r.text);
        if (NODE_OK) assert.match(r.text, new RegExp(`host ports ${http}/tcp ${stats}/tcp ${https}/tcp ${dns}/udp held by the stack itself`));
    });

    it("free ports: listed in the ok line; --no-ports (npm run destroy) does not look", async () => {
        const [http, stats, https, dns] = await freePorts(4);
        const script = project("ports", portsConfig(http, stats, https, dns));
        const dir = bin({ pulumi: PULUMI_OK, docker: dockerPublishing([]) });
        const r = preflight(dir, { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "ports"], script);
        assert.deepEqual(problems(r), [], r.text);
        if (NODE_OK) assert.match(r.text, new RegExp(`^preflight: ok: .*host ports ${http}/tcp ${stats}/tcp ${https}/tcp ${dns}/udp free; `, "m"));
        const held = await holdTcp();
        const skipped = preflight(
            dir,
            { PULUMI_CONFIG_PASSPHRASE: "x" },
            ["--stack", "ports", "--no-ports"],
            project("ports", portsConfig(held, stats, https, dns)),
        );
        assert.deepEqual(problems(skipped), [], skipped.text);
        assert.doesNotMatch(skipped.text, /host ports/);
    });

    it("a stack file without port keys: the program's defaults (80, 1936, 8501, 8600/udp) are the ones checked", () => {
        const script = project("defaults", "");
        const docker = dockerPublishing([`other\t0.0.0.0:80->80/tcp`, `other-dns\t0.0.0.0:8600->53/udp`]);
        const r = preflight(bin({ pulumi: PULUMI_OK, docker }), { PULUMI_CONFIG_PASSPHRASE: "x" }, ["--stack", "defaults"], script);
        const found = problems(r).filter((p) => / is published by /.test(p));
        assert.deepEqual(
            found,
            [
                "host port 80/tcp (gateway.httpPort, on 127.0.0.1) is published by container other",
                "host port 8600/udp (consul.dnsPort, on 127.0.0.1) is published by container other-dns",
            ],
            r.text,
        );
    });
});

describe("preflight: the bind address it checks is the program's", () => {
    /** A TCP port held on another loopback address (127.0.0.2) until the tests end: taken on 0.0.0.0, free on 127.0.0.1. */
    async function holdOnOtherLoopback(): Promise<number> {
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.2" }, resolve));
        after(() => server.close());
        return (server.address() as net.AddressInfo).port;
    }
    const noBind = (http: number, stats: number, https: number, dns: number, bind = "") =>
        `  service-discovery:gateway:\n    httpPort: ${http}\n    statsPort: ${stats}\n${bind}  service-discovery:consul:\n    httpsPort: ${https}\n    dnsPort: ${dns}\n`;

    it("no gateway.bindAddress: the loopback is checked, as the program publishes there on local; 0.0.0.0 when the stack opts in", async () => {
        const held = await holdOnOtherLoopback();
        const [stats, https, dns] = await freePorts(3);
        const docker = dockerPublishing([]);
        const r = preflight(
            bin({ pulumi: PULUMI_OK, docker }),
            { PULUMI_CONFIG_PASSPHRASE: "x" },
            ["--stack", "ports"],
            project("ports", noBind(held, stats, https, dns)),
        );
        assert.deepEqual(problems(r), [], r.text);
        const all = preflight(
            bin({ pulumi: PULUMI_OK, docker }),
            { PULUMI_CONFIG_PASSPHRASE: "x" },
            ["--stack", "ports"],
            project("ports", noBind(held, stats, https, dns, "    bindAddress: 0.0.0.0\n")),
        );
        assert.equal(all.code, 1, all.text);
        assert.ok(problems(all)[0]?.startsWith(`host port ${held}/tcp (gateway.httpPort, on 0.0.0.0) is in use`), all.text);
    });
});

describe("npm run up: the preflight runs before anything is installed or created", () => {
    it("without the Pulumi CLI and Docker it stops within seconds, before npm install", () => {
        const project = fs.mkdtempSync(path.join(os.tmpdir(), "sd-up-"));
        temps.push(project);
        for (const f of ["package.json", "Pulumi.yaml", "Pulumi.dev.yaml", "scripts/preflight.mjs"]) {
            fs.mkdirSync(path.dirname(path.join(project, f)), { recursive: true });
            fs.copyFileSync(path.join(ROOT, f), path.join(project, f));
        }
        const npm = fs.realpathSync(spawnSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).stdout.trim());
        const dir = bin({});
        fs.symlinkSync(npm, path.join(dir, "npm"));
        fs.symlinkSync("/bin/sh", path.join(dir, "sh"));
        const started = Date.now();
        const r = spawnSync(path.join(dir, "npm"), ["run", "up"], {
            cwd: project,
            encoding: "utf8",
            timeout: 60_000,
            stdio: ["pipe", "pipe", "pipe"],
            env: { PATH: dir, HOME: project, npm_config_cache: path.join(project, ".npm"), npm_config_update_notifier: "false", PULUMI_CONFIG_PASSPHRASE: "x" },
        });
        const ms = Date.now() - started;
        const text = `${r.stdout}${r.stderr}`;
        assert.notEqual(r.status, 0, text);
        assert.match(text, /Pulumi CLI: `pulumi` is not on PATH/);
        assert.match(text, /Docker: the `docker` command is not on PATH/);
        assert.ok(!fs.existsSync(path.join(project, "node_modules")), "npm install did not run");
        assert.ok(!fs.existsSync(path.join(project, "package-lock.json")), "nothing was installed");
        assert.ok(ms < 15_000, `${ms} ms`);
    });
});
