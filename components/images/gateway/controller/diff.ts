// Two models, one plan: when only servers differ (instances came, went or moved; a weight, a
// maintenance or a server's maxconn changed), the plan is a list of runtime API operations — no
// reload, no new worker, no connection cut. Anything else (a route, a backend, a setting) is a
// reload, and says why.
import { structureOf, type Backend, type Model, type Server } from "./model";
import { serverSettings } from "./render";

export type RuntimeOp =
    | { readonly op: "add"; readonly backend: string; readonly server: Server; readonly probe: ProbeTarget | undefined }
    | { readonly op: "del"; readonly backend: string; readonly server: string }
    | { readonly op: "weight"; readonly backend: string; readonly server: string; readonly weight: number }
    | { readonly op: "maxconn"; readonly backend: string; readonly server: string; readonly maxconn: number };

/** Certificates and ACME answers, changed at run time too (files for the next reload, then the runtime API). */
export type TlsOp =
    /** A certificate slot's new content ("" in the default slot: the placeholder); `added`: a new slot. */
    | { readonly op: "certificate"; readonly slot: string; readonly pem: string; readonly added: boolean }
    | { readonly op: "uncertificate"; readonly slot: string }
    | { readonly op: "challenge"; readonly token: string; readonly keyAuthorization: string }
    | { readonly op: "unchallenge"; readonly token: string };

/** Host routes and SNI routes, changed at run time (the map file for the next reload, then the runtime API). */
export type HostOp = { readonly op: "host"; readonly host: string; readonly backend: string } | { readonly op: "unhost"; readonly host: string };

/** The HTTPS listener's default certificate (first in its crt-list): what a client without SNI, or with a name no certificate covers, gets. */
export const DEFAULT_SLOT = "default";

/**
 * The certificate files of a model by slot: the default slot (the first certificate by name, ""
 * for the placeholder while there is none), then `certs/<name>` for each certificate.
 */
export function certificateSlots(model: Model): Map<string, string> {
    const slots = new Map<string, string>();
    if (!model.tls || model.tls.offload) return slots;
    slots.set(DEFAULT_SLOT, model.certificates[0]?.pem ?? "");
    for (const c of model.certificates) slots.set(`certs/${c.name}`, c.pem);
    return slots;
}

/** How a new server is probed once before it gets requests: its health path, or a connect for TCP. */
export type ProbeTarget = { readonly kind: "http"; readonly path: string } | { readonly kind: "tcp" };

export type Plan =
    | { readonly kind: "none" }
    | {
          readonly kind: "runtime";
          readonly ops: readonly RuntimeOp[];
          readonly tls?: readonly TlsOp[];
          readonly hosts?: readonly HostOp[];
          readonly sni?: readonly HostOp[];
      }
    | { readonly kind: "reload"; readonly why: string };

export function planChange(running: Model, next: Model): Plan {
    if (structureOf(running) !== structureOf(next)) return { kind: "reload", why: firstStructuralDifference(running, next) };
    const ops: RuntimeOp[] = [];
    running.backends.forEach((before, i) => {
        const after = next.backends[i]!;
        if (sameServers(before.servers, after.servers)) return; // most backends, at scale
        const old = new Map(before.servers.map((s) => [s.name, s]));
        const now = new Map(after.servers.map((s) => [s.name, s]));
        for (const name of old.keys()) if (!now.has(name)) ops.push({ op: "del", backend: after.name, server: name });
        for (const s of after.servers) {
            const was = old.get(s.name);
            if (was === undefined) {
                ops.push({ op: "add", backend: after.name, server: s, probe: s.check ? probeOf(after) : undefined });
            } else if (was.addr !== s.addr || was.check !== s.check || was.backup !== s.backup) {
                // Cannot happen with names derived from the address, but a plan never guesses.
                ops.push({ op: "del", backend: after.name, server: s.name }, { op: "add", backend: after.name, server: s, probe: undefined });
            } else {
                if ((was.weight ?? 1) !== (s.weight ?? 1)) ops.push({ op: "weight", backend: after.name, server: s.name, weight: s.weight ?? 1 });
                if (was.maxconn !== s.maxconn) ops.push({ op: "maxconn", backend: after.name, server: s.name, maxconn: s.maxconn });
            }
        }
    });
    // Certificates and ACME answers: runtime only (the structure, HTTPS or not, is the same).
    const tls: TlsOp[] = [];
    const before = certificateSlots(running);
    for (const [slot, pem] of certificateSlots(next)) {
        if (before.get(slot) !== pem) tls.push({ op: "certificate", slot, pem, added: !before.has(slot) });
    }
    for (const slot of before.keys()) if (!certificateSlots(next).has(slot)) tls.push({ op: "uncertificate", slot });
    const answers = new Map(running.challenges);
    const nextAnswers = new Map(next.challenges);
    for (const [token] of answers) if (!nextAnswers.has(token)) tls.push({ op: "unchallenge", token });
    for (const [token, keyAuthorization] of nextAnswers) {
        if (answers.get(token) !== keyAuthorization) tls.push({ op: "challenge", token, keyAuthorization });
    }
    const hosts = hostChanges(running, next);
    // Both models pass TLS through (the structure says so) or neither has SNI routes.
    const sni = hostChanges(running, next, "sniRoutes");
    if (ops.length === 0 && tls.length === 0 && hosts.length === 0 && sni.length === 0) return { kind: "none" };
    return { kind: "runtime", ops, ...(tls.length > 0 ? { tls } : {}), ...(hosts.length > 0 ? { hosts } : {}), ...(sni.length > 0 ? { sni } : {}) };
}

