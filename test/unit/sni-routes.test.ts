// TLS pass-through by SNI (docs/traffic-control.md, "TLS pass-through by SNI"): the stack config
// (a tcp service's hosts: what they need, what they exclude, each error naming its keys), the KV
// key the program writes (services/<name>/sni, and the graph under Pulumi's mocks), the
// gateway's model of untrusted KV values (a service with SNI names is a TCP service), its
// rendering (the HTTPS port becomes a TCP frontend only while a route exists), the plan between
// two models (runtime map operations; the first and last route are reloads, which say so) and
// the route table `npm run plan` shows.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { certificateHosts, parseSettings } from "../../components/config";
import { gatewayKeys } from "../../components/gateway-kv";
import { hostChanges, planChange } from "../../components/images/gateway/controller/diff";
import { buildModel, sha8, structureOf, type CatalogService, type Model, type StackSettings } from "../../components/images/gateway/controller/model";
import { passesThrough, renderConfig, SNI_MAP, sniMapText } from "../../components/images/gateway/controller/render";
import { routeTable } from "../../components/images/gateway/controller/routes";
import { isHostList } from "../../components/images/gateway/controller/rules";
import { stackTable } from "../../plan";
import { diffTables } from "../../plan/diff";
import { text } from "../../plan/report";
import { devWith, evaluate, stackConfig, type Program } from "../support/program";
import { dev, rejects } from "./config-support";
import { SETTINGS } from "./gateway-support";

const P = "service-discovery";
const shop = { name: "shop", build: "components/images/hello" };
const pg = { name: "pg", image: "example/postgres:16.4", containerPort: 5432, protocol: "tcp" };
const NO_TLS = { gateway: { httpPort: 80, tls: { source: "none" } } };

describe("SNI pass-through: config", () => {
    const parse = (services: unknown[], overrides: Record<string, unknown> = {}) => parseSettings(dev({ ...overrides, services }), "dev");

    it("a tcp service declares hosts, lower-cased; listenPort becomes optional, and may still be given", () => {
        const s = parse([
            { ...pg, hosts: ["DB.example.com"] },
            { ...pg, name: "pg2", hosts: ["db2.example.com"], listenPort: 15432 },
        ]);
        assert.deepEqual(s.services[0]!.hosts, ["db.example.com"]);
        assert.equal(s.services[0]!.listenPort, undefined);
        assert.equal(s.services[1]!.listenPort, 15432);
    });

    it("refuses a tcp service's hosts without the gateway's HTTPS listener, naming the key and what is allowed", () =>
        rejects(
            dev({ ...NO_TLS, services: [{ ...pg, listenPort: 5432, hosts: ["db.example.com"] }] }),
            `${P}:services[0].hosts: ["db.example.com"] is not allowed; expected no hosts for protocol tcp while gateway.tls.source is none (a tcp service's hosts are TLS host names passed through, by SNI, on the gateway's HTTPS listener: set gateway.tls.source to acme, provided or self-signed, or give the service a listenPort instead)`,
        ));

    it("refuses a tcp service with neither listenPort nor hosts, as before", () =>
        rejects(
            dev({ services: [pg] }),
            `${P}:services[0].listenPort: missing is not allowed; expected the port the gateway listens on for this tcp service, such as 5432 (required with protocol tcp unless hosts names the TLS host names passed through to it on gateway.httpsPort)`,
        ));

    it("refuses a name both a tcp and an http service declare, naming both keys", () =>
        rejects(
            dev({
                services: [
                    { ...shop, hosts: ["db.example.com"] },
                    { ...pg, hosts: ["db.example.com"] },
                ],
            }),
            `${P}:services[1].hosts[0]: "db.example.com" is not allowed; expected a host name no other service declares (also at ${P}:services[0].hosts[0]): a host name routes to one service or version`,
        ));

    it("refuses a pass-through name in gateway.tls.hosts, naming both keys", () =>
        rejects(
            dev({
                gateway: { httpPort: 80, httpsPort: 443, tls: { source: "self-signed", hosts: ["localhost", "db.example.com"] } },
                services: [{ ...pg, hosts: ["db.example.com"] }],
            }),
            `${P}:gateway.tls.hosts[1]: "db.example.com" is not allowed; expected names of the gateway's own certificate, not a host whose TLS is passed through to a tcp service (${P}:services[0].hosts[0]): that service's own certificate answers it`,
        ));

    it("certificateHosts: a tcp service's hosts are not the gateway certificate's", () => {
        const services = [
            { hosts: ["shop.example.com"], protocol: "http" as const },
            { hosts: ["db.example.com"], protocol: "tcp" as const },
        ];
        assert.deepEqual(certificateHosts("acme", undefined, services), ["shop.example.com"]);
        assert.deepEqual(certificateHosts("self-signed", undefined, services), ["localhost", "shop.example.com"]);
        const s = parse(
            [
                { ...shop, hosts: ["shop.example.com"] },
                { ...pg, hosts: ["db.example.com"] },
            ],
            { gateway: { httpPort: 80, tls: { source: "acme", acme: { email: "ops@example.com" } } } },
        );
        assert.deepEqual(s.gateway.tls.hosts, ["shop.example.com"]);
    });

    it("gatewayKeys: services/<consul name>/sni for a tcp service's hosts, no listen key without a listenPort", () => {
        const s = parse([
            { ...shop, hosts: ["shop.example.com"] },
            { ...pg, hosts: ["db.example.com", "db2.example.com"] },
            { ...pg, name: "pg2", hosts: ["db3.example.com"], listenPort: 15432 },
        ]);
        const keys = gatewayKeys(s.haproxy, s.services, { backends: "10.0.0.0/8", nodes: "10.0.0.1/32" }, false).filter((k) =>
            /\/(hosts|sni|listen)$/.test(k.path),
        );
        assert.deepEqual(keys, [
            { path: "service/haproxy/services/shop/hosts", value: "shop.example.com", delete: true },
            { path: "service/haproxy/services/pg/sni", value: "db.example.com db2.example.com", delete: true },
            { path: "service/haproxy/services/pg2/listen", value: "15432", delete: true },
            { path: "service/haproxy/services/pg2/sni", value: "db3.example.com", delete: true },
        ]);
        assert.ok(keys.every((k) => !k.path.endsWith("/sni") || isHostList(k.value)));
    });
});

