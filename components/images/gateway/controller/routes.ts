// The route table: what users are routed to, read off a model (model.ts). The gateway serves it
// at /routes on its stats port (for `npm run plan --gateway`), and `npm run plan` computes it
// from a stack's config with the same model: one function, so the two cannot disagree.
// Pure: no I/O (bundled into the gateway).
import type { Backend, Model } from "./model";

export interface VersionShare {
    readonly version: string;
    /** Percent of new requests to /<name>/ (one decimal); 0 when every server of it is drained or its weight is 0. */
    readonly share: number;
    readonly servers: number;
    readonly drained: number;
}

export interface HttpRouteEntry {
    /** As users write it: `/hello/v1/`. */
    readonly prefix: string;
    /** The Consul service behind it, or the name whose versions split it. */
    readonly service: string;
    /** Health-checked servers (replicas) and how many of them are drained (weight 0, maintenance). */
    readonly servers: number;
    readonly drained: number;
    /** A split between versions by weight: each version's share. */
    readonly split?: readonly VersionShare[];
    /** A sticky split: a client keeps the version it was given (cookie sd-<name>). */
    readonly sticky?: boolean;
}

export interface TcpRouteEntry {
    readonly port: number;
    readonly service: string;
    readonly servers: number;
    readonly drained: number;
}

/** A host route: every request whose Host header is `host` goes to `service`, whatever its path. */
export interface HostRouteEntry {
    readonly host: string;
    readonly service: string;
    readonly servers: number;
    readonly drained: number;
}

/** An SNI route: every TLS connection to the HTTPS port whose SNI is `host` is passed through, undecrypted, to the tcp service `service`. */
export type SniRouteEntry = HostRouteEntry;

export interface RouteTable {
    /** By host name; matched before the path prefixes. */
    readonly hosts: readonly HostRouteEntry[];
    /** TLS pass-through by SNI on the HTTPS port, by host name (absent from tables of gateways that predate it). */
    readonly sni?: readonly SniRouteEntry[];
    /** In matching order. */
    readonly http: readonly HttpRouteEntry[];
    /** By port. */
    readonly tcp: readonly TcpRouteEntry[];
    /** Why something the catalog or KV held is not routed ("skipped: …", "rejected: …"). */
    readonly notes: readonly string[];
}

/** The health-checked servers of a backend (its panic twins are backups of the same replicas). */
function primaries(b: Backend | undefined): Backend["servers"] {
    return (b?.servers ?? []).filter((s) => !s.backup);
}

function round1(n: number): number {
    return Math.round(n * 10) / 10;
}

export function routeTable(model: Model): RouteTable {
    const byName = new Map(model.backends.map((b) => [b.name, b]));
    const http = model.routes.map((r): HttpRouteEntry => {
        const b = byName.get(r.backend);
        const servers = primaries(b);
        const service = r.backend.replace(/^svc_/, "");
        const entry = { prefix: `/${r.path}/`, service, servers: servers.length, drained: servers.filter((s) => s.weight === 0).length };
        if (b?.kind !== "split") return entry;
        // Split servers are named <version>_<address>; a version's share is its servers' weight.
        // Weight 0 in a split is also a version's weight 0: what is in maintenance is read from
        // the version's own backend, where only maintenance sets weight 0.
        const versions = new Map<string, { weight: number; servers: number; drained: number }>();
        for (const s of servers) {
            const version = s.name.slice(0, s.name.indexOf("_"));
            const v = versions.get(version) ?? { weight: 0, servers: 0, drained: 0 };
            v.weight += s.weight ?? 1;
            v.servers += 1;
            versions.set(version, v);
        }
        for (const [version, v] of versions) v.drained = primaries(byName.get(`svc_${service}-${version}`)).filter((s) => s.weight === 0).length;
        const total = [...versions.values()].reduce((n, v) => n + v.weight, 0);
        const split = [...versions].map(([version, v]) => ({
            version,
            share: total > 0 ? round1((100 * v.weight) / total) : 0,
            servers: v.servers,
            drained: v.drained,
        }));
        return { ...entry, drained: split.reduce((n, v) => n + v.drained, 0), split, sticky: b.sticky === true };
    });
    const tcp = model.tcpListeners.map((l): TcpRouteEntry => {
        const servers = primaries(byName.get(l.backend));
        return { port: l.port, service: l.name, servers: servers.length, drained: servers.filter((s) => s.weight === 0).length };
    });
    const byHost = (r: Model["hostRoutes"][number]): HostRouteEntry => {
        const servers = primaries(byName.get(r.backend));
        return { host: r.host, service: r.backend.replace(/^svc_/, ""), servers: servers.length, drained: servers.filter((s) => s.weight === 0).length };
    };
    return { hosts: model.hostRoutes.map(byHost), sni: model.sniRoutes.map(byHost), http, tcp: [...tcp].sort((a, b) => a.port - b.port), notes: model.notes };
}
