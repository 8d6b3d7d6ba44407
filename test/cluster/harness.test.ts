// The cluster harness itself (test/cluster/harness): engines in network namespaces of their own,
// reachable over TLS with client certificates only, a container on one node reaching another
// node's published port, and nothing left on the machine however a run ends: released, killed
// (the watchdog tears down), or killed with its watchdog (the next run's start tears down).
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { httpRequest } from "../support/http";
import { pidAlive, signal } from "../support/proc";
import { waitFor } from "../support/wait";
import { Docker } from "../e2e/harness/docker";
import { Cluster, skipReason } from "./harness/engines";
import { ImageShop } from "./harness/images";
import * as network from "./harness/network";

/** What is left of the harness on this machine: namespaces, links, run dirs, engine cgroups. */
async function leftovers(): Promise<string[]> {
    const out: string[] = (await network.existingNamespaces()).map((n) => `netns ${n}`);
    const links = (await network.run("ip", ["-o", "link", "show"])).stdout;
    for (const m of links.matchAll(/^[0-9]+: (sd-cl-[^:@]+)/gm)) out.push(`link ${m[1]}`);
    const base = Cluster.baseDir();
    if (fs.existsSync(base)) for (const d of fs.readdirSync(base).filter((x) => /^[0-9]+$/.test(x))) out.push(`run dir ${d}`);
    for (const controller of ["pids", "memory", "cpu"]) {
        const dir = `/sys/fs/cgroup/${controller}`;
        if (fs.existsSync(dir)) for (const d of fs.readdirSync(dir).filter((x) => x.startsWith(`${network.PREFIX}-`))) out.push(`cgroup ${controller}/${d}`);
    }
    return out;
}

/** Whether a process runs (a zombie left for its new parent to reap does not). */
function running(pid: number): boolean {
    if (!pidAlive(pid)) return false;
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
        return false;
    }
}