describe("SNI pass-through: the program under Pulumi's mocks", () => {
    let p: Program;
    before(async () => {
        p = await evaluate(devWith({ services: [{ ...shop }, { ...pg, hosts: ["db.example.com"] }] }));
        assert.equal(p.error, null, String(p.error));
    });

    it("writes the sni key, no listen key, and the certificate does not name the pass-through host", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        assert.deepEqual(
            keys.filter((k) => k.path.includes("/pg/")).map((k) => [k.path, k.value]),
            [
                ["service/haproxy/services/pg/replicas", "dev-pg-1"],
                ["service/haproxy/services/pg/sni", "db.example.com"],
            ],
        );
        assert.deepEqual(p.one("tls:index/certRequest:CertRequest", "gateway-tls-csr").inputs.dnsNames, ["localhost"]);
    });
});

// ---------------------------------------------------------------------------------------------
// The gateway

const inst = (service: string, last: number, tags = ["rest"]): CatalogService => ({
    id: `node1:${service}-${last}:80`,
    service,
    address: `10.1.0.${last}`,
    port: 80,
    tags,
});
const INSTANCES = [inst("shop", 5), inst("db", 7, ["tcp"])];
const TLS: Partial<StackSettings> = { tlsSource: "self-signed", httpsPort: "8443" };
function model(kv: Record<string, string>, o: { previous?: Model; services?: CatalogService[]; settings?: Partial<StackSettings> } = {}): Model {
    return buildModel({
        kv: new Map(Object.entries(kv).map(([k, v]) => [`service/haproxy/${k}`, v])),
        nodes: [{ node: "node1", address: "10.1.0.1", services: o.services ?? INSTANCES }],
        settings: { ...SETTINGS, ...TLS, ...o.settings },
        ...(o.previous ? { previous: o.previous } : {}),
    });
}
const SNI = { "services/db/sni": "db.example.com db2.example.com" };

