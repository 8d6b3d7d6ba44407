// Consul ACL rules, one policy per role, least privilege. Pure data, so the program
// (components/consul-acl.ts) and the control-plane tests create the very same policies.
// ACLs default to deny: a request without a token, or with a token whose policies do not grant
// it, is refused with 403.
import { KV_PREFIX } from "./gateway-kv";
import { TLS_KV } from "./images/gateway/controller/rules";

/** Consul's fixed accessor ID of the anonymous token (requests without a token). */
export const ANONYMOUS_TOKEN_ACCESSOR_ID = "00000000-0000-0000-0000-000000000002";

export type Role = "registrator" | "gateway" | "kvWriter" | "operator" | "anonymous";

export interface RolePolicy {
    /** Policy name in Consul. */
    readonly name: string;
    readonly description: string;
    /** HCL rules. */
    readonly rules: string;
}

/** The rules of each role. Agents use Consul's node identities (node write for their own node). */
export const POLICIES: Readonly<Record<Role, RolePolicy>> = {
    registrator: {
        name: "registrator",
        description: "Registrator: registers and deregisters the containers of its node through the local agent",
        // service write: the agent endpoints (register/deregister). node read: no catalog writes
        // under any node (catalog register needs node write), no KV at all.
        rules: ['service_prefix "" { policy = "write" }', 'node_prefix "" { policy = "read" }'].join("\n"),
    },
    gateway: {
        name: "gateway",
        description: "Gateway controller: reads the catalog, health and its own KV settings; writes nothing",
        rules: ['service_prefix "" { policy = "read" }', 'node_prefix "" { policy = "read" }', `key_prefix "${KV_PREFIX}/" { policy = "read" }`].join("\n"),
    },
    kvWriter: {
        name: "gateway-settings-writer",
        description: "Pulumi: manages the gateway settings under the KV prefix",
        rules: `key_prefix "${KV_PREFIX}/" { policy = "write" }`,
    },
    // What operators do by hand (docs/operations.md): `consul members`, the catalog and health, the
    // UI, the gateway settings as the gateways read them, the raft peers. Changes go through
    // `pulumi up`; the management token stays Pulumi's (and break-glass: docs/security.md).
    operator: {
        name: "operator",
        description: "Operators (npm run operator, the UI): read the catalog, health, agents, the gateway settings and the raft peers; no writes, no ACLs",
        rules: [
            'service_prefix "" { policy = "read" }',
            'node_prefix "" { policy = "read" }',
            'agent_prefix "" { policy = "read" }',
            `key_prefix "${KV_PREFIX}/" { policy = "read" }`,
            'operator = "read"',
        ].join("\n"),
    },
    anonymous: {
        name: "anonymous-dns",
        description: "Requests without a token: DNS lookups (catalog reads), nothing else",
        rules: ['service_prefix "" { policy = "read" }', 'node_prefix "" { policy = "read" }'].join("\n"),
    },
};

/**
 * The gateway's policy for a stack: with gateway.tls.source acme the gateways order certificates
 * themselves (controller/acme.ts), so they also write their ACME keys (tls/acme/: the lock, the
 * challenges, the account key) and the certificate they order (tls/certificates/acme/), and hold
 * a session for the lock. Nothing more: not the certificates Pulumi writes, not the settings.
 */
export function gatewayPolicy(acme: boolean): RolePolicy {
    if (!acme) return POLICIES.gateway;
    return {
        name: POLICIES.gateway.name,
        description: "Gateway controller: reads the catalog, health and its KV settings; writes only its ACME keys and certificate, and holds the ACME lock",
        rules: [
            POLICIES.gateway.rules,
            `key_prefix "${KV_PREFIX}/${TLS_KV.acme}" { policy = "write" }`,
            `key_prefix "${KV_PREFIX}/${TLS_KV.certificates}${TLS_KV.acmeCertificate}/" { policy = "write" }`,
            'session_prefix "" { policy = "write" }',
        ].join("\n"),
    };
}
