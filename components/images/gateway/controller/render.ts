// The model as HAProxy configuration. No decisions are left here: every value was checked by
// model.ts. What only the environment knows at run time (addresses to bind, the run directory,
// the stats credentials) stays as "${VAR}", which HAProxy expands when it parses the file, so
// no secret is ever written to disk.
import type { Backend, Model, Server } from "./model";
import { ACME_CHALLENGE_PATH, FORWARDING_HEADERS, RATE_PERIOD, SERVER_MAXQUEUE, TLS_CIPHERS, TLS_CIPHERSUITES } from "./rules";

const CHECK = "check inter 2s fastinter 500ms downinter 2s rise 1 fall 2";

/**
 * The settings of a server line after its address (also what `add server` is given at run time:
 * dynamic servers take no default-server settings).
 */
export function serverSettings(s: Server): string {
    const parts: string[] = [];
    if (s.check) parts.push(CHECK);
    if (s.backup) parts.push("backup");
    if (s.weight !== undefined) parts.push(`weight ${s.weight}`);
    parts.push(`maxconn ${s.maxconn} maxqueue ${SERVER_MAXQUEUE}`);
    return parts.join(" ");
}

export function serverLine(s: Server): string {
    const settings = serverSettings(s);
    return `    server ${s.name} ${s.addr}${settings === "" ? "" : ` ${settings}`}`;
}

/** Set by the frontends when a host route chose the backend (hostRouteLines). */
const HOST_ROUTED = "{ var(txn.host_backend) -m found }";

/** X-Forwarded-Prefix and prefix stripping of a backend served at /<path>/; a host-routed request keeps its path. */
function prefixLines(path: string, trusted: boolean): string[] {
    return [
        `    # Reached by its path prefix: the prefix is stripped. Reached by a host route: the path is kept.`,
        ...(trusted
            ? [
                  "    # A trusted proxy's own prefix comes first.",
                  `    http-request set-header X-Forwarded-Prefix %[req.fhdr(x-forwarded-prefix)]/${path} if { req.fhdr(x-forwarded-prefix) -m found } !${HOST_ROUTED}`,
                  `    http-request set-header X-Forwarded-Prefix /${path} unless { req.fhdr(x-forwarded-prefix) -m found } || ${HOST_ROUTED}`,
              ]
            : [`    http-request set-header X-Forwarded-Prefix /${path} unless ${HOST_ROUTED}`]),
        `    http-request replace-path ^/${path}/?(.*)$ /\\1 unless ${HOST_ROUTED}`,
    ];
}

/** The host routes' map (`<host> <backend>` lines), kept in sync at run time (`add map`/`del map`) with the model's hostRoutes. */
export const HOSTS_MAP = "hosts.map";

/** The map file's text. */
export function hostsMapText(model: Model): string {
    return model.hostRoutes.map((r) => `${r.host} ${r.backend}\n`).join("");
}

/**
 * Host routes: the Host header (the authority of HTTP/2), its port stripped and lowercased, is
 * looked up in the map; a name found there picks the backend, before any path route.
 */
function hostRouteLines(): string[] {
    return [
        "    # Host routes (KV services/<name>/hosts, the map changed at run time): the Host header without",
        "    # its port, lowercased, names a backend; every path of that host goes there, before the path routes.",
        `    http-request set-var(txn.host_backend) req.hdr(host),field(1,:),lower,map("\${GATEWAY_RUN_DIR}/${HOSTS_MAP}")`,
    ];
}

/** The SNI routes' map (`<host> <backend>` lines), kept in sync at run time (`add map`/`del map`) with the model's sniRoutes. */
export const SNI_MAP = "sni.map";

/** The map file's text. */
export function sniMapText(model: Model): string {
    return model.sniRoutes.map((r) => `${r.host} ${r.backend}\n`).join("");
}