describe("SNI pass-through: the gateway's model of untrusted KV", () => {
    it("a service with an sni key is a TCP service: its tcp-tagged instances, a tcp backend without a listener, its routes", () => {
        const m = model(SNI);
        const db = m.backends.find((b) => b.name === "svc_db")!;
        assert.equal(db.kind, "tcp");
        assert.equal(db.listen, undefined);
        assert.deepEqual(
            db.servers.filter((s) => !s.backup).map((s) => s.addr),
            ["10.1.0.7:80"],
        );
        assert.deepEqual(m.tcpListeners, [], "no listener of its own");
        assert.deepEqual(m.sniRoutes, [
            { host: "db.example.com", backend: "svc_db" },
            { host: "db2.example.com", backend: "svc_db" },
        ]);
        assert.deepEqual(m.notes, []);
        assert.equal(m.hardStopAfter, "1h", "pass-through sessions are long: a reload does not cut them for 1 h");
        // Without the key, db is an http service: its tcp-tagged instance is not routed.
        assert.equal(
            model({}).backends.find((b) => b.name === "svc_db"),
            undefined,
        );
    });

    it("a tcp service without instances keeps its backend: the map never names a missing one", () => {
        const m = model(SNI, { services: [inst("shop", 5)] });
        assert.deepEqual(m.backends.find((b) => b.name === "svc_db")?.servers, []);
        assert.equal(m.sniRoutes.length, 2);
    });

    it("a TCP service with a listener may be reached by SNI too", () => {
        const m = model({ ...SNI, "services/db/listen": "15432" });
        assert.equal(m.backends.find((b) => b.name === "svc_db")?.listen, 15432);
        assert.deepEqual(m.tcpListeners, [{ name: "db", port: 15432, backend: "svc_db" }]);
        assert.equal(m.sniRoutes.length, 2);
    });

    const hostile: [string, string][] = [
        ["a newline", "db.example.com\nuse_backend evil"],
        ["two spaces", "db.example.com  db2.example.com"],
        ["upper case", "DB.example.com"],
        ["a wildcard", "*.example.com"],
        ["a quote", 'db.example.com"'],
        ["a map-significant space at the end", "db.example.com "],
        ["an IP address", "10.0.0.1"],
    ];
    for (const [title, value] of hostile) {
        it(`rejects a value with ${title} whole, by hash (note); the service has no SNI routes`, () => {
            const m = model({ "services/db/sni": value });
            assert.deepEqual(m.sniRoutes, []);
            assert.deepEqual(m.notes, [
                `rejected: KV service/haproxy/services/db/sni: value (sha256 ${sha8(value)}) is not lowercase DNS names separated by single spaces; db has no SNI routes`,
            ]);
            assert.ok(!renderConfig(m).includes(value) && !sniMapText(m).includes("evil"));
        });
    }

    it("a rejected value keeps the service's last good one (quarantine)", () => {
        const good = model(SNI);
        const m = model({ "services/db/sni": "db.example.com\nevil" }, { previous: good });
        assert.deepEqual(m.sniRoutes, good.sniRoutes);
        assert.deepEqual(m.quarantined, ["db"]);
        assert.match(m.notes[0]!, /db\/sni: value \(sha256 [0-9a-f]{8}\) is not lowercase DNS names separated by single spaces; keeping its last good value$/);
    });

    it("a name claimed by a host route and an SNI route: the first service by name keeps it, the other is noted", () => {
        const m = model({ ...SNI, "services/shop/hosts": "db.example.com shop.example.com" });
        assert.deepEqual(m.sniRoutes, [
            { host: "db.example.com", backend: "svc_db" },
            { host: "db2.example.com", backend: "svc_db" },
        ]);
        assert.deepEqual(m.hostRoutes, [{ host: "shop.example.com", backend: "svc_shop" }]);
        assert.deepEqual(m.notes, [
            "rejected: KV service/haproxy/services/shop/hosts: db.example.com is already a pass-through (SNI) host of db; ignored for shop",
        ]);
        const other = model(
            { "services/zz/sni": "shop.example.com", "services/shop/hosts": "shop.example.com" },
            { services: [inst("shop", 5), inst("zz", 8, ["tcp"])] },
        );
        assert.deepEqual(other.hostRoutes, [{ host: "shop.example.com", backend: "svc_shop" }]);
        assert.deepEqual(other.sniRoutes, []);
        assert.deepEqual(other.notes, ["rejected: KV service/haproxy/services/zz/sni: shop.example.com is already a host of shop; ignored for zz"]);
    });

    it("without the HTTPS listener: no SNI route, noted; the service stays a TCP service", () => {
        const m = model(SNI, { settings: { tlsSource: "none" } });
        assert.deepEqual(m.sniRoutes, []);
        assert.equal(m.backends.find((b) => b.name === "svc_db")?.kind, "tcp");
        assert.deepEqual(m.notes, [
            "rejected: KV service/haproxy/services/db/sni: the gateway has no HTTPS listener (GATEWAY_TLS_SOURCE none), where TLS is passed through by SNI; db has no SNI routes",
        ]);
    });

    it("a TCP service by its sni key: its hosts key and a request rate are rejected as a TCP service's", () => {
        const m = model({ ...SNI, "services/db/hosts": "web.example.com", "services/db/rate": "10" });
        assert.deepEqual(m.hostRoutes, []);
        assert.deepEqual(m.notes, [
            "rejected: KV service/haproxy/services/db/hosts: db is a TCP service (KV service/haproxy/services/db/sni); a TCP service is not routed by host name; ignored",
            "rejected: KV service/haproxy/services/db/rate: db is a TCP service (KV service/haproxy/services/db/sni); a request rate is an http service's; ignored",
        ]);
    });
});

