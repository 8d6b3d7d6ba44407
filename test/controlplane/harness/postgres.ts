// PostgreSQL, the TCP service of the traffic tests: a real server from the distribution's packages
// (initdb + postgres found under /usr/lib/postgresql/<major>/bin), in a temp data dir, on a free
// port of the test node, with a table naming the instance; and psql to reach it, directly or
// through the gateway's TCP listener. The password is generated per test process and reaches
// initdb through a file and psql through PGPASSWORD, never a command line.
import { randomBytes } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "../../support/ports";
import { waitFor } from "../../support/wait";
import type { Registration } from "./consul";
import { ensureTestAddresses, NODE_ADDRESS } from "./network";
import { makeTempDir, Proc, removeTempDir } from "./processes";

/** The role the servers create and the clients log in as (the bootstrap superuser). */
export const POSTGRES_USER = "sd";
export const POSTGRES_DATABASE = "postgres";

// One secret for every server of this test process: a client through the gateway cannot know
// which instance it reaches, so all of them must accept the same credentials.
const PASSWORD = randomBytes(24).toString("base64url");

/** The newest installed PostgreSQL's bin dir (/usr/lib/postgresql/<major>/bin with initdb, postgres and psql). */
export function postgresBinDir(): string {
    const base = process.env.POSTGRES_LIB_DIR ?? "/usr/lib/postgresql";
    const majors = (fs.existsSync(base) ? fs.readdirSync(base) : [])
        .filter((d) => /^[0-9]+$/.test(d))
        .filter((d) => ["initdb", "postgres", "psql"].every((b) => fs.existsSync(path.join(base, d, "bin", b))))
        .sort((a, b) => Number(b) - Number(a));
    if (!majors[0]) {
        throw new Error(
            `no PostgreSQL server under ${base}/<major>/bin (initdb, postgres, psql): run bash test/tools/install.sh, which installs the postgresql package`,
        );
    }
    return path.join(base, majors[0], "bin");
}

/**
 * The account the server runs as: PostgreSQL refuses to run as root, so a root test process
 * hands it to the distribution's `postgres` account (else `nobody`); anyone else runs it as themselves.
 */
function serverAccount(): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined;
    const passwd = fs.readFileSync("/etc/passwd", "utf8").split("\n");
    for (const name of ["postgres", "nobody"]) {
        const f = passwd.find((l) => l.startsWith(`${name}:`))?.split(":");
        if (f && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
    throw new Error("the tests run as root and there is neither a postgres nor a nobody account to run PostgreSQL as");
}

/** How a psql reaches a server: directly, or the gateway's listener. */
export interface PsqlTarget {
    host: string;
    port: number;
    password?: string;
}

export interface PsqlResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** psql's environment: the password from the secret, nothing from the caller's PG* variables. */
function psqlEnv(target: PsqlTarget): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
    return {
        ...env,
        PGPASSWORD: target.password ?? PASSWORD,
        PGCONNECT_TIMEOUT: "5",
        PGSSLMODE: "disable",
        PGAPPNAME: "controlplane-test",
    };
}

function psqlArgs(target: PsqlTarget): string[] {
    // -X no psqlrc, -w never prompt, -A -t bare rows, ON_ERROR_STOP: a failed statement fails psql.
    return ["-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", target.host, "-p", String(target.port), "-U", POSTGRES_USER, "-d", POSTGRES_DATABASE];
}

