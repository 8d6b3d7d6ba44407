// The model as HAProxy configuration. No decisions are left here: every value was checked by
// model.ts. What only the environment knows at run time (addresses to bind, the run directory,
// the stats credentials) stays as "${VAR}", which HAProxy expands when it parses the file, so
// no secret is ever written to disk.
import type { Backend, Model, Server } from "./model";

const CHECK = "check inter 2s fastinter 500ms downinter 2s rise 1 fall 2";

/** The settings of a server line after its address (also what `add server` is given at run time). */
export function serverSettings(s: Server): string {
    const parts: string[] = [];
    if (s.check) parts.push(CHECK);
    if (s.backup) parts.push("backup");
    if (s.weight !== undefined) parts.push(`weight ${s.weight}`);
    return parts.join(" ");
}

export function serverLine(s: Server): string {
    const settings = serverSettings(s);
    return `    server ${s.name} ${s.addr}${settings === "" ? "" : ` ${settings}`}`;
}

/** X-Forwarded-Prefix and prefix stripping of a backend served at /<path>/. */
function prefixLines(path: string, trusted: boolean): string[] {
    return [
        ...(trusted
            ? [
                  "    # A trusted proxy's own prefix comes first.",
                  `    http-request set-header X-Forwarded-Prefix %[req.fhdr(x-forwarded-prefix)]/${path} if { req.fhdr(x-forwarded-prefix) -m found }`,
                  `    http-request set-header X-Forwarded-Prefix /${path} unless { req.fhdr(x-forwarded-prefix) -m found }`,
              ]
            : [`    http-request set-header X-Forwarded-Prefix /${path}`]),
        `    http-request replace-path ^/${path}/?(.*)$ /\\1`,
    ];
}

const HTTP_CHECK = (path: string): string[] => ["    option httpchk", `    http-check send meth GET uri ${path}`, "    http-check expect status 200-399"];

function backendLines(b: Backend, trusted: boolean): string[] {
    const out = [`backend ${b.name}${b.kind === "tcp" ? " from tcp_services" : ""}`, "    balance roundrobin"];
    out.push(
        "    # Panic routing: when no instance passes the gateway's checks, requests go to all of them",
        "    # (the backup servers below, unchecked) instead of a 503 (docs/data-plane.md).",
        "    option allbackups",
    );
    if (b.kind === "tcp") out.push(`    # TCP service on port ${b.listen} (frontend tcp_${b.name.slice(4)}): checks connect.`);
    else out.push(...prefixLines(b.path!, trusted));
    if (b.sticky) {
        // add-header: the application's own Set-Cookie headers reach the client too (set-header
        // would replace them).
        out.push(
            "    # Sticky: the version that answered, for the frontend's rule on the client's next request.",
            `    http-response add-header Set-Cookie "sd-${b.path}=%[srv_name,regsub(^panic-,),field(1,_)]; Path=/${b.path}; HttpOnly; SameSite=Lax"`,
        );
    }
    for (const s of b.servers) out.push(serverLine(s));
    if (b.kind !== "tcp") out.push(...HTTP_CHECK(b.checkPath ?? "/"));
    return out;
}