describe("SNI pass-through: render", () => {
    const section = (cfg: string, header: string): string => {
        const at = cfg.indexOf(`${header}\n`);
        assert.ok(at >= 0, `no ${header}`);
        return cfg.slice(at, cfg.indexOf("\n\n", at));
    };

    it("with an SNI route: the HTTPS port is a TCP frontend that reads the hello, looks the SNI up, and terminates the rest on a local socket", () => {
        const cfg = renderConfig(model(SNI));
        assert.equal(
            section(cfg, "frontend https_sni from tcp_services"),
            [
                "frontend https_sni from tcp_services",
                '    bind "${GATEWAY_BIND}:8443"',
                `    maxconn ${model(SNI).listenerMaxconn.https}`,
                "    stick-table type ip size 100k expire 30s store conn_cur",
                "    tcp-request session track-sc0 src",
                "    tcp-request session reject if { sc0_conn_cur gt 100 }",
                "    # The client's TLS hello (its SNI), waited for at most 5 s; never decrypted here.",
                "    tcp-request inspect-delay 5s",
                "    tcp-request content accept if { req.ssl_hello_type 1 }",
                "    # Pass-through (KV services/<name>/sni, the map changed at run time): the SNI, lowercased, names a TCP backend.",
                '    use_backend %[req.ssl_sni,lower,map("${GATEWAY_RUN_DIR}/sni.map")] if { req.ssl_sni,lower,map("${GATEWAY_RUN_DIR}/sni.map") -m found }',
                "    default_backend https_terminated",
            ].join("\n"),
        );
        assert.match(section(cfg, "backend https_terminated from tcp_services"), /\n {4}server https "unix@\$\{GATEWAY_RUN_DIR\}\/https\.sock" send-proxy-v2$/);
        const https = section(cfg, "frontend https");
        assert.match(https, /^frontend https\n {4}bind "unix@\$\{GATEWAY_RUN_DIR\}\/https\.sock" mode 600 accept-proxy ssl crt-list /);
        assert.match(
            https,
            /\n {4}tcp-request session track-sc0 src table clients_http\n {4}tcp-request session reject if/,
            "the PROXY header's address is counted",
        );
        assert.match(
            section(cfg, "backend svc_db from tcp_services"),
            /TCP service by SNI on the HTTPS port, TLS passed through \(frontend https_sni\): checks connect\./,
        );
        assert.ok(!cfg.includes("db.example.com"), "the names are in the map file");
        assert.equal(sniMapText(model(SNI)), "db.example.com svc_db\ndb2.example.com svc_db\n");
        assert.equal(SNI_MAP, "sni.map");
    });

    it("PROXY protocol from a load balancer: the public bind takes it, the local hop always", () => {
        const cfg = renderConfig(model(SNI, { settings: { acceptProxy: "https" } }));
        assert.match(section(cfg, "frontend https_sni from tcp_services"), /\n {4}bind "\$\{GATEWAY_BIND\}:8443" accept-proxy\n/);
    });

    it("without an SNI route the HTTPS listener is today's exactly (a TCP service without sni changes nothing)", () => {
        const plain = model({}, { services: [inst("shop", 5)] });
        const withOther = model({ "services/db/sni": "bad_name.example.com" });
        assert.equal(passesThrough(plain), false);
        for (const m of [plain, withOther, model(SNI, { settings: { tlsSource: "none" } })]) {
            const cfg = renderConfig(m);
            assert.ok(!cfg.includes("https_sni") && !cfg.includes("https.sock") && !cfg.includes("tcp-request session"));
        }
        assert.match(
            renderConfig(plain),
            /\nfrontend https\n {4}bind "\$\{GATEWAY_BIND\}:8443" ssl crt-list "\$\{GATEWAY_RUN_DIR\}\/tls\/crt-list" alpn h2,http\/1\.1 ssl-min-ver TLSv1\.2\n/,
        );
    });
});

