// The Docker engine the scenarios run on. The engine of the machine when one answers
// (DOCKER_HOST, else the default socket); otherwise, as root, Debian's docker.io is installed
// if missing and a dockerd of our own is started, isolated: data root under the cache dir
// (images persist between runs), exec root / pid file / socket in a temp dir, no iptables
// rules, no NAT, no default bridge. A watchdog stops it if the test process disappears.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cacheDir } from "../../support/paths";
import { signal, takePidLock } from "../../support/proc";
import { fatal, waitFor, within } from "../../support/wait";
import { Docker, run } from "./docker";

/** Set to `skip` to skip the real-engine scenarios explicitly (they never skip silently). */
export const SKIP_ENV = "SD_E2E";
/** The label on everything the harness creates on an engine. */
export const E2E_LABEL = "io.service-discovery.e2e";

export function log(message: string): void {
    process.stderr.write(`[e2e] ${message}\n`);
}

/** The reason to skip, when the user opted out; false otherwise. */
export function skipReason(): string | false {
    const v = (process.env[SKIP_ENV] ?? "").trim().toLowerCase();
    if (v === "") return false;
    if (v === "skip" || v === "0" || v === "off") return `${SKIP_ENV}=${process.env[SKIP_ENV]}: real-engine scenarios skipped on request`;
    throw new Error(`${SKIP_ENV}=${JSON.stringify(process.env[SKIP_ENV])} is not understood; use ${SKIP_ENV}=skip to skip the real-engine scenarios`);
}

export interface Engine {
    readonly docker: Docker;
    /** For messages: which engine this is. */
    readonly description: string;
    /** True when the harness started this dockerd (and stops it on release). */
    readonly owned: boolean;
    release(): Promise<void>;
}

const DEFAULT_SOCKET = "unix:///var/run/docker.sock";

function howToGetOne(reason: string): Error {
    return new Error(
        `no Docker engine for the e2e scenarios: ${reason}\n` +
            `  - start Docker on this machine, or point DOCKER_HOST at an engine (unix:// or tcp://), or\n` +
            `  - run the suite as root on Debian/Ubuntu: it installs docker.io when missing and starts its own isolated dockerd.\n` +
            `  To skip the real-engine scenarios explicitly: ${SKIP_ENV}=skip npm test`,
    );
}

function which(name: string): string | undefined {
    for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin", "/sbin"]) {
        if (!dir) continue;
        const candidate = path.join(dir, name);
        try {
            fs.accessSync(candidate, fs.constants.X_OK);
            return candidate;
        } catch {
            /* next */
        }
    }
    return undefined;
}

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0;

/** apt-get install as root; throws with apt's output when it fails. */
export async function aptInstall(packages: string[]): Promise<void> {
    if (!isRoot()) throw new Error(`${packages.join(", ")} missing and not root: install ${packages.join(" ")} (apt-get install ${packages.join(" ")})`);
    log(`installing Debian packages: ${packages.join(" ")}`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const update = await run("apt-get", ["update", "-qq"], { env });
    if (update.code !== 0) throw new Error(`apt-get update failed:\n${update.stderr}`);
    const install = await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], { env });
    if (install.code !== 0) throw new Error(`apt-get install ${packages.join(" ")} failed:\n${install.stderr || install.stdout}`);
}

/** The cached data roots (folders of the cache dir), each held by one live run at a time. */
const DATA_ROOTS = ["docker", "docker-2"] as const;

// Runs dockerd and stops it when told (TERM) or when the test process is gone; in the
// latter case it also removes the run's temp dir and releases the data root lock.
const WATCHDOG = `
parent="$1"; tmp="$2"; lock="$3"; shift 3
"$@" & d=$!
trap 'kill -TERM "$d" 2>/dev/null; wait "$d"; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$d" 2>/dev/null; do sleep 1; done
kill -TERM "$d" 2>/dev/null; wait "$d"
if ! kill -0 "$parent" 2>/dev/null; then
    rm -rf "$tmp"
    if [ -n "$lock" ] && [ "$(cat "$lock" 2>/dev/null)" = "$parent" ]; then rm -f "$lock"; fi
fi
`;

