// The controller's settings, all from the environment: the image sets the defaults, the stack
// (components/gateway.ts) the rest, and the control-plane tests the same variables on loopback.
import * as fs from "node:fs";
import type { StackSettings } from "./model";

export interface ControllerEnv {
    /** bootstrap.cfg: served from the first second until Consul has been read. */
    readonly confDir: string;
    /** The live config, sockets, the pid file, the saved server state. */
    readonly runDir: string;
    readonly haproxyBin: string;
    readonly stack: StackSettings;
    /** HAProxy expands these in the config: never written to a file. */
    readonly haproxyEnv: NodeJS.ProcessEnv;
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

export function readEnv(env: NodeJS.ProcessEnv, log: (line: string) => void): ControllerEnv {
    const get = (name: string, def: string): string => env[name] ?? def;
    // No default credentials: the stats page and metrics need a user and a password from outside.
    if (!env.STATS_USER || !env.STATS_PASSWORD) throw new EnvError("STATS_USER and STATS_PASSWORD must be set (the stats page has no default password)");
    for (const name of ["GATEWAY_HTTP_PORT", "GATEWAY_STATS_PORT"]) {
        const v = env[name];
        if (v !== undefined && !/^[1-9][0-9]{0,4}$/.test(v)) throw new EnvError(`${name}=${JSON.stringify(v)} is not a port number (1-65535)`);
    }
    let own = env.GATEWAY_OWN_ADDRESSES;
    if (own === undefined || own === "") {
        own = ownAddresses(readOr("/proc/net/fib_trie", "")).join(" ");
        if (own === "") log("gateway: cannot read this container's addresses (/proc/net/fib_trie); set GATEWAY_OWN_ADDRESSES");
    }
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
    };
    // The Consul token is the controller's; HAProxy has no use for it.
    delete haproxyEnv.CONSUL_HTTP_TOKEN;
    return {
        confDir: get("GATEWAY_CONF_DIR", "/etc/gateway"),
        runDir,
        haproxyBin: get("HAPROXY_BIN", "haproxy"),
        stack,
        haproxyEnv,
    };
}
