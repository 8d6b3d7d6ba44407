// The controller's own metrics, in Prometheus' text format, served on a UNIX socket in the run
// directory; HAProxy's stats frontend passes /metrics/controller to it behind the stats
// credentials (render.ts). A handful of gauges and counters needs no client library.
import * as fs from "node:fs";
import * as http from "node:http";
import type { Certificate } from "./certificates";
import type { RouteTable } from "./routes";

export interface WatchMetric {
    readonly name: string;
    /** The Consul index this watch has seen. */
    readonly index: number;
    /** The index of the data the running config was made from. */
    readonly applied: number;
    /** When this watch last heard from Consul (ms since the epoch, 0: never). */
    readonly lastSuccessMs: number;
    readonly errors: number;
    readonly stalls: number;
}

export interface ControllerMetrics {
    watches: () => readonly WatchMetric[];
    consulConnections: () => number;
    changes: { runtime: number; reload: number };
    reloadFailures: number;
    rejectedRenders: number;
    latestRenderRunning: boolean;
    quarantined: number;
    /** Registrations refused because their container is not a declared replica of the service they claim. */
    foreignInstances: number;
    /** Lines of the model's notes: skipped instances and services, rejected values. */
    skipped: number;
    rejected: number;
    /** Duration of the last change from Consul's answer to HAProxy running it, by path. */
    lastApplySeconds: { runtime: number; reload: number };
    servers: number;
    backends: number;
    /** The certificates HTTPS serves now. */
    certificates: readonly Certificate[];
    /** Certificates installed at run time (set ssl cert), since start. */
    certificateChanges: number;
    /** ACME orders (acme.ts): by this gateway, since start. */
    acme: { orders: number; failures: number; lastSuccessMs: number; lastFailureMs: number };
}

/** Fresh counters; `watches` and `consulConnections` are read at each scrape. */
export function newMetrics(watches: ControllerMetrics["watches"] = () => [], consulConnections: () => number = () => 0): ControllerMetrics {
    return {
        watches,
        consulConnections,
        changes: { runtime: 0, reload: 0 },
        reloadFailures: 0,
        rejectedRenders: 0,
        latestRenderRunning: false,
        quarantined: 0,
        foreignInstances: 0,
        skipped: 0,
        rejected: 0,
        lastApplySeconds: { runtime: 0, reload: 0 },
        servers: 0,
        backends: 0,
        certificates: [],
        certificateChanges: 0,
        acme: { orders: 0, failures: 0, lastSuccessMs: 0, lastFailureMs: 0 },
    };
}