/** While TLS is passed through by SNI, the terminating HTTPS frontend listens here (run dir), behind the HTTPS port's TCP frontend. */
export const HTTPS_SOCKET = "https.sock";

/** Whether the HTTPS port is a TCP frontend that passes TLS through by SNI (at least one SNI route). */
export function passesThrough(model: Model): boolean {
    return model.tls !== undefined && !model.tls.offload && model.sniRoutes.length > 0;
}

const HTTP_CHECK = (path: string): string[] => ["    option httpchk", `    http-check send meth GET uri ${path}`, "    http-check expect status 200-399"];

function backendLines(b: Backend, model: Model): string[] {
    const trusted = model.trustedProxies !== "";
    const out = [`backend ${b.name}${b.kind === "tcp" ? " from tcp_services" : ""}`, "    balance roundrobin"];
    out.push(
        "    # Panic routing: when no instance passes the gateway's checks, requests go to all of them",
        "    # (the backup servers below, unchecked) instead of a 503 (docs/data-plane.md).",
        "    option allbackups",
    );
    if (b.kind === "tcp") {
        const sni = model.sniRoutes.some((r) => r.backend === b.name);
        const reached = [
            ...(b.listen !== undefined ? [`on port ${b.listen} (frontend tcp_${b.name.slice(4)})`] : []),
            ...(sni ? ["by SNI on the HTTPS port, TLS passed through (frontend https_sni)"] : []),
        ];
        out.push(`    # TCP service${reached.length > 0 ? ` ${reached.join(" and ")}` : ""}: checks connect.`);
        if (b.idleTimeout !== undefined) out.push(`    timeout server ${b.idleTimeout}`);
    } else {
        if (b.rate !== undefined) {
            out.push(
                `    # This service's own request rate per client address (KV services/${b.name.slice(4)}/rate), beside the listener's.`,
                `    stick-table type ip size 100k expire 30s store http_req_rate(${RATE_PERIOD})`,
                ...(trusted ? [`    acl trusted_proxy src ${model.trustedProxies}`] : []),
                `    http-request track-sc1 src${trusted ? " unless trusted_proxy" : ""}`,
                `    http-request deny deny_status 429 if { sc1_http_req_rate gt ${b.rate} }`,
            );
        }
        out.push(...prefixLines(b.path!, trusted));
    }
    if (b.sticky) {
        // add-header: the application's own Set-Cookie headers reach the client too (set-header
        // would replace them).
        const cookie = `sd-${b.path}=%[srv_name,regsub(^panic-,),field(1,_)]; Path=/${b.path}; HttpOnly; SameSite=Lax`;
        out.push("    # Sticky: the version that answered, for the frontend's rule on the client's next request.");
        if (model.tls?.offload)
            out.push(
                "    # Over HTTPS (terminated by the load balancer: the https_offloaded frontend says so) the cookie",
                "    # is Secure: a browser never sends it back over plain HTTP.",
                `    http-response add-header Set-Cookie "${cookie}; Secure" if ${OFFLOADED}`,
                `    http-response add-header Set-Cookie "${cookie}" unless ${OFFLOADED}`,
            );
        else if (model.tls)
            out.push(
                "    # Over HTTPS the cookie is Secure: a browser never sends it back over plain HTTP.",
                `    http-response add-header Set-Cookie "${cookie}; Secure" if { ssl_fc }`,
                `    http-response add-header Set-Cookie "${cookie}" unless { ssl_fc }`,
            );
        else out.push(`    http-response add-header Set-Cookie "${cookie}"`);
    }
    for (const s of b.servers) out.push(serverLine(s));
    if (b.kind !== "tcp") out.push(...HTTP_CHECK(b.checkPath ?? "/"));
    return out;
}

/** Set by the offload frontend (HTTPS terminated by the load balancer): what ssl_fc says on a TLS listener. */
const OFFLOADED = "{ var(txn.https_offloaded) -m bool }";

/** The per-client counters the public HTTP listeners share (a stick table in a section of its own). */
const HTTP_CLIENTS = "clients_http";

