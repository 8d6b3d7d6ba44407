#!/usr/bin/env node
// Preflight for `npm run up` / `preview` / `destroy`: before anything is installed or created,
// checks what the stack needs on this machine and names each missing piece with how to fix it:
// Node.js (the version package.json's engines asks for), the Pulumi CLI, a Docker engine that
// answers (where Pulumi will look for it), and a passphrase for the stack's secrets when there
// is no terminal to ask for one. Exits 1 on any problem, within seconds.
//   node scripts/preflight.mjs [--stack <name>]     (default: $STACK, else dev)
// Written for any Node.js still in use, so that an old one is reported rather than crashing.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** How long the Docker engine may take to answer (ms); tests shorten it. */
const DOCKER_TIMEOUT_MS = Number(process.env.PREFLIGHT_DOCKER_TIMEOUT_MS || 10000);
const DEFAULT_SOCKET = "unix:///var/run/docker.sock";
const MIN_PULUMI = [3, 100, 0];

const problems = [];
const notes = [];
const found = [];

function problem(what, fix) {
    problems.push({ what, fix });
}

function stackName() {
    const i = process.argv.indexOf("--stack");
    const name = i >= 0 ? process.argv[i + 1] : process.env.STACK || "dev";
    if (!name || !/^[A-Za-z0-9._/-]+$/.test(name)) {
        console.error(`preflight: --stack ${JSON.stringify(name)} is not a stack name`);
        process.exit(2);
    }
    return name;
}

/** The full path of an executable on PATH, or undefined. */
function which(name) {
    const exts = process.platform === "win32" ? (process.env.PATHEXT || ".EXE;.CMD;.BAT").split(";") : [""];
    for (const dir of (process.env.PATH || "").split(path.delimiter)) {
        if (!dir) continue;
        for (const ext of exts) {
            const candidate = path.join(dir, name + ext);
            try {
                fs.accessSync(candidate, fs.constants.X_OK);
                if (fs.statSync(candidate).isFile()) return candidate;
            } catch {
                /* next */
            }
        }
    }
    return undefined;
}

function run(cmd, args, timeoutMs) {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
    const timedOut = r.error !== undefined && r.error.code === "ETIMEDOUT";
    return { code: r.status, out: (r.stdout || "").trim(), err: (r.stderr || "").trim(), timedOut, error: r.error };
}

