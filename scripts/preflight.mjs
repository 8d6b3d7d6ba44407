#!/usr/bin/env node
// Preflight for `npm run up` / `preview` / `destroy`: before anything is installed or created,
// checks what the stack needs on this machine and names each missing piece with how to fix it:
// Node.js (the version package.json's engines asks for), the Pulumi CLI, a Docker engine that
// answers (where Pulumi will look for it), a passphrase for the stack's secrets when there
// is no terminal to ask for one, and, on the local target, that the host ports the stack will
// publish are free (else what holds each: a container, or a process). Exits 1 on any problem,
// within seconds.
//   node scripts/preflight.mjs [--stack <name>] [--no-ports]     (default: $STACK, else dev)
// Written for any Node.js still in use, so that an old one is reported rather than crashing.
import { spawnSync } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** How long the Docker engine may take to answer (ms); tests shorten it. */
const DOCKER_TIMEOUT_MS = Number(process.env.PREFLIGHT_DOCKER_TIMEOUT_MS || 10000);
const DEFAULT_SOCKET = "unix:///var/run/docker.sock";
const MIN_PULUMI = [3, 100, 0];

const problems = [];
/** The Docker engine that answered: how to reach it with the CLI, and where it is. */
let engine;
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
            "install it (https://www.pulumi.com/docs/install/; Linux, WSL 2: curl -fsSL https://get.pulumi.com | sh, macOS: brew install pulumi/tap/pulumi, Windows: winget install pulumi), open a new shell, check with `pulumi version`",
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
    engine = { docker, args, host };
    const info = run(docker, [...args, "info", "--format", "{{json .SecurityOptions}}"], DOCKER_TIMEOUT_MS);
    if (/rootless/.test(info.out)) {
        notes.push(
            "rootless Docker: ports below 1024 (the gateway's 80) need `sudo sysctl net.ipv4.ip_unprivileged_port_start=80`, or `pulumi config set --path gateway.httpPort 8080`; Registrator needs the engine's socket: `pulumi config set --path registrator.dockerSocket $XDG_RUNTIME_DIR/docker.sock`",
        );
    }
}

/**
 * hosts and virtualbox: what sets each replica's process limit (docs/services.md, "What a replica
 * may do") runs on this machine: the Docker CLI for a tcp:// engine (every virtualbox VM), the
 * system's ssh for an ssh:// one (which the Docker providers use too).
 */