/**
 * A public HTTP listener: its budget and per-client limits, the forwarding headers, the routes.
 * `proto` and `port` are what X-Forwarded-Proto and X-Forwarded-Port say to backends; a TLS
 * listener takes the same rules with its own bind line.
 */
export function httpFrontendLines(
    model: Model,
    o: { name: string; bind: string; proto: "http" | "https"; port: number; behindProxy?: boolean; offloaded?: boolean },
): string[] {
    const trusted = model.trustedProxies !== "";
    const unlessTrusted = trusted ? " unless trusted_proxy" : "";
    const { clientConnections, clientRate, bodySize } = model.limits;
    // The client's address comes in a PROXY header: from a load balancer, or from the HTTPS port's pass-through frontend.
    const proxied = o.behindProxy === true || (o.proto === "http" ? model.acceptProxy.http : model.acceptProxy.https);
    const out: string[] = [
        `frontend ${o.name}`,
        `    bind ${o.bind}`,
        `    maxconn ${o.proto === "https" ? (model.listenerMaxconn.https ?? model.listenerMaxconn.http) : model.listenerMaxconn.http}`,
        ...(trusted ? [`    acl trusted_proxy src ${model.trustedProxies}`] : []),
        "    # Per client address (a trusted proxy, which carries many clients, is not counted):",
        "    # connections over the cap are closed at once, requests over the rate get 429.",
        ...(proxied
            ? [
                  `    # ${o.behindProxy ? "Behind the HTTPS port's TCP frontend" : o.offloaded ? "Behind the load balancer that terminated TLS (accept-proxy)" : "Behind a load balancer (accept-proxy)"}: the client's address is the PROXY header's, which`,
                  `    # session rules see (connection rules would see the ${o.behindProxy ? "local socket" : "load balancer's"}: every client one).`,
              ]
            : []),
        `    tcp-request ${proxied ? "session" : "connection"} track-sc0 src table ${HTTP_CLIENTS}${unlessTrusted}`,
        `    tcp-request ${proxied ? "session" : "connection"} reject if { sc0_conn_cur gt ${clientConnections} }`,
        "    # Answered before any http-request rule: a load balancer's check is never limited by rate.",
        "    monitor-uri /-/health",
        ...(o.offloaded
            ? [
                  "    # HTTPS terminated upstream: the request came over TLS (its Set-Cookie headers are Secure); never redirected.",
                  "    http-request set-var(txn.https_offloaded) bool(true)",
              ]
            : []),
    ];
    if (clientRate > 0) out.push(`    http-request deny deny_status 429 if { sc0_http_req_rate gt ${clientRate} }`);
    out.push(`    http-request deny deny_status 413 if { req.hdr_val(content-length) gt ${bodySize} }`);
    if (o.proto === "http" && model.tls) out.push(...tlsOnHttpLines(model.tls, trusted));
    if (o.proto === "https" && model.tls && model.tls.hstsSeconds > 0)
        out.push(
            "    # Browsers that saw HTTPS here once use nothing else for this long (HSTS).",
            `    http-after-response set-header Strict-Transport-Security "max-age=${model.tls.hstsSeconds}"`,
        );
    out.push(
        "    # What a client says about the path a request took is not believed: dropped, unless the",
        "    # client is a trusted proxy (GATEWAY_TRUSTED_PROXIES); the gateway says it itself.",
    );
    for (const h of FORWARDING_HEADERS) out.push(`    http-request del-header ${h}${unlessTrusted}`);
    out.push(
        trusted
            ? "    http-request del-header X-Forwarded-Prefix unless trusted_proxy { req.fhdr_cnt(x-forwarded-prefix) eq 1 } { req.fhdr(x-forwarded-prefix) -m reg ^(/[A-Za-z0-9._~-]+)+$ }"
            : "    http-request del-header X-Forwarded-Prefix",
        "    # X-Forwarded-For: option forwardfor (defaults) adds the client's address.",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)] unless { req.fhdr(x-forwarded-host) -m found }",
        `    http-request set-header X-Forwarded-Proto ${o.proto} unless { req.fhdr(x-forwarded-proto) -m found }`,
        `    http-request set-header X-Forwarded-Port ${o.port} unless { req.fhdr(x-forwarded-port) -m found }`,
        "    # Retried after an empty answer or a timeout (retry-on, defaults) only when a replay cannot",
        "    # harm; a connection that failed is retried whatever the method.",
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
    );
    out.push(...hostRouteLines());
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
                `    http-request replace-path ^/${b}(/.*)?$ /${b}/${v.version}\\1 if sd_path_${b} !sd_versioned_${b} { req.cook(sd-${b}) -m str ${v.version} } { nbsrv(${v.backend}) gt 0 } !${HOST_ROUTED}`,
            );
        }
    }
    out.push(`    use_backend %[var(txn.host_backend)] if ${HOST_ROUTED}`);
    for (const r of model.routes) out.push(`    use_backend ${r.backend} if { path /${r.path} } || { path_beg /${r.path}/ }`);
    out.push("    default_backend no_route");
    return out;
}

