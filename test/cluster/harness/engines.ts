// N Docker engines on this machine, each in a network namespace of its own (network.ts), each
// listening on tcp://<node address>:2376 with TLS client-certificate auth (dockerd --tlsverify,
// certificates from test/support/pki.ts), reached as the program's docker.Provider reaches a
// `hosts` entry: its host and certPath. Each engine also has a UNIX socket, which only the
// node's own socket proxy mounts (where a host's /var/run/docker.sock would be).
// Robustness: one run at a time (a lock with the owner's pid); a watchdog, outside the test's
// process group, tears everything down if the test process dies; leftovers of an earlier run
// that died are torn down at the start; teardown.sh is the one way to remove it all.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { cacheDir } from "../../support/paths";
import * as pki from "../../support/pki";
import { pidAlive, signal } from "../../support/proc";
import { fatal, waitFor, within } from "../../support/wait";
import { Docker, dockerCli } from "../../e2e/harness/docker";
import { aptInstall } from "../../e2e/harness/engine";
import * as network from "./network";
import { run } from "./network";

/** Set to `skip` to skip the cluster scenarios explicitly (they never skip silently). */
export const SKIP_ENV = "SD_CLUSTER";
/** The port each engine's API listens on (TLS), as Docker's convention for TLS. */
export const ENGINE_PORT = 2376;
const TEARDOWN = path.join(__dirname, "teardown.sh");

export function log(message: string): void {
    process.stderr.write(`[cluster] ${message}\n`);
}

/** The reason to skip, when the user opted out; false otherwise. */
export function skipReason(): string | false {
    const v = (process.env[SKIP_ENV] ?? "").trim().toLowerCase();
    if (v === "") return false;
    if (v === "skip" || v === "0" || v === "off") return `${SKIP_ENV}=${process.env[SKIP_ENV]}: cluster scenarios skipped on request`;
    throw new Error(`${SKIP_ENV}=${JSON.stringify(process.env[SKIP_ENV])} is not understood; use ${SKIP_ENV}=skip to skip the cluster scenarios`);
}

export interface ClusterNode {
    /** 1-based, as the stack config numbers nodes (edgeNodes). */
    readonly index: number;
    /** The host's name in the stack config (hosts[].name). */
    readonly name: string;
    readonly address: string;
    readonly namespace: string;
    /** The Docker endpoint, as in the stack config: tcp://<address>:2376. */
    readonly host: string;
    /** The client certificate folder for `host` (ca.pem, cert.pem, key.pem), as in the stack config. */
    readonly certPath: string;
    /** The engine, reached at `host` with the certificates of `certPath`. */
    readonly docker: Docker;
    /** The engine's UNIX socket: what the node's socket proxy mounts, nothing else uses it. */
    readonly socket: string;
    readonly dockerdPid: number;
}

function which(name: string): string | undefined {
    for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
        if (!dir) continue;
        const candidate = path.join(dir, name);
        if (fs.existsSync(candidate)) return candidate;
    }
    return undefined;
}

/** What the harness needs of this machine: root, and Debian's docker.io, iproute2, iptables, util-linux. */
async function requireTools(): Promise<string> {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) {
        throw new Error(`the cluster scenarios need root (network namespaces, a bridge, dockerd); to skip them: ${SKIP_ENV}=skip`);
    }
    const missing = (
        [
            ["dockerd", "docker.io"],
            ["ip", "iproute2"],
            ["iptables", "iptables"],
            ["nsenter", "util-linux"],
        ] as const
    ).filter(([bin]) => !which(bin));
    if (missing.length > 0) await aptInstall([...new Set(missing.map(([, pkg]) => pkg))]);
    const dockerd = which("dockerd");
    if (!dockerd) throw new Error("docker.io installed but dockerd not found");
    return dockerd;
}

const baseDir = (): string => path.join(cacheDir(), "cluster");
const lockFile = (): string => path.join(baseDir(), "lock");