/** The host routes' (or SNI routes') map entries removed, then those added or pointed at another backend. */
export function hostChanges(running: Model, next: Model, routes: "hostRoutes" | "sniRoutes" = "hostRoutes"): HostOp[] {
    const before = new Map(running[routes].map((r) => [r.host, r.backend]));
    const after = new Map(next[routes].map((r) => [r.host, r.backend]));
    const ops: HostOp[] = [];
    for (const host of before.keys()) if (!after.has(host)) ops.push({ op: "unhost", host });
    for (const [host, backend] of after) if (before.get(host) !== backend) ops.push({ op: "host", host, backend });
    return ops;
}

/** The same servers in the same order with the same settings. */
function sameServers(a: readonly Server[], b: readonly Server[]): boolean {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
        const x = a[i]!;
        const y = b[i]!;
        if (x.name !== y.name || x.addr !== y.addr || x.weight !== y.weight || x.maxconn !== y.maxconn || x.check !== y.check || x.backup !== y.backup)
            return false;
    }
    return true;
}

function probeOf(b: Backend): ProbeTarget {
    return b.kind === "tcp" ? { kind: "tcp" } : { kind: "http", path: b.checkPath ?? "/" };
}

/** A short reason for the log: the first part of the structure that differs. */
function firstStructuralDifference(a: Model, b: Model): string {
    // First: it comes with other changes (a TCP backend, hard-stop-after), but it is the one that matters.
    if (a.sniRoutes.length > 0 !== b.sniRoutes.length > 0)
        return b.sniRoutes.length > 0
            ? "TLS pass-through by SNI on (first SNI route): the HTTPS port becomes a TCP frontend"
            : "TLS pass-through by SNI off (last SNI route gone): the HTTPS port is the terminating frontend again";
    if (a.maxconn !== b.maxconn) return `maxconn ${a.maxconn} -> ${b.maxconn}`;
    for (const k of ["http", "tcp", "stats", "https"] as const)
        if (a.listenerMaxconn[k] !== b.listenerMaxconn[k]) return `maxconn of the ${k} listeners ${a.listenerMaxconn[k]} -> ${b.listenerMaxconn[k]}`;
    for (const [k, name] of [
        ["connect", "connect"],
        ["client", "client"],
        ["server", "server"],
        ["httpRequest", "http-request"],
        ["httpKeepAlive", "http-keep-alive"],
        ["tcpIdle", "tcp-idle"],
    ] as const)
        if (a.timeouts[k] !== b.timeouts[k]) return `timeout ${name} ${a.timeouts[k]} -> ${b.timeouts[k]}`;
    for (const [k, name] of [
        ["clientConnections", "connections per client"],
        ["clientRate", "requests per client"],
        ["bodySize", "body size"],
    ] as const)
        if (a.limits[k] !== b.limits[k]) return `${name} ${a.limits[k]} -> ${b.limits[k]}`;
    if (a.forwardedPort !== b.forwardedPort) return `X-Forwarded-Port ${a.forwardedPort} -> ${b.forwardedPort}`;
    if (a.hardStopAfter !== b.hardStopAfter) return `hard-stop-after ${a.hardStopAfter} -> ${b.hardStopAfter}`;
    if (a.trustedProxies !== b.trustedProxies) return "trusted proxies changed";
    if (JSON.stringify(a.tls) !== JSON.stringify(b.tls)) return "HTTPS settings changed";
    if (JSON.stringify(a.acceptProxy) !== JSON.stringify(b.acceptProxy)) return "PROXY protocol listeners changed";
    const names = (m: Model): string => m.backends.map((x) => x.name).join(" ");
    if (names(a) !== names(b)) return "routes changed";
    if (JSON.stringify(a.tcpListeners) !== JSON.stringify(b.tcpListeners)) return "TCP listeners changed";
    if (JSON.stringify(a.stickyRules) !== JSON.stringify(b.stickyRules)) return "sticky rules changed";
    for (let i = 0; i < a.backends.length; i++) {
        const x = a.backends[i]!;
        const y = b.backends[i]!;
        if (x.checkPath !== y.checkPath) return `${y.name}: health-check path changed`;
        if (x.sticky !== y.sticky) return `${y.name}: stickiness changed`;
        if (x.rate !== y.rate) return `${y.name}: request rate per client ${x.rate ?? "none"} -> ${y.rate ?? "none"}`;
        if (x.idleTimeout !== y.idleTimeout) return `${y.name}: idle timeout ${x.idleTimeout ?? "the stack's"} -> ${y.idleTimeout ?? "the stack's"}`;
    }
    return "settings changed";
}

/** The runtime API commands of an `add` (the probe decides whether it starts DOWN). */
export function addCommand(op: Extract<RuntimeOp, { op: "add" }>): string {
    const settings = serverSettings(op.server);
    return `add server ${op.backend}/${op.server.name} ${op.server.addr}${settings === "" ? "" : ` ${settings}`}`;
}
