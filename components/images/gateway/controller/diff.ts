// Two models, one plan: when only servers differ (instances came, went or moved; a weight or a
// maintenance changed), the plan is a list of runtime API operations — no reload, no new worker,
// no connection cut. Anything else (a route, a backend, a setting) is a reload, and says why.
import { structureOf, type Backend, type Model, type Server } from "./model";
import { serverSettings } from "./render";

export type RuntimeOp =
    | { readonly op: "add"; readonly backend: string; readonly server: Server; readonly probe: ProbeTarget | undefined }
    | { readonly op: "del"; readonly backend: string; readonly server: string }
    | { readonly op: "weight"; readonly backend: string; readonly server: string; readonly weight: number };

/** How a new server is probed once before it gets requests: its health path, or a connect for TCP. */
export type ProbeTarget = { readonly kind: "http"; readonly path: string } | { readonly kind: "tcp" };

export type Plan =
    { readonly kind: "none" } | { readonly kind: "runtime"; readonly ops: readonly RuntimeOp[] } | { readonly kind: "reload"; readonly why: string };

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
            } else if ((was.weight ?? 1) !== (s.weight ?? 1)) {
                ops.push({ op: "weight", backend: after.name, server: s.name, weight: s.weight ?? 1 });
            }
        }
    });
    return ops.length === 0 ? { kind: "none" } : { kind: "runtime", ops };
}

/** The same servers in the same order with the same settings. */
function sameServers(a: readonly Server[], b: readonly Server[]): boolean {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
        const x = a[i]!;
        const y = b[i]!;
        if (x.name !== y.name || x.addr !== y.addr || x.weight !== y.weight || x.check !== y.check || x.backup !== y.backup) return false;
    }
    return true;
}

function probeOf(b: Backend): ProbeTarget {
    return b.kind === "tcp" ? { kind: "tcp" } : { kind: "http", path: b.checkPath ?? "/" };
}

/** A short reason for the log: the first part of the structure that differs. */
function firstStructuralDifference(a: Model, b: Model): string {
    if (a.maxconn !== b.maxconn) return `maxconn ${a.maxconn} -> ${b.maxconn}`;
    for (const k of ["connect", "client", "server"] as const) if (a.timeouts[k] !== b.timeouts[k]) return `timeout ${k} ${a.timeouts[k]} -> ${b.timeouts[k]}`;
    if (a.hardStopAfter !== b.hardStopAfter) return `hard-stop-after ${a.hardStopAfter} -> ${b.hardStopAfter}`;
    if (a.trustedProxies !== b.trustedProxies) return "trusted proxies changed";
    const names = (m: Model): string => m.backends.map((x) => x.name).join(" ");
    if (names(a) !== names(b)) return "routes changed";
    if (JSON.stringify(a.tcpListeners) !== JSON.stringify(b.tcpListeners)) return "TCP listeners changed";
    if (JSON.stringify(a.stickyRules) !== JSON.stringify(b.stickyRules)) return "sticky rules changed";
    for (let i = 0; i < a.backends.length; i++) {
        const x = a.backends[i]!;
        const y = b.backends[i]!;
        if (x.checkPath !== y.checkPath) return `${y.name}: health-check path changed`;
        if (x.sticky !== y.sticky) return `${y.name}: stickiness changed`;
    }
    return "settings changed";
}

/** The runtime API commands of an `add` (the probe decides whether it starts DOWN). */
export function addCommand(op: Extract<RuntimeOp, { op: "add" }>): string {
    const settings = serverSettings(op.server);
    return `add server ${op.backend}/${op.server.name} ${op.server.addr}${settings === "" ? "" : ` ${settings}`}`;
}
