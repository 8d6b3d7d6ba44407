// The controller's settings, all from the environment: the image sets the defaults, the stack
// (components/gateway.ts) the rest, and the control-plane tests the same variables on loopback.
import * as fs from "node:fs";
import * as os from "node:os";
import type { StackSettings } from "./model";
import { DEFAULT_ACME_RENEW_BEFORE_DAYS, DNS_NAME, gatewayTerminatesTls, LETS_ENCRYPT_DIRECTORY, TLS_SOURCES } from "./rules";
import { parseSealingKey } from "./sealed";

/** Where the stack puts the sealing key (components/gateway.ts): a file only the gateway's user reads. */
export const DEFAULT_SEALING_KEY_FILE = "/etc/gateway/secrets/sealing.key";
/** Where the stack puts the gateway's Consul ACL token (CONSUL_HTTP_TOKEN_FILE), beside the sealing key. */
export const CONSUL_TOKEN_FILE = "/etc/gateway/secrets/consul.token";
/** Where the stack puts the stats password (STATS_PASSWORD_FILE), beside the sealing key. */
export const STATS_PASSWORD_FILE = "/etc/gateway/secrets/stats.password";

/**
 * Secrets the controller refuses in its environment (`docker inspect` shows a container's
 * environment, and Registrator reads it through the socket proxy): each has a file variable.
 */
export const SECRET_VARIABLES: Readonly<Record<string, string>> = { CONSUL_HTTP_TOKEN: "CONSUL_HTTP_TOKEN_FILE", STATS_PASSWORD: "STATS_PASSWORD_FILE" };

/** What the ACME client of the gateway orders, where, and when (acme.ts). */
export interface AcmeSettings {
    readonly directoryUrl: string;
    readonly email: string;
    readonly hosts: readonly string[];
    readonly eabKid?: string;
    readonly renewBeforeSeconds: number;
    /** A PEM file of CAs the directory's HTTPS certificate may chain to, besides the system's (a private ACME CA). */
    readonly caFile?: string;
    /** How often the certificate is looked at (and, when due, renewed). */
    readonly checkSeconds: number;
}

export interface ControllerEnv {
    /** bootstrap.cfg: served from the first second until Consul has been read. */
    readonly confDir: string;
    /** The live config, sockets, the pid file, the saved server state. */
    readonly runDir: string;
    readonly haproxyBin: string;
    readonly stack: StackSettings;
    /** HAProxy expands these in the config: never written to a file. */
    readonly haproxyEnv: NodeJS.ProcessEnv;
    /** Opens the sealed values of tls/ (certificate keys, the ACME account key); read once at start. */
    readonly sealingKey?: Buffer;
    /** With GATEWAY_TLS_SOURCE=acme. */
    readonly acme?: AcmeSettings;
    /** This gateway among its replicas (the ACME lock's holder): GATEWAY_NAME, else the host name. */
    readonly name: string;
}

export class EnvError extends Error {
    constructor(
        message: string,
        /** sysexits: 64 usage (a variable is wrong), 69 unavailable. */
        readonly exitCode = 64,
    ) {
        super(message);
    }
}

/**
 * The file descriptors HAProxy may use: it raises its soft limit up to the hard one, and the
 * model sizes maxconn so that connections, health checks and listeners fit. Read from
 * /proc/self/limits (Node has no getrlimit); "unlimited" or absurdly high values are capped.
 */
export function fdLimit(limitsText: string): string {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(limitsText);
    if (!m) return "1048576";
    if (m[1] === "unlimited" || Number(m[1]) > 4194304) return "4194304";
    return m[1]!;
}

/**
 * This network namespace's own addresses, from the kernel's table of local addresses: a line
 * "|-- 172.28.0.3" followed by "/32 host LOCAL".
 */
export function ownAddresses(fibTrie: string): string[] {
    const own: string[] = [];
    let prev = "";
    for (const line of fibTrie.split("\n")) {
        const w = line.trim().split(/\s+/);
        if (w[0] === "/32" && w[1] === "host" && w[2] === "LOCAL" && !own.includes(prev)) own.push(prev);
        if (w[0] === "|--" && w[1] !== undefined) prev = w[1];
    }
    return own;
}

