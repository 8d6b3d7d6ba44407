// Routes by host name (docs/traffic-control.md, "Routes by host name"): the stack config
// (services[i].hosts: valid, invalid, conflicts, each error naming its keys), the certificate's
// names (certificateHosts), the KV key the program writes (gatewayKeys, and the graph under
// Pulumi's mocks), the gateway's model of untrusted KV values, its rendering (a runtime map
// looked up before the path routes), the plan between two models (runtime map operations, no
// reload) and the route table `npm run plan` shows.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { certificateHosts, parseSettings } from "../../components/config";
import { gatewayKeys } from "../../components/gateway-kv";
import { hostChanges, planChange } from "../../components/images/gateway/controller/diff";
import { buildModel, sha8, type CatalogService, type Model, type StackSettings } from "../../components/images/gateway/controller/model";
import { HOSTS_MAP, hostsMapText, renderConfig } from "../../components/images/gateway/controller/render";
import { routeTable } from "../../components/images/gateway/controller/routes";
import { isHostList } from "../../components/images/gateway/controller/rules";
import { stackTable } from "../../plan";
import { diffTables } from "../../plan/diff";
import { text } from "../../plan/report";
import { devWith, envOf, evaluate, stackConfig, type Program } from "../support/program";
import { dev, rejects } from "./config-support";
import { SETTINGS } from "./gateway-support";

const P = "service-discovery";
const shop = { name: "shop", build: "components/images/hello" };
const api = { name: "api", version: "v2", build: "components/images/hello" };

describe("host routes: config", () => {
    const parse = (services: unknown[], overrides: Record<string, unknown> = {}) => parseSettings(dev({ ...overrides, services }), "dev");

    it("a service or a version declares host names, lower-cased; none by default", () => {
        const s = parse([
            { ...shop, hosts: ["Shop.Example.COM", "www.example.com"] },
            { ...api, hosts: ["api.example.com"] },
            { ...shop, name: "plain" },
        ]);
        assert.deepEqual(s.services[0]!.hosts, ["shop.example.com", "www.example.com"]);
        assert.deepEqual(s.services[1]!.hosts, ["api.example.com"]);
        assert.deepEqual(s.services[2]!.hosts, []);
    });

    const invalid: [string, unknown, string][] = [
        [
            "a wildcard",
            ["*.example.com"],
            `${P}:services[0].hosts[0]: "*.example.com" is not allowed; expected a DNS name such as app.example.com: labels of letters, digits and - (not at either end), at most 63 characters each, the last one starting with a letter; exact names only (no wildcard *.)`,
        ],
        [
            "an IP address",
            ["ok.example.com", "10.0.0.1"],
            `${P}:services[0].hosts[1]: "10.0.0.1" is not allowed; expected a DNS name such as app.example.com: labels of letters, digits and - (not at either end), at most 63 characters each, the last one starting with a letter; exact names only (no wildcard *.)`,
        ],
        [
            "a space",
            ["shop example.com"],
            `${P}:services[0].hosts[0]: "shop example.com" is not allowed; expected a DNS name such as app.example.com: labels of letters, digits and - (not at either end), at most 63 characters each, the last one starting with a letter; exact names only (no wildcard *.)`,
        ],
        [
            "a label ending in -",
            ["shop-.example.com"],
            `${P}:services[0].hosts[0]: "shop-.example.com" is not allowed; expected a DNS name such as app.example.com: labels of letters, digits and - (not at either end), at most 63 characters each, the last one starting with a letter; exact names only (no wildcard *.)`,
        ],
        [
            "not a list",
            "shop.example.com",
            `${P}:services[0].hosts: "shop.example.com" is not allowed; expected a list of DNS names such as ["app.example.com"]`,
        ],
    ];
    for (const [title, hosts, message] of invalid) {
        it(`refuses ${title}`, () => rejects(dev({ services: [{ ...shop, hosts }] }), message));
    }

    it("refuses more than 50 names", () => {
        const hosts = Array.from({ length: 51 }, (_, i) => `h${i}.example.com`);
        assert.throws(() => parse([{ ...shop, hosts }]), /services\[0\]\.hosts: .* is not allowed; expected at most 50 host names$/);
    });

    it("refuses a name twice in one service, naming both keys", () =>
        rejects(
            dev({ services: [{ ...shop, hosts: ["a.example.com", "b.example.com", "A.example.com"] }] }),
            `${P}:services[0].hosts[2]: "a.example.com" is not allowed; expected each host name once (also at hosts[0])`,
        ));

    it("refuses a name two services declare, naming both keys", () =>
        rejects(
            dev({
                services: [
                    { ...shop, hosts: ["shop.example.com"] },
                    { ...api, hosts: ["api.example.com", "shop.example.com"] },
                ],
            }),
            `${P}:services[1].hosts[1]: "shop.example.com" is not allowed; expected a host name no other service declares (also at ${P}:services[0].hosts[0]): a host name routes to one service or version`,
        ));
});

