// Images the stack needs that cannot be pulled here, made locally:
//   debian:bookworm-slim  from `debootstrap --variant=minbase` (tarball cached) + docker import,
//                         with the apt sources of the official image (bookworm, its updates and
//                         security updates, from this machine's mirrors) so that the Dockerfiles'
//                         pinned package versions install
//   the Consul image      built from the pinned, locally built consul binary (test/e2e/consul)
// and, in the gateway's build context, a Linux Node.js 22 binary as `node` (for
// gateway.nodeSource=context) and the controller's bundle. The shipped Dockerfiles are built
// unchanged: their base image is pinned by digest (ARG BASE_IMAGE), which cannot be pulled here,
// so every build of them is given this local stand-in as the build arg BASE_IMAGE
// (LOCAL_BASE_BUILD_ARGS; the applier adds it to the builds the program declares).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CONSUL_VERSION } from "../../../components/config";
import { GATEWAY_IMAGE_CONTEXT } from "../../../components/gateway";
import { bundleController } from "../../../components/images/gateway/bundle";
import { cacheDir, ROOT } from "../../support/paths";
import { lockHolder, takePidLock } from "../../support/proc";
import { readTool } from "../../support/tools";
import { sleep } from "../../support/wait";
import { Docker, run } from "./docker";
import { aptInstall, log } from "./engine";

export const BASE_IMAGE = "debian:bookworm-slim";
/** The build arg that makes a shipped Dockerfile start FROM the local stand-in instead of its pinned digest. */
export const LOCAL_BASE_BUILD_ARGS: Readonly<Record<string, string>> = { BASE_IMAGE };
/** LOCAL_BASE_BUILD_ARGS as `docker build` flags, for the tests that build a shipped Dockerfile themselves. */
export const localBaseBuildArgs = (): string[] => Object.entries(LOCAL_BASE_BUILD_ARGS).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
const BASE_SOURCES_LABEL = "io.service-discovery.e2e.apt-sources-sha256";
/** The imported root file system, before the apt sources are added. */
const MINBASE_IMAGE = "service-discovery-test/debian-minbase:bookworm";
export const CONSUL_TEST_IMAGE = `service-discovery-test/consul:${CONSUL_VERSION}`;
const CONSUL_HASH_LABEL = "io.service-discovery.e2e.consul-sha256";

export interface Tools {
    consul: string;
}

/** The binaries test/tools/install.sh built, that the images are made from. */
export function readTools(): Tools {
    return { consul: readTool("CONSUL_BIN") };
}

/**
 * The Debian mirror this machine's apt uses, for debootstrap: SD_E2E_DEBIAN_MIRROR, else the
 * first `deb` source for bookworm in /etc/apt/sources.list(.d), else the first Debian archive.
 */
export function debianMirror(): string {
    if (process.env.SD_E2E_DEBIAN_MIRROR) return process.env.SD_E2E_DEBIAN_MIRROR;
    const entries = aptEntries();
    const archive = (uri: string): boolean => /^https?:\/\//.test(uri) && !/security/.test(uri);
    const found = entries.find((e) => archive(e.uri) && e.suites.includes("bookworm")) ?? entries.find((e) => archive(e.uri) && /\/debian\/?$/.test(e.uri));
    if (!found) {
        throw new Error(
            "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/: set SD_E2E_DEBIAN_MIRROR to a Debian archive URL for debootstrap",
        );
    }
    return found.uri;
}

/**
 * The mirror of Debian's security updates this machine's apt uses: SD_E2E_DEBIAN_SECURITY_MIRROR,
 * else the first `deb` source for bookworm-security; undefined when it has none.
 */
