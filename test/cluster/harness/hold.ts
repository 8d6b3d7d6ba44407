// Child process of the harness's own test (test/cluster/harness.test.ts): starts a cluster of
// CLUSTER_NODES engines, prints one line of JSON about it, and holds it until it is killed, to
// show what the watchdog and the next run's start do with what a dead run left.
import { Cluster } from "./engines";

async function main(): Promise<void> {
    const cluster = await Cluster.start(Number(process.env.CLUSTER_NODES ?? "1"));
    const dockerdPids = cluster.nodes.map((n) => n.dockerdPid);
    process.stdout.write(`${JSON.stringify({ runDir: cluster.runDir, dockerdPids, namespaces: cluster.nodes.map((n) => n.namespace) })}\n`);
    setInterval(() => undefined, 60_000);
}

main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
});