describe("host routes: the certificate's names", () => {
    const services = [{ hosts: ["shop.example.com", "www.example.com"] }, { hosts: [] }, { hosts: ["api.example.com"] }];

    it("certificateHosts: the names listed, else every service's hosts (self-signed: after localhost); none for provided or none", () => {
        assert.deepEqual(certificateHosts("acme", ["app.example.com"], services), ["app.example.com"]);
        assert.deepEqual(certificateHosts("acme", undefined, services), ["shop.example.com", "www.example.com", "api.example.com"]);
        assert.deepEqual(certificateHosts("self-signed", undefined, services), ["localhost", "shop.example.com", "www.example.com", "api.example.com"]);
        assert.deepEqual(certificateHosts("self-signed", undefined, []), ["localhost"]);
        assert.deepEqual(certificateHosts("self-signed", ["localhost"], services), ["localhost"]);
        assert.deepEqual(certificateHosts("provided", undefined, services), []);
        assert.deepEqual(certificateHosts("none", undefined, services), []);
    });

    const acme = (services: unknown[]) => dev({ services, gateway: { httpPort: 80, tls: { source: "acme", acme: { email: "ops@example.com" } } } });

    it("acme without gateway.tls.hosts covers the services' hosts", () => {
        const s = parseSettings(
            acme([
                { ...shop, hosts: ["shop.example.com"] },
                { ...api, hosts: ["api.example.com"] },
            ]),
            "dev",
        );
        assert.deepEqual(s.gateway.tls.hosts, ["shop.example.com", "api.example.com"]);
    });

    it("acme without gateway.tls.hosts and more than 100 service hosts is refused", () => {
        const services = [0, 1, 2].map((n) => ({ ...shop, name: `s${n}`, hosts: Array.from({ length: 40 }, (_, i) => `h${i}.s${n}.example.com`) }));
        rejects(
            acme(services),
            `${P}:gateway.tls.hosts: missing is not allowed; expected the DNS names the certificate covers (at most 100): the services declare 120 host names, more than one certificate covers; list the ones it should`,
        );
    });
});

describe("host routes: the KV key the program writes", () => {
    it("gatewayKeys: services/<consul name>/hosts, the names separated by single spaces, only where declared", () => {
        const s = parseSettings(
            dev({
                services: [
                    { ...shop, hosts: ["shop.example.com", "www.example.com"] },
                    { ...api, hosts: ["api.example.com"] },
                    { ...shop, name: "plain" },
                ],
            }),
            "dev",
        );
        const keys = gatewayKeys(s.haproxy, s.services, { backends: "10.0.0.0/8", nodes: "10.0.0.1/32" }, false).filter((k) => k.path.endsWith("/hosts"));
        assert.deepEqual(keys, [
            { path: "service/haproxy/services/shop/hosts", value: "shop.example.com www.example.com", delete: true },
            { path: "service/haproxy/services/api-v2/hosts", value: "api.example.com", delete: true },
        ]);
        assert.ok(
            keys.every((k) => isHostList(k.value)),
            "every value the stack writes is one the gateway accepts",
        );
    });
});