/** The ACME challenges' map, kept in sync at run time (`add map`/`del map`) with KV tls/acme/challenges/. */
export const ACME_MAP = "tls/acme-challenges.map";
/** The crt-list of the HTTPS listener: the default slot first, then each certificate (run dir, tls/). */
export const CRT_LIST = "tls/crt-list";

/** The plain HTTP listener beside HTTPS: ACME answers, then the redirect to HTTPS. */
function tlsOnHttpLines(tls: NonNullable<Model["tls"]>, trusted: boolean): string[] {
    const out: string[] = [`    acl acme_challenge path_beg ${ACME_CHALLENGE_PATH}`];
    if (tls.acme)
        out.push(
            "    # ACME HTTP-01: the key authorization of a token the gateways ordered with (KV tls/acme/challenges/),",
            "    # answered by every gateway whichever of them ordered.",
            `    http-request set-var(txn.acme) path,field(4,/),map("\${GATEWAY_RUN_DIR}/${ACME_MAP}") if acme_challenge`,
            '    http-request return status 200 content-type text/plain lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
        );
    if (tls.redirect) {
        const port = tls.forwardedPort === 443 ? "" : `:${tls.forwardedPort}`;
        const location = `"https://%[req.hdr(host),field(1,:)]${port}%[pathq]"`;
        out.push("    # Plain HTTP is redirected to HTTPS (308 keeps a POST a POST); never an ACME challenge.");
        let unless = "!acme_challenge";
        if (trusted) {
            // A trusted proxy that terminated TLS itself says so: no redirect loop behind it.
            out.push("    http-request set-var(txn.https_proxied) bool(true) if trusted_proxy { req.fhdr(x-forwarded-proto) -m str https }");
            unless += " !{ var(txn.https_proxied) -m bool }";
        }
        out.push(
            `    http-request redirect location ${location} code 301 if METH_GET ${unless}`,
            `    http-request redirect location ${location} code 308 if !METH_GET ${unless}`,
        );
    }
    return out;
}

/** A TCP service's listener: its share of maxconn, its cap per client address, its idle timeout. */
function tcpFrontendLines(model: Model, l: Model["tcpListeners"][number]): string[] {
    const trusted = model.trustedProxies !== "";
    const idle = model.backends.find((b) => b.name === l.backend)?.idleTimeout;
    return [
        `frontend tcp_${l.name} from tcp_services`,
        `    bind "\${GATEWAY_BIND}:${l.port}"`,
        `    maxconn ${model.listenerMaxconn.tcp}`,
        ...(idle !== undefined ? [`    timeout client ${idle}`] : []),
        "    stick-table type ip size 100k expire 30s store conn_cur",
        ...(trusted ? [`    acl trusted_proxy src ${model.trustedProxies}`] : []),
        `    tcp-request connection track-sc0 src${trusted ? " unless trusted_proxy" : ""}`,
        `    tcp-request connection reject if { sc0_conn_cur gt ${model.limits.clientConnections} }`,
        `    default_backend ${l.backend}`,
    ];
}