async function startDockerd(): Promise<Engine> {
    let dockerd = which("dockerd");
    if (!dockerd) {
        await aptInstall(["docker.io"]);
        // A packaged engine may have been started by the init system.
        const system = new Docker(DEFAULT_SOCKET);
        if (await system.ping()) return { docker: system, description: `the engine at ${DEFAULT_SOCKET}`, owned: false, release: async () => {} };
        dockerd = which("dockerd");
        if (!dockerd) throw new Error("docker.io installed but dockerd not found");
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-engine-"));
    const cache = cacheDir();
    // The first cached data root no other live run holds (npm test runs the Docker and the
    // cluster layers at once, each with an engine of its own); a temporary one when all are held.
    const slot = DATA_ROOTS.find((name) => takePidLock(path.join(cache, `${name}.lock`)));
    const locked = slot !== undefined;
    const lockFile = locked ? path.join(cache, `${slot}.lock`) : "";
    const dataRoot = locked ? path.join(cache, slot) : path.join(tmp, "data");
    if (!locked) log(`the ${DATA_ROOTS.length} cached data roots are in use by other runs; using a temporary one (cold images)`);
    fs.mkdirSync(dataRoot, { recursive: true });
    const socket = path.join(tmp, "docker.sock");
    const logFile = path.join(tmp, "dockerd.log");
    const args = [
        `--data-root=${dataRoot}`,
        `--exec-root=${path.join(tmp, "exec")}`,
        `--pidfile=${path.join(tmp, "dockerd.pid")}`,
        `--host=unix://${socket}`,
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
        // If a system containerd is running, keep our containers apart from anyone else's.
        "--containerd-namespace=sd-e2e",
        "--containerd-plugins-namespace=sd-e2e-plugins",
    ];
    const out = fs.openSync(logFile, "a");
    const child: ChildProcess = spawn("bash", ["-c", WATCHDOG, "sd-e2e-dockerd", String(process.pid), tmp, locked ? lockFile : "", dockerd, ...args], {
        stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    let exited = false;
    child.on("exit", () => (exited = true));
    const docker = new Docker(`unix://${socket}`);
    const started = Date.now();
    const cleanupFiles = (): void => {
        try {
            fs.rmSync(tmp, { recursive: true, force: true });
        } catch {
            /* mounts may linger; best effort */
        }
        if (locked) fs.rmSync(lockFile, { force: true });
    };
    const release = async (): Promise<void> => {
        if (!exited) {
            child.kill("SIGTERM");
            if (!(await within(30_000, () => exited, 200))) {
                const pid = Number(fs.readFileSync(path.join(tmp, "dockerd.pid"), "utf8"));
                if (pid > 0) signal(pid, "SIGKILL");
                child.kill("SIGKILL");
            }
        }
        cleanupFiles();
    };
    await waitFor(
        async () => {
            if (exited) throw fatal("dockerd exited");
            return docker.ping(1000);
        },
        { timeoutMs: 60_000, intervalMs: 250, message: "dockerd" },
    ).catch(async () => {
        const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-15).join("\n") : "";
        await release();
        throw new Error(`dockerd did not start${exited ? " (it exited)" : " within 60 s"}; its log ends:\n${tail}`);
    });
    log(`started dockerd ${dockerd} in ${((Date.now() - started) / 1000).toFixed(1)} s (data root ${dataRoot})`);
    return { docker, description: `the harness's own dockerd (unix://${socket})`, owned: true, release };
}

/** The engine to test on; fails with how to get one when there is none. */
export async function acquireEngine(): Promise<Engine> {
    const candidates = process.env.DOCKER_HOST ? [process.env.DOCKER_HOST] : [DEFAULT_SOCKET];
    for (const host of candidates) {
        const docker = new Docker(host);
        if (await docker.ping()) {
            log(`using the Docker engine at ${host}`);
            return { docker, description: `the engine at ${host}`, owned: false, release: async () => {} };
        }
        if (process.env.DOCKER_HOST) log(`DOCKER_HOST=${host} does not answer; starting an engine of our own`);
    }
    if (!isRoot()) throw howToGetOne(`nothing answers at ${candidates.join(" or ")}, and starting dockerd needs root`);
    try {
        return await startDockerd();
    } catch (e) {
        throw howToGetOne((e as Error).message);
    }
}