export function debianSecurityMirror(): string | undefined {
    if (process.env.SD_E2E_DEBIAN_SECURITY_MIRROR) return process.env.SD_E2E_DEBIAN_SECURITY_MIRROR;
    return aptEntries().find((e) => /^https?:\/\//.test(e.uri) && e.suites.includes("bookworm-security"))?.uri;
}

/**
 * The stand-in's apt sources, as the official image has them (deb822, debian.sources): bookworm
 * and bookworm-updates from the Debian mirror, bookworm-security from the security mirror.
 */
export function baseAptSources(mirror: string, securityMirror: string | undefined): string {
    const stanza = (uri: string, suites: string) =>
        `Types: deb\nURIs: ${uri}\nSuites: ${suites}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`;
    return [stanza(mirror, "bookworm bookworm-updates"), ...(securityMirror ? [stanza(securityMirror, "bookworm-security")] : [])].join("\n");
}

/** The `deb` sources of this machine's apt (sources.list and sources.list.d, both formats). */
function aptEntries(): { uri: string; suites: string[] }[] {
    const entries: { uri: string; suites: string[] }[] = [];
    const files = ["/etc/apt/sources.list"];
    const dir = "/etc/apt/sources.list.d";
    if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir).sort()) files.push(path.join(dir, f));
    for (const file of files) {
        if (!fs.existsSync(file)) continue;
        const text = fs.readFileSync(file, "utf8");
        if (file.endsWith(".sources")) {
            for (const stanza of text.split(/\n\s*\n/)) {
                const field = (name: string): string[] => {
                    const m = new RegExp(`^${name}:\\s*(.*)$`, "mi").exec(stanza);
                    return m ? m[1].trim().split(/\s+/) : [];
                };
                if (!field("Types").includes("deb") || field("Enabled")[0] === "no") continue;
                for (const uri of field("URIs")) entries.push({ uri, suites: field("Suites") });
            }
        } else if (file.endsWith(".list")) {
            for (const line of text.split("\n")) {
                const m = /^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
                if (m) entries.push({ uri: m[2], suites: [m[3]] });
            }
        }
    }
    return entries;
}

/** debian:bookworm-slim on the engine, made from a cached minbase root file system and the official image's apt sources. */
export async function ensureBaseImage(docker: Docker): Promise<void> {
    const mirror = debianMirror();
    const security = debianSecurityMirror();
    if (!security)
        log("no bookworm-security source found on this machine (SD_E2E_DEBIAN_SECURITY_MIRROR): the images' pinned security versions may not install");
    const sources = baseAptSources(mirror, security);
    const hash = createHash("sha256").update(sources).digest("hex");
    const existing = await docker.imageExists(BASE_IMAGE);
    // A pulled image (it has a registry digest) is the real one: kept. A stand-in is made again when its sources differ.
    if ((existing?.RepoDigests ?? []).length > 0 || existing?.Config?.Labels?.[BASE_SOURCES_LABEL] === hash) return;
    await ensureMinbaseImage(docker, mirror);
    const started = Date.now();
    const context = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-base-"));
    try {
        fs.writeFileSync(path.join(context, "debian.sources"), sources);
        fs.writeFileSync(
            path.join(context, "Dockerfile"),
            `FROM ${MINBASE_IMAGE}\nCOPY debian.sources /etc/apt/sources.list.d/debian.sources\nRUN rm -f /etc/apt/sources.list\n`,
        );
        await docker.cli(["build", "--network", "host", "--label", `${BASE_SOURCES_LABEL}=${hash}`, "-t", BASE_IMAGE, context], { timeoutMs: 300_000 });
    } finally {
        fs.rmSync(context, { recursive: true, force: true });
    }
    log(`made ${BASE_IMAGE} (the minbase root file system with the official image's apt sources) in ${since(started)}`);
}

/**
 * The minbase root file system as a tarball in the cache (debootstrap, about a minute). One run
 * makes it while others that need it at the same time (npm test's Docker and cluster layers)
 * wait for it: the lock file beside it holds the maker's pid, and one left by a dead run is taken over.
 */
