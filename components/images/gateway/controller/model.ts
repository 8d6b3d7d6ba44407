// The gateway's decisions, as pure functions: from what Consul holds (the catalog and the KV
// settings under service/haproxy/) and the stack's settings (the environment) to a typed routing
// model — routes, backends, servers, weights, maintenance, TCP listeners, caps, the file
// descriptor budget and its split between the listeners, the budgets of each client and each
// server — and the list of what was skipped or rejected, and why.
//
// Routing: a Consul service tagged `rest` named `<name>-v<N>` is served at /<name>/v<N>/..., any
// other name at /<name>/...; the prefix is stripped. Versioned prefixes are matched first, so
// /hello/v1 wins over /hello; matching is segment-exact (/hello never captures /hello-world).
// Host routes (services/<name>/hosts) come first: a request whose Host header names a service's
// host goes to it, every path, unprefixed (docs/traffic-control.md, "Routes by host name").
// Traffic control (docs/traffic-control.md): a service with a listen key is a TCP service (its own
// listener), and so is one with an sni key (TLS connections on the HTTPS port whose SNI names one
// of its hosts are passed through to it, undecrypted: "TLS pass-through by SNI"); versions with a weight key share the unversioned path /<name>/ (backend svc_<name>),
// optionally sticky by cookie; a maintenance key drains instances (weight 0).
// Budgets (docs/security.md, "Budgets"): per-client connections and request rate, a body cap, a
// maxconn per server, idle timeouts; the stack's values (KV limits/*, timeouts/*) and a
// service's own (services/<name>/maxconn, /rate, /idle-timeout).
//
// Everything that comes from Consul is untrusted (docs/security.md, "Trust rules"). Each value is checked
// before it is used; what fails is skipped (an instance, a service) or replaced (a setting): by
// its last good value when the gateway ran one for that service (quarantine: the service keeps
// its routes), else by the default. A well-formed value is not trusted either:
// - the health-check path belongs to the service: its KV check key, else the check= tag only
//   when every instance carries the same one, else "/";
// - a server lies in a network the stack declares and is never loopback, unspecified,
//   link-local (cloud metadata), multicast/reserved, nor an address of the gateway itself;
// - never a port of the control plane on any address, nor on node addresses the ports the
//   stack publishes there;
// - at most limits/services routed services (those the stack declares first) and
//   limits/instances servers per service;
// - a declared service's route belongs to its replicas (ownership, below): an instance is routed
//   only from a container its replicas key names, and a service no replicas key declares only
//   when routing/undeclared is true.
import { createHash } from "node:crypto";
import { readCertificates, readChallenges, type Certificate } from "./certificates";
import {
    CHECK_PATH,
    CIDR,
    CONTAINER_NAMES,
    CONTROL_PORTS,
    DEFAULTS,
    DNS_LABEL,
    DURATION,
    IPV4,
    KV_KEYS,
    isHostList,
    KV_PREFIX,
    LIMIT_RANGES,
    NODE_NAME,
    TLS_SOURCES,
    VERSIONED_NAME,
    WEIGHT,
} from "./rules";

// ---------------------------------------------------------------------------------------------
// Inputs

export interface CatalogService {
    readonly id: string;
    readonly service: string;
    readonly address: string;
    readonly port: number;
    readonly tags: readonly string[];
}

export interface CatalogNode {
    readonly node: string;
    readonly address: string;
    readonly services: readonly CatalogService[];
}

/** What the stack sets through the gateway's environment (components/gateway.ts). */
export interface StackSettings {
    readonly httpPort: string;
    readonly statsPort: string;
    /** Space- or comma-separated CIDR blocks; the KV keys networks/* win over the first two. */
    readonly backendNetworks: string;
    readonly nodeNetworks: string;
    readonly trustedProxies: string;
    /** The gateway's own addresses: no server may point back at it. */
    readonly ownAddresses: string;
    /** Ports the stack publishes on nodes (the gateway's, Consul's, SSH). */
    readonly nodePorts: string;
    /** The file descriptors HAProxy may use (`ulimit -Hn` of the container). */
    readonly fdLimit: string;
    /** An operator's further cap on maxconn, or "". */
    readonly maxconnLimit: string;
    /** The port clients reach the HTTP listener on (the host port it is published on), for
     * X-Forwarded-Port; httpPort when unset. */
    readonly publicHttpPort?: string;
    /** TLS at the edge (docs/security.md, "TLS at the edge"): the certificate source; "none" or
     * unset: no HTTPS listener. */
    readonly tlsSource?: string;
    /** The port HTTPS listens on, and the one clients reach it on (X-Forwarded-Port; httpsPort when unset). */
    readonly httpsPort?: string;
    readonly publicHttpsPort?: string;
    /** "true": plain HTTP answers with a redirect to HTTPS (ACME challenges excepted). */
    readonly tlsRedirect?: string;
    /** Strict-Transport-Security max-age of HTTPS answers, seconds; "0": none. */
    readonly hstsSeconds?: string;
    /** The listeners a load balancer reaches with the PROXY protocol: "http", "https", both, or "". */
    readonly acceptProxy?: string;
}

export interface ModelInput {
    /** KV pairs under service/haproxy/, full keys. */
    readonly kv: ReadonlyMap<string, string>;
    readonly nodes: Iterable<CatalogNode>;
    readonly settings: StackSettings;
    /** The model running now: a service whose new value is rejected keeps this one's. */
    readonly previous?: Model;
    /** Opens the sealed private keys of tls/certificates/ (the gateway's sealing key file). */
    readonly sealingKey?: Buffer;
    /** Now, for certificate expiry (ms since the epoch; Date.now() when unset). */
    readonly nowMs?: number;
}

// ---------------------------------------------------------------------------------------------
// The model

export interface Server {
    /** `<address>:<port>`, `panic-<address>:<port>`, `<version>_<address>:<port>`... unique in its backend. */
    readonly name: string;
    /** `<address>:<port>` */
    readonly addr: string;
    /** Health-checked by HAProxy (the panic twins are not: they serve when no checked one passes). */
    readonly check: boolean;
    readonly backup: boolean;
    /** Written when not HAProxy's default of 1. */
    readonly weight?: number;
    /** Connections (HTTP: requests in flight) the gateway sends it at once; the rest wait in the
     * backend's queue (`timeout queue`). Changed at run time (`set maxconn server`). */
    readonly maxconn: number;
}

export interface Backend {
    /** svc_<consul name> (a version or an unversioned service), svc_<name> for a split. */
    readonly name: string;
    readonly kind: "http" | "tcp" | "split";
    /** The path prefix stripped (http, split): "hello/v1", "hello". */
    readonly path?: string;
    /** The HTTP health-check path (http, split). */
    readonly checkPath?: string;
    /** Sticky split: the cookie sd-<name> names the version that answered. */
    readonly sticky?: boolean;
    /** The TCP listener's port (tcp; absent for a service reached only by SNI pass-through). */
    readonly listen?: number;
    /** Requests of one client address per RATE_PERIOD to this backend, beyond which it answers 429 (http, split). */
    readonly rate?: number;
    /** A TCP service's own idle timeout (tcp; else the stack's). */
    readonly idleTimeout?: string;
    readonly servers: readonly Server[];
}

export interface HttpRoute {
    /** Matched as `path /<path>` or `path_beg /<path>/`. */
    readonly path: string;
    readonly backend: string;
}