function versionTuple(text) {
    const m = /v?([0-9]+)\.([0-9]+)\.([0-9]+)/.exec(text);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function older(a, b) {
    for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
}

function checkNode() {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    const wanted = Number((/>=\s*([0-9]+)/.exec((pkg.engines && pkg.engines.node) || "") || [])[1] || 0);
    const major = Number(process.versions.node.split(".")[0]);
    if (major < wanted) {
        problem(
            `Node.js ${process.version} is too old: this project needs Node.js ${wanted} or newer (package.json "engines"; the Pulumi SDK requires it)`,
            `install Node.js ${wanted} LTS or newer (https://nodejs.org/en/download, or with nvm: nvm install ${wanted} && nvm use ${wanted}), then run this again`,
        );
    } else {
        found.push(`node ${process.version}`);
    }
}

function checkPulumi() {
    const pulumi = which("pulumi");
    if (!pulumi) {
        problem(
            "Pulumi CLI: `pulumi` is not on PATH",
            "install it (https://www.pulumi.com/docs/install/; macOS: brew install pulumi/tap/pulumi, Windows: winget install pulumi), open a new shell, check with `pulumi version`",
        );
        return;
    }
    const r = run(pulumi, ["version"], 15000);
    const v = versionTuple(r.out);
    if (r.code !== 0 || !v) {
        problem(
            `Pulumi CLI: \`${pulumi} version\` failed${r.timedOut ? " (no answer within 15 s)" : ""}: ${r.err || r.out || (r.error && r.error.message) || "no output"}`,
            "reinstall the Pulumi CLI (https://www.pulumi.com/docs/install/)",
        );
        return;
    }
    if (older(v, MIN_PULUMI)) {
        notes.push(
            `Pulumi CLI ${r.out} is older than v${MIN_PULUMI.join(".")}, the oldest this project is used with: upgrade it (https://www.pulumi.com/docs/install/) if a command below fails`,
        );
    }
    found.push(`pulumi ${r.out}`);
}

/** The backend every `pulumi` command of the project uses: PULUMI_BACKEND_URL, else Pulumi.yaml's. */
function backendUrl() {
    if (process.env.PULUMI_BACKEND_URL) return process.env.PULUMI_BACKEND_URL;
    const project = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
    const m = /^backend:\s*\n(?:[ \t]+#.*\n)*[ \t]+url:\s*["']?([^"'\s#]+)/m.exec(project);
    return m ? m[1] : "";
}

function dockerHints(host, message) {
    if (/permission denied/i.test(message)) {
        return `your user may not use the Docker socket (${host}). Linux: sudo usermod -aG docker "$USER", then log out and back in (or run \`newgrp docker\`); rootless Docker: export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock`;
    }
    if (/cannot connect|is the docker daemon running|connection refused|no such file|error during connect|cannot find the file/i.test(message)) {
        return `nothing answers at ${host}: start Docker Desktop (macOS, Windows) or the engine (Linux: sudo systemctl start docker); Colima, rootless Docker or Podman: export DOCKER_HOST to their socket, e.g. export DOCKER_HOST=$(docker context inspect --format '{{.Endpoints.docker.Host}}')`;
    }
    return `check that the Docker engine at ${host} runs (\`docker info\`), and that DOCKER_HOST points at it`;
}

/** The stack's target from its file (the program's default is local). */
function targetOf(stack) {
    const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    return (/^[ \t]*service-discovery:target:[ \t]*["']?([a-z]+)/m.exec(text) || [])[1] || "local";
}

function checkDocker(stack) {
    const target = targetOf(stack);
    if (target !== "local") {
        found.push(`target ${target} (the nodes' Docker engines, reached by the program)`);
        return;
    }
    const docker = which("docker");
    if (!docker) {
        problem(
            "Docker: the `docker` command is not on PATH",
            "install Docker Desktop (macOS, Windows: https://docs.docker.com/desktop/) or Docker Engine (Linux: https://docs.docker.com/engine/install/), start it, check with `docker info`",
        );
        return;
    }
    // Pulumi's Docker providers use DOCKER_HOST (or DOCKER_CONTEXT), else the default socket;
    // the docker CLI also follows its current context. Test the engine Pulumi will use.
    const env = process.env.DOCKER_HOST ? "DOCKER_HOST" : process.env.DOCKER_CONTEXT ? "DOCKER_CONTEXT" : "";
    const host = process.env.DOCKER_HOST || (process.env.DOCKER_CONTEXT ? `context ${process.env.DOCKER_CONTEXT}` : DEFAULT_SOCKET);
    const args = env === "" && process.platform !== "win32" ? ["-H", DEFAULT_SOCKET] : [];
    const r = run(docker, [...args, "version", "--format", "{{.Server.Version}}"], DOCKER_TIMEOUT_MS);
    if (r.timedOut) {
        problem(`Docker: the engine at ${host} did not answer within ${DOCKER_TIMEOUT_MS / 1000} s`, dockerHints(host, "cannot connect"));
        return;
    }
    if (r.code !== 0 || r.out === "") {
        let fix = dockerHints(host, `${r.err} ${r.out}`);
        if (env === "") {
            // The CLI may reach an engine elsewhere (Colima, rootless, Podman): say where.
            const ctx = run(docker, ["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"], DOCKER_TIMEOUT_MS);
            if (ctx.code === 0 && ctx.out && ctx.out !== DEFAULT_SOCKET) {
                fix = `the docker CLI's current context uses ${ctx.out}, but Pulumi uses DOCKER_HOST or ${DEFAULT_SOCKET}: export DOCKER_HOST=${ctx.out}`;
            }
        }
        problem(`Docker: no engine answers at ${host}${env ? ` (${env})` : ""}: ${(r.err || r.out).split("\n")[0]}`, fix);
        return;
    }
    found.push(`Docker ${r.out} at ${host}`);
    const info = run(docker, [...args, "info", "--format", "{{json .SecurityOptions}}"], DOCKER_TIMEOUT_MS);
    if (/rootless/.test(info.out)) {
        notes.push(
            "rootless Docker: ports below 1024 (the gateway's 80) need `sudo sysctl net.ipv4.ip_unprivileged_port_start=80`, or `pulumi config set --path gateway.httpPort 8080`; Registrator needs the engine's socket: `pulumi config set --path registrator.dockerSocket $XDG_RUNTIME_DIR/docker.sock`",
        );
    }
}

/** The secrets provider of the stack, from its file: passphrase unless it names another. */
function needsPassphrase(stack) {
    const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    const provider = (/^secretsprovider:\s*["']?([^"'\s]+)/m.exec(text) || [])[1];
    if (provider !== undefined) return provider.startsWith("passphrase");
    // A new stack on Pulumi Cloud gets Pulumi Cloud's secrets provider; elsewhere a passphrase.
    const cloud = /^https:\/\//.test(backendUrl());
    return !(cloud && !/^encryptionsalt:/m.test(text));
}

function checkPassphrase(stack) {
    if (!needsPassphrase(stack)) return;
    const file = process.env.PULUMI_CONFIG_PASSPHRASE_FILE;
    if (file) {
        const resolved = file.startsWith("~") ? path.join(os.homedir(), file.slice(1)) : file;
        try {
            fs.accessSync(resolved, fs.constants.R_OK);
            found.push("passphrase from PULUMI_CONFIG_PASSPHRASE_FILE");
        } catch {
            problem(
                `passphrase: PULUMI_CONFIG_PASSPHRASE_FILE=${file} cannot be read`,
                "point it at a readable file holding the stack's passphrase, or unset it",
            );
        }
        return;
    }
    if (process.env.PULUMI_CONFIG_PASSPHRASE !== undefined) {
        found.push("passphrase from PULUMI_CONFIG_PASSPHRASE");
        return;
    }
    if (process.stdin.isTTY) {
        found.push("passphrase: Pulumi will ask for it");
        return;
    }
    problem(
        `passphrase: the ${stack} stack's secrets are encrypted with a passphrase, and there is no terminal to ask for it`,
        "set PULUMI_CONFIG_PASSPHRASE, or PULUMI_CONFIG_PASSPHRASE_FILE=<file holding it> (the same one every time: it decrypts the stack's secrets)",
    );
}

const stack = stackName();
checkNode();
checkPulumi();
checkDocker(stack);
checkPassphrase(stack);
const backend = backendUrl();

for (const n of notes) console.error(`preflight: note: ${n}`);
if (problems.length > 0) {
    console.error(`preflight: ${problems.length === 1 ? "1 problem" : `${problems.length} problems`} before \`pulumi\` can run stack ${stack}:`);
    for (const p of problems) {
        console.error(`  - ${p.what}`);
        console.error(`    fix: ${p.fix}`);
    }
    process.exit(1);
}
console.error(
    `preflight: ok: ${found.join(", ")}; backend ${backend || "(the CLI's login)"}${process.env.PULUMI_BACKEND_URL ? " (PULUMI_BACKEND_URL)" : " (Pulumi.yaml)"}; stack ${stack}`,
);