async function makeRootfs(tarball: string, mirror: string): Promise<void> {
    const lock = `${tarball}.lock`;
    const deadline = Date.now() + 15 * 60_000;
    let waiting = false;
    for (;;) {
        if (fs.existsSync(tarball)) return;
        if (takePidLock(lock)) break;
        const holder = lockHolder(lock);
        if (Date.now() > deadline) throw new Error(`${tarball}: run ${holder} has been making it for 15 minutes (lock ${lock})`);
        if (!waiting) log(`waiting for run ${holder}, which is making ${tarball}`);
        waiting = true;
        await sleep(1000);
    }
    const partial = `${tarball}.${process.pid}.tmp`;
    try {
        if (fs.existsSync(tarball)) return; // made by the run that held the lock before
        if (!fs.existsSync("/usr/sbin/debootstrap")) {
            try {
                await aptInstall(["debootstrap"]);
            } catch (e) {
                throw new Error(
                    `${BASE_IMAGE} is not on the test engine and cannot be made here (${(e as Error).message}); ` +
                        `either load it yourself (e.g. docker pull ${BASE_IMAGE}: the harness never pulls) or run the suite as root on Debian/Ubuntu, where it is made with debootstrap`,
                );
            }
        }
        const rootfs = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-rootfs-"));
        const started = Date.now();
        log(`making ${BASE_IMAGE}: debootstrap --variant=minbase bookworm from the apt mirror (about a minute, cached afterwards)`);
        try {
            const boot = await run("debootstrap", ["--variant=minbase", "bookworm", rootfs, mirror]);
            if (boot.code !== 0)
                throw new Error(`debootstrap failed (exit ${boot.code}):\n${(boot.stderr || boot.stdout).trim().split("\n").slice(-20).join("\n")}`);
            // Like the slim images: no package cache, no package lists.
            const tar = await run("tar", ["-C", rootfs, "--exclude=./var/cache/apt/archives/*.deb", "--exclude=./var/lib/apt/lists/*", "-cf", partial, "."]);
            if (tar.code !== 0) throw new Error(`tar failed: ${tar.stderr}`);
            fs.renameSync(partial, tarball);
        } finally {
            fs.rmSync(rootfs, { recursive: true, force: true });
            fs.rmSync(partial, { force: true });
        }
        log(`root file system ready in ${since(started)} (${tarball})`);
    } finally {
        fs.rmSync(lock, { force: true });
    }
}

/**
 * The cached minbase root file system's tarball, made when missing (npm test makes it ahead, in
 * the background, while the tools build: `node --import tsx test/e2e/harness/images.ts rootfs`).
 */
export async function ensureRootfs(mirror = debianMirror()): Promise<string> {
    const dir = path.join(cacheDir(), "rootfs");
    fs.mkdirSync(dir, { recursive: true });
    const tarball = path.join(dir, "debian-bookworm-minbase.tar");
    if (!fs.existsSync(tarball)) await makeRootfs(tarball, mirror);
    return tarball;
}

/** The minbase root file system as an image (MINBASE_IMAGE), imported from its cached tarball. */
async function ensureMinbaseImage(docker: Docker, mirror: string): Promise<void> {
    if (await docker.imageExists(MINBASE_IMAGE)) return;
    const tarball = await ensureRootfs(mirror);
    const importStarted = Date.now();
    log(`making ${BASE_IMAGE}: docker import of the cached root file system ${tarball}`);
    await docker.cli(["import", tarball, MINBASE_IMAGE], { timeoutMs: 300_000 });
    log(`imported ${MINBASE_IMAGE} in ${since(importStarted)}`);
}