function checkNodeClients(stack) {
    const target = targetOf(stack);
    if (target !== "hosts" && target !== "virtualbox") return;
    let hosts = [];
    if (target === "hosts") {
        try {
            const doc = readYaml(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8"));
            const list = doc && typeof doc === "object" && doc.config ? doc.config["service-discovery:hosts"] : undefined;
            hosts = Array.isArray(list) ? list.map((h) => String((h && typeof h === "object" && h.host) || "")) : [];
        } catch {
            return; // the program reports a malformed stack file with the key
        }
    }
    const tcp = target === "virtualbox" ? ["every VM"] : hosts.filter((h) => h.startsWith("tcp://"));
    const ssh = hosts.filter((h) => h.startsWith("ssh://"));
    if (tcp.length > 0 && !which("docker")) {
        problem(
            `Docker CLI: \`docker\` is not on PATH (each replica's process limit is set with \`docker update\` on its node's engine: ${tcp.join(", ")})`,
            "install the Docker CLI (Docker Engine's docker-ce-cli or Debian's docker.io package, or Docker Desktop), check with `docker --version`",
        );
    }
    if (ssh.length > 0 && !which("ssh")) {
        problem(
            `SSH: the \`ssh\` command is not on PATH (the Docker providers and the replicas' process limits use it: ${ssh.join(", ")})`,
            "install OpenSSH's client",
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

/** A line of a stack file without its comment (a `#` after a space, outside quotes). */
function uncommented(line) {
    let quote = "";
    for (let i = 0; i < line.length; i++) {
        const ch = line[i];
        if (quote) {
            if (ch === "\\" && quote === '"') i++;
            else if (ch === quote) quote = "";
        } else if ((ch === '"' || ch === "'") && (i === 0 || /[\s,[{:]/.test(line[i - 1]))) quote = ch;
        else if (ch === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
    }
    return line;
}

function scalar(text) {
    const t = text.trim();
    if (t.startsWith('"')) return JSON.parse(t);
    if (t.startsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
    if (/^[-+]?[0-9]+(\.[0-9]+)?$/.test(t)) return Number(t);
    if (t === "true" || t === "false") return t === "true";
    if (t === "" || t === "~" || t === "null") return null;
    return t;
}

/** A one-line flow collection: `{ name: pg, listenPort: 15432, maintenance: [1] }`. */
function flow(text) {
    let i = 0;
    const space = () => {
        while (i < text.length && /\s/.test(text[i])) i++;
    };
    const token = (stops) => {
        space();
        const start = i;
        if (text[i] === '"' || text[i] === "'") {
            const q = text[i++];
            while (i < text.length && text[i] !== q) i += text[i] === "\\" && q === '"' ? 2 : 1;
            i++;
        } else {
            while (i < text.length && !stops.includes(text[i])) i++;
        }
        return text.slice(start, i).trim();
    };
    const value = () => {
        space();
        const open = text[i];
        if (open !== "{" && open !== "[") return scalar(token(",]}"));
        i++;
        const out = open === "{" ? {} : [];
        for (;;) {
            space();
            if (text[i] === (open === "{" ? "}" : "]")) {
                i++;
                return out;
            }
            if (open === "{") {
                const key = String(scalar(token(":,}")));
                space();
                if (text[i] !== ":") throw new Error(`no ':' after ${key} in ${text}`);
                i++;
                out[key] = value();
            } else out.push(value());
            space();
            if (text[i] === ",") i++;
            else if (text[i] !== (open === "{" ? "}" : "]")) throw new Error(`cannot read ${text}`);
        }
    };
    const v = value();
    space();
    if (i < text.length) throw new Error(`cannot read ${text}`);
    return v;
}

/** `key: rest` (the key may hold colons, as in `service-discovery:gateway:`), or undefined. */
function keyed(text) {
    const m = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'{[][^]*?):(?:\s+(.*))?$/.exec(text);
    return m ? [String(scalar(m[1])), (m[2] || "").trim()] : undefined;
}

const isItem = (text) => text === "-" || text.startsWith("- ");

/**
 * The YAML of a stack file as Pulumi and people write it: block maps and lists, flow maps and
 * lists, plain and quoted scalars, block scalars, comments. Throws on what it cannot read.
 */
function readYaml(source) {
    const lines = [];
    source.split(/\r?\n/).forEach((raw, n) => {
        const text = uncommented(raw).trimEnd();
        if (text.trim() === "" || text === "---") return;
        lines.push({ no: n + 1, indent: text.length - text.trimStart().length, text: text.trim() });
    });
    let i = 0;
    const balanced = (t) => [...t].filter((c) => c === "{" || c === "[").length === [...t].filter((c) => c === "}" || c === "]").length;
    const node = () => (isItem(lines[i].text) ? list(lines[i].indent) : map(lines[i].indent));
    const after = (rest, indent) => {
        if (rest === "") {
            const next = lines[i];
            return next && (next.indent > indent || (next.indent === indent && isItem(next.text))) ? node() : null;
        }
        if (/^[|>][-+0-9]*$/.test(rest)) {
            const parts = [];
            while (i < lines.length && lines[i].indent > indent) parts.push(lines[i++].text);
            return parts.join(rest[0] === "|" ? "\n" : " ");
        }
        if (rest[0] === "{" || rest[0] === "[") {
            let t = rest;
            while (!balanced(t) && i < lines.length) t += ` ${lines[i++].text}`;
            return flow(t);
        }
        return scalar(rest);
    };
    const map = (indent) => {
        const out = {};
        while (i < lines.length && lines[i].indent === indent && !isItem(lines[i].text)) {
            const kv = keyed(lines[i].text);
            if (!kv) throw new Error(`line ${lines[i].no}: not a key: value line`);
            i++;
            out[kv[0]] = after(kv[1], indent);
        }
        if (i < lines.length && lines[i].indent > indent) throw new Error(`line ${lines[i].no}: unexpected indentation`);
        return out;
    };
    const list = (indent) => {
        const out = [];
        while (i < lines.length && lines[i].indent === indent && isItem(lines[i].text)) {
            const rest = lines[i].text.slice(1).trimStart();
            if (rest !== "" && !/^[{["']/.test(rest) && keyed(rest)) {
                const inner = indent + lines[i].text.length - rest.length;
                lines[i] = { ...lines[i], indent: inner, text: rest };
                out.push(map(inner));
            } else {
                i++;
                out.push(after(rest, indent));
            }
        }
        return out;
    };
    const doc = lines.length > 0 ? node() : {};
    if (i < lines.length) throw new Error(`line ${lines[i].no}: unexpected`);
    return doc;
}

/** Where the local target publishes its ports when the stack sets no bindAddress. */
const LOCAL_BIND_ADDRESS = "127.0.0.1";

/** The host ports the local target publishes, with the config key each comes from and its
 *  bind address: the stack file's values, else the program's defaults (components/config/schema.ts). */
function hostPorts(stack) {
    const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
    const doc = fs.existsSync(file) ? readYaml(fs.readFileSync(file, "utf8")) : {};
    const config = (doc && typeof doc === "object" && doc.config) || {};
    const section = (key) => {
        const v = config[`service-discovery:${key}`];
        return v && typeof v === "object" && !Array.isArray(v) ? v : {};
    };
    const port = (v, fallback) => (v === undefined || v === null ? fallback : /^[0-9]{1,5}$/.test(String(v)) ? Number(v) : undefined);
    const gateway = section("gateway");
    const consul = section("consul");
    // Unset, both are published on the loopback on the local target (bindAddressDefault in components/config/index.ts).
    const gatewayAddress = typeof gateway.bindAddress === "string" ? gateway.bindAddress : LOCAL_BIND_ADDRESS;
    const tlsSource = gateway.tls && typeof gateway.tls === "object" ? gateway.tls.source : undefined;
    const consulAddress = typeof consul.bindAddress === "string" ? consul.bindAddress : LOCAL_BIND_ADDRESS;
    const services = Array.isArray(config["service-discovery:services"]) ? config["service-discovery:services"] : [];
    const ports = [
        { key: "gateway.httpPort", port: port(gateway.httpPort, 80), proto: "tcp", address: gatewayAddress, bindKey: "gateway.bindAddress" },
        ...(tlsSource !== undefined && tlsSource !== "none"
            ? [{ key: "gateway.httpsPort", port: port(gateway.httpsPort, 443), proto: "tcp", address: gatewayAddress, bindKey: "gateway.bindAddress" }]
            : []),
        { key: "gateway.statsPort", port: port(gateway.statsPort, 1936), proto: "tcp", address: gatewayAddress, bindKey: "gateway.bindAddress" },
        { key: "consul.httpsPort", port: port(consul.httpsPort, 8501), proto: "tcp", address: consulAddress, bindKey: "consul.bindAddress" },
        { key: "consul.dnsPort", port: port(consul.dnsPort, 8600), proto: "udp", address: consulAddress, bindKey: "consul.bindAddress" },
        ...services.flatMap((s, i) =>
            s && s.protocol === "tcp" && s.listenPort !== undefined
                ? [
                      {
                          key: `services[${i}].listenPort`,
                          port: port(s.listenPort, undefined),
                          proto: "tcp",
                          address: gatewayAddress,
                          bindKey: "gateway.bindAddress",
                      },
                  ]
                : [],
        ),
    ];
    // A value the program refuses is reported by the program, with its rules.
    return ports.filter((p) => p.port !== undefined && p.port >= 1 && p.port <= 65535);
}

/** Host ports published by containers of the engine: [{ name, address, from, to, proto }]. */
function publishedPorts() {
    const r = run(engine.docker, [...engine.args, "ps", "--format", "{{.Names}}\t{{.Ports}}"], DOCKER_TIMEOUT_MS);
    if (r.code !== 0) return [];
    const out = [];
    for (const line of r.out.split("\n")) {
        const [name, ports] = line.split("\t");
        for (const spec of (ports || "").split(", ")) {
            const m = /^(.*):([0-9]+)(?:-([0-9]+))?->[0-9]+(?:-[0-9]+)?\/(tcp|udp)$/.exec(spec.trim());
            if (m) out.push({ name, address: m[1].replace(/^\[|\]$/g, ""), from: Number(m[2]), to: Number(m[3] || m[2]), proto: m[4] });
        }
    }
    return out;
}

const ANY = new Set(["", "0.0.0.0", "::", ":"]);
const overlaps = (a, b) => ANY.has(a) || ANY.has(b) || a === b;

/** Tries to take the port as Docker will: "free", or the error code (EADDRINUSE, EACCES, …). */
function tryBind(proto, address, port) {
    return new Promise((resolve) => {
        if (proto === "udp") {
            const socket = dgram.createSocket(address.includes(":") ? "udp6" : "udp4");
            socket.once("error", (e) => {
                try {
                    socket.close();
                } catch {
                    /* not bound */
                }
                resolve(e.code || String(e));
            });
            socket.bind({ port, address, exclusive: true }, () => socket.close(() => resolve("free")));
        } else {
            const server = net.createServer();
            server.once("error", (e) => resolve(e.code || String(e)));
            server.listen({ port, host: address, exclusive: true }, () => server.close(() => resolve("free")));
        }
    });
}

/** Who listens on a port of this machine, by `ss` (Linux) or `lsof` (macOS): a phrase, or undefined. */
function listenerOf(proto, port) {
    const ss = which("ss");
    if (ss) {
        const r = run(ss, ["-H", "-l", "-n", proto === "udp" ? "-u" : "-t", "-p", "sport", "=", `:${port}`], 5000);
        const lines = r.out.split("\n").filter((l) => l.trim() !== "");
        if (r.code === 0 && lines.length === 0) return undefined;
        const users = [...new Set([...r.out.matchAll(/\("([^"]+)",pid=([0-9]+)/g)].map((m) => `${m[1]} (pid ${m[2]})`))];
        if (users.length > 0) return users.join(", ");
        if (r.code === 0) return `a process this user cannot see (sudo ss -lnp${proto === "udp" ? "u" : "t"} 'sport = :${port}')`;
    }
    const lsof = which("lsof");
    if (lsof) {
        const r = run(lsof, ["-nP", proto === "udp" ? `-iUDP:${port}` : `-iTCP:${port}`, ...(proto === "udp" ? [] : ["-sTCP:LISTEN"]), "-Fpc"], 5000);
        const users = [...new Set([...r.out.matchAll(/^p([0-9]+)\nc(.+)$/gm)].map((m) => `${m[2]} (pid ${m[1]})`))];
        if (users.length > 0) return users.join(", ");
    }
    return undefined;
}

/**
 * On the local target: every host port the stack publishes is free, or held by this stack's
 * own containers (it is up already). Else names what holds it: a container, or a process.
 */
async function checkPorts(stack) {
    if (targetOf(stack) !== "local" || engine === undefined) return;
    let ports;
    try {
        ports = hostPorts(stack);
    } catch (e) {
        notes.push(`host ports not checked: cannot read Pulumi.${stack}.yaml (${e.message})`);
        return;
    }
    const own = new Set([`${stack}-gateway`, `${stack}-consul`]);
    const published = publishedPorts();
    // The engine publishes on this machine (its socket is here, Docker Desktop's included).
    const here = /^(unix|npipe):\/\//.test(engine.host);
    const free = [];
    const ours = [];
    for (const p of ports) {
        const what = `host port ${p.port}/${p.proto} (${p.key}, on ${p.address})`;
        const fix = `stop it, or give the stack another port: pulumi config set --path '${p.key}' <free port> --stack ${stack}`;
        const holders = published.filter((h) => h.proto === p.proto && h.from <= p.port && p.port <= h.to && overlaps(h.address, p.address));
        const others = [...new Set(holders.map((h) => h.name).filter((n) => !own.has(n)))];
        if (others.length > 0) {
            problem(`${what} is published by container ${others.join(", ")}`, fix);
            continue;
        }
        if (holders.length > 0) {
            ours.push(`${p.port}/${p.proto}`);
            continue;
        }
        if (!here) {
            free.push(`${p.port}/${p.proto}`);
            continue;
        }
        const result = await tryBind(p.proto, p.address, p.port);
        if (result === "EADDRNOTAVAIL") {
            notes.push(
                `${p.bindKey} ${p.address} is not an address of this machine (yet): publishing ${p.port} there fails unless it is by then (Docker Desktop takes 0.0.0.0 or 127.0.0.1)`,
            );
            continue;
        }
        // Ports below 1024 cannot be tried without root: ask who listens instead.
        const holder = result === "free" ? undefined : listenerOf(p.proto, p.port);
        if (result === "EADDRINUSE" || holder !== undefined) {
            problem(`${what} is in use by ${holder ?? "another process (ss or lsof would say which)"}`, fix);
        } else free.push(`${p.port}/${p.proto}`);
    }
    if (free.length > 0) found.push(`host ports ${free.join(" ")} free`);
    if (ours.length > 0) found.push(`host ports ${ours.join(" ")} held by the stack itself`);
}

/**
 * aws.access ssm: the program reaches each node as ssh://<user>@<instance ID>, which only the
 * user's SSH config can carry (a ProxyCommand through `aws ssm start-session`), with the AWS CLI
 * and its Session Manager plugin (docs/operations.md, "SSM-only access").
 */
function checkSsm(stack) {
    if (targetOf(stack) !== "aws") return;
    const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
    let access;
    try {
        const doc = readYaml(fs.readFileSync(file, "utf8"));
        const section = doc && typeof doc === "object" && doc.config ? doc.config["service-discovery:aws"] : undefined;
        access = section && typeof section === "object" ? section.access : undefined;
    } catch {
        return; // the program reports a malformed stack file with the key
    }
    if (access !== "ssm") return;
    const fixConfig =
        "add to ~/.ssh/config:  Host i-* mi-*  /  ProxyCommand sh -c \"aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters 'portNumber=%p'\"";
    if (!which("aws")) {
        problem(
            "AWS CLI: `aws` is not on PATH (aws.access ssm opens each SSH session with `aws ssm start-session`)",
            "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
        );
    }
    if (!which("session-manager-plugin")) {
        problem(
            "Session Manager plugin: `session-manager-plugin` is not on PATH (aws.access ssm)",
            "install it: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html",
        );
    }
    const ssh = which("ssh");
    if (!ssh) {
        problem("SSH: the `ssh` command is not on PATH (the Docker providers use it)", "install OpenSSH's client");
        return;
    }
    // What ssh would do for an instance ID: its effective configuration, nothing connects.
    const g = run(ssh, ["-G", "i-0123456789abcdef0"], 5000);
    const proxy = (/^proxycommand (.*)$/m.exec(g.out) || [])[1];
    if (!proxy || !/ssm start-session/.test(proxy)) {
        problem(
            `SSH: no ProxyCommand through Systems Manager for instance IDs (ssh -G i-0123456789abcdef0: ${proxy ? `proxycommand ${proxy}` : "none"})`,
            fixConfig,
        );
        return;
    }
    found.push("SSH to instance IDs through Systems Manager");
}

const stack = stackName();
checkNode();
checkPulumi();
checkDocker(stack);
checkSsm(stack);
checkNodeClients(stack);
checkPassphrase(stack);
if (!process.argv.includes("--no-ports")) await checkPorts(stack);
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
