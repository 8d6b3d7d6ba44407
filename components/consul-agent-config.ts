// The Consul agent's configuration file, as data: ACLs (default deny), TLS on every RPC and on
// the HTTP API, gossip encryption. Pure (no Pulumi), so the program (components/consul.ts) and
// the control-plane tests render the very same file: the tests run Consul exactly as deployed,
// only the ports and file locations differ.
//
// Secrets (the gossip key, the initial management token) live in this file, never on a
// command line: `ps` and `docker inspect` show a container's argv and environment.

/** Name other containers reach the node's Consul agent by, on the node's network. */
export const CONSUL_HOST = "consul";

/** The script that sets an agent's token, relative to the project (Pulumi runs programs there). */
export const AGENT_TOKEN_SCRIPT = "components/local-commands/consul-agent-token.mjs";

/** The script a server's gate runs (rolling replacement: the next server waits for it), relative to the project. */
export const SERVER_READY_SCRIPT = "components/local-commands/consul-server-ready.mjs";

/** Where the container keeps what this module refers to (the official image's layout). */
export const CONSUL_PATHS = {
    /** The official image's entrypoint loads every .json/.hcl file here (`-config-dir`). */
    configFile: "/consul/config/agent.json",
    dataDir: "/consul/data",
    /** A volume of its own, shared with the node's Registrator only (tmpfs, owned by the consul user). */
    runDir: "/consul/run",
    /** Plain HTTP on a UNIX socket: Registrator (v7 speaks no TLS with a custom CA) reaches its agent here, never over a network. */
    httpSocket: "/consul/run/http.sock",
    caFile: "/consul/tls/ca.pem",
    certFile: "/consul/tls/agent.pem",
    keyFile: "/consul/tls/agent-key.pem",
} as const;

/** Ports inside the agent's container. */
export const CONSUL_PORTS = {
    /** Plain HTTP: the agent's own loopback only (the container's health check, `consul` CLI). */
    http: 8500,
    /** HTTPS: the API for everything else (other containers, Pulumi, users). */
    https: 8501,
    dns: 8600,
    server: 8300,
    serfLan: 8301,
} as const;

/**
 * The official image runs Consul as user `consul` (uid 100, gid 1000); files holding secrets
 * are uploaded with that owner and mode 0600.
 */
export const CONSUL_FILE_OWNER = { uid: "100", gid: "1000" } as const;

export interface AgentConfigInput {
    readonly datacenter: string;
    readonly nodeName: string;
    readonly server: boolean;
    /** Servers: how many servers form the cluster. */
    readonly bootstrapExpect?: number;
    /** 32 random bytes, base64. */
    readonly encryptKey: string;
    /** Servers: the token Consul creates at bootstrap with full rights (a UUID). */
    readonly initialManagementToken?: string;
    readonly retryJoin: readonly string[];
    /** The address other agents reach this one on (multi-node), else Consul picks. */
    readonly advertiseAddr?: string;
    readonly maxConnsPerClient: number;
    /** Overrides for the tests; the container uses the defaults. */
    readonly paths?: Partial<Record<"dataDir" | "caFile" | "certFile" | "keyFile" | "httpSocket", string>>;
    readonly ports?: Partial<Record<"http" | "https" | "dns" | "server" | "serfLan" | "serfWan", number>>;
    /** Address the HTTPS API and DNS listen on; 0.0.0.0 in a container. */
    readonly clientAddr?: string;
    /** Address gossip and RPC bind to; Consul's default (0.0.0.0) in a container. */
    readonly bindAddr?: string;
}

/**
 * A go-sockaddr template (Consul reads one in bind_addr, client_addr and addresses.*): the
 * container's addresses inside `subnet`. An agent that joins the services' networks to check
 * their replicas (one node: components/service-networks.ts) listens on its node-network address
 * only: a replica that connects to it on its own network finds no listener.
 */
export function addressesIn(subnet: string): string {
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(subnet)) throw new Error(`addressesIn: ${JSON.stringify(subnet)} is not an IPv4 CIDR block`);
    return `{{ GetAllInterfaces | include "network" "${subnet}" | attr "address" }}`;
}

/** The agent's configuration file (Consul reads JSON and HCL alike). */
export function agentConfig(i: AgentConfigInput): Record<string, unknown> {
    const paths = { ...CONSUL_PATHS, ...i.paths };
    const p = i.ports ?? {};
    const ports = {
        http: p.http ?? CONSUL_PORTS.http,
        https: p.https ?? CONSUL_PORTS.https,
        dns: p.dns ?? CONSUL_PORTS.dns,
        ...(p.server !== undefined ? { server: p.server } : {}),
        ...(p.serfLan !== undefined ? { serf_lan: p.serfLan } : {}),
        ...(p.serfWan !== undefined ? { serf_wan: p.serfWan } : {}),
    };
    const clientAddr = i.clientAddr ?? "0.0.0.0";
    if (i.server && (i.initialManagementToken === undefined || i.bootstrapExpect === undefined)) {
        throw new Error(`consul agent ${i.nodeName}: a server needs bootstrapExpect and the initial management token`);
    }
    return {
        datacenter: i.datacenter,
        node_name: i.nodeName,
        data_dir: paths.dataDir,
        server: i.server,
        ...(i.server ? { bootstrap_expect: i.bootstrapExpect, ui_config: { enabled: true } } : {}),
        ...(i.bindAddr ? { bind_addr: i.bindAddr } : {}),
        ...(i.advertiseAddr ? { advertise_addr: i.advertiseAddr } : {}),
        retry_join: [...i.retryJoin],
        client_addr: clientAddr,
        // Plain HTTP answers on the agent's loopback and on a UNIX socket in a volume only the
        // node's Registrator shares; everything else speaks HTTPS.
        addresses: { http: `127.0.0.1 unix://${paths.httpSocket}`, https: clientAddr, dns: clientAddr },
        unix_sockets: { mode: "0600" },
        ports: { ...ports, grpc: -1, grpc_tls: -1 },
        // Gossip: encrypted, and a node without the key is refused.
        encrypt: i.encryptKey,
        encrypt_verify_incoming: true,
        encrypt_verify_outgoing: true,
        acl: {
            enabled: true,
            default_policy: "deny",
            // A server outage keeps cached decisions instead of denying everything.
            down_policy: "extend-cache",
            // The agent token set through the API survives a restart (kept in the data dir).
            enable_token_persistence: true,
            ...(i.initialManagementToken ? { tokens: { initial_management: i.initialManagementToken } } : {}),
        },
        tls: {
            defaults: {
                ca_file: paths.caFile,
                cert_file: paths.certFile,
                key_file: paths.keyFile,
                verify_incoming: true,
                verify_outgoing: true,
                tls_min_version: "TLSv1_2",
            },
            // Only a certificate for server.<datacenter>.consul can act as a server.
            internal_rpc: { verify_server_hostname: true },
            // API clients authenticate with ACL tokens, not certificates.
            https: { verify_incoming: false },
        },
        // Connections per client address (consul.maxConnsPerClient, Consul's default 200): a
        // gateway holds 2 + one blocking query per node, whatever the number of services.
        limits: { http_max_conns_per_client: i.maxConnsPerClient },
        // Consul's own update check calls out to the internet.
        disable_update_check: true,
    };
}

/** The names a server's certificate must carry for verify_server_hostname. */
export function serverTlsName(datacenter: string): string {
    return `server.${datacenter}.consul`;
}

/** The name a client agent's certificate carries (never the server name). */
export function clientTlsName(datacenter: string): string {
    return `client.${datacenter}.consul`;
}