describe("SNI pass-through: diff and route table", () => {
    it("adding or removing a name while another stays: runtime map operations, no reload", () => {
        const one = model({ "services/db/sni": "db.example.com" });
        const two = model(SNI);
        assert.equal(structureOf(one), structureOf(two));
        assert.deepEqual(planChange(one, two), { kind: "runtime", ops: [], sni: [{ op: "host", host: "db2.example.com", backend: "svc_db" }] });
        assert.deepEqual(hostChanges(two, one, "sniRoutes"), [{ op: "unhost", host: "db2.example.com" }]);
        assert.deepEqual(planChange(two, model(SNI)), { kind: "none" });
    });

    it("the first SNI route and the last one gone: reloads, which say why", () => {
        const off = model({}, { services: [inst("shop", 5)] });
        const on = model(SNI);
        assert.deepEqual(planChange(off, on), { kind: "reload", why: "TLS pass-through by SNI on (first SNI route): the HTTPS port becomes a TCP frontend" });
        assert.deepEqual(planChange(on, off), {
            kind: "reload",
            why: "TLS pass-through by SNI off (last SNI route gone): the HTTPS port is the terminating frontend again",
        });
        // The service stays while its names are rejected: only the HTTPS port's frontend changes.
        const rejected = model({ "services/db/sni": "db.example.com", "services/shop/hosts": "x.example.com" }, { settings: { tlsSource: "none" } });
        assert.equal(rejected.sniRoutes.length, 0);
    });

    it("the route table lists SNI routes; `npm run plan` shows them, added and removed", () => {
        const t = routeTable(model(SNI));
        assert.deepEqual(t.sni, [
            { host: "db.example.com", service: "db", servers: 1, drained: 0 },
            { host: "db2.example.com", service: "db", servers: 1, drained: 0 },
        ]);
        const config = {
            ...stackConfig("dev"),
            "service-discovery:services": [{ ...shop }, { ...pg, replicas: 2, hosts: ["db.example.com"] }],
        } as Record<string, unknown>;
        const planned = stackTable(config, "dev");
        assert.ok("table" in planned, "error" in planned ? planned.error.message : "");
        assert.deepEqual(planned.table.sni, [{ host: "db.example.com", service: "pg", servers: 2, drained: 0 }]);
        assert.deepEqual(planned.table.notes, []);
        const out = text({ stack: "dev", table: planned.table, changes: [], findings: [] });
        assert.match(out, /\n {2}sni db\.example\.com +pg \(2 replicas\), TLS passed through\n/);
        assert.deepEqual(diffTables({ ...planned.table, sni: [] }, planned.table), [
            { kind: "added", route: "sni db.example.com", to: "pg (2 replicas), TLS passed through" },
        ]);
        const { sni: _, ...older } = planned.table;
        assert.deepEqual(diffTables(planned.table, older), [{ kind: "removed", route: "sni db.example.com", from: "pg (2 replicas), TLS passed through" }]);
    });
});