describe("host routes: the program under Pulumi's mocks", () => {
    let p: Program;
    before(async () => {
        const tls = JSON.parse(stackConfig("dev")["service-discovery:gateway"]!) as { tls: Record<string, unknown> };
        delete tls.tls.hosts;
        p = await evaluate(
            devWith({
                gateway: tls,
                services: [
                    { ...shop, hosts: ["shop.example.com"] },
                    { ...api, hosts: ["api.example.com"] },
                ],
            }),
        );
        assert.equal(p.error, null, String(p.error));
    });

    it("writes each service's hosts to its managed KV key", () => {
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string; delete: boolean }[];
        assert.deepEqual(
            keys.filter((k) => k.path.endsWith("/hosts")),
            [
                { path: "service/haproxy/services/shop/hosts", value: "shop.example.com", delete: true },
                { path: "service/haproxy/services/api-v2/hosts", value: "api.example.com", delete: true },
            ],
        );
    });

    it("the self-signed certificate names localhost and the services' hosts when gateway.tls.hosts lists none", () => {
        assert.deepEqual(p.one("tls:index/certRequest:CertRequest", "gateway-tls-csr").inputs.dnsNames, ["localhost", "shop.example.com", "api.example.com"]);
        assert.equal(envOf(p.container("dev-gateway")).env.GATEWAY_TLS_SOURCE, "self-signed");
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
const INSTANCES = [inst("shop", 5), inst("api-v2", 6), inst("pg", 7, ["tcp"])];
function model(kv: Record<string, string>, previous?: Model, services = INSTANCES, settings: Partial<StackSettings> = {}): Model {
    return buildModel({
        kv: new Map(Object.entries(kv).map(([k, v]) => [`service/haproxy/${k}`, v])),
        nodes: [{ node: "node1", address: "10.1.0.1", services }],
        settings: { ...SETTINGS, ...settings },
        ...(previous ? { previous } : {}),
    });
}
const HOSTS = { "services/shop/hosts": "shop.example.com www.example.com", "services/api-v2/hosts": "api.example.com" };

describe("host routes: the gateway's model of untrusted KV", () => {
    it("routes each declared name to its service's or version's backend, by name", () => {
        const m = model(HOSTS);
        assert.deepEqual(m.hostRoutes, [
            { host: "api.example.com", backend: "svc_api-v2" },
            { host: "shop.example.com", backend: "svc_shop" },
            { host: "www.example.com", backend: "svc_shop" },
        ]);
        assert.deepEqual(m.notes, []);
        assert.deepEqual(
            m.routes.map((r) => r.path),
            ["api/v2", "shop"],
            "the path routes stay",
        );
    });

    const hostile: [string, string][] = [
        ["a newline", "shop.example.com\nuse_backend evil"],
        ["two spaces", "shop.example.com  www.example.com"],
        ["upper case", "Shop.example.com"],
        ["a wildcard", "*.example.com"],
        ["a quote", 'shop.example.com"'],
        ["an IP address", "10.0.0.1"],
        ["a leading space", " shop.example.com"],
        ["an overlong label", `${"a".repeat(64)}.example.com`],
        ["too many names", Array.from({ length: 51 }, (_, i) => `h${i}.example.com`).join(" ")],
    ];
    for (const [title, value] of hostile) {
        it(`rejects a value with ${title} whole, by hash; the other services keep their host routes`, () => {
            const m = model({ ...HOSTS, "services/shop/hosts": value });
            assert.deepEqual(m.hostRoutes, [{ host: "api.example.com", backend: "svc_api-v2" }]);
            assert.deepEqual(m.notes, [
                `rejected: KV service/haproxy/services/shop/hosts: value (sha256 ${sha8(value)}) is not lowercase DNS names separated by single spaces; shop has no host routes`,
            ]);
            assert.ok(!renderConfig(m).includes(value) && !hostsMapText(m).includes(value.split("\n")[1] ?? "\u0000"));
        });
    }

    it("a rejected value keeps the service's last good one (quarantine)", () => {
        const good = model(HOSTS);
        const m = model({ ...HOSTS, "services/shop/hosts": "evil_host.example.com" }, good);
        assert.deepEqual(
            m.hostRoutes.map((r) => r.host),
            ["api.example.com", "shop.example.com", "www.example.com"],
        );
        assert.deepEqual(m.quarantined, ["shop"]);
        assert.match(
            m.notes[0]!,
            /shop\/hosts: value \(sha256 [0-9a-f]{8}\) is not lowercase DNS names separated by single spaces; keeping its last good value$/,
        );
    });

    it("a name two services claim stays with the first by name; the second's is rejected", () => {
        const m = model({ ...HOSTS, "services/api-v2/hosts": "api.example.com shop.example.com" });
        assert.deepEqual(
            m.hostRoutes.find((r) => r.host === "shop.example.com"),
            { host: "shop.example.com", backend: "svc_api-v2" },
        );
        assert.deepEqual(m.notes, ["rejected: KV service/haproxy/services/shop/hosts: shop.example.com is already a host of api-v2; ignored for shop"]);
    });

    it("a TCP service's hosts are rejected; a service without a routed instance has no host route", () => {
        const m = model({ ...HOSTS, "services/pg/listen": "15432", "services/pg/hosts": "db.example.com", "services/gone/hosts": "gone.example.com" });
        assert.deepEqual(
            m.hostRoutes.map((r) => r.host),
            ["api.example.com", "shop.example.com", "www.example.com"],
        );
        assert.deepEqual(m.notes, [
            "rejected: KV service/haproxy/services/pg/hosts: pg is a TCP service (KV service/haproxy/services/pg/listen); a TCP service is not routed by host name; ignored",
        ]);
    });
});

describe("host routes: render", () => {
    const m = model(HOSTS, undefined, INSTANCES, { tlsSource: "self-signed", httpsPort: "8443" });
    const cfg = renderConfig(m);
    const frontend = (name: string): string =>
        cfg.slice(cfg.indexOf(`frontend ${name}\n`), cfg.indexOf("default_backend no_route", cfg.indexOf(`frontend ${name}\n`)));

    it("every public HTTP listener looks the Host header up (port stripped, lowercased) in the map, before any path route", () => {
        for (const name of ["http", "https"]) {
            const f = frontend(name);
            assert.ok(f.includes('    http-request set-var(txn.host_backend) req.hdr(host),field(1,:),lower,map("${GATEWAY_RUN_DIR}/hosts.map")\n'), f);
            const hostRule = f.indexOf("    use_backend %[var(txn.host_backend)] if { var(txn.host_backend) -m found }\n");
            assert.ok(hostRule > 0 && hostRule < f.indexOf("use_backend svc_"), "the host route is matched first");
        }
    });

    it("a host-routed request keeps its path: the backend strips its prefix only for path-routed ones", () => {
        const shopBackend = cfg.slice(cfg.indexOf("backend svc_shop\n"), cfg.indexOf("\n\n", cfg.indexOf("backend svc_shop\n")));
        assert.match(shopBackend, /http-request replace-path \^\/shop\/\?\(\.\*\)\$ \/\\1 unless \{ var\(txn\.host_backend\) -m found \}/);
        assert.match(shopBackend, /http-request set-header X-Forwarded-Prefix \/shop unless \{ var\(txn\.host_backend\) -m found \}/);
    });

    it("the names are in the map file, not in haproxy.cfg", () => {
        assert.equal(hostsMapText(m), "api.example.com svc_api-v2\nshop.example.com svc_shop\nwww.example.com svc_shop\n");
        assert.equal(HOSTS_MAP, "hosts.map");
        assert.ok(!cfg.includes("example.com"));
    });
});

describe("host routes: diff and route table", () => {
    it("adding, moving or removing a name: runtime map operations, no reload", () => {
        const before = model(HOSTS);
        const after = model({ "services/shop/hosts": "shop.example.com", "services/api-v2/hosts": "api.example.com www.example.com" });
        assert.deepEqual(planChange(before, after), { kind: "runtime", ops: [], hosts: [{ op: "host", host: "www.example.com", backend: "svc_api-v2" }] });
        assert.deepEqual(hostChanges(before, model({})), [
            { op: "unhost", host: "api.example.com" },
            { op: "unhost", host: "shop.example.com" },
            { op: "unhost", host: "www.example.com" },
        ]);
        assert.deepEqual(planChange(before, model(HOSTS)), { kind: "none" });
    });

    it("the route table lists host routes with their service and replicas; the plan shows them first", () => {
        const t = routeTable(model(HOSTS));
        assert.deepEqual(t.hosts, [
            { host: "api.example.com", service: "api-v2", servers: 1, drained: 0 },
            { host: "shop.example.com", service: "shop", servers: 1, drained: 0 },
            { host: "www.example.com", service: "shop", servers: 1, drained: 0 },
        ]);
        const config = {
            ...stackConfig("dev"),
            "service-discovery:services": [
                { ...shop, hosts: ["shop.example.com"] },
                { ...api, replicas: 2, hosts: ["api.example.com"] },
            ],
        } as Record<string, unknown>;
        const planned = stackTable(config, "dev");
        assert.ok("table" in planned, "error" in planned ? planned.error.message : "");
        assert.deepEqual(planned.table.hosts, [
            { host: "api.example.com", service: "api-v2", servers: 2, drained: 0 },
            { host: "shop.example.com", service: "shop", servers: 1, drained: 0 },
        ]);
        const out = text({ stack: "dev", table: planned.table, changes: [], findings: [] });
        assert.match(
            out,
            /Routes \(in matching order\):\n {2}host api\.example\.com +api-v2 \(2 replicas\), every path\n {2}host shop\.example\.com +shop \(1 replica\), every path\n {2}\/api\/v2\//,
        );
        assert.deepEqual(diffTables({ ...planned.table, hosts: [] }, planned.table).slice(0, 1), [
            { kind: "added", route: "host api.example.com", to: "api-v2 (2 replicas), every path" },
        ]);
    });
});