/**
 * TLS pass-through by SNI: the HTTPS port is a TCP frontend that reads the client's TLS hello,
 * passes connections whose SNI names a pass-through host (the map) to that TCP service,
 * undecrypted, and every other one to the terminating https frontend on a local socket, with the
 * PROXY protocol (its limits, X-Forwarded-For and logs see the client's address).
 */
function sniFrontendLines(model: Model, tls: NonNullable<Model["tls"]>): string[] {
    const trusted = model.trustedProxies !== "";
    const map = `map("\${GATEWAY_RUN_DIR}/${SNI_MAP}")`;
    return [
        "frontend https_sni from tcp_services",
        `    bind "\${GATEWAY_BIND}:${tls.port}"${model.acceptProxy.https ? " accept-proxy" : ""}`,
        `    maxconn ${model.listenerMaxconn.https ?? model.listenerMaxconn.http}`,
        "    stick-table type ip size 100k expire 30s store conn_cur",
        ...(trusted ? [`    acl trusted_proxy src ${model.trustedProxies}`] : []),
        `    tcp-request session track-sc0 src${trusted ? " unless trusted_proxy" : ""}`,
        `    tcp-request session reject if { sc0_conn_cur gt ${model.limits.clientConnections} }`,
        "    # The client's TLS hello (its SNI), waited for at most 5 s; never decrypted here.",
        "    tcp-request inspect-delay 5s",
        "    tcp-request content accept if { req.ssl_hello_type 1 }",
        "    # Pass-through (KV services/<name>/sni, the map changed at run time): the SNI, lowercased, names a TCP backend.",
        `    use_backend %[req.ssl_sni,lower,${map}] if { req.ssl_sni,lower,${map} -m found }`,
        "    default_backend https_terminated",
        "",
        "# Every other TLS connection (another SNI, none) is terminated by the https frontend, one local hop away.",
        "backend https_terminated from tcp_services",
        `    server https "unix@\${GATEWAY_RUN_DIR}/${HTTPS_SOCKET}" send-proxy-v2`,
    ];
}

