// TCP services on a real Docker engine (docs/traffic-control.md): the dev stack's hello v1 and a
// tcp service `pg`, two PostgreSQL containers built from components/images/postgres, applied as
// stack `e2e` (see routing.test.ts). Driven from outside as a user would: psql through the
// gateway's published listenPort. Each answer names the replica that served the connection
// (table `instance` of database `demo`, written by the container on its first start).
// Scenarios: registration and listener; round robin over new connections; what a client can do
// as role demo; a replica stopped and started again; maintenance of a replica (a drain, no reload).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { stackConfig, withoutGeneration } from "../support/program";
import { run } from "./harness/docker";
import { skipReason } from "./harness/engine";
import { consulGet, hello, hostnameOf, kvValue, masterReloads as masterReloadsOf, replicasOf, startedAt } from "./harness/scenario";
import { E2E_STACK, e2eName, eventually, get, Stack } from "./harness/stack";

const GATEWAY = e2eName("gateway");
const PG_IMAGE_CONTEXT = "components/images/postgres";
/** The pg service's containment keys (tmpfs, tmpfsMb) in the shipped Pulumi.aws.yaml. */
const PG_CONTAINMENT = (() => {
    const services: { name: string; tmpfs?: string[]; tmpfsMb?: number }[] = JSON.parse(stackConfig("aws")["service-discovery:services"]);
    const { tmpfs, tmpfsMb } = services.find((s) => s.name === "pg")!;
    return { tmpfs, tmpfsMb };
})();

/**
 * A listenPort free on 127.0.0.1: from 15432 up, below Docker's ephemeral host ports, which
 * the config refuses for a listener (and apart from the 20000-32767 freePort() hands out).
 */
async function freeListenPort(): Promise<number> {
    const free = (port: number): Promise<boolean> =>
        new Promise((resolve) => {
            const srv = net.createServer();
            srv.once("error", () => resolve(false));
            srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
        });
    for (let port = 15432; port < 15532; port++) if (await free(port)) return port;
    throw new Error("no free port from 15432 to 15531 on 127.0.0.1 for the tcp service's listenPort");
}

interface Psql {
    code: number;
    stdout: string;
    stderr: string;
}

/** An interactive psql session kept open (a client's idle connection): one query at a time. */
class Session {
    private out = "";
    private err = "";
    private exited = false;
    private readonly child;
    constructor(conninfo: string) {
        this.child = spawn("psql", ["--no-psqlrc", "--no-password", "--tuples-only", "--no-align", "--quiet", conninfo], { stdio: ["pipe", "pipe", "pipe"] });
        this.child.stdout.setEncoding("utf8").on("data", (d: string) => (this.out += d));
        this.child.stderr.setEncoding("utf8").on("data", (d: string) => (this.err += d));
        this.child.on("exit", () => (this.exited = true));
        this.child.on("error", (e) => (this.err += e.message));
    }

    /** Runs `sql` on this session's connection; its output. */
    async query(sql: string, timeoutMs = 10_000): Promise<string> {
        const marker = `--done-${Date.now()}--`;
        this.out = "";
        this.child.stdin.write(`${sql};\n\\echo ${marker}\n`);
        return eventually(
            `the session answers ${sql}`,
            async () => {
                if (this.exited) throw new Error(`the psql session ended: ${this.err.trim()}`);
                const i = this.out.indexOf(`${marker}\n`);
                return i === -1 ? undefined : this.out.slice(0, i).trim();
            },
            timeoutMs,
            50,
        );
    }

    close(): void {
        this.child.stdin.end();
        if (!this.exited) this.child.kill("SIGTERM");
    }
}