/** Runs teardown.sh on `dirs`; resolves with its output (it never fails). */
async function teardown(dirs: string[]): Promise<string> {
    const r = await run("bash", [TEARDOWN, ...dirs], { env: { ...process.env, DOCKER_CLI: dockerCli() }, timeoutMs: 300_000 });
    return `${r.stdout}${r.stderr}`.trim();
}

/**
 * Takes the cluster lock. A live holder: refuse (one cluster at a time: the bridge, the subnet
 * and the names are fixed). A dead one: wait for its watchdog, then tear down what is left.
 */
async function takeLock(): Promise<void> {
    fs.mkdirSync(baseDir(), { recursive: true });
    for (let attempt = 0; attempt < 3; attempt++) {
        try {
            fs.writeFileSync(lockFile(), `${process.pid}\n`, { flag: "wx" });
            break;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
            const [owner, watchdog] = fs.readFileSync(lockFile(), "utf8").trim().split(/\s+/).map(Number);
            if (owner > 0 && owner !== process.pid && pidAlive(owner)) {
                throw new Error(`another cluster run (pid ${owner}) holds ${lockFile()}: one cluster at a time on a machine`);
            }
            if (watchdog > 0 && pidAlive(watchdog)) {
                log(`an earlier run (pid ${owner}) died; waiting for its watchdog (pid ${watchdog}) to tear its cluster down`);
                await within(180_000, () => !pidAlive(watchdog), 500);
            }
            fs.rmSync(lockFile(), { force: true });
        }
    }
    if (!fs.existsSync(lockFile())) throw new Error(`could not take ${lockFile()}`);
    const leftovers = fs
        .readdirSync(baseDir())
        .filter((d) => /^[0-9]+$/.test(d))
        .map((d) => path.join(baseDir(), d));
    const namespaces = await network.existingNamespaces();
    const links = (await run("ip", ["-o", "link", "show"])).stdout.split("\n").filter((l) => l.includes(`${network.PREFIX}-`));
    if (leftovers.length + namespaces.length + links.length > 0) {
        log(`tearing down leftovers of an earlier run: ${leftovers.length} run dirs, ${namespaces.length} namespaces, ${links.length} links`);
        const out = await teardown(leftovers);
        if (out) log(out);
    }
}

// Waits for the test process to go, then tears the run down. Started in a session of its own,
// so that a signal to the test's process group (Ctrl-C) does not take it along.
const WATCHDOG = `
parent="$1"; teardown="$2"; run_dir="$3"; lock="$4"
trap 'exit 0' TERM
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
echo "[cluster] test process $parent gone: tearing down $run_dir" >&2
bash "$teardown" "$run_dir"
if [ "$(cut -d' ' -f1 "$lock" 2>/dev/null)" = "$parent" ]; then rm -f "$lock"; fi
`;

// A relay inside a node's namespace: a UNIX socket here, connections to address:port there.
const RELAY = `
const net = require("net"), fs = require("fs");
const [socket, host, port] = process.argv.slice(1);
fs.rmSync(socket, { force: true });
net.createServer((c) => {
    const u = net.connect(Number(port), host);
    c.pipe(u).pipe(c);
    u.on("error", () => c.destroy());
    c.on("error", () => u.destroy());
}).listen(socket);
`;

function makeCertificates(runDir: string, count: number): void {
    const ca = path.join(runDir, "ca");
    fs.mkdirSync(ca, { recursive: true });
    pki.newKey(ca, "ca-key.pem");
    pki.selfSign(ca, {
        keyFile: "ca-key.pem",
        subject: "/O=service-discovery/CN=cluster test engines CA",
        days: 2,
        extensions: { ca: true, keyUsage: ["keyCertSign", "cRLSign", "digitalSignature"] },
        out: "ca.pem",
    });
    const sign = (dir: string, subject: string, names: string[], use: "serverAuth" | "clientAuth", out: string, key: string): void => {
        pki.newKey(dir, key);
        pki.certificateRequest(dir, { keyFile: key, subject, subjectAltNames: names, out: `${out}.csr` });
        pki.signRequest(dir, {
            requestFile: `${out}.csr`,
            caFile: path.join(ca, "ca.pem"),
            caKeyFile: path.join(ca, "ca-key.pem"),
            days: 2,
            extensions: { ca: false, keyUsage: ["digitalSignature", "keyEncipherment"], extendedKeyUsage: [use], subjectAltNames: names },
            out,
        });
    };
    for (let i = 1; i <= count; i++) {
        const node = path.join(runDir, `node-${i}`);
        const client = path.join(node, "client");
        fs.mkdirSync(client, { recursive: true });
        // The engine's certificate names its address; the client's is what certPath holds.
        sign(node, `/O=service-discovery/CN=node-${i}`, [`IP:${network.addressOf(i)}`], "serverAuth", "server.pem", "server-key.pem");
        sign(client, `/O=service-discovery/CN=pulumi`, [], "clientAuth", "cert.pem", "key.pem");
        fs.copyFileSync(path.join(ca, "ca.pem"), path.join(client, "ca.pem"));
    }
}