/** A host route (KV services/<name>/hosts): requests whose Host header is `host` go to `backend`, every path, unchanged. */
export interface HostRoute {
    readonly host: string;
    readonly backend: string;
}

/** A sticky split's rule: a request for /<base>/ whose cookie names <version> goes to it. */
export interface StickyRule {
    readonly base: string;
    readonly versions: readonly { readonly version: string; readonly backend: string }[];
}

/** The HTTPS listener (docs/security.md, "TLS at the edge"). */
export interface TlsListener {
    /** The port it binds. */
    readonly port: number;
    /** X-Forwarded-Port of its requests: the port clients reach it on. */
    readonly forwardedPort: number;
    /** Plain HTTP answers with a redirect to HTTPS (ACME challenges excepted). */
    readonly redirect: boolean;
    /** Strict-Transport-Security max-age, 0: not sent. */
    readonly hstsSeconds: number;
    /** The gateways order certificates (ACME): HTTP answers the challenges of tls/acme/challenges/. */
    readonly acme: boolean;
    /**
     * HTTPS terminated upstream (GATEWAY_TLS_SOURCE acm): the load balancer holds the certificate and
     * sends the requests, plain, with the PROXY protocol, to this port; the gateway serves no TLS.
     */
    readonly offload?: true;
}

export type { Certificate };

/** Budgets no single client can exhaust (docs/security.md, "Budgets"). */
export interface Limits {
    /** Concurrent connections of one client address on each public listener (trusted proxies exempt). */
    readonly clientConnections: number;
    /** HTTP requests of one client address per RATE_PERIOD; 0: no limit. */
    readonly clientRate: number;
    /** Largest request body (Content-Length) in bytes: above it, 413. */
    readonly bodySize: number;
}