const readOr = (file: string, fallback: string): string => {
    try {
        return fs.readFileSync(file, "utf8");
    } catch {
        return fallback;
    }
};

/**
 * A secret from the file a variable names: its content without the trailing line break. Missing,
 * unreadable, empty or multi-line is an EnvError naming the variable (never the content).
 */
export function readSecretFile(variable: string, file: string | undefined, what: string): string {
    if (!file) throw new EnvError(`${variable} must name the file that holds ${what}`);
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (err) {
        throw new EnvError(`${variable}=${file} is not a readable file (${(err as Error).message.replace(/^E[A-Z]+: /, "")}); it must hold ${what}`);
    }
    const value = text.replace(/\r?\n$/, "");
    if (value.trim() === "") throw new EnvError(`${variable}=${file} is empty; it must hold ${what}`);
    if (/[\x00-\x1f\x7f]/.test(value)) throw new EnvError(`${variable}=${file} holds a control character or several lines; it must hold ${what} alone`);
    return value;
}

/** The secrets in the environment, which the controller refuses (SECRET_VARIABLES). */
export function secretsInEnv(env: NodeJS.ProcessEnv): string[] {
    return Object.keys(SECRET_VARIABLES).filter((name) => env[name] !== undefined && env[name] !== "");
}

export function readEnv(env: NodeJS.ProcessEnv, log: (line: string) => void): ControllerEnv {
    const get = (name: string, def: string): string => env[name] ?? def;
    // Secrets come in files: `docker inspect` (and whoever reads the Docker API) shows the environment.
    const inEnv = secretsInEnv(env);
    if (inEnv.length > 0)
        throw new EnvError(
            `${inEnv.join(" and ")} in the environment: the gateway reads its secrets from files only (\`docker inspect\` shows a container's environment); set ${inEnv.map((n) => SECRET_VARIABLES[n]).join(" and ")} to a file instead`,
        );
    // No default credentials: the stats page and metrics need a user and a password from outside.
    if (!env.STATS_USER) throw new EnvError("STATS_USER must be set (the stats page has no default login)");
    const statsPassword = readSecretFile("STATS_PASSWORD_FILE", env.STATS_PASSWORD_FILE, "the stats password (the stats page has no default password)");
    // The Consul token: read here only to fail at start on a missing or empty file; watch.ts reads
    // it again whenever Consul answers 403 (a rotated token takes effect without a restart).
    if (env.CONSUL_HTTP_TOKEN_FILE !== undefined) readSecretFile("CONSUL_HTTP_TOKEN_FILE", env.CONSUL_HTTP_TOKEN_FILE, "the gateway's Consul ACL token");
    for (const name of ["GATEWAY_HTTP_PORT", "GATEWAY_STATS_PORT", "GATEWAY_PUBLIC_HTTP_PORT", "GATEWAY_HTTPS_PORT", "GATEWAY_PUBLIC_HTTPS_PORT"]) {
        const v = env[name];
        if (v !== undefined && !/^[1-9][0-9]{0,4}$/.test(v)) throw new EnvError(`${name}=${JSON.stringify(v)} is not a port number (1-65535)`);
    }
    let own = env.GATEWAY_OWN_ADDRESSES;
    if (own === undefined || own === "") {
        own = ownAddresses(readOr("/proc/net/fib_trie", "")).join(" ");
        if (own === "") log("gateway: cannot read this container's addresses (/proc/net/fib_trie); set GATEWAY_OWN_ADDRESSES");
    }
    const tls = readTls(env);
    const stack: StackSettings = {
        httpPort: get("GATEWAY_HTTP_PORT", "80"),
        statsPort: get("GATEWAY_STATS_PORT", "1936"),
        backendNetworks: get("GATEWAY_BACKEND_NETWORKS", ""),
        nodeNetworks: get("GATEWAY_NODE_NETWORKS", ""),
        trustedProxies: get("GATEWAY_TRUSTED_PROXIES", ""),
        ownAddresses: own,
        nodePorts: get("GATEWAY_NODE_PORTS", ""),
        fdLimit: env.GATEWAY_FD_LIMIT || fdLimit(readOr("/proc/self/limits", "")),
        maxconnLimit: get("GATEWAY_MAXCONN_LIMIT", ""),
        // The host port the HTTP listener is published on (X-Forwarded-Port); the listener's own by default.
        publicHttpPort: get("GATEWAY_PUBLIC_HTTP_PORT", ""),
        ...tls.stack,
    };
    if (stack.backendNetworks === "")
        log("gateway: GATEWAY_BACKEND_NETWORKS is empty: no instance will be routed unless the KV key networks/backends names networks");
    const runDir = get("GATEWAY_RUN_DIR", "/run/gateway");
    const haproxyEnv: NodeJS.ProcessEnv = {
        ...env,
        GATEWAY_RUN_DIR: runDir,
        GATEWAY_HTTP_PORT: stack.httpPort,
        GATEWAY_STATS_PORT: stack.statsPort,
        GATEWAY_BIND: get("GATEWAY_BIND", "*"),
        // The bootstrap config's HTTPS listener exists only with this variable (`.if defined`), and
        // its binds take the PROXY protocol as the rendered ones do.
        GATEWAY_HTTP_BIND_OPTIONS: tls.acceptProxy.includes("http") ? "accept-proxy" : "",
        GATEWAY_HTTPS_BIND_OPTIONS: tls.acceptProxy.includes("https") ? "accept-proxy" : "",
        // The stats page's password, which haproxy.cfg takes as "${STATS_PASSWORD}": in HAProxy's
        // own process environment, never in the container's (which `docker inspect` shows).
        STATS_PASSWORD: statsPassword,
    };
    // The bootstrap config's HTTPS listener exists only with GATEWAY_HTTPS_PORT; with acm its
    // offload listener (plain HTTP behind the load balancer) only with GATEWAY_OFFLOAD_PORT.
    delete haproxyEnv.GATEWAY_HTTPS_PORT;
    delete haproxyEnv.GATEWAY_OFFLOAD_PORT;
    if (gatewayTerminatesTls(tls.stack.tlsSource)) haproxyEnv.GATEWAY_HTTPS_PORT = tls.stack.httpsPort;
    else if (tls.stack.tlsSource === "acm") haproxyEnv.GATEWAY_OFFLOAD_PORT = tls.stack.httpsPort;
    // The Consul token is the controller's; HAProxy has no use for it, nor for where it is.
    delete haproxyEnv.CONSUL_HTTP_TOKEN_FILE;
    return {
        confDir: get("GATEWAY_CONF_DIR", "/etc/gateway"),
        runDir,
        haproxyBin: get("HAPROXY_BIN", "haproxy"),
        stack,
        haproxyEnv,
        ...(tls.sealingKey ? { sealingKey: tls.sealingKey } : {}),
        ...(tls.acme ? { acme: tls.acme } : {}),
        name: get("GATEWAY_NAME", "") || os.hostname(),
    };
}