/** A child process holding a cluster of `nodes` engines (harness/hold.ts), once it is up. */
async function heldCluster(nodes: number): Promise<{ pid: number; runDir: string; dockerdPids: number[] }> {
    const child = fork(path.join(__dirname, "harness", "hold.ts"), [], {
        execArgv: ["--import", "tsx"],
        env: { ...process.env, CLUSTER_NODES: String(nodes) },
        stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const line = await waitFor(
        () => {
            if (child.exitCode !== null) throw new Error(`the holding process exited (${child.exitCode}): ${err}`);
            return out.includes("\n") ? out.split("\n")[0] : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100, message: "the held cluster" },
    );
    return { pid: child.pid!, ...JSON.parse(line) };
}

describe("the cluster harness: engines in network namespaces, TLS only, nothing left behind", { skip: skipReason() }, () => {
    let cluster: Cluster | undefined;
    after(async () => cluster?.release(), { timeout: 120_000 });

    test(
        "engines in namespaces of their own: one address each, TLS with client certificates only, a container reaches another node's published port",
        { timeout: 5 * 60_000 },
        async () => {
            cluster = await Cluster.start(2);
            const [one, two] = cluster.nodes;
            assert.notEqual(one.address, two.address);
            for (const node of cluster.nodes) {
                assert.equal(await node.docker.ping(), true, `${node.host} with its client certificate`);
                assert.equal(await new Docker(node.host).ping(2000), false, `${node.host} in plain HTTP`);
                const ca = fs.readFileSync(path.join(node.certPath, "ca.pem"), "utf8");
                const noCertificate = await httpRequest(`https://${node.address}:2376/_ping`, { ca, timeoutMs: 3000 }).then(
                    (r) => `answered ${r.status}`,
                    (e: Error) => e.message,
                );
                assert.doesNotMatch(noCertificate, /answered/, `${node.host} without a client certificate`);
                // The engine listens in its namespace only: its address is not this machine's.
                const addresses = await network.inNode(node.index, "ip", ["-4", "-o", "addr", "show", "dev", "eth0"]);
                assert.match(addresses, new RegExp(`inet ${node.address.replace(/\./g, "\\.")}/24`));
            }
            // A container on node 1 reaches a port published on node 2's address (NAT in node 2's
            // namespace, masquerading in node 1's), as agents and gateways do across nodes.
            const images = await ImageShop.open();
            const image = images.consulImage;
            try {
                for (const node of cluster.nodes) await images.ship(image, node.docker);
            } finally {
                await images.release();
            }
            // --bridge=none: no default network; containers join one of their own, as the stack's do.
            for (const node of cluster.nodes) await node.docker.cli(["network", "create", "--subnet", "172.28.0.0/24", "t"]);
            await two.docker.cli([
                "run",
                "-d",
                "--name",
                "listener",
                "--network",
                "t",
                "-p",
                `${two.address}:18080:8500`,
                "--entrypoint",
                "consul",
                image,
                "agent",
                "-dev",
                "-client",
                "0.0.0.0",
            ]);
            const reached = await waitFor(
                async () => {
                    const r = await one.docker.cli(
                        [
                            "run",
                            "--rm",
                            "--network",
                            "t",
                            "--entrypoint",
                            "bash",
                            image,
                            "-c",
                            `exec 3<>/dev/tcp/${two.address}/18080 && printf 'GET /v1/status/leader HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`,
                        ],
                        { allowFailure: true },
                    );
                    return r.code === 0 && / 200 /.test(r.stdout) ? r.stdout : undefined;
                },
                { timeoutMs: 60_000, intervalMs: 1000, message: "node 2's published port from a container on node 1" },
            );
            assert.match(reached, /HTTP\/1\.[01] 200/);
            // The NAT rule is node 2's alone.
            assert.match(await network.inNode(2, "iptables", ["-w", "-t", "nat", "-S"]), /--dport 18080 -j DNAT/);
            assert.doesNotMatch(await network.inNode(1, "iptables", ["-w", "-t", "nat", "-S"]), /--dport 18080/);
            await cluster.release();
            cluster = undefined;
            assert.deepEqual(await leftovers(), [], "released: nothing left");
        },
    );

    test("a run killed: its watchdog tears its cluster down", { timeout: 5 * 60_000 }, async () => {
        const held = await heldCluster(2);
        assert.ok(held.dockerdPids.every(running));
        signal(held.pid, "SIGKILL");
        await waitFor(async () => (await leftovers()).length === 0 && !held.dockerdPids.some(running), {
            timeoutMs: 120_000,
            intervalMs: 500,
            message: "the watchdog's teardown",
        });
        assert.equal(fs.existsSync(held.runDir), false);
    });

    test("a run killed with its watchdog: the next run's start tears the leftovers down", { timeout: 5 * 60_000 }, async () => {
        const held = await heldCluster(1);
        const lock = path.join(Cluster.baseDir(), "lock");
        const watchdog = Number(fs.readFileSync(lock, "utf8").trim().split(/\s+/)[1]);
        assert.ok(watchdog > 0 && pidAlive(watchdog));
        signal(watchdog, "SIGKILL");
        signal(held.pid, "SIGKILL");
        await waitFor(() => !pidAlive(held.pid) && !pidAlive(watchdog), { timeoutMs: 10_000, message: "both gone" });
        assert.ok(held.dockerdPids.every(running), "its engine outlived it");
        assert.ok((await leftovers()).length > 0, "its cluster is still there");
        cluster = await Cluster.start(1);
        assert.ok(!held.dockerdPids.some(running), "the old engine was stopped");
        assert.equal(fs.existsSync(held.runDir), false, "the old run dir was removed");
        assert.equal(await cluster.nodes[0].docker.ping(), true);
        await cluster.release();
        cluster = undefined;
        assert.deepEqual(await leftovers(), []);
    });
});