export interface Model {
    readonly maxconn: number;
    /**
     * Each listener's share of maxconn. The shares of the public listeners (HTTP, each TCP one)
     * leave the stats listener (health, /metrics) and the runtime API theirs: a full listener
     * blocks no other.
     */
    readonly listenerMaxconn: { readonly http: number; readonly tcp: number; readonly stats: number; readonly https?: number };
    readonly timeouts: {
        readonly connect: string;
        readonly client: string;
        readonly server: string;
        readonly httpRequest: string;
        readonly httpKeepAlive: string;
        readonly tcpIdle: string;
    };
    readonly limits: Limits;
    /** X-Forwarded-Port of requests on the HTTP listener. */
    readonly forwardedPort: number;
    /** HTTPS, absent when the stack terminates no TLS. */
    readonly tls?: TlsListener;
    /** The listeners that take the PROXY protocol (a load balancer in front passes the client's address). */
    readonly acceptProxy: { readonly http: boolean; readonly https: boolean };
    /** The certificates HTTPS serves, by name; a change is applied at run time (`set ssl cert`), never a reload. */
    readonly certificates: readonly Certificate[];
    /** ACME HTTP-01 answers [token, key authorization]; a change is applied at run time (`add map`). */
    readonly challenges: readonly (readonly [string, string])[];
    /** 1h while a TCP service exists (a reload must not cut its sessions), else 30s. */
    readonly hardStopAfter: string;
    /** Whose forwarding headers are kept, "" for nobody. */
    readonly trustedProxies: string;
    readonly stickyRules: readonly StickyRule[];
    /** In matching order: versioned, then unversioned, then splits. */
    readonly routes: readonly HttpRoute[];
    /** Host routes, by host; matched before the path routes. A change is applied at run time (`add map`), never a reload. */
    readonly hostRoutes: readonly HostRoute[];
    /**
     * TLS pass-through by SNI (KV services/<name>/sni), by host: a TLS connection to the HTTPS port
     * whose SNI is `host` goes to the TCP backend, undecrypted. Only with an HTTPS listener. A change
     * is applied at run time (`add map`); the first route and the last one gone are reloads (the
     * HTTPS port's frontend changes).
     */
    readonly sniRoutes: readonly HostRoute[];
    readonly tcpListeners: readonly { readonly name: string; readonly port: number; readonly backend: string }[];
    readonly backends: readonly Backend[];
    /** What was skipped or rejected ("skipped: ...", "rejected: ..."), sorted, each once. */
    readonly notes: readonly string[];
    /** Services running on a last good value because a new one was rejected. */
    readonly quarantined: readonly string[];
    /** The per-service KV values in force (for the next model's quarantine). */
    readonly accepted: ReadonlyMap<string, string>;
    /** Instances rejected because their container is not a declared replica of the service they claim. */
    readonly foreignInstances: number;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The first 8 hex digits of a value's SHA-256: how an untrusted value is named in logs. */
export function sha8(value: string): string {
    return createHash("sha256").update(value, "utf8").digest("hex").slice(0, 8);
}

const words = (text: string): string[] => text.split(/[\s,]+/).filter((w) => w !== "");

/** A decimal integer within [min, max], written without sign, exponent, spaces or leading zeros. */
function isIntIn(value: string, [min, max]: readonly [number, number]): boolean {
    return /^(0|[1-9][0-9]{0,12})$/.test(value) && Number(value) >= min && Number(value) <= max;
}

/** `a.b.c.d` as an integer; only for a value that matched IPV4. */
function ipv4ToInt(address: string): number {
    return address.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** "hello-v1" -> "hello/v1"; "hello" -> "hello". */
export function routePath(consulName: string): string {
    const m = VERSIONED_NAME.exec(consulName);
    return m ? `${m[1]}/${m[3]}` : consulName;
}

/** Byte order, as Go sorts strings. */
const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface Networks {
    blocks: { backends: [number, number][]; nodes: [number, number][] };
    /** Single addresses (/32 entries and the gateway's own), with the lists they are in. */
    single: Map<string, Set<"backends" | "nodes" | "own">>;
    anyBackend: boolean;
    trustedProxies: string;
}

// ---------------------------------------------------------------------------------------------
// The model

export function buildModel(input: ModelInput): Model {
    const { settings, previous } = input;
    const notes = new Set<string>();
    const note = (line: string): void => {
        notes.add(line);
    };
    // KV keys relative to the prefix; an empty value is no value (as a deleted key).
    const kv = new Map<string, string>();
    for (const [key, value] of input.kv) {
        if (!key.startsWith(`${KV_PREFIX}/`) || key.endsWith("/") || value === "") continue;
        kv.set(key.slice(KV_PREFIX.length + 1), value);
    }
    const sortedKeys = [...kv.keys()].sort(byBytes);

    // Settings: each value checked where it is used; a rejected one runs the default.
    const setting = (key: string, def: string, ok: (v: string) => boolean, what: string): string => {
        const v = kv.get(key);
        if (v === undefined) return def;
        if (ok(v)) return v;
        note(`rejected: KV ${KV_PREFIX}/${key}: value (sha256 ${sha8(v)}) ${what}; running ${def}`);
        return def;
    };
    const isDuration = (v: string): boolean => DURATION.test(v);
    const notDuration = "is not a duration HAProxy runs with";
    const timeouts = {
        connect: setting("timeouts/connect", DEFAULTS.timeoutConnect, isDuration, notDuration),
        client: setting("timeouts/client", DEFAULTS.timeoutClient, isDuration, notDuration),
        server: setting("timeouts/server", DEFAULTS.timeoutServer, isDuration, notDuration),
        httpRequest: setting("timeouts/http-request", DEFAULTS.timeoutHttpRequest, isDuration, notDuration),
        httpKeepAlive: setting("timeouts/http-keep-alive", DEFAULTS.timeoutHttpKeepAlive, isDuration, notDuration),
        tcpIdle: setting("timeouts/tcp-idle", DEFAULTS.timeoutTcpIdle, isDuration, notDuration),
    };
    // Budgets: integers in their range, written without sign, exponent, spaces or leading zeros.
    const intSetting = (key: string, def: number, range: readonly [number, number]): number =>
        Number(setting(key, String(def), (v) => isIntIn(v, range), `is not an integer from ${range[0]} to ${range[1]}`));
    const limits: Limits = {
        clientConnections: intSetting("limits/client-connections", DEFAULTS.clientConnections, LIMIT_RANGES.clientConnections),
        clientRate: intSetting("limits/client-rate", DEFAULTS.clientRate, LIMIT_RANGES.clientRate),
        bodySize: intSetting("limits/body-size", DEFAULTS.bodySize, LIMIT_RANGES.bodySize),
    };
    const serverMaxconn = intSetting("limits/server-maxconn", DEFAULTS.serverMaxconn, LIMIT_RANGES.serverMaxconn);
    // Caps: a flood of registrations cannot grow the config (and HAProxy's file descriptors) without bound.
    const serviceCap = Number(
        setting("limits/services", String(DEFAULTS.maxServices), (v) => /^([1-9][0-9]{0,4}|100000)$/.test(v), "is not an integer from 1 to 100000"),
    );
    const instanceCap = Number(
        setting("limits/instances", String(DEFAULTS.maxInstances), (v) => /^([1-9][0-9]{0,3}|10000)$/.test(v), "is not an integer from 1 to 10000"),
    );

    const networks = readNetworks(settings, kv, note);

    // Ports: "n" refused on node addresses, "c" (control plane) refused on every address.
    const portClass = new Map<number, "n" | "c">();
    const listenedHttps = (settings.tlsSource ?? "none") !== "none" ? (settings.httpsPort ?? "") : "";
    for (const p of words(`${settings.nodePorts} ${settings.httpPort} ${settings.statsPort} ${listenedHttps}`))
        if (/^[0-9]+$/.test(p)) portClass.set(Number(p), "n");
    for (const p of CONTROL_PORTS) portClass.set(p, "c");

    // Per-service and per-route settings the stack declares, in key order (a listener goes to the
    // first service, by name, that asks for it).
    const declared = new Set<string>();
    const kvCheck = new Map<string, string>();
    const listen = new Map<string, number>();
    const listener = new Map<number, string>();
    const weight = new Map<string, number>();
    const split = new Map<string, Set<string>>();
    const maint = new Map<string, "all" | Set<string>>();
    const sticky = new Set<string>();
    const svcMaxconn = new Map<string, number>();
    const svcRate = new Map<string, number>();
    const svcIdle = new Map<string, string>();
    /** KV services/<name>/hosts as written, checked by hostRoutesOf once the backends are known. */
    const hostValues = new Map<string, string>();
    /** KV services/<name>/sni as written, checked below (a service with SNI names is a TCP service). */
    const sniValues = new Map<string, string>();
    const accepted = new Map<string, string>();
    const quarantined = new Set<string>();
    /** The value this service ran before, when the new one is rejected. */
    const lastGood = (rel: string, svc: string): string | undefined => {
        const v = previous?.accepted.get(rel);
        if (v !== undefined) quarantined.add(svc);
        return v;
    };
    const keeping = (v: string | undefined, otherwise: string): string => (v === undefined ? otherwise : `keeping its last good value (${svc8(v)})`);
    const svc8 = (v: string): string => (/^[a-z0-9 _./-]{1,40}$/.test(v) ? v : `sha256 ${sha8(v)}`);

    const acceptListen = (svc: string, rel: string, value: string): string | undefined => {
        let why = "";
        const port = Number(value);
        if (!/^[1-9][0-9]{0,4}$/.test(value) || port > 65535) why = "is not a port number";
        else if (value === settings.httpPort || value === settings.statsPort) why = "is a port of the gateway's HTTP or stats listener";
        else if (value === settings.httpsPort && (settings.tlsSource ?? "none") !== "none") why = "is the port of the gateway's HTTPS listener";
        else if (portClass.get(port) === "c") why = "is Consul's or the Docker API's";
        else if (listener.has(port)) why = `is already the listener of ${listener.get(port)}`;
        if (why === "") {
            listener.set(port, svc);
            listen.set(svc, port);
            accepted.set(rel, value);
        }
        return why === "" ? undefined : why;
    };
    const acceptMaintenance = (svc: string, rel: string, value: string): boolean => {
        const names = value.replace(/\s+/g, " ").trim();
        if (names === "all") maint.set(svc, "all");
        else if (names.length <= 26000 && CONTAINER_NAMES.test(names) && names.split(" ").length <= 200) {
            maint.set(svc, new Set(names.split(" ").filter((n) => n.length <= 128)));
        } else return false;
        accepted.set(rel, value);
        return true;
    };
    const replicas = new Map<string, ReadonlySet<string>>();
    const acceptReplicas = (svc: string, rel: string, value: string): boolean => {
        const names = readReplicas(value);
        if (names === undefined) return false;
        replicas.set(svc, names);
        accepted.set(rel, value);
        return true;
    };
    const acceptWeight = (svc: string, rel: string, value: string): boolean => {
        if (!WEIGHT.test(value)) return false;
        const base = VERSIONED_NAME.exec(svc)![1]!;
        weight.set(svc, Number(value));
        if (!split.has(base)) split.set(base, new Set());
        split.get(base)!.add(svc);
        accepted.set(rel, value);
        return true;
    };

    for (const key of sortedKeys) {
        const value = kv.get(key)!;
        if (key.startsWith("services/")) {
            const rel = key.slice("services/".length);
            const m = /^([a-z]([a-z0-9-]*[a-z0-9])?)\/(check|listen|weight|maintenance|maxconn|rate|idle-timeout|replicas|hosts|sni)$/.exec(rel);
            if (rel.length > 76 || !m) {
                note(
                    `rejected: KV key under ${KV_PREFIX}/services/ (sha256 ${sha8(rel)}) is not <service>/check, /listen, /weight, /maintenance, /maxconn, /rate, /idle-timeout, /replicas, /hosts or /sni; ignored`,
                );
                continue;
            }
            const svc = m[1]!;
            const field = m[3]!;
            declared.add(svc);
            const prefix = `rejected: KV ${KV_PREFIX}/services/${svc}/${field}: value (sha256 ${sha8(value)})`;
            if (field === "hosts") {
                hostValues.set(svc, value);
            } else if (field === "sni") {
                sniValues.set(svc, value);
            } else if (field === "check") {
                if (CHECK_PATH.test(value)) {
                    kvCheck.set(svc, value);
                    accepted.set(key, value);
                } else {
                    const last = lastGood(key, svc);
                    if (last !== undefined) {
                        kvCheck.set(svc, last);
                        accepted.set(key, last);
                    }
                    note(`${prefix} is not a path (/ then letters, digits . _ ~ / -); ${keeping(last, "checking what every instance agrees on, else /")}`);
                }
            } else if (field === "listen") {
                const why = acceptListen(svc, key, value);
                if (why !== undefined) {
                    const last = lastGood(key, svc);
                    const kept = last !== undefined && acceptListen(svc, key, last) === undefined;
                    if (!kept) quarantined.delete(svc);
                    note(`${prefix} ${why}; ${kept ? keeping(last, "") : `${svc} is not listened for`}`);
                }
            } else if (field === "weight") {
                if (!VERSIONED_NAME.test(svc)) {
                    note(`rejected: KV ${KV_PREFIX}/services/${svc}/weight: only a versioned service (<name>-v<N>) has a weight; ignored`);
                } else if (!acceptWeight(svc, key, value)) {
                    const last = lastGood(key, svc);
                    if (last !== undefined) acceptWeight(svc, key, last);
                    note(`${prefix} is not an integer from 0 to 256; ${keeping(last, `${svc} is not in the split of its unversioned path`)}`);
                }
            } else if (field === "maxconn" || field === "rate" || field === "idle-timeout") {
                // A budget of the service's own: checked as the stack's; a bad value keeps the last good one.
                const budget =
                    field === "maxconn"
                        ? { ok: (v: string) => isIntIn(v, LIMIT_RANGES.serverMaxconn), into: (v: string) => svcMaxconn.set(svc, Number(v)) }
                        : field === "rate"
                          ? { ok: (v: string) => isIntIn(v, LIMIT_RANGES.clientRate), into: (v: string) => svcRate.set(svc, Number(v)) }
                          : { ok: isDuration, into: (v: string) => svcIdle.set(svc, v) };
                if (budget.ok(value)) {
                    budget.into(value);
                    accepted.set(key, value);
                } else {
                    const last = lastGood(key, svc);
                    if (last !== undefined) {
                        budget.into(last);
                        accepted.set(key, last);
                    }
                    const [what, otherwise] =
                        field === "maxconn"
                            ? [`is not an integer from ${LIMIT_RANGES.serverMaxconn.join(" to ")}`, `running the stack's ${serverMaxconn} per server`]
                            : field === "rate"
                              ? [`is not an integer from ${LIMIT_RANGES.clientRate.join(" to ")}`, "no request rate of its own"]
                              : [notDuration, `running the stack's ${timeouts.tcpIdle}`];
                    note(`${prefix} ${what}; ${keeping(last, otherwise)}`);
                }
            } else if (field === "replicas") {
                if (!acceptReplicas(svc, key, value)) {
                    const last = lastGood(key, svc);
                    if (last !== undefined) acceptReplicas(svc, key, last);
                    else replicas.set(svc, new Set());
                    note(`${prefix} is not container names separated by spaces; ${keeping(last, `no instance of ${svc} is routed`)}`);
                }
            } else if (!acceptMaintenance(svc, key, value)) {
                const last = lastGood(key, svc);
                if (last !== undefined) acceptMaintenance(svc, key, last);
                note(`${prefix} is neither all nor container names separated by spaces; ${keeping(last, `no instance of ${svc} is in maintenance`)}`);
            }
        } else if (key.startsWith("routes/")) {
            const rel = key.slice("routes/".length);
            const m = /^([a-z]([a-z0-9-]*[a-z0-9])?)\/sticky$/.exec(rel);
            if (rel.length > 70 || !m) {
                note(`rejected: KV key under ${KV_PREFIX}/routes/ (sha256 ${sha8(rel)}) is not <name>/sticky; ignored`);
            } else if (value === "true" || value === "false") {
                if (value === "true") sticky.add(m[1]!);
                accepted.set(key, value);
            } else {
                const last = lastGood(key, m[1]!);
                if (last === "true") sticky.add(m[1]!);
                if (last !== undefined) accepted.set(key, last);
                note(`rejected: KV ${KV_PREFIX}/routes/${rel}: value (sha256 ${sha8(value)}) is neither true nor false; ${keeping(last, "not sticky")}`);
            }
        }
    }

    // TLS pass-through: each sni value checked as a hosts value is (rejected whole: the last good
    // value, else none). A service with SNI names in force is a TCP service.
    const sni = readSni(sniValues, { previous, accepted, quarantined }, note);
    /** Why a service is a TCP service (the KV key that makes it one), or undefined for an http service. */
    const tcpKey = (svc: string): string | undefined =>
        listen.has(svc) ? `KV ${KV_PREFIX}/services/${svc}/listen` : sni.has(svc) ? `KV ${KV_PREFIX}/services/${svc}/sni` : undefined;
    const isTcp = (svc: string): boolean => listen.has(svc) || sni.has(svc);

    // A request rate is counted on HTTP requests, an idle timeout is a TCP service's.
    for (const svc of [...svcRate.keys()]) {
        if (!isTcp(svc)) continue;
        svcRate.delete(svc);
        note(`rejected: KV ${KV_PREFIX}/services/${svc}/rate: ${svc} is a TCP service (${tcpKey(svc)}); a request rate is an http service's; ignored`);
    }
    for (const svc of [...svcIdle.keys()]) {
        if (isTcp(svc)) continue;
        svcIdle.delete(svc);
        note(
            `rejected: KV ${KV_PREFIX}/services/${svc}/idle-timeout: ${svc} is not a TCP service (no KV ${KV_PREFIX}/services/${svc}/listen or /sni); ignored`,
        );
    }

    // Instances: tagged rest (http) or tcp (a service with a listener), with a safe name; keyed
    // by node and service ID, the order of the caps.
    const instances = new Map<string, { key: string; inst: CatalogService }[]>();
    const httpNames = new Set<string>();
    let registered = 0;
    for (const node of input.nodes) {
        if (!NODE_NAME.test(node.node)) {
            note(`skipped: node (name sha256 ${sha8(node.node)}): the name is not one the gateway follows`);
            continue;
        }
        for (const s of node.services) {
            const tcp = isTcp(s.service);
            if (!s.tags.includes(tcp ? "tcp" : "rest")) continue;
            if (s.service.length > 63 || !DNS_LABEL.test(s.service)) {
                note(`skipped: service (name sha256 ${sha8(s.service)}): the name is not a DNS label`);
                continue;
            }
            const inst = s.address === "" ? { ...s, address: node.address } : s;
            if (!instances.has(s.service)) instances.set(s.service, []);
            instances.get(s.service)!.push({ key: `${node.node}/${s.id}`, inst });
            if (!tcp) httpNames.add(s.service);
            registered++;
        }
    }
    for (const list of instances.values()) list.sort((a, b) => byBytes(a.key, b.key));

    // Routed services: at most serviceCap, those the stack declares first. Versioned ones are
    // matched first (longest prefix).
    const versionedRoutes: string[] = [];
    let plainRoutes: string[] = [];
    let routed = 0;
    const routeUndeclared = readRouteUndeclared(kv, note);
    const names = [...httpNames].sort(byBytes);
    for (const pass of [true, false]) {
        for (const name of names) {
            if (declared.has(name) !== pass) continue;
            if (!routeUndeclared && !replicas.has(name)) {
                note(
                    `skipped: service ${name}: the stack does not declare it (no KV ${KV_PREFIX}/${KV_KEYS.service(name, "replicas")}) and KV ${KV_PREFIX}/${KV_KEYS.routeUndeclared} is not true`,
                );
                continue;
            }
            if (routed >= serviceCap) {
                note(`skipped: service ${name}: over the cap of ${serviceCap} routed services (KV ${KV_PREFIX}/limits/services)`);
                continue;
            }
            routed++;
            (VERSIONED_NAME.test(name) ? versionedRoutes : plainRoutes).push(name);
        }
    }
    // Splits: /<name>/ of a name whose versions have weights; an unversioned service of that name is then not routed.
    const splitRoutes: string[] = [];
    for (const base of [...split.keys()].sort(byBytes)) {
        if (isTcp(base)) {
            note(`rejected: KV ${KV_PREFIX}/services/${base}-v<N>/weight: ${base} is a TCP service (${tcpKey(base)}); /${base}/ is not split`);
            continue;
        }
        splitRoutes.push(base);
        if (plainRoutes.includes(base)) {
            note(`skipped: service ${base}: /${base}/ is split between its versions by their weights (KV ${KV_PREFIX}/services/${base}-v<N>/weight)`);
            plainRoutes = plainRoutes.filter((r) => r !== base);
        }
    }
    // In name order within each group: which services the cap keeps depends on what the stack
    // declares, where they are matched does not (matching is segment-exact, versions first), so a
    // KV key that makes a service declared changes no route's place and needs no reload.
    versionedRoutes.sort(byBytes);
    plainRoutes.sort(byBytes);
    const routes = [...versionedRoutes, ...plainRoutes];
    // TCP services: those with a listener and those reached by SNI pass-through (a backend even
    // without instances: the SNI map never names a backend HAProxy does not have).
    const tcpRoutes = [...new Set([...listen.keys(), ...sni.keys()])].sort(byBytes);
    const tcpListened = tcpRoutes.filter((name) => listen.has(name));

    // File descriptors: two per connection, one per health-checked server; HAProxy refuses to
    // start above its limit (`haproxy -c` does not see it). maxconn is capped so that 2 x maxconn
    // + the instances rounded up to the next thousand + 1000 added at runtime + 1024 (listeners,
    // logs, CLI) fit; rounding keeps maxconn steady while instances come and go.
    const fdLimit = /^[1-9][0-9]{0,8}$/.test(settings.fdLimit) ? Number(settings.fdLimit) : 1048576;
    const serverBudget = (Math.floor(registered / 1000) + 1) * 1000;
    let maxconnLimit = Math.trunc((fdLimit - (2024 + serverBudget)) / 2);
    if (/^[1-9][0-9]{0,6}$/.test(settings.maxconnLimit) && Number(settings.maxconnLimit) < maxconnLimit) maxconnLimit = Number(settings.maxconnLimit);
    if (maxconnLimit < 256) maxconnLimit = 256;
    const defaultMaxconn = Math.min(DEFAULTS.maxconn, maxconnLimit);
    let maxconn = defaultMaxconn;
    const kvMaxconn = kv.get("maxconn");
    if (kvMaxconn !== undefined) {
        if (!/^[1-9][0-9]{0,6}$/.test(kvMaxconn)) {
            note(`rejected: KV ${KV_PREFIX}/maxconn: value (sha256 ${sha8(kvMaxconn)}) is not an integer from 1 to ${maxconnLimit}; running ${defaultMaxconn}`);
        } else if (Number(kvMaxconn) > maxconnLimit) {
            note(
                `rejected: KV ${KV_PREFIX}/maxconn: ${kvMaxconn} is above what the file descriptor limit of this gateway (${fdLimit}) leaves beside up to ${serverBudget} instances; running ${defaultMaxconn}`,
            );
        } else maxconn = Number(kvMaxconn);
    } else if (maxconnLimit < DEFAULTS.maxconn) {
        note(
            `rejected: maxconn ${DEFAULTS.maxconn} is above what the file descriptor limit of this gateway (${fdLimit}) leaves beside up to ${serverBudget} instances; running ${defaultMaxconn}`,
        );
    }

    // Backends of the routes and TCP services.
    const verdicts = new Map<string, string>();
    const judge = (address: string): string => {
        let v = verdicts.get(address);
        if (v === undefined) {
            v = addressVerdict(address, networks);
            verdicts.set(address, v);
        }
        return v;
    };
    const backends: Backend[] = [];
    let foreignInstances = 0;
    /** Per routed version: its written servers, how many are not drained, its check path, which are drained. */
    const versionInfo = new Map<string, { servers: string[]; live: number; check: string; drained: Set<string> }>();
    for (const name of [...routes, ...tcpRoutes]) {
        const tcp = isTcp(name);
        const m = maint.get(name);
        const servers: Server[] = [];
        const twins: Server[] = [];
        const written = new Set<string>();
        const drained = new Set<string>();
        let agreed = "?";
        for (const { inst } of instances.get(name) ?? []) {
            const v = judge(inst.address);
            if (v === "-") {
                note(`skipped: ${name} instance at an address (sha256 ${sha8(inst.address)}) that is not IPv4`);
                continue;
            }
            if (v !== "+" && v !== "N") {
                note(`skipped: ${name} instance ${inst.address}:${inst.port}: ${v}`);
                continue;
            }
            const addr = `${inst.address}:${inst.port}`;
            const p = portClass.get(inst.port) ?? (Number.isInteger(inst.port) && inst.port > 0 && inst.port < 65536 ? "+" : "x");
            let skip = "";
            if (p === "x") skip = "not a TCP port";
            else if (p === "c") skip = `port ${inst.port} is Consul's or the Docker API's`;
            else if (p === "n" && v === "N") skip = `port ${inst.port} of a node is the gateway's, Consul's or SSH (GATEWAY_NODE_PORTS)`;
            if (skip !== "") {
                note(`skipped: ${name} instance ${addr}: ${skip}`);
                continue;
            }
            const foreign = foreignClaim(name, addr, inst.id, replicas.get(name));
            if (foreign !== undefined) {
                note(foreign);
                foreignInstances++;
                continue;
            }
            if (written.has(addr)) continue; // the same server registered twice: written once
            if (written.size >= instanceCap) {
                note(`skipped: ${name} instance ${addr}: over the cap of ${instanceCap} instances per service (KV ${KV_PREFIX}/limits/instances)`);
                continue;
            }
            // In maintenance: weight 0 (drained: no new request, in-flight ones finish). An instance
            // is named by the container field of its ID (Registrator: <node>:<container>:<port>[:udp]),
            // as it is or without its generation suffix "-<8 hex>" (a replaced replica's container is
            // a new one, so the key names the replica).
            const drain = m === "all" || (m !== undefined && namesContainer(m, serviceIdContainer(inst.id)));
            if (drain) drained.add(addr);
            written.add(addr);
            const maxconn = svcMaxconn.get(name) ?? serverMaxconn;
            servers.push({ name: addr, addr, check: true, backup: false, ...(drain ? { weight: 0 } : {}), maxconn });
            twins.push({ name: `panic-${addr}`, addr, check: false, backup: true, ...(drain ? { weight: 0 } : {}), maxconn });
            if (!kvCheck.has(name)) agreed = agree(agreed, tagCheck(inst.tags));
        }
        let check = "/";
        const declaredCheck = kvCheck.get(name);
        if (declaredCheck !== undefined) check = declaredCheck;
        else if (agreed.startsWith("/")) check = agreed;
        else if (agreed === "!")
            note(`rejected: check= tags of ${name}: its instances do not all carry the same valid one; checking / (declare its healthCheckPath in the stack)`);
        const all = [...servers, ...twins];
        const idle = svcIdle.get(name);
        const rate = svcRate.get(name);
        if (tcp)
            backends.push({
                name: `svc_${name}`,
                kind: "tcp",
                ...(listen.has(name) ? { listen: listen.get(name)! } : {}),
                ...(idle !== undefined ? { idleTimeout: idle } : {}),
                servers: all,
            });
        else backends.push({ name: `svc_${name}`, kind: "http", path: routePath(name), checkPath: check, ...(rate ? { rate } : {}), servers: all });
        versionInfo.set(name, { servers: [...written], live: written.size - drained.size, check, drained });
    }

    // Splits: /<name>/ over the versions with a weight. A server's weight is its version's weight
    // spread over the version's instances in rotation, scaled so the largest is 256 (HAProxy's
    // maximum) and at least 1 when the version's weight is not 0: the versions' shares are their
    // weights whatever their numbers of instances. Each server is checked here too (a dynamic
    // server cannot track another).
    const stickyRules: StickyRule[] = [];
    for (const base of splitRoutes) {
        const versions = [...split.get(base)!].sort(byBytes);
        const perServer = (svc: string): number => {
            const info = versionInfo.get(svc);
            const w = weight.get(svc)!;
            return info && info.live > 0 && w > 0 ? Math.trunc((1000000 * w) / info.live) : 0;
        };
        const top = Math.max(0, ...versions.map(perServer));
        const servers: Server[] = [];
        const twins: Server[] = [];
        let check = "";
        for (const svc of versions) {
            const info = versionInfo.get(svc);
            if (!info) continue;
            const version = VERSIONED_NAME.exec(svc)![3]!;
            const x = perServer(svc);
            const sw = x > 0 ? Math.max(1, Math.trunc((x * 256) / top)) : 0;
            if (check === "") check = info.check;
            else if (check !== info.check)
                note(`rejected: check path of ${svc} differs from the other versions of /${base}/; its servers in the split are checked on ${check}`);
            // Each version's instances keep their version's maxconn in the split too.
            const maxconn = svcMaxconn.get(svc) ?? serverMaxconn;
            for (const addr of info.servers) {
                const w = info.drained.has(addr) ? 0 : sw;
                servers.push({ name: `${version}_${addr}`, addr, check: true, backup: false, weight: w, maxconn });
                twins.push({ name: `panic-${version}_${addr}`, addr, check: false, backup: true, weight: w, maxconn });
            }
        }
        const rate = svcRate.get(base);
        backends.push({
            name: `svc_${base}`,
            kind: "split",
            path: base,
            checkPath: check || "/",
            sticky: sticky.has(base),
            ...(rate ? { rate } : {}),
            servers: [...servers, ...twins],
        });
        if (sticky.has(base)) {
            const routedVersions = versions.filter((svc) => routes.includes(svc));
            stickyRules.push({ base, versions: routedVersions.map((svc) => ({ version: VERSIONED_NAME.exec(svc)![3]!, backend: `svc_${svc}` })) });
        }
    }

    const isPort = (v: string | undefined): v is string => v !== undefined && /^[1-9][0-9]{0,4}$/.test(v) && Number(v) <= 65535;

    // Listeners: the stats listener (health, /metrics) keeps 1/16 of maxconn (8 to 256) and the
    // runtime API its 10 (HAProxy's `stats maxconn`); the public listeners share the rest, half
    // of it to the TCP listeners when there are any, in equal parts. HAProxy stops accepting on a
    // listener at its share (the kernel queues what comes next): a flood of one fills only its own.
    const stats = Math.min(256, Math.max(8, Math.floor(maxconn / 16)));
    const publicShare = Math.max(1, maxconn - stats - 10);
    const tcpEach = tcpListened.length > 0 ? Math.max(1, Math.floor(publicShare / 2 / tcpListened.length)) : 0;
    const httpShare = Math.max(1, publicShare - tcpEach * tcpListened.length);

    // HTTPS: its port, what X-Forwarded-Port says there, redirect and HSTS. It shares the HTTP
    // listeners' budget: three quarters when plain HTTP only redirects, else half.
    const tlsSource = settings.tlsSource ?? "";
    let tls: TlsListener | undefined;
    if (tlsSource !== "" && tlsSource !== "none") {
        if (!(TLS_SOURCES as readonly string[]).includes(tlsSource))
            note(`rejected: GATEWAY_TLS_SOURCE (sha256 ${sha8(tlsSource)}) is not one of ${TLS_SOURCES.join(", ")}; no HTTPS listener`);
        else {
            const port = isPort(settings.httpsPort) ? Number(settings.httpsPort) : 443;
            const hsts = settings.hstsSeconds ?? "0";
            const hstsSeconds = /^(0|[1-9][0-9]{0,9})$/.test(hsts) ? Number(hsts) : 0;
            if (hstsSeconds === 0 && hsts !== "0") note(`rejected: GATEWAY_HSTS_SECONDS (sha256 ${sha8(hsts)}) is not a number of seconds; no HSTS`);
            tls = {
                port,
                forwardedPort: isPort(settings.publicHttpsPort) ? Number(settings.publicHttpsPort) : port,
                redirect: settings.tlsRedirect === "true",
                hstsSeconds,
                acme: tlsSource === "acme",
                ...(tlsSource === "acm" ? { offload: true as const } : {}),
            };
        }
    }
    const httpsShare = tls ? Math.max(1, Math.floor((httpShare * (tls.redirect ? 3 : 2)) / 4)) : 0;
    const listenerMaxconn = tls
        ? { http: Math.max(1, httpShare - httpsShare), tcp: tcpEach, stats, https: httpsShare }
        : { http: httpShare, tcp: tcpEach, stats };
    const proxied = words(settings.acceptProxy ?? "");
    // The offload listener's only client is the load balancer: it takes the PROXY protocol whatever GATEWAY_ACCEPT_PROXY says.
    const acceptProxy = { http: proxied.includes("http"), https: tls !== undefined && (proxied.includes("https") || tls.offload === true) };
    const certificates =
        tls && !tls.offload
            ? readCertificates(kv, { sealingKey: input.sealingKey, previous: previous?.certificates ?? [], nowMs: input.nowMs ?? Date.now() }, note)
            : [];
    const challenges = tls?.acme ? readChallenges(kv, note) : [];

    // X-Forwarded-Port: the port clients reach the HTTP listener on.
    let forwardedPort = isPort(settings.httpPort) ? Number(settings.httpPort) : 80;
    if (isPort(settings.publicHttpPort)) forwardedPort = Number(settings.publicHttpPort);
    else if (settings.publicHttpPort !== undefined && settings.publicHttpPort !== "")
        note(`rejected: GATEWAY_PUBLIC_HTTP_PORT (sha256 ${sha8(settings.publicHttpPort)}) is not a port number; X-Forwarded-Port is ${forwardedPort}`);

    // Host and SNI routes: once the backends are known (their notes and quarantine go with the others').
    // SNI pass-through needs TLS to reach the gateway: none behind a load balancer that terminates it.
    const { hostRoutes, sniRoutes } = hostRoutesOf(
        hostValues,
        { backends, tcpKey, sni, tls: tls !== undefined && !tls.offload, offload: tls?.offload === true, previous, accepted, quarantined },
        note,
    );

    return {
        maxconn,
        listenerMaxconn,
        timeouts,
        limits,
        forwardedPort,
        ...(tls ? { tls } : {}),
        acceptProxy,
        certificates,
        challenges,
        hardStopAfter: tcpRoutes.length > 0 ? "1h" : "30s",
        trustedProxies: networks.trustedProxies,
        stickyRules,
        routes: [...routes, ...splitRoutes].map((name) => ({ path: routePath(name), backend: `svc_${name}` })),
        hostRoutes,
        sniRoutes,
        tcpListeners: tcpListened.map((name) => ({ name, port: listen.get(name)!, backend: `svc_${name}` })),
        backends,
        notes: [...notes].sort(byBytes),
        quarantined: [...quarantined].sort(byBytes),
        accepted,
        foreignInstances,
    };
}

// ---------------------------------------------------------------------------------------------
// Ownership (docs/security.md, "Routes belong to declared replicas"): Registrator registers
// whatever name a container's SERVICE_<port>_NAME says, so a name proves nothing. The stack
// writes each declared service's replica names (KV services/<consul name>/replicas); an instance
// of that service is routed only from one of those containers, read off its service ID.

/** The container field of a Registrator service ID (<node>:<container>:<port>[:udp]), or undefined. */
export function serviceIdContainer(id: string): string | undefined {
    const f = id.split(":");
    return f.length >= 3 ? f[1] : undefined;
}

/**
 * Whether `names` names the container: as it is, or without its generation suffix "-<8 hex>"
 * (a replaced replica's container is a new one, <replica>-<generation>: the KV keys name the replica).
 */
export function namesContainer(names: ReadonlySet<string>, container: string | undefined): boolean {
    return container !== undefined && (names.has(container) || names.has(container.replace(/-[0-9a-f]{8}$/, "")));
}

/** A replicas key's value: container names separated by spaces (at most 200 of 128 characters), else undefined. */
export function readReplicas(value: string): ReadonlySet<string> | undefined {
    const names = value.replace(/\s+/g, " ").trim();
    if (names.length > 26000 || !CONTAINER_NAMES.test(names)) return undefined;
    const list = names.split(" ");
    return list.length <= 200 && list.every((n) => n.length <= 128) ? new Set(list) : undefined;
}

/**
 * Why an instance of `service` at `addr` is refused as foreign (a note), or undefined when it may
 * be routed: the service declares no replicas (undeclared: routeUndeclared decides, per service),
 * or the instance's container is one of them.
 */
export function foreignClaim(service: string, addr: string, id: string, replicas: ReadonlySet<string> | undefined): string | undefined {
    if (replicas === undefined) return undefined;
    const container = serviceIdContainer(id);
    if (namesContainer(replicas, container)) return undefined;
    const key = `KV ${KV_PREFIX}/${KV_KEYS.service(service, "replicas")}`;
    if (container === undefined || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(container))
        return `rejected: ${service} instance ${addr}: its service ID (sha256 ${sha8(id)}) names no container of Registrator's form <node>:<container>:<port>, and only the declared replicas of ${service} are routed (${key}); not routed`;
    return `rejected: ${service} instance ${addr}: container ${container} is not a declared replica of ${service} (${key}); not routed`;
}

/** KV routing/undeclared: true or false; absent, the gateway's default; any other value is refused and routes none. */
export function readRouteUndeclared(kv: ReadonlyMap<string, string>, note: (line: string) => void): boolean {
    const v = kv.get(KV_KEYS.routeUndeclared);
    if (v === undefined) return DEFAULTS.routeUndeclared;
    if (v === "true" || v === "false") return v === "true";
    note(`rejected: KV ${KV_PREFIX}/${KV_KEYS.routeUndeclared}: value (sha256 ${sha8(v)}) is neither true nor false; routing no undeclared service`);
    return false;
}

// ---------------------------------------------------------------------------------------------
// Host routes (docs/traffic-control.md, "Routes by host name")

/** Why a hosts or sni value is rejected. */
const NOT_HOST_LIST = "is not lowercase DNS names separated by single spaces";

/**
 * The KV keys services/<name>/sni (`values`, by service), checked as hosts values are (isHostList):
 * a value that fails is rejected whole, and the service keeps its last good value, else has no
 * SNI names. The names in force, by service: those services are TCP services.
 */
export function readSni(
    values: ReadonlyMap<string, string>,
    o: { readonly previous: Model | undefined; readonly accepted: Map<string, string>; readonly quarantined: Set<string> },
    note: (line: string) => void,
): Map<string, string> {
    const sni = new Map<string, string>();
    for (const svc of [...values.keys()].sort(byBytes)) {
        const key = `services/${svc}/sni`;
        let value = values.get(svc)!;
        if (!isHostList(value)) {
            const last = o.previous?.accepted.get(key);
            note(
                `rejected: KV ${KV_PREFIX}/${key}: value (sha256 ${sha8(value)}) ${NOT_HOST_LIST}; ${last === undefined ? `${svc} has no SNI routes` : "keeping its last good value"}`,
            );
            if (last === undefined) continue;
            o.quarantined.add(svc);
            value = last;
        }
        o.accepted.set(key, value);
        sni.set(svc, value);
    }
    return sni;
}

/**
 * The host routes of the KV keys services/<name>/hosts (`values`, by service) and the SNI routes
 * of the sni names in force (`sni`, readSni). A hosts value is host names separated by single
 * spaces (isHostList), else rejected whole (the service keeps its last good value, else has
 * none); a TCP service's hosts are rejected (its names are its sni key). A name another service
 * claimed first, in name order, by either key, is rejected. SNI routes need the HTTPS listener
 * (`tls`). Only a routed http service (its backend exists) gets host routes, a TCP service SNI
 * routes: the maps never name a backend HAProxy does not have.
 */
export function hostRoutesOf(
    values: ReadonlyMap<string, string>,
    o: {
        readonly backends: readonly Backend[];
        /** The KV key that makes a service a TCP service, or undefined. */
        readonly tcpKey: (svc: string) => string | undefined;
        readonly sni: ReadonlyMap<string, string>;
        readonly tls: boolean;
        /** TLS is terminated by the load balancer (acm): no SNI to pass through. */
        readonly offload?: boolean;
        readonly previous: Model | undefined;
        readonly accepted: Map<string, string>;
        readonly quarantined: Set<string>;
    },
    note: (line: string) => void,
): { hostRoutes: HostRoute[]; sniRoutes: HostRoute[] } {
    const owner = new Map<string, { svc: string; sni: boolean }>();
    const claim = (svc: string, hosts: string, at: string, isSni: boolean): void => {
        for (const host of new Set(hosts.split(" "))) {
            const first = owner.get(host);
            if (first !== undefined) {
                note(`${at} ${host} is already a ${first.sni ? "pass-through (SNI) " : ""}host of ${first.svc}; ignored for ${svc}`);
                continue;
            }
            owner.set(host, { svc, sni: isSni });
        }
    };
    for (const svc of [...new Set([...values.keys(), ...o.sni.keys()])].sort(byBytes)) {
        const value = values.get(svc);
        if (value !== undefined) {
            const key = `services/${svc}/hosts`;
            const at = `rejected: KV ${KV_PREFIX}/${key}:`;
            const tcp = o.tcpKey(svc);
            if (tcp !== undefined) {
                note(`${at} ${svc} is a TCP service (${tcp}); a TCP service is not routed by host name; ignored`);
            } else {
                let hosts: string | undefined = value;
                if (!isHostList(value)) {
                    const last = o.previous?.accepted.get(key);
                    note(
                        `${at} value (sha256 ${sha8(value)}) ${NOT_HOST_LIST}; ${last === undefined ? `${svc} has no host routes` : "keeping its last good value"}`,
                    );
                    if (last !== undefined) o.quarantined.add(svc);
                    hosts = last;
                }
                if (hosts !== undefined) {
                    o.accepted.set(key, hosts);
                    claim(svc, hosts, at, false);
                }
            }
        }
        const names = o.sni.get(svc);
        if (names === undefined) continue;
        const at = `rejected: KV ${KV_PREFIX}/services/${svc}/sni:`;
        if (!o.tls) {
            note(
                `${at} ${o.offload ? "the load balancer terminates TLS (GATEWAY_TLS_SOURCE acm), so none reaches the gateway to be passed through by SNI" : "the gateway has no HTTPS listener (GATEWAY_TLS_SOURCE none), where TLS is passed through by SNI"}; ${svc} has no SNI routes`,
            );
            continue;
        }
        claim(svc, names, at, true);
    }
    const kinds = new Map(o.backends.map((b) => [b.name, b.kind]));
    const routes = (isSni: boolean): HostRoute[] =>
        [...owner]
            .filter(([, c]) => c.sni === isSni && kinds.get(`svc_${c.svc}`) === (isSni ? "tcp" : "http"))
            .map(([host, c]) => ({ host, backend: `svc_${c.svc}` }))
            .sort((a, b) => byBytes(a.host, b.host));
    return { hostRoutes: routes(false), sniRoutes: routes(true) };
}

/** The check path an instance's check= tags ask for: the path, "!" (invalid or several), or "none". */
function tagCheck(tags: readonly string[]): string {
    let ic = "";
    for (const t of tags) {
        if (!t.startsWith("check=")) continue;
        const path = t.slice("check=".length);
        const v = CHECK_PATH.test(path) ? path : "!";
        if (ic === "") ic = v;
        else if (ic !== v) ic = "!";
    }
    return ic === "" ? "none" : ic;
}

/** What the instances agree on so far ("?" before the first). */
function agree(agreed: string, next: string): string {
    if (agreed === "?") return next;
    return agreed === next ? agreed : "!";
}

/** The networks the stack declares, each entry checked. */
function readNetworks(settings: StackSettings, kv: ReadonlyMap<string, string>, note: (line: string) => void): Networks {
    const single = new Map<string, Set<"backends" | "nodes" | "own">>();
    const add = (address: string, list: "backends" | "nodes" | "own"): void => {
        if (!single.has(address)) single.set(address, new Set());
        single.get(address)!.add(list);
    };
    const blocks = { backends: [] as [number, number][], nodes: [] as [number, number][] };
    let exactBackend = false;
    let trusted: string[] = [];
    const sources: [string, string, "backends" | "nodes" | "trusted"][] = [
        ["GATEWAY_BACKEND_NETWORKS", kv.get("networks/backends") ?? settings.backendNetworks, "backends"],
        ["GATEWAY_NODE_NETWORKS", kv.get("networks/nodes") ?? settings.nodeNetworks, "nodes"],
        ["GATEWAY_TRUSTED_PROXIES", settings.trustedProxies, "trusted"],
    ];
    for (const [variable, text, list] of sources) {
        const cidrs: string[] = [];
        for (const entry of words(text)) {
            if (!CIDR.test(entry)) {
                note(`rejected: ${variable} entry (sha256 ${sha8(entry)}) is not an IPv4 CIDR block such as 10.0.0.0/16; ignored`);
                continue;
            }
            cidrs.push(entry);
            if (list === "trusted") continue;
            const [base, prefix] = entry.split("/") as [string, string];
            const size = 2 ** (32 - Number(prefix));
            if (size === 1) {
                add(base, list);
                if (list === "backends") exactBackend = true;
            } else {
                const start = Math.floor(ipv4ToInt(base) / size) * size;
                blocks[list].push([start, start + size]);
            }
        }
        if (list === "trusted") trusted = cidrs;
    }
    if (blocks.backends.length === 0 && !exactBackend) note("rejected: GATEWAY_BACKEND_NETWORKS declares no network: no instance is routed");
    for (const a of words(settings.ownAddresses)) add(a, "own");
    return { blocks, single, anyBackend: blocks.backends.length > 0 || exactBackend, trustedProxies: trusted.join(" ") };
}

/**
 * "+" a server, "N" a server on a node address, "-" not IPv4, else why the address is refused.
 */
export function addressVerdict(address: string, networks: Networks): string {
    if (!IPV4.test(address)) return "-";
    const o = address.split(".").map(Number);
    let n: string;
    if (o[0] === 0) n = "unspecified address (0.0.0.0/8)";
    else if (o[0] === 127) n = "loopback address (127.0.0.0/8)";
    else if (o[0] === 169 && o[1] === 254) n = "link-local address (169.254.0.0/16, cloud metadata)";
    else if (o[0]! >= 224) n = "multicast or reserved address (224.0.0.0/3)";
    else {
        n = "o";
        const a = ipv4ToInt(address);
        const inside = (blocks: [number, number][]): boolean => blocks.some(([s, e]) => a >= s && a < e);
        if (inside(networks.blocks.backends)) n = "B";
        if (inside(networks.blocks.nodes)) n = n === "o" || n === "N" ? "N" : "BN";
    }
    const one = networks.single.get(address);
    if (one) {
        if (n.length > 2) return n;
        if (one.has("own")) return "an address of the gateway itself (GATEWAY_OWN_ADDRESSES)";
        if (one.has("backends")) n = n === "o" ? "B" : n === "N" ? "BN" : n;
        if (one.has("nodes") && n === "B") n = "BN";
    }
    if (n === "B") return "+";
    if (n === "BN") return "N";
    if (n === "o" || n === "N") return "address outside the networks the stack declares (GATEWAY_BACKEND_NETWORKS)";
    return n;
}

/** The model without its servers: two models whose structures are equal differ only in servers,
 * which the runtime API changes without a reload. */
export function structureOf(model: Model): string {
    let s = structures.get(model);
    if (s === undefined) {
        s = structureText(model);
        structures.set(model, s);
    }
    return s;
}
/** A model is compared again and again while it runs: its structure is computed once. */
const structures = new WeakMap<Model, string>();

function structureText(model: Model): string {
    return JSON.stringify({
        maxconn: model.maxconn,
        listenerMaxconn: model.listenerMaxconn,
        timeouts: model.timeouts,
        limits: model.limits,
        forwardedPort: model.forwardedPort,
        tls: model.tls,
        acceptProxy: model.acceptProxy,
        hardStopAfter: model.hardStopAfter,
        trustedProxies: model.trustedProxies,
        stickyRules: model.stickyRules,
        routes: model.routes,
        // The SNI routes themselves change at run time (the map); whether there are any is the HTTPS port's frontend.
        sniPassthrough: model.sniRoutes.length > 0,
        tcpListeners: model.tcpListeners,
        backends: model.backends.map((b) => ({ ...b, servers: undefined })),
    });
}