/** The whole configuration file. */
export function renderConfig(model: Model): string {
    const t = model.timeouts;
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
        "    # change; instance, weight, maxconn and maintenance changes are not reloads) does not cut them.",
        `    hard-stop-after ${model.hardStopAfter}`,
        "    mworker-max-reloads 100",
        ...(model.tls && !model.tls.offload
            ? [
                  "    # TLS 1.2+ with forward-secret AEAD ciphers only; sessions resume (cache and tickets, on by default).",
                  `    ssl-default-bind-ciphers ${TLS_CIPHERS}`,
                  `    ssl-default-bind-ciphersuites ${TLS_CIPHERSUITES}`,
                  "    ssl-default-bind-options ssl-min-ver TLSv1.2",
              ]
            : []),
        "",
        '# TCP services (frontends tcp_<name>, their backends) take these by name ("from tcp_services");',
        "# every other section the anonymous defaults below. Idle database sessions are normal: 1h by",
        "# default (KV timeouts/tcp-idle; a service's own: services/<name>/idle-timeout).",
        "defaults tcp_services",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    option dontlognull",
        "    # A connection refused by a server that died between two checks is retried on another.",
        "    option redispatch 1",
        "    retries 2",
        `    timeout connect ${t.connect}`,
        `    timeout client ${t.tcpIdle}`,
        `    timeout server ${t.tcpIdle}`,
        `    timeout queue ${t.connect}`,
        "    load-server-state-from-file global",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option forwardfor",
        "    # During a reload the old worker answers a request already on an idle keep-alive",
        "    # connection (with Connection: close) instead of closing it under the client.",
        "    option idle-close-on-response",
        "    # An instance that dies between two health checks costs no request: a failed connection,",
        "    # and for methods a replay cannot harm (the frontends say which) an empty answer or a",
        "    # timeout, is retried, each time on another server.",
        "    option redispatch 1",
        "    retries 2",
        "    retry-on conn-failure empty-response response-timeout",
        `    timeout connect ${t.connect}`,
        `    timeout client ${t.client}`,
        `    timeout server ${t.server}`,
        "    # A client has this long to send a request's headers: a slow one holds its slot no longer.",
        `    timeout http-request ${t.httpRequest}`,
        `    timeout http-keep-alive ${t.httpKeepAlive}`,
        "    # Requests wait this long for a server at its maxconn, then get 503.",
        `    timeout queue ${t.connect}`,
        "    load-server-state-from-file global",
        "",
        `backend ${HTTP_CLIENTS}`,
        `    stick-table type ip size 100k expire 30s store conn_cur${model.limits.clientRate > 0 ? `,http_req_rate(${RATE_PERIOD})` : ""}`,
        "",
        ...httpFrontendLines(model, {
            name: "http",
            bind: `"\${GATEWAY_BIND}:\${GATEWAY_HTTP_PORT}"${model.acceptProxy.http ? " accept-proxy" : ""}`,
            proto: "http",
            port: model.forwardedPort,
        }),
    ];
    if (model.tls?.offload) {
        // acm: the load balancer terminated TLS and sends the requests here, plain, each connection
        // opened by a PROXY header (the client's address): HTTPS for the backends, no certificate here.
        out.push(
            "",
            ...httpFrontendLines(model, {
                name: "https_offloaded",
                bind: `"\${GATEWAY_BIND}:${model.tls.port}" accept-proxy`,
                proto: "https",
                port: model.tls.forwardedPort,
                offloaded: true,
            }),
        );
    } else if (model.tls) {
        // The certificates are files in the run directory, listed in the crt-list; the controller
        // changes them at run time (set ssl cert, add ssl crt-list) and on disk for the next reload.
        const ssl = `ssl crt-list "\${GATEWAY_RUN_DIR}/${CRT_LIST}" alpn h2,http/1.1 ssl-min-ver TLSv1.2`;
        const behindProxy = passesThrough(model);
        // With TLS pass-through, the HTTPS port is sniFrontendLines' and this frontend listens on a local socket behind it.
        const bind = behindProxy
            ? `"unix@\${GATEWAY_RUN_DIR}/${HTTPS_SOCKET}" mode 600 accept-proxy ${ssl}`
            : `"\${GATEWAY_BIND}:${model.tls.port}" ${ssl}${model.acceptProxy.https ? " accept-proxy" : ""}`;
        out.push("", ...httpFrontendLines(model, { name: "https", bind, proto: "https", port: model.tls.forwardedPort, behindProxy }));
        if (behindProxy) out.push("", ...sniFrontendLines(model, model.tls));
    }
    for (const l of model.tcpListeners) out.push("", ...tcpFrontendLines(model, l));
    for (const b of model.backends) out.push("", ...backendLines(b, model));
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
        ...statsSections(model.listenerMaxconn.stats),
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
 * directory), behind the stats credentials; the health answer without them. Only this listener
 * serves them, on its own share of maxconn.
 */
export function statsSections(maxconn: number): string[] {
    return [
        "userlist stats_users",
        '    user "${STATS_USER}" insecure-password "${STATS_PASSWORD}"',
        "",
        "frontend stats",
        '    bind "${GATEWAY_BIND}:${GATEWAY_STATS_PORT}"',
        "    # Reserved: full public listeners leave these connections to health checks and scrapes.",
        `    maxconn ${maxconn}`,
        "    monitor-uri /-/health",
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
}
