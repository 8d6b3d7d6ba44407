// The difference between two route tables: what users will notice. Pure.
import type { HostRouteEntry, HttpRouteEntry, RouteTable, TcpRouteEntry } from "../components/images/gateway/controller/routes";

export type RouteChange =
    | { readonly kind: "added"; readonly route: string; readonly to: string }
    | { readonly kind: "removed"; readonly route: string; readonly from: string }
    | { readonly kind: "changed"; readonly route: string; readonly what: readonly string[] };

const replicas = (n: number): string => `${n} replica${n === 1 ? "" : "s"}`;

/** What a route sends users to, in words: `hello-v1 (2 replicas)`, `v1 90 % · v2 10 %, sticky`. */
export function describeHttp(e: HttpRouteEntry): string {
    const drained = e.drained > 0 ? `, ${e.drained} in maintenance` : "";
    if (!e.split) return `${e.service} (${replicas(e.servers)}${drained})`;
    return `${e.split.map((v) => `${v.version} ${v.share} %`).join(" · ")}${e.sticky ? ", sticky" : ""}${drained}`;
}

export function describeTcp(e: TcpRouteEntry): string {
    return `${e.service} (${replicas(e.servers)}${e.drained > 0 ? `, ${e.drained} in maintenance` : ""})`;
}

export const tcpRoute = (port: number): string => `tcp :${port}`;

/** What a host route sends users to: `hello-v1 (2 replicas), every path`. */
export function describeHost(e: HostRouteEntry): string {
    return `${e.service} (${replicas(e.servers)}${e.drained > 0 ? `, ${e.drained} in maintenance` : ""}), every path`;
}

export const hostRoute = (host: string): string => `host ${host}`;

/** What an SNI route passes TLS through to: `pg (2 replicas), TLS passed through`. */
export function describeSni(e: HostRouteEntry): string {
    return `${e.service} (${replicas(e.servers)}${e.drained > 0 ? `, ${e.drained} in maintenance` : ""}), TLS passed through`;
}

export const sniRoute = (host: string): string => `sni ${host}`;

function httpChanges(before: HttpRouteEntry, after: HttpRouteEntry): string[] {
    const what: string[] = [];
    if (before.service !== after.service) what.push(`now ${after.service} (was ${before.service})`);
    if (before.split || after.split) {
        const versions = [...new Set([...(before.split ?? []).map((v) => v.version), ...(after.split ?? []).map((v) => v.version)])];
        for (const version of versions) {
            const a = before.split?.find((v) => v.version === version)?.share ?? 0;
            const b = after.split?.find((v) => v.version === version)?.share ?? 0;
            if (a !== b) what.push(`${version} ${a} % → ${b} %`);
        }
        if (Boolean(before.sticky) !== Boolean(after.sticky)) what.push(after.sticky ? "sticky" : "no longer sticky");
    }
    if (before.servers !== after.servers) what.push(`${replicas(before.servers)} → ${after.servers}`);
    if (before.drained !== after.drained) what.push(`in maintenance ${before.drained} → ${after.drained}`);
    return what;
}

/** Routes added, removed and changed from `before` to `after`, in `after`'s matching order (removed ones last). */
export function diffTables(before: RouteTable, after: RouteTable): RouteChange[] {
    const changes: RouteChange[] = [];
    // Tables served by a gateway that predates host routes have none.
    const oldHosts = new Map((before.hosts ?? []).map((e) => [e.host, e]));
    const newHosts = new Set(after.hosts.map((e) => e.host));
    for (const e of after.hosts) {
        const was = oldHosts.get(e.host);
        if (!was) changes.push({ kind: "added", route: hostRoute(e.host), to: describeHost(e) });
        else {
            const what: string[] = [];
            if (was.service !== e.service) what.push(`now ${e.service} (was ${was.service})`);
            if (was.servers !== e.servers) what.push(`${replicas(was.servers)} → ${e.servers}`);
            if (was.drained !== e.drained) what.push(`in maintenance ${was.drained} → ${e.drained}`);
            if (what.length > 0) changes.push({ kind: "changed", route: hostRoute(e.host), what });
        }
    }
    // SNI routes: tables of gateways that predate them have none.
    const oldSni = new Map((before.sni ?? []).map((e) => [e.host, e]));
    const newSni = new Set((after.sni ?? []).map((e) => e.host));
    for (const e of after.sni ?? []) {
        const was = oldSni.get(e.host);
        if (!was) changes.push({ kind: "added", route: sniRoute(e.host), to: describeSni(e) });
        else {
            const what: string[] = [];
            if (was.service !== e.service) what.push(`now ${e.service} (was ${was.service})`);
            if (was.servers !== e.servers) what.push(`${replicas(was.servers)} → ${e.servers}`);
            if (was.drained !== e.drained) what.push(`in maintenance ${was.drained} → ${e.drained}`);
            if (what.length > 0) changes.push({ kind: "changed", route: sniRoute(e.host), what });
        }
    }
    const oldHttp = new Map(before.http.map((e) => [e.prefix, e]));
    const newHttp = new Set(after.http.map((e) => e.prefix));
    for (const e of after.http) {
        const was = oldHttp.get(e.prefix);
        if (!was) changes.push({ kind: "added", route: e.prefix, to: describeHttp(e) });
        else {
            const what = httpChanges(was, e);
            if (what.length > 0) changes.push({ kind: "changed", route: e.prefix, what });
        }
    }
    const oldTcp = new Map(before.tcp.map((e) => [e.port, e]));
    const newTcp = new Set(after.tcp.map((e) => e.port));
    for (const e of after.tcp) {
        const was = oldTcp.get(e.port);
        if (!was) changes.push({ kind: "added", route: tcpRoute(e.port), to: describeTcp(e) });
        else {
            const what: string[] = [];
            if (was.service !== e.service) what.push(`now ${e.service} (was ${was.service})`);
            if (was.servers !== e.servers) what.push(`${replicas(was.servers)} → ${e.servers}`);
            if (was.drained !== e.drained) what.push(`in maintenance ${was.drained} → ${e.drained}`);
            if (what.length > 0) changes.push({ kind: "changed", route: tcpRoute(e.port), what });
        }
    }
    for (const e of before.hosts ?? []) if (!newHosts.has(e.host)) changes.push({ kind: "removed", route: hostRoute(e.host), from: describeHost(e) });
    for (const e of before.sni ?? []) if (!newSni.has(e.host)) changes.push({ kind: "removed", route: sniRoute(e.host), from: describeSni(e) });
    for (const e of before.http) if (!newHttp.has(e.prefix)) changes.push({ kind: "removed", route: e.prefix, from: describeHttp(e) });
    for (const e of before.tcp) if (!newTcp.has(e.port)) changes.push({ kind: "removed", route: tcpRoute(e.port), from: describeTcp(e) });
    return changes;
}