/** The TLS variables (components/gateway.ts sets them from gateway.tls), each checked. */
function readTls(env: NodeJS.ProcessEnv): {
    stack: Required<Pick<StackSettings, "tlsSource" | "httpsPort" | "publicHttpsPort" | "tlsRedirect" | "hstsSeconds" | "acceptProxy">>;
    acceptProxy: string[];
    sealingKey?: Buffer;
    acme?: AcmeSettings;
} {
    const source = env.GATEWAY_TLS_SOURCE || "none";
    if (!(TLS_SOURCES as readonly string[]).includes(source)) throw new EnvError(`GATEWAY_TLS_SOURCE=${source} is not one of ${TLS_SOURCES.join(", ")}`);
    const bool = (name: string): string => {
        const v = env[name] ?? "false";
        if (v !== "true" && v !== "false") throw new EnvError(`${name}=${v} is not true or false`);
        return v;
    };
    const seconds = (name: string, def: number): number => {
        const v = env[name] ?? String(def);
        if (!/^(0|[1-9][0-9]{0,9})$/.test(v)) throw new EnvError(`${name}=${v} is not a number of seconds`);
        return Number(v);
    };
    const acceptProxy = (env.GATEWAY_ACCEPT_PROXY ?? "").split(/[\s,]+/).filter(Boolean);
    const bad = acceptProxy.find((w) => w !== "http" && w !== "https");
    if (bad !== undefined) throw new EnvError(`GATEWAY_ACCEPT_PROXY=${env.GATEWAY_ACCEPT_PROXY}: ${bad} is not a listener (http, https)`);
    const stack = {
        tlsSource: source,
        httpsPort: env.GATEWAY_HTTPS_PORT || "443",
        publicHttpsPort: env.GATEWAY_PUBLIC_HTTPS_PORT ?? "",
        tlsRedirect: bool("GATEWAY_TLS_REDIRECT"),
        hstsSeconds: String(seconds("GATEWAY_HSTS_SECONDS", 0)),
        acceptProxy: acceptProxy.join(" "),
    };
    // acm: the load balancer holds the certificate; the gateway needs no sealing key. Its HTTPS
    // port (GATEWAY_HTTPS_PORT, no default: it is no well-known port) is the offload listener's.
    if (source === "acm" && !env.GATEWAY_HTTPS_PORT)
        throw new EnvError(
            "GATEWAY_HTTPS_PORT must be set with GATEWAY_TLS_SOURCE=acm (the port of the offload listener the load balancer sends HTTPS it terminated to)",
        );
    if (source === "none" || source === "acm") return { stack, acceptProxy };
    const keyFile = env.GATEWAY_SEALING_KEY_FILE || DEFAULT_SEALING_KEY_FILE;
    let sealingKey: Buffer;
    try {
        sealingKey = parseSealingKey(fs.readFileSync(keyFile, "utf8"));
    } catch (err) {
        throw new EnvError(
            `GATEWAY_SEALING_KEY_FILE=${keyFile}: ${(err as Error).message.replace(/^ENOENT: /, "")} (TLS source ${source} needs the stack's sealing key to open the certificates' keys)`,
        );
    }
    if (source !== "acme") return { stack, acceptProxy, sealingKey };
    const email = env.GATEWAY_ACME_EMAIL ?? "";
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new EnvError(`GATEWAY_ACME_EMAIL=${email} is not an e-mail address (the ACME account's contact)`);
    const hosts = (env.GATEWAY_ACME_HOSTS ?? "").split(/[\s,]+/).filter(Boolean);
    if (hosts.length === 0 || hosts.some((h) => !DNS_NAME.test(h)))
        throw new EnvError(`GATEWAY_ACME_HOSTS=${env.GATEWAY_ACME_HOSTS ?? ""} is not a list of DNS names (the names the certificate covers)`);
    const directoryUrl = env.GATEWAY_ACME_DIRECTORY || LETS_ENCRYPT_DIRECTORY;
    if (!/^https:\/\/[^\s]+$/.test(directoryUrl)) throw new EnvError(`GATEWAY_ACME_DIRECTORY=${directoryUrl} is not an https:// URL`);
    if (env.GATEWAY_ACME_CA_FILE) readableOrThrow("GATEWAY_ACME_CA_FILE", env.GATEWAY_ACME_CA_FILE);
    const acme: AcmeSettings = {
        directoryUrl,
        email,
        hosts,
        ...(env.GATEWAY_ACME_EAB_KID ? { eabKid: env.GATEWAY_ACME_EAB_KID } : {}),
        renewBeforeSeconds: seconds("GATEWAY_ACME_RENEW_BEFORE_SECONDS", DEFAULT_ACME_RENEW_BEFORE_DAYS * 86400),
        ...(env.GATEWAY_ACME_CA_FILE ? { caFile: env.GATEWAY_ACME_CA_FILE } : {}),
        checkSeconds: Math.max(1, seconds("GATEWAY_ACME_CHECK_SECONDS", 3600)),
    };
    return { stack, acceptProxy, sealingKey, acme };
}

function readableOrThrow(name: string, file: string): void {
    try {
        fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
        throw new EnvError(`${name}=${file} is not readable (${(err as Error).message})`);
    }
}