/** The whole configuration file. */
export function renderConfig(model: Model): string {
    const trusted = model.trustedProxies !== "";
    const out: string[] = [
        "# Written by the gateway controller from Consul; do not edit: changes are overwritten.",
        "global",
        `    maxconn ${model.maxconn}`,
        "    log stdout format raw local0 info",
        '    stats socket "${GATEWAY_RUN_DIR}/admin.sock" mode 600 level admin',
        "    # The controller keeps one connection to the runtime API; an idle one is closed after this.",
        "    stats timeout 10m",
        "    # Health and maintenance states survive a reload: the controller saves them here just before it.",
        '    server-state-file "${GATEWAY_RUN_DIR}/server-state"',
        "    # Old workers left by reloads finish their requests, then go; never linger past this: 30 s,",
        "    # or with TCP services the 1 h their sessions may stay idle, so a reload (a route or setting",
        "    # change; instance, weight and maintenance changes are not reloads) does not cut them.",
        `    hard-stop-after ${model.hardStopAfter}`,
        "    mworker-max-reloads 100",
        "",
        '# TCP services (frontends tcp_<name>, their backends) take these by name ("from tcp_services");',
        "# every other section the anonymous defaults below. Idle database sessions are normal: 1h.",
        "defaults tcp_services",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    option dontlognull",
        "    option redispatch",
        "    retries 2",
        `    timeout connect ${model.timeouts.connect}`,
        "    timeout client 1h",
        "    timeout server 1h",
        `    timeout queue ${model.timeouts.connect}`,
        "    load-server-state-from-file global",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option forwardfor",
        "    option redispatch",
        "    # During a reload the old worker answers a request already on an idle keep-alive",
        "    # connection (with Connection: close) instead of closing it under the client.",
        "    option idle-close-on-response",
        "    retries 2",
        `    timeout connect ${model.timeouts.connect}`,
        `    timeout client ${model.timeouts.client}`,
        `    timeout server ${model.timeouts.server}`,
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        `    timeout queue ${model.timeouts.connect}`,
        "    load-server-state-from-file global",
        "",
        "frontend http",
        '    bind "${GATEWAY_BIND}:${GATEWAY_HTTP_PORT}"',
        "    monitor-uri /-/health",
        "    # What a client says about the path a request took is not believed: dropped (HAProxy adds",
        "    # its own X-Forwarded-For), unless the client is a trusted proxy (GATEWAY_TRUSTED_PROXIES).",
    ];
    if (trusted) {
        out.push(
            `    acl trusted_proxy src ${model.trustedProxies}`,
            "    http-request del-header X-Forwarded-For unless trusted_proxy",
            "    http-request del-header X-Forwarded-Prefix unless trusted_proxy { req.fhdr_cnt(x-forwarded-prefix) eq 1 } { req.fhdr(x-forwarded-prefix) -m reg ^(/[A-Za-z0-9._~-]+)+$ }",
            "    http-request del-header Forwarded unless trusted_proxy",
            "    http-request del-header X-Real-IP unless trusted_proxy",
        );
    } else {
        out.push(
            "    http-request del-header X-Forwarded-For",
            "    http-request del-header X-Forwarded-Prefix",
            "    http-request del-header Forwarded",
            "    http-request del-header X-Real-IP",
        );
    }
    for (const rule of model.stickyRules) {
        const b = rule.base;
        out.push(
            `    # /${b}/ is sticky: a client whose cookie sd-${b} names a version that has a usable`,
            `    # server is sent to that version (path rewritten to /${b}/<version>/...).`,
            `    acl sd_path_${b} path /${b}`,
            `    acl sd_path_${b} path_beg /${b}/`,
            `    acl sd_versioned_${b} path_reg ^/${b}/v[0-9]{1,4}(/|$)`,
        );
        for (const v of rule.versions) {
            out.push(
                `    http-request replace-path ^/${b}(/.*)?$ /${b}/${v.version}\\1 if sd_path_${b} !sd_versioned_${b} { req.cook(sd-${b}) -m str ${v.version} } { nbsrv(${v.backend}) gt 0 }`,
            );
        }
    }
    for (const r of model.routes) out.push(`    use_backend ${r.backend} if { path /${r.path} } || { path_beg /${r.path}/ }`);
    out.push("    default_backend no_route");
    for (const l of model.tcpListeners) {
        out.push("", `frontend tcp_${l.name} from tcp_services`, `    bind "\${GATEWAY_BIND}:${l.port}"`, `    default_backend ${l.backend}`);
    }
    for (const b of model.backends) out.push("", ...backendLines(b, trusted));
    out.push(
        "",
        "backend no_route",
        '    http-request return status 404 content-type text/plain string "no route\\n"',
        "",
        "# Is the latest render running? The controller puts this server in maintenance while it is not",
        "# (a render rejected by `haproxy -c`, a reload that failed) and back when it is: the stats page",
        '# and /metrics (haproxy_server_status, proxy "gateway_config") show it. Never used for traffic.',
        "backend gateway_config",
        "    server latest-render-running 127.0.0.1:9",
        "",
        ...STATS_SECTIONS,
    );
    if (model.notes.length > 0) {
        out.push(
            "",
            '# Not routed or not applied, by the trust rules (docs/security.md, "Trust rules"). The controller logs each',
            "# line once, when it first appears.",
        );
        for (const n of model.notes) out.push(`# ${n}`);
    }
    return `${out.join("\n")}\n`;
}

/**
 * The stats page, HAProxy's metrics (/metrics) and the controller's (/metrics/controller, and the
 * route table HAProxy runs at /routes, served by the controller on a socket in the run
 * directory), behind the stats credentials.
 */
export const STATS_SECTIONS: readonly string[] = [
    "userlist stats_users",
    '    user "${STATS_USER}" insecure-password "${STATS_PASSWORD}"',
    "",
    "frontend stats",
    '    bind "${GATEWAY_BIND}:${GATEWAY_STATS_PORT}"',
    "    http-request auth realm gateway-stats unless { http_auth(stats_users) }",
    "    http-request use-service prometheus-exporter if { path /metrics }",
    "    use_backend controller_metrics if { path /metrics/controller } || { path /routes }",
    "    default_backend stats_page",
    "",
    "backend stats_page",
    "    stats enable",
    "    stats uri /",
    "    stats refresh 10s",
    "",
    "backend controller_metrics",
    '    server controller "unix@${GATEWAY_RUN_DIR}/controller.sock"',
];