describe("the dev stack's hello v1 and a tcp service on a real engine (stack e2e): PostgreSQL through the gateway", { skip: skipReason() }, () => {
    let stack: Stack;
    let pg: string[];
    let listenPort: number;
    let gatewayHost: string;

    /**
     * One psql session on a new connection to the gateway's listener (never prompts for a
     * password); each command in its own transaction, stopping at the first error.
     */
    async function psql(sql: string | string[], who: { user?: string; dbname?: string } = {}): Promise<Psql> {
        const target = `host=${gatewayHost} port=${listenPort} user=${who.user ?? "demo"} dbname=${who.dbname ?? "demo"} sslmode=disable connect_timeout=5`;
        const commands = (Array.isArray(sql) ? sql : [sql]).flatMap((c) => ["--command", c]);
        try {
            return await run("psql", ["--no-psqlrc", "--no-password", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1", ...commands, target], {
                timeoutMs: 20_000,
            });
        } catch (e) {
            throw new Error(`${(e as Error).message}: psql (Debian postgresql-client) is needed; bash test/tools/install.sh installs it`);
        }
    }

    function conninfo(): string {
        return `host=${gatewayHost} port=${listenPort} user=demo dbname=demo sslmode=disable connect_timeout=5`;
    }

    const masterReloads = (): Promise<number> => masterReloadsOf(stack, GATEWAY);

    /** The replica (hostname) that answered one new connection; throws when the session failed. */
    async function answeredBy(): Promise<string> {
        const r = await psql("SELECT hostname FROM instance");
        if (r.code !== 0) throw new Error(`psql through port ${listenPort}: exit ${r.code}: ${r.stderr.trim()}`);
        return r.stdout.trim();
    }

    async function sessions(n: number): Promise<string[]> {
        const out: string[] = [];
        for (let i = 0; i < n; i++) out.push(await answeredBy());
        return out;
    }

    /**
     * Waits until `n` new connections in a row are all served, by exactly the `expected` replicas;
     * `failures` collects the sessions that failed on the way.
     */
    function tcpRotationIs(expected: readonly string[], timeoutMs = 30_000, failures: string[] = []): Promise<string[]> {
        const want = [...expected].sort().join(",");
        return eventually(
            `port ${listenPort} answered by exactly ${want}`,
            async () => {
                const seen = await sessions(expected.length * 4).catch((e: Error) => {
                    failures.push(e.message);
                    throw e;
                });
                const got = [...new Set(seen)].sort().join(",");
                if (got !== want) throw new Error(`answered by ${got}`);
                return seen;
            },
            timeoutMs,
        );
    }

    /** This stack's pg instances Consul knows (container names), with their check status. */
    async function registered(): Promise<{ container: string; address: string; tags: string[]; check?: any }[]> {
        const entries = await consulGet<any[]>(stack, "/v1/health/service/pg");
        return entries
            .filter((e) => String(e.Service.ID).split(":")[1]?.startsWith(`${E2E_STACK}-`))
            .map((e) => ({
                container: String(e.Service.ID).split(":")[1],
                address: `${e.Service.Address}:${e.Service.Port}`,
                tags: e.Service.Tags,
                check: e.Checks.find((k: any) => k.ServiceID === e.Service.ID),
            }))
            .sort((a, b) => a.container.localeCompare(b.container));
    }

    before(
        async () => {
            listenPort = await freeListenPort();
            stack = await Stack.up({
                config: {
                    services: [
                        { name: "hello", version: "v1", build: "components/images/hello", containerPort: 8080, replicas: 2, healthCheckPath: "/health" },
                        // As Pulumi.aws.yaml runs it: a read-only root, its cluster and socket on tmpfs.
                        { name: "pg", build: PG_IMAGE_CONTEXT, containerPort: 5432, replicas: 2, protocol: "tcp", listenPort, ...PG_CONTAINMENT },
                    ],
                },
            });
            gatewayHost = new URL(stack.outputs.gatewayUrl).hostname;
            pg = replicasOf(stack, "pg");
            assert.deepEqual(pg.map(withoutGeneration), [e2eName("pg-1"), e2eName("pg-2")], "two pg replicas declared");
        },
        { timeout: 20 * 60_000 },
    );

    after(
        async () => {
            await stack?.down();
        },
        { timeout: 120_000 },
    );

    test("declared as a tcp service: Registrator tags and a TCP check, the listen key in Consul KV, the listener published on the gateway's address", async () => {
        for (const c of pg) {
            const envs: string[] = (await stack.docker.inspectContainer(c)).Config.Env;
            assert.ok(envs.includes("SERVICE_NAME=pg"), `${c}: SERVICE_NAME`);
            assert.ok(envs.includes("SERVICE_TAGS=tcp"), `${c}: SERVICE_TAGS=tcp`);
            assert.ok(envs.includes("SERVICE_CHECK_TCP=true"), `${c}: SERVICE_CHECK_TCP`);
            assert.ok(!envs.some((e) => e.startsWith("SERVICE_CHECK_HTTP=")), `${c}: no HTTP check`);
        }
        const image = await stack.docker.imageExists(stack.buildOf(pg[0]).outputs.ref);
        assert.equal(image.Config.User, "postgres", "the image runs as postgres");
        assert.equal(image.Config.StopSignal, "SIGINT", "the stop signal is PostgreSQL's fast shutdown");
        assert.deepEqual(Object.keys(image.Config.ExposedPorts), ["5432/tcp"]);

        assert.equal(await kvValue(stack, "service/haproxy/services/pg/listen"), String(listenPort));
        const binding = (await stack.docker.inspectContainer(GATEWAY)).NetworkSettings.Ports[`${listenPort}/tcp`]?.[0];
        assert.deepEqual(
            binding,
            { HostIp: "127.0.0.1", HostPort: String(listenPort) },
            "the gateway publishes listenPort at the same port on its bindAddress",
        );

        // Consul's own TCP checks pass against the real server.
        const both = await eventually("both pg instances passing their TCP check in Consul", async () => {
            const r = await registered();
            return r.length === 2 && r.every((i) => i.check?.Status === "passing") ? r : undefined;
        });
        assert.deepEqual(
            both.map((i) => i.container),
            pg,
        );
        for (const i of both) {
            assert.deepEqual(i.tags, ["tcp"], `${i.container}: tags`);
            assert.equal(i.check.Type, "tcp", `${i.container}: a TCP check`);
        }
        const cfg = await stack.exec(GATEWAY, ["cat", "/run/gateway/haproxy.cfg"]);
        assert.match(cfg, new RegExp(`^frontend tcp_pg from tcp_services\\n\\s+bind "[^"]*:${listenPort}"$`, "m"), "the gateway's tcp listener");
        for (const i of both) assert.ok(cfg.includes(`server ${i.address} `), `the gateway's svc_pg has ${i.address}`);
    });

    test("psql through the gateway's listenPort reaches both replicas, round robin over new connections; HTTP routing goes on", async () => {
        const names = pg.map((c) => hostnameOf(stack, c));
        await tcpRotationIs(names, 60_000);
        // Round robin: 8 new connections split 4/4, give or take one (a 5/3 split was seen once in
        // a CI run, its cause not established: the scheduler's position after a runtime add is one
        // candidate); a reload in between restarts the rotation, so such a run is made again (the
        // master counts its reloads).
        const runs: string[] = [];
        let fair = false;
        for (let attempt = 0; attempt < 3 && !fair; attempt++) {
            const before = await masterReloads();
            const order = await sessions(8);
            const reloaded = (await masterReloads()) !== before;
            runs.push(`${order.join(" ")}${reloaded ? " (a reload in between)" : ""}`);
            fair = !reloaded && names.every((n) => Math.abs(order.filter((h) => h === n).length - 4) <= 1);
        }
        assert.ok(fair, `round robin: ${runs.join("; ")}`);
        // The name of a tcp service is never an HTTP route; the http service beside it still is.
        assert.equal((await get(`${stack.outputs.gatewayUrl}/pg/`)).status, 404);
        assert.equal((await hello(stack, "/hello/v1/x")).path, "/x");
    });

    test("what a client reaches is read-only: no writes, no other database or role, no password in the image", async () => {
        const write = async (sql: string): Promise<string> => {
            // Even with the role's read-only default lifted for the session, privileges refuse it.
            const r = await psql(["SET default_transaction_read_only = off", sql]);
            assert.notEqual(r.code, 0, `${sql}: refused (got ${r.stdout.trim()})`);
            return r.stderr;
        };
        assert.match(await write("INSERT INTO instance (hostname) VALUES ('x')"), /permission denied for table instance/);
        assert.match(await write("DELETE FROM instance"), /permission denied for table instance/);
        assert.match(await write("CREATE TABLE t (a int)"), /permission denied for schema public/);
        assert.match(await write("CREATE TEMP TABLE t (a int)"), /permission denied to create temporary tables/);
        assert.match(await write("SELECT lo_create(0)"), /permission denied for function lo_create/);
        assert.match(await write("COPY (SELECT 1) TO PROGRAM 'id'"), /must be superuser|pg_execute_server_program/);
        const superuser = await psql("SELECT 1", { user: "postgres", dbname: "postgres" });
        assert.notEqual(superuser.code, 0);
        assert.match(superuser.stderr, /pg_hba\.conf rejects connection for host "[0-9.]+", user "postgres"/);
        const otherDb = await psql("SELECT 1", { dbname: "postgres" });
        assert.match(otherDb.stderr, /pg_hba\.conf rejects connection .*database "postgres"/);
        // The table still holds one row per replica: its own hostname.
        for (const c of pg) {
            const rows = await stack.exec(c, ["psql", "--no-psqlrc", "-At", "-d", "demo", "-c", "SELECT hostname FROM instance"]);
            assert.equal(rows.trim(), hostnameOf(stack, c), `${c}: its own hostname, nothing else`);
            const withPassword = await stack.exec(c, ["psql", "--no-psqlrc", "-At", "-c", "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL"]);
            assert.equal(withPassword.trim(), "0", `${c}: no role has a password`);
        }
    });

    test("a stopped replica leaves the rotation: new connections all reach the other; started again it is back", { timeout: 180_000 }, async (t) => {
        const [stopped, other] = pg;
        const gatewayStart = await startedAt(stack, GATEWAY);
        await tcpRotationIs(pg.map((c) => hostnameOf(stack, c)));

        // A session open on the replica while it stops: SIGTERM (smart shutdown) would wait for it
        // until SIGKILL; the image's SIGINT (fast shutdown) ends it and exits at once.
        const held = stack.docker.cli(["exec", stopped, "psql", "--no-psqlrc", "-d", "demo", "-c", "SELECT pg_sleep(120)"], {
            allowFailure: true,
            timeoutMs: 150_000,
        });
        await eventually("the held session running", async () => {
            const n = await stack.exec(stopped, [
                "psql",
                "--no-psqlrc",
                "-At",
                "-c",
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'",
            ]);
            return n.trim() === "1" ? true : undefined;
        });
        const t0 = Date.now();
        await stack.docker.request("POST", `/containers/${stopped}/stop`, undefined, 90_000); // the container's own stop timeout
        const stopMs = Date.now() - t0;
        const state = (await stack.docker.inspectContainer(stopped)).State;
        assert.equal(state.ExitCode, 0, `${stopped} exited by itself (fast shutdown), not by SIGKILL`);
        assert.ok(stopMs < 10_000, `${stopped} stopped in ${stopMs} ms, within seconds of the signal`);
        assert.notEqual((await held).code, 0, "the held session was ended by the shutdown");

        await stack.registratorSettled();
        const failures: string[] = [];
        await tcpRotationIs([hostnameOf(stack, other)], 30_000, failures);
        const outMs = Date.now() - t0;
        // Settled: every new connection reaches the other replica, none fails.
        assert.deepEqual(new Set(await sessions(10)), new Set([hostnameOf(stack, other)]));
        const left = await eventually("the stopped replica deregistered", async () => {
            const r = await registered();
            return r.length === 1 ? r : undefined;
        });
        assert.deepEqual(
            left.map((i) => i.container),
            [other],
        );

        await stack.docker.request("POST", `/containers/${stopped}/start`);
        const t1 = Date.now();
        await stack.registratorSettled();
        await tcpRotationIs(pg.map((c) => hostnameOf(stack, c)));
        const backMs = Date.now() - t1;
        const order = await sessions(6);
        assert.equal(order.filter((h) => h === hostnameOf(stack, stopped)).length, 3, `back in round robin: ${order.join(" ")}`);
        // The same row: its cluster is in a tmpfs (PG_CONTAINMENT), so the start made a new one with it.
        const rows = await stack.exec(stopped, ["psql", "--no-psqlrc", "-At", "-d", "demo", "-c", "SELECT hostname FROM instance"]);
        assert.equal(rows.trim(), hostnameOf(stack, stopped));

        const g = await stack.docker.inspectContainer(GATEWAY);
        assert.equal(g.State.StartedAt, gatewayStart, "the gateway was not restarted");
        t.diagnostic(
            `stop took ${stopMs} ms; out of rotation ${outMs} ms after the stop (sessions that failed meanwhile: ${failures.length}${failures.length ? `, first: ${failures[0]}` : ""}); back in rotation ${backMs} ms after the start`,
        );
    });

    test(
        "maintenance of replica 1 (a Pulumi-managed KV key) drains it: new connections all reach replica 2, its open session goes on; removed, it is back; no reload",
        { timeout: 180_000 },
        async (t) => {
            const [drained, other] = pg;
            const services = (maintenance?: number[]) => [
                ...stack.configValue("services").filter((s: any) => s.name !== "pg"),
                {
                    name: "pg",
                    build: PG_IMAGE_CONTEXT,
                    containerPort: 5432,
                    replicas: 2,
                    protocol: "tcp",
                    listenPort,
                    ...PG_CONTAINMENT,
                    ...(maintenance ? { maintenance } : {}),
                },
            ];
            await tcpRotationIs(pg.map((c) => hostnameOf(stack, c)));
            // A client's open session on replica 1 (round robin: at most one more connection to get there).
            let held = new Session(conninfo());
            if ((await held.query("SELECT hostname FROM instance")) !== hostnameOf(stack, drained)) {
                held.close();
                held = new Session(conninfo());
            }
            try {
                assert.equal(await held.query("SELECT hostname FROM instance"), hostnameOf(stack, drained), "the held session is on replica 1");
                const reloads = await masterReloads();

                await stack.update({ services: services([1]) });
                assert.equal(
                    await kvValue(stack, "service/haproxy/services/pg/maintenance"),
                    withoutGeneration(drained),
                    "the KV key names replica 1 (its container without the generation)",
                );
                await tcpRotationIs([hostnameOf(stack, other)]);
                assert.deepEqual(new Set(await sessions(10)), new Set([hostnameOf(stack, other)]), "no new connection reaches replica 1");
                assert.equal(await held.query("SELECT hostname FROM instance"), hostnameOf(stack, drained), "a drain, not a cut: the open session goes on");
                // Still registered and passing: maintenance is the gateway's, not Consul's. (Consul
                // checks every 5 s: a replica restarted by the test before may still be on its way.)
                await eventually("both pg instances still registered and passing in Consul", async () => {
                    const r = await registered();
                    return r.length === 2 && r.every((i) => i.check?.Status === "passing") ? r : undefined;
                });

                await stack.update({ services: services() });
                assert.equal(await kvValue(stack, "service/haproxy/services/pg/maintenance"), undefined, "the key is gone");
                await tcpRotationIs(pg.map((c) => hostnameOf(stack, c)));
                const order = await sessions(6);
                assert.equal(order.filter((h) => h === hostnameOf(stack, drained)).length, 3, `back in round robin: ${order.join(" ")}`);
                assert.equal(await held.query("SELECT 1"), "1", "the session is still open");
                assert.equal(await masterReloads(), reloads, "weights were set at runtime: the HAProxy master did not reload");
                t.diagnostic(`maintenance in and out, HAProxy master reloads ${reloads} before and after`);
            } finally {
                held.close();
            }
        },
    );
});