/** One psql run of `sql` (a new connection); resolves with its exit code and output, never rejects on a failed connection. */
export function psql(target: PsqlTarget, sql: string, timeoutMs = 15_000): Promise<PsqlResult> {
    return new Promise((resolve) => {
        const child = spawn(path.join(postgresBinDir(), "psql"), [...psqlArgs(target), "-c", sql], { env: psqlEnv(target), stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => {
            stderr += `\n[psql killed after ${timeoutMs} ms]`;
            child.kill("SIGKILL");
        }, timeoutMs);
        child.on("error", (err) => {
            clearTimeout(timer);
            resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` });
        });
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

/** The instance a new connection reaches (its `instance` table); throws with psql's error when it fails. */
export async function whichInstance(target: PsqlTarget, timeoutMs?: number): Promise<string> {
    const r = await psql(target, "SELECT name FROM instance", timeoutMs);
    if (r.code !== 0) throw new Error(`psql to ${target.host}:${target.port} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout.trim();
}

/**
 * One psql session kept open (statements written to its stdin, one at a time): a database
 * client holding its connection while the gateway's view of the instances changes. It ends
 * with the test process at the latest (its stdin closes).
 */
export class PsqlSession {
    private out = "";
    private err = "";
    private exited = false;

    private constructor(private readonly child: ReturnType<typeof spawn>) {
        child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.out += d));
        child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.err += d));
        child.on("exit", () => (this.exited = true));
    }

    static async open(target: PsqlTarget): Promise<PsqlSession> {
        const child = spawn(path.join(postgresBinDir(), "psql"), psqlArgs(target), { env: psqlEnv(target), stdio: ["pipe", "pipe", "pipe"] });
        const s = new PsqlSession(child);
        // The connection is made before the first statement is read: a query proves it is up.
        await s.query("SELECT 1");
        return s;
    }

    get running(): boolean {
        return !this.exited;
    }

    /** Runs one statement on the open connection and returns its rows; throws when the session failed. */
    async query(sql: string, timeoutMs = 10_000): Promise<string> {
        const marker = `--end-${randomBytes(6).toString("hex")}--`;
        const start = this.out.length;
        this.child.stdin!.write(`${sql};\n\\echo ${marker}\n`);
        const text = await waitFor(
            () => {
                if (this.exited) throw new Error(`psql session ended: ${this.err.trim()}`);
                const i = this.out.indexOf(marker, start);
                return i >= 0 ? this.out.slice(start, i) : undefined;
            },
            { timeoutMs, intervalMs: 10, message: `answer to ${sql} on the open psql session` },
        ).catch((e: Error) => {
            throw new Error(`${e.message}; psql stderr: ${this.err.trim()}`);
        });
        return text.trim();
    }

    async close(): Promise<void> {
        if (this.exited) return;
        const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
        this.child.stdin!.end("\\q\n");
        const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(timer);
    }
}

/** A PostgreSQL server on the test node, with a table `instance` holding its name. */
export class PostgresServer {
    private constructor(
        readonly proc: Proc,
        readonly instance: string,
        readonly address: string,
        readonly port: number,
        private readonly dir: string,
    ) {}

    /** initdb, then postgres on a free port of `address` (default the test node); waits until it answers. */
    static async start(instance: string, opts: { address?: string } = {}): Promise<PostgresServer> {
        // The name goes into SQL below: only what a container name may be.
        if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(instance)) throw new Error(`PostgresServer: instance name ${JSON.stringify(instance)} is not allowed`);
        ensureTestAddresses();
        const bin = postgresBinDir();
        const account = serverAccount();
        const dir = makeTempDir("postgres");
        const data = path.join(dir, "data");
        const sockets = path.join(dir, "run");
        const pwfile = path.join(dir, "pwfile");
        fs.mkdirSync(sockets, { mode: 0o700 });
        fs.writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
        if (account) for (const p of [dir, sockets, pwfile]) fs.chownSync(p, account.uid, account.gid);
        const asServer = account ? { uid: account.uid, gid: account.gid } : {};
        const env = { ...psqlEnv({ host: "", port: 0 }), PGPASSWORD: "", LC_ALL: "C", HOME: dir };

        const init = spawnSync(
            path.join(bin, "initdb"),
            ["-D", data, "-U", POSTGRES_USER, `--pwfile=${pwfile}`, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            { ...asServer, env, encoding: "utf8", cwd: dir },
        );
        fs.rmSync(pwfile);
        if (init.status !== 0) {
            removeTempDir(dir);
            throw new Error(`initdb failed (${init.status ?? init.signal}): ${init.stdout}${init.stderr}${init.error?.message ?? ""}`);
        }
        // Password logins from anywhere the server listens (the gateway connects from the node address).
        fs.writeFileSync(path.join(data, "pg_hba.conf"), "local all all scram-sha-256\nhost all all 0.0.0.0/0 scram-sha-256\n");
        if (account) fs.chownSync(path.join(data, "pg_hba.conf"), account.uid, account.gid);

        const address = opts.address ?? NODE_ADDRESS;
        const port = await freePort();
        // The server in its own process group, tracked like every other process; run as the
        // unprivileged account through setpriv when the tests run as root.
        const settings = [
            ["listen_addresses", address],
            ["port", String(port)],
            ["unix_socket_directories", sockets],
            ["shared_buffers", "16MB"],
            ["max_connections", "40"],
            ["fsync", "off"],
            ["logging_collector", "off"],
        ].flatMap(([k, v]) => ["-c", `${k}=${v}`]);
        const cmd = [path.join(bin, "postgres"), "-D", data, ...settings];
        const proc = account
            ? new Proc(`postgres ${instance}`, "setpriv", [`--reuid=${account.uid}`, `--regid=${account.gid}`, "--clear-groups", "--", ...cmd], {
                  env,
                  cwd: dir,
              })
            : new Proc(`postgres ${instance}`, cmd[0]!, cmd.slice(1), { env, cwd: dir });
        const server = new PostgresServer(proc, instance, address, port, dir);
        try {
            await waitFor(
                async () => {
                    if (!proc.running) throw new Error(`postgres exited:\n${proc.output()}`);
                    return (await psql(server.target, "SELECT 1", 3000)).code === 0;
                },
                { timeoutMs: 30_000, intervalMs: 100, message: `PostgreSQL ${instance} on ${address}:${port}` },
            );
            const r = await psql(server.target, `CREATE TABLE instance (name text NOT NULL); INSERT INTO instance VALUES ('${instance}')`);
            if (r.code !== 0) throw new Error(`creating the instance table failed: ${r.stderr}`);
        } catch (err) {
            await server.stop();
            throw err;
        }
        return server;
    }

    /** psql straight to this server (not through the gateway). */
    get target(): PsqlTarget {
        return { host: this.address, port: this.port };
    }

    /** The gateway's server name for it: <address>:<port>. */
    get serverName(): string {
        return `${this.address}:${this.port}`;
    }

    /** The ID Registrator would give its container: <host>:<container>:<port>. */
    get id(): string {
        return `${os.hostname()}:${this.instance}:${this.port}`;
    }

    /**
     * The registration Registrator makes for a tcp service (components/service.ts:
     * SERVICE_TAGS=tcp, SERVICE_CHECK_TCP=true, 5s interval, 2s timeout); passing at once.
     */
    registration(name: string, opts: { tags?: string[] } = {}): Registration {
        return {
            ID: this.id,
            Name: name,
            Tags: opts.tags ?? ["tcp"],
            Address: this.address,
            Port: this.port,
            Check: { TCP: this.serverName, Interval: "5s", Timeout: "2s", Status: "passing" },
        };
    }

    /** Fast shutdown (SIGINT: open sessions are ended, as a stopping container ends them), then the data dir goes. */
    async stop(): Promise<void> {
        await this.proc.stop(5000, "SIGINT");
        removeTempDir(this.dir);
    }
}

/** The gateway's TCP listener on `port` as a psql target (the address the gateway binds). */
export function gatewayTcpTarget(gateway: { env: NodeJS.ProcessEnv }, port: number): PsqlTarget {
    return { host: gateway.env.GATEWAY_BIND ?? "127.0.0.1", port };
}