const esc = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function renderMetrics(m: ControllerMetrics, nowMs = Date.now()): string {
    const out: string[] = [];
    const metric = (name: string, type: "gauge" | "counter", help: string, samples: [string, number][]): void => {
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [labels, v] of samples) out.push(`${name}${labels} ${Number.isFinite(v) ? v : "NaN"}`);
    };
    const watches = m.watches();
    const w = (f: (x: WatchMetric) => number): [string, number][] => watches.map((x) => [`{watch="${esc(x.name)}"}`, f(x)]);
    metric(
        "gateway_controller_consul_index",
        "gauge",
        "The Consul index each watch has seen.",
        w((x) => x.index),
    );
    metric(
        "gateway_controller_consul_index_applied",
        "gauge",
        "The Consul index of the data the running configuration was made from.",
        w((x) => x.applied),
    );
    metric(
        "gateway_controller_consul_last_success_age_seconds",
        "gauge",
        "Seconds since each watch last heard from Consul (a blocking query answers at least every few minutes).",
        w((x) => (x.lastSuccessMs === 0 ? NaN : (nowMs - x.lastSuccessMs) / 1000)),
    );
    const oldest = watches.length === 0 ? NaN : Math.max(...watches.map((x) => (x.lastSuccessMs === 0 ? Infinity : (nowMs - x.lastSuccessMs) / 1000)));
    metric("gateway_controller_consul_staleness_seconds", "gauge", "Seconds since the least recently answered watch heard from Consul: alert on this.", [
        ["", Number.isFinite(oldest) ? oldest : 1e9],
    ]);
    metric(
        "gateway_controller_consul_errors_total",
        "counter",
        "Failed Consul requests, by watch.",
        w((x) => x.errors),
    );
    metric(
        "gateway_controller_consul_stalls_total",
        "counter",
        "Blocking queries aborted by the stall watchdog and re-issued.",
        w((x) => x.stalls),
    );
    metric("gateway_controller_consul_connections", "gauge", "TCP connections to Consul.", [["", m.consulConnections()]]);
    metric("gateway_controller_changes_total", "counter", "Changes applied, by how: the runtime API (no reload) or a reload.", [
        ['{via="runtime"}', m.changes.runtime],
        ['{via="reload"}', m.changes.reload],
    ]);
    metric("gateway_controller_last_apply_seconds", "gauge", "How long the last change took to apply, by how.", [
        ['{via="runtime"}', m.lastApplySeconds.runtime],
        ['{via="reload"}', m.lastApplySeconds.reload],
    ]);
    metric("gateway_controller_reload_failures_total", "counter", "Reloads that failed twice (the previous configuration kept running).", [
        ["", m.reloadFailures],
    ]);
    metric("gateway_controller_rejected_renders_total", "counter", "Configurations rejected by haproxy -c (the running one kept).", [["", m.rejectedRenders]]);
    metric("gateway_controller_latest_render_running", "gauge", "1 when HAProxy runs the configuration made from the latest data, else 0.", [
        ["", m.latestRenderRunning ? 1 : 0],
    ]);
    metric("gateway_controller_quarantined_services", "gauge", "Services running on a last good value because a new one was rejected.", [["", m.quarantined]]);
    metric(
        "gateway_controller_foreign_instances",
        "gauge",
        "Registrations claiming a declared service from a container that is not one of its replicas (refused, never routed), now.",
        [["", m.foreignInstances]],
    );
    metric("gateway_controller_notes", "gauge", "What the trust rules skipped (instances, services) or rejected (values), now.", [
        ['{kind="skipped"}', m.skipped],
        ['{kind="rejected"}', m.rejected],
    ]);
    metric("gateway_controller_servers", "gauge", "Servers in the running model, panic twins included.", [["", m.servers]]);
    metric("gateway_controller_backends", "gauge", "Backends in the running model.", [["", m.backends]]);
    metric(
        "gateway_controller_certificate_expiry_seconds",
        "gauge",
        "Seconds until each certificate HTTPS serves expires (negative: expired), by name: alert well before 0.",
        m.certificates.map((c) => [`{name="${esc(c.name)}",serial="${esc(c.serial)}"}`, Math.round((c.notAfterMs - nowMs) / 1000)]),
    );
    metric("gateway_controller_certificate_changes_total", "counter", "Certificates installed at run time (no reload).", [["", m.certificateChanges]]);
    metric("gateway_controller_acme_orders_total", "counter", "ACME orders (new or renewal) this gateway placed, by result.", [
        ['{result="success"}', m.acme.orders - m.acme.failures],
        ['{result="failure"}', m.acme.failures],
    ]);
    metric("gateway_controller_acme_last_success_timestamp_seconds", "gauge", "When this gateway last obtained a certificate (0: never).", [
        ["", Math.round(m.acme.lastSuccessMs / 1000)],
    ]);
    metric("gateway_controller_acme_last_failure_timestamp_seconds", "gauge", "When an ACME order of this gateway last failed (0: never).", [
        ["", Math.round(m.acme.lastFailureMs / 1000)],
    ]);
    return `${out.join("\n")}\n`;
}

/** Serves the metrics on a UNIX socket (HAProxy passes /metrics/controller to it). */
export function serveMetrics(socketPath: string, metrics: ControllerMetrics, routes: () => RouteTable | undefined = () => undefined): Promise<http.Server> {
    fs.rmSync(socketPath, { force: true });
    const server = http.createServer((req, res) => {
        req.resume();
        if (req.url === "/routes") {
            // What users are routed to now (routes.ts); 503 until the first configuration from Consul runs.
            const table = routes();
            res.writeHead(table ? 200 : 503, { "content-type": "application/json; charset=utf-8" });
            res.end(JSON.stringify(table ?? { error: "the gateway runs its bootstrap configuration: no route from Consul yet" }));
            return;
        }
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(renderMetrics(metrics));
    });
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(socketPath, () => {
            fs.chmodSync(socketPath, 0o600);
            resolve(server);
        });
    });
}
