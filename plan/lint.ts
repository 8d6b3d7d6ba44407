// Routing mistakes found before they reach users, each with the config key to change. Errors
// fail `npm run plan`; warnings are listed. Pure.
import type { Settings } from "../components/config";
import type { RouteTable } from "../components/images/gateway/controller/routes";

export interface Finding {
    readonly level: "error" | "warning";
    /** Which rule found it (docs/routing-plan.md, "Lint rules"). */
    readonly rule: string;
    /** The config key to change, as config errors name keys: `service-discovery:services[1].weight`. */
    readonly key: string;
    readonly message: string;
}

export interface LintOptions {
    /** A version's share of a split changing by more than this many points without `sticky` is a warning. */
    readonly weightStep: number;
}

export const DEFAULT_LINT: LintOptions = { weightStep: 25 };

const KEY = (path: string): string => `service-discovery:${path}`;

export function lint(settings: Settings, table: RouteTable, base?: RouteTable, options: LintOptions = DEFAULT_LINT): Finding[] {
    const findings: Finding[] = [];
    const index = new Map(settings.services.map((s, i) => [s.consulName, i]));
    const serviceKey = (consulName: string, field?: string): string => {
        const i = index.get(consulName);
        return i === undefined ? KEY("services") : KEY(`services[${i}]${field ? `.${field}` : ""}`);
    };
    /** The declared versions that split /<name>/. */
    const versionsOf = (name: string) => settings.services.map((s, i) => ({ s, i })).filter(({ s }) => s.name === name && s.weight !== undefined);

    /** No replica routed: why, from the gateway's notes, and the key that decides it (a node's address, or the service). */
    const noReplica = (service: string, what: string): Finding => {
        const why = table.notes.find((n) => n.startsWith(`skipped: ${service} instance `));
        const host = why ? settings.hosts.findIndex((h) => why.includes(` ${h.address}:`)) : -1;
        return {
            level: "error",
            rule: "no-replica",
            key: host >= 0 ? KEY(`hosts[${host}].address`) : serviceKey(service),
            message: `${what}${why ? ` (the gateway ${why})` : ""}`,
        };
    };

    // A value the gateway would refuse: the stack and the gateway disagree.
    for (const note of table.notes.filter((n) => n.startsWith("rejected:"))) {
        const svc = /services\/([^/\s]+)\//.exec(note)?.[1];
        findings.push({ level: "error", rule: "rejected", key: svc ? serviceKey(svc) : KEY("haproxy"), message: `the gateway would refuse a value: ${note}` });
    }

    // Every declared service has its route.
    const routed = new Set([...table.http.map((e) => e.service), ...table.tcp.map((e) => e.service), ...(table.sni ?? []).map((e) => e.service)]);
    for (const s of settings.services) {
        const split = s.weight !== undefined && table.http.some((e) => e.service === s.name && e.split?.some((v) => `${s.name}-${v.version}` === s.consulName));
        if (routed.has(s.consulName) || split) continue;
        const why = table.notes.find((n) => n.startsWith("skipped:") && n.includes(s.consulName));
        findings.push({
            level: "error",
            rule: "unrouted",
            key: why?.includes("limits/services") ? KEY("haproxy.maxServices") : serviceKey(s.consulName),
            message: `${s.consulName} would not be routed${why ? `: ${why}` : ""}`,
        });
    }

    // Shadowing: a route matched earlier whose prefix starts a later one takes its requests.
    table.http.forEach((later, j) => {
        const earlier = table.http.slice(0, j).find((e) => later.prefix.startsWith(e.prefix));
        if (earlier)
            findings.push({
                level: "error",
                rule: "shadowed",
                key: serviceKey(later.service),
                message: `${later.prefix} is never reached: ${earlier.prefix} (${earlier.service}) is matched before it and takes its requests`,
            });
    });

    for (const e of table.http) {
        if (e.servers === 0) {
            findings.push(noReplica(e.service, `${e.prefix} has no replica to route to: every request gets 503`));
            continue;
        }
        if (e.split) {
            const versions = versionsOf(e.service);
            if (e.split.every((v) => v.share === 0)) {
                findings.push({
                    level: "error",
                    rule: "no-share",
                    key: versions.length ? KEY(`services[${versions[0]!.i}].weight`) : serviceKey(e.service),
                    message: `${e.prefix} sends 0 % to every version (${versions.map(({ s }) => `${s.consulName} weight ${s.weight}`).join(", ")}): every request gets 503; give one version a weight above 0`,
                });
            }
            // Clients moved between versions mid-session.
            const before = base?.http.find((b) => b.prefix === e.prefix)?.split;
            if (before && !e.sticky) {
                for (const v of e.split) {
                    const was = before.find((b) => b.version === v.version)?.share ?? 0;
                    if (Math.abs(v.share - was) > options.weightStep) {
                        const own = versions.find(({ s }) => s.consulName === `${e.service}-${v.version}`);
                        findings.push({
                            level: "warning",
                            rule: "weight-step",
                            key: own ? KEY(`services[${own.i}].sticky`) : serviceKey(e.service),
                            message: `${e.prefix}: ${v.version} moves from ${was} % to ${v.share} % (more than ${options.weightStep} points) and the split is not sticky: clients will switch versions between requests; set sticky: true on its versions or move in smaller steps`,
                        });
                    }
                }
            }
        }
        if (e.drained === e.servers) {
            const key = e.split ? KEY(`services[${versionsOf(e.service)[0]?.i ?? 0}].maintenance`) : serviceKey(e.service, "maintenance");
            findings.push({
                level: "warning",
                rule: "all-in-maintenance",
                key,
                message: `${e.prefix}: every replica is in maintenance: every request gets 503 until it ends`,
            });
        }
    }

    const ports = new Map<number, string>();
    for (const t of table.tcp) {
        const other = ports.get(t.port);
        if (other !== undefined)
            findings.push({
                level: "error",
                rule: "tcp-port",
                key: serviceKey(t.service, "listenPort"),
                message: `tcp :${t.port} is claimed by ${other} and ${t.service}`,
            });
        ports.set(t.port, t.service);
        if (t.servers === 0) findings.push(noReplica(t.service, `tcp :${t.port} (${t.service}) has no replica: every connection is refused`));
        else if (t.drained === t.servers)
            findings.push({
                level: "warning",
                rule: "all-in-maintenance",
                key: serviceKey(t.service, "maintenance"),
                message: `tcp :${t.port} (${t.service}): every replica is in maintenance: new connections are refused until it ends`,
            });
    }
    for (const e of table.sni ?? [])
        if (e.servers === 0) findings.push(noReplica(e.service, `sni ${e.host} (${e.service}) has no replica: every connection is refused`));
    return findings;
}