export class Cluster {
    private readonly relays: ChildProcess[] = [];
    private released = false;

    private constructor(
        readonly runDir: string,
        readonly nodes: ClusterNode[],
        private readonly watchdog: ChildProcess,
        private readonly dockerds: ChildProcess[],
    ) {}

    /** Where the lock, the watchdog's log and the runs' dirs (data roots, certificates) are. */
    static baseDir(): string {
        return baseDir();
    }

    /** `count` engines, each in its namespace, up and answering over TLS. */
    static async start(count: number): Promise<Cluster> {
        const started = Date.now();
        const dockerd = await requireTools();
        await takeLock();
        const runDir = path.join(baseDir(), String(process.pid));
        let watchdog: ChildProcess | undefined;
        const dockerds: ChildProcess[] = [];
        try {
            await network.checkSubnetFree();
            fs.mkdirSync(runDir, { recursive: true });
            const watchdogLog = fs.openSync(path.join(baseDir(), "watchdog.log"), "a");
            watchdog = spawn("bash", ["-c", WATCHDOG, "sd-cluster-watchdog", String(process.pid), TEARDOWN, runDir, lockFile()], {
                detached: true,
                stdio: ["ignore", watchdogLog, watchdogLog],
                env: { ...process.env, DOCKER_CLI: dockerCli() },
            });
            fs.closeSync(watchdogLog);
            watchdog.unref();
            fs.writeFileSync(lockFile(), `${process.pid} ${watchdog.pid}\n`);

            makeCertificates(runDir, count);
            await network.createBridge();
            const nodes: ClusterNode[] = [];
            for (let i = 1; i <= count; i++) {
                await network.createNode(i);
                const dir = path.join(runDir, `node-${i}`);
                const address = network.addressOf(i);
                const host = `tcp://${address}:${ENGINE_PORT}`;
                const socket = path.join(dir, "docker.sock");
                const out = fs.openSync(path.join(dir, "dockerd.log"), "a");
                const child = spawn(
                    "nsenter",
                    [
                        `--net=${network.namespacePath(i)}`,
                        "--",
                        dockerd,
                        `--data-root=${path.join(dir, "data")}`,
                        `--exec-root=${path.join(dir, "exec")}`,
                        `--pidfile=${path.join(dir, "dockerd.pid")}`,
                        `--host=unix://${socket}`,
                        `--host=${host}`,
                        "--tlsverify",
                        `--tlscacert=${path.join(runDir, "ca", "ca.pem")}`,
                        `--tlscert=${path.join(dir, "server.pem")}`,
                        `--tlskey=${path.join(dir, "server-key.pem")}`,
                        // No default bridge: the program makes its networks. iptables stays on: the
                        // rules (NAT of published ports, masquerading) are this namespace's own.
                        "--bridge=none",
                        `--containerd-namespace=${network.namespaceOf(i)}`,
                        `--containerd-plugins-namespace=${network.namespaceOf(i)}-plugins`,
                        // Where teardown.sh finds this engine's container processes if it dies first.
                        `--cgroup-parent=/${network.namespaceOf(i)}`,
                    ],
                    { stdio: ["ignore", out, out] },
                );
                fs.closeSync(out);
                dockerds.push(child);
                nodes.push({
                    index: i,
                    name: `node-${i}`,
                    address,
                    namespace: network.namespaceOf(i),
                    host,
                    certPath: path.join(dir, "client"),
                    docker: new Docker(host, { certPath: path.join(dir, "client") }),
                    socket,
                    dockerdPid: child.pid ?? 0,
                });
            }
            await Promise.all(
                nodes.map((node, i) =>
                    waitFor(
                        async () => {
                            if (dockerds[i].exitCode !== null) throw fatal(`dockerd of ${node.name} exited (${dockerds[i].exitCode})`);
                            return node.docker.ping(2000);
                        },
                        { timeoutMs: 90_000, intervalMs: 250, message: `dockerd of ${node.name} at ${node.host} (TLS)` },
                    ).catch((e: Error) => {
                        const logFile = path.join(runDir, `node-${node.index}`, "dockerd.log");
                        const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-15).join("\n") : "";
                        throw new Error(`${e.message}; its log ends:\n${tail}`);
                    }),
                ),
            );
            log(
                `${count} engines up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${nodes.map((n) => `${n.name} ${n.host} (netns ${n.namespace})`).join(", ")}`,
            );
            return new Cluster(runDir, nodes, watchdog, dockerds);
        } catch (e) {
            log(`bring-up failed, tearing down: ${(e as Error).message}`);
            for (const d of dockerds) d.kill("SIGTERM");
            await teardown([runDir]);
            if (watchdog?.pid) signal(watchdog.pid, "SIGTERM");
            fs.rmSync(lockFile(), { force: true });
            throw e;
        }
    }

    node(index: number): ClusterNode {
        const n = this.nodes.find((x) => x.index === index);
        if (!n) throw new Error(`no node ${index} in the cluster`);
        return n;
    }

    /** The node whose engine is at `host`, with the client certificates of `certPath`; throws otherwise. */
    byHost(host: string, certPath?: string): ClusterNode {
        const n = this.nodes.find((x) => x.host === host);
        if (!n) throw new Error(`${host} is none of the cluster's engines (${this.nodes.map((x) => x.host).join(", ")})`);
        if (certPath !== undefined && path.resolve(certPath) !== path.resolve(n.certPath)) {
            throw new Error(`${host}: certPath ${certPath} is not the client certificate folder of ${n.name} (${n.certPath})`);
        }
        return n;
    }

    /**
     * A way in to `address:port` inside node `index`'s namespace from this machine: a relay in the
     * namespace, listening on a UNIX socket here. Returns the socket as a DOCKER_HOST-style endpoint.
     */
    async relay(index: number, address: string, port: number): Promise<string> {
        const socket = path.join(this.runDir, `node-${index}`, `relay-${address}-${port}.sock`);
        const child = spawn("nsenter", [`--net=${network.namespacePath(index)}`, "--", process.execPath, "-e", RELAY, socket, address, String(port)], {
            stdio: "ignore",
        });
        this.relays.push(child);
        await waitFor(() => fs.existsSync(socket), {
            timeoutMs: 10_000,
            intervalMs: 50,
            message: `the relay to ${address}:${port} in ${network.namespaceOf(index)}`,
        });
        return `unix://${socket}`;
    }

    /** Everything torn down: containers, engines, namespaces, veths, bridge, run dir, lock. */
    async release(): Promise<void> {
        if (this.released) return;
        this.released = true;
        for (const r of this.relays) r.kill("SIGTERM");
        const out = await teardown([this.runDir]);
        if (out) log(out);
        // teardown.sh stopped them; one that did not go is not left running.
        for (const d of this.dockerds) if (d.exitCode === null && d.signalCode === null) d.kill("SIGKILL");
        if (this.watchdog.pid) signal(this.watchdog.pid, "SIGTERM");
        if (fs.existsSync(lockFile()) && fs.readFileSync(lockFile(), "utf8").split(/\s+/)[0] === String(process.pid)) fs.rmSync(lockFile(), { force: true });
        log("cluster torn down");
    }
}
