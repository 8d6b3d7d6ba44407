// The cluster's network, made of this machine's own parts: one Linux bridge in the root network
// namespace (the "switch", 10.213.0.1/24) and, per node, a network namespace joined to it by a
// veth pair, with the node's address on its end (10.213.0.11, .12, ...). Each node's dockerd runs
// in its namespace: its iptables rules (NAT for published ports, masquerading of its
// containers' traffic) and its bridges are the namespace's own, as on separate machines.
// Faults are made here too: a node's link cut (its cable pulled) and a partition from chosen
// peers (iptables rules inside its namespace, in chains of their own, removed when it heals).
import { spawn } from "node:child_process";
import * as fs from "node:fs";

export interface ExecResult {
    code: number;
    stdout: string;
    stderr: string;
}

/** Runs a command with no input; resolves with its output whatever its exit code. */
export function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
        child.on("error", (e) => {
            if (timer) clearTimeout(timer);
            reject(new Error(`cannot run ${cmd}: ${e.message}`));
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
        });
    });
}

/** Everything the cluster harness makes on this machine is named with this prefix. */
export const PREFIX = "sd-cl";
export const BRIDGE = `${PREFIX}-br`;
export const SUBNET = "10.213.0.0/24";
export const BRIDGE_ADDRESS = "10.213.0.1";
/** The chain (raw and mangle tables of a node's namespace) that holds a partition's rules. */
const PARTITION_CHAIN = "SD_CL_PARTITION";

export const namespaceOf = (index: number): string => `${PREFIX}-${index}`;
export const vethOf = (index: number): string => `${PREFIX}-v${index}`;
export const addressOf = (index: number): string => `10.213.0.${10 + index}`;
/** The netns file nsenter enters (ip netns add bind-mounts it there). */
export const namespacePath = (index: number): string => `/run/netns/${namespaceOf(index)}`;

/** Runs a command; throws with its output when it fails. */
export async function sh(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const r = await run(cmd, args, { timeoutMs });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
}

/** A command inside node `index`'s network namespace. */
export function inNode(index: number, cmd: string, args: readonly string[], timeoutMs?: number): Promise<string> {
    return sh("ip", ["netns", "exec", namespaceOf(index), cmd, ...args], timeoutMs);
}

/** Refuses to start when 10.213.0.0/24 is routed here by anything but our bridge. */
export async function checkSubnetFree(): Promise<void> {
    const routes = await sh("ip", ["-4", "route", "show", "to", "match", BRIDGE_ADDRESS]);
    const clash = routes
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("default") && !l.includes(`dev ${BRIDGE}`));
    if (clash.length > 0)
        throw new Error(`the cluster's subnet ${SUBNET} is already routed on this machine (${clash.join("; ")}); the cluster harness needs it free`);
}

export async function createBridge(): Promise<void> {
    await sh("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    await sh("ip", ["addr", "add", `${BRIDGE_ADDRESS}/24`, "dev", BRIDGE]);
    await sh("ip", ["link", "set", BRIDGE, "up"]);
}

/** Node `index`'s namespace, its veth pair onto the bridge and its address (eth0 inside). */
export async function createNode(index: number): Promise<void> {
    const ns = namespaceOf(index);
    await sh("ip", ["netns", "add", ns]);
    await sh("ip", ["link", "add", vethOf(index), "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await sh("ip", ["link", "set", vethOf(index), "master", BRIDGE, "up"]);
    await sh("ip", ["-n", ns, "addr", "add", `${addressOf(index)}/24`, "dev", "eth0"]);
    await sh("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    await sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    // The bridge's address is the way out (to this machine, which runs the tests and the builds).
    await sh("ip", ["-n", ns, "route", "add", "default", "via", BRIDGE_ADDRESS]);
}

/** The node's cable pulled: its end of the veth pair down on the bridge side; nothing passes either way. */
export async function cutLink(index: number): Promise<void> {
    await sh("ip", ["link", "set", vethOf(index), "down"]);
}

export async function restoreLink(index: number): Promise<void> {
    await sh("ip", ["link", "set", vethOf(index), "up"]);
}

export async function linkIsUp(index: number): Promise<boolean> {
    return /\bstate UP\b|,UP[,>]/.test(await sh("ip", ["link", "show", vethOf(index)]));
}

/**
 * Cuts node `index` off from `peers` on `ports` (tcp and udp), both ways, inside its namespace:
 * packets from a peer with either port on them are dropped as they arrive (raw PREROUTING,
 * before NAT), packets to a peer as they leave (mangle POSTROUTING, after the containers'
 * masquerading). Everything else (other ports, other addresses) passes as before.
 */
export async function partition(index: number, peers: readonly string[], ports: readonly number[]): Promise<void> {
    const list = ports.join(",");
    for (const [table, hook] of [
        ["raw", "PREROUTING"],
        ["mangle", "POSTROUTING"],
    ] as const) {
        await inNode(index, "iptables", ["-w", "-t", table, "-N", PARTITION_CHAIN]).catch(() => undefined);
        await inNode(index, "iptables", ["-w", "-t", table, "-F", PARTITION_CHAIN]);
        const hooked = await run("ip", ["netns", "exec", namespaceOf(index), "iptables", "-w", "-t", table, "-C", hook, "-j", PARTITION_CHAIN]);
        if (hooked.code !== 0) await inNode(index, "iptables", ["-w", "-t", table, "-I", hook, "1", "-j", PARTITION_CHAIN]);
        for (const peer of peers) {
            for (const proto of ["tcp", "udp"]) {
                const match = hook === "PREROUTING" ? ["-i", "eth0", "-s", peer] : ["-o", "eth0", "-d", peer];
                await inNode(index, "iptables", [
                    "-w",
                    "-t",
                    table,
                    "-A",
                    PARTITION_CHAIN,
                    ...match,
                    "-p",
                    proto,
                    "-m",
                    "multiport",
                    "--ports",
                    list,
                    "-j",
                    "DROP",
                ]);
            }
        }
    }
}

/** Removes the partition's rules (the chains stay, empty). */
export async function heal(index: number): Promise<void> {
    for (const table of ["raw", "mangle"]) await run("ip", ["netns", "exec", namespaceOf(index), "iptables", "-w", "-t", table, "-F", PARTITION_CHAIN]);
}

/** Packets the partition's rules dropped so far on node `index` (both directions). */
export async function partitionDrops(index: number): Promise<number> {
    let total = 0;
    for (const table of ["raw", "mangle"]) {
        const out = await run("ip", ["netns", "exec", namespaceOf(index), "iptables", "-w", "-t", table, "-L", PARTITION_CHAIN, "-n", "-v", "-x"]);
        for (const line of out.stdout.split("\n").slice(2)) {
            const packets = Number(line.trim().split(/\s+/)[0]);
            if (Number.isFinite(packets)) total += packets;
        }
    }
    return total;
}

/** Namespaces of ours that exist now (`ip netns list`). */
export async function existingNamespaces(): Promise<string[]> {
    if (!fs.existsSync("/run/netns")) return [];
    return fs.readdirSync("/run/netns").filter((n) => n.startsWith(`${PREFIX}-`));
}