/** Seconds since a Date.now() value, for the progress lines: "12.3 s". */
function since(started: number): string {
    return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** The stand-in for hashicorp/consul: our pinned consul binary on debian:bookworm-slim. */
export async function ensureConsulImage(docker: Docker, consulBin: string): Promise<string> {
    // The binary and the stand-in's own files: a change to either rebuilds the image.
    const standIn = path.join(__dirname, "..", "consul");
    const hash = [consulBin, path.join(standIn, "Dockerfile"), path.join(standIn, "docker-entrypoint.sh")].map(sha256).join("-").slice(0, 200);
    const existing = await docker.imageExists(CONSUL_TEST_IMAGE);
    if (existing?.Config?.Labels?.[CONSUL_HASH_LABEL] === hash) return CONSUL_TEST_IMAGE;
    const started = Date.now();
    log(
        `building ${CONSUL_TEST_IMAGE} (${existing ? "its binary or files changed" : "not on the engine"}): docker build of test/e2e/consul with ${consulBin} on ${BASE_IMAGE}`,
    );
    const context = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-consul-"));
    try {
        fs.copyFileSync(path.join(standIn, "Dockerfile"), path.join(context, "Dockerfile"));
        fs.copyFileSync(path.join(standIn, "docker-entrypoint.sh"), path.join(context, "docker-entrypoint.sh"));
        fs.chmodSync(path.join(context, "docker-entrypoint.sh"), 0o755);
        fs.copyFileSync(consulBin, path.join(context, "consul"));
        fs.chmodSync(path.join(context, "consul"), 0o755);
        await docker.cli(["build", "--network", "host", "--label", `${CONSUL_HASH_LABEL}=${hash}`, "-t", CONSUL_TEST_IMAGE, context], { timeoutMs: 600_000 });
    } finally {
        fs.rmSync(context, { recursive: true, force: true });
    }
    log(`built ${CONSUL_TEST_IMAGE} in ${since(started)}`);
    return CONSUL_TEST_IMAGE;
}

/** The major version of Node.js the gateway image runs (the bundle's target). */
const GATEWAY_NODE_MAJOR = 22;

/** A Node.js binary's major version, by running it; undefined when it does not run here. */
function nodeMajor(binary: string): number | undefined {
    try {
        return Number(execFileSync(binary, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8", timeout: 30_000 }).trim());
    } catch {
        return undefined;
    }
}

/**
 * A Linux Node.js binary of at least the gateway's major version for this machine's
 * architecture (the test engine's): the one running the tests, else the npm build of Node.js 22
 * that CI caches when the machine's own Node.js is older (.ci/run).
 */
export function gatewayNodeBinary(): string {
    const major = Number(process.versions.node.split(".")[0]);
    if (process.platform === "linux" && major >= GATEWAY_NODE_MAJOR) return process.execPath;
    const pkg = `node-linux-${process.arch}`;
    const prefix = path.join(cacheDir(), `node-${GATEWAY_NODE_MAJOR}`);
    const cached = path.join(prefix, "node_modules", pkg, "bin", "node");
    const cachedMajor = fs.existsSync(cached) ? nodeMajor(cached) : undefined;
    if (cachedMajor !== undefined && cachedMajor >= GATEWAY_NODE_MAJOR) return cached;
    throw new Error(
        `the gateway image (gateway.nodeSource=context) needs a Linux Node.js ${GATEWAY_NODE_MAJOR} binary for ${process.arch}: ` +
            `this is Node.js ${process.versions.node} on ${process.platform}, and ${cached} ${!fs.existsSync(cached) ? "does not exist" : cachedMajor === undefined ? "does not run here" : `is Node.js ${cachedMajor}`}; ` +
            `run the tests with Node.js ${GATEWAY_NODE_MAJOR} or later on Linux, or install it there: npm install --prefix ${prefix} ${pkg}@${GATEWAY_NODE_MAJOR}`,
    );
}

/**
 * Readies the gateway's build context the way an offline user does: a Node.js binary as `node`
 * (where the Dockerfile's `context` source takes it) and the controller's bundle.
 */
export function prepareGatewayContext(): void {
    const binary = gatewayNodeBinary();
    const target = path.join(ROOT, GATEWAY_IMAGE_CONTEXT, "node");
    if (!(fs.existsSync(target) && sha256(target) === sha256(binary))) {
        // Per process, then renamed: runs preparing it at once never share a partial file.
        const partial = `${target}.${process.pid}.tmp`;
        fs.copyFileSync(binary, partial);
        fs.chmodSync(partial, 0o755);
        fs.renameSync(partial, target);
        log(`placed ${binary} in the gateway's build context as node`);
    }
    bundleController();
}

// `node --import tsx test/e2e/harness/images.ts rootfs`: the root file system's tarball only.
if (require.main === module) {
    if (process.argv[2] !== "rootfs") {
        process.stderr.write("usage: node --import tsx test/e2e/harness/images.ts rootfs\n");
        process.exit(2);
    }
    ensureRootfs().then(
        () => process.exit(0),
        (e: Error) => {
            log(`the root file system was not made ahead: ${e.message}`);
            process.exit(1);
        },
    );
}
