// The gateway's decisions (components/images/gateway/controller/model.ts), table-driven, with the
// hostile inputs the control-plane tests register against the real gateway; and the plans
// (diff.ts) that turn two models into runtime API operations or a reload.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    buildModel,
    sha8,
    type Backend,
    type CatalogNode,
    type CatalogService,
    type Model,
    type StackSettings,
} from "../../components/images/gateway/controller/model";
import { addCommand, planChange, type Plan } from "../../components/images/gateway/controller/diff";
import { renderConfig } from "../../components/images/gateway/controller/render";
import { FORWARDING_HEADERS } from "../../components/images/gateway/controller/rules";
import { SETTINGS } from "./gateway-support";

let ids = 0;
function inst(service: string, address: string, port: number, tags: string[] = ["rest"], id?: string): CatalogService {
    return { id: id ?? `node1:${service}-${++ids}:${port}`, service, address, port, tags };
}
function model(services: CatalogService[], kv: Record<string, string> = {}, settings: Partial<StackSettings> = {}, previous?: Model): Model {
    const nodes: CatalogNode[] = [{ node: "node1", address: "10.1.0.1", services }];
    const map = new Map(Object.entries(kv).map(([k, v]) => [`service/haproxy/${k}`, v]));
    return buildModel({ kv: map, nodes, settings: { ...SETTINGS, ...settings }, ...(previous ? { previous } : {}) });
}
const backend = (m: Model, name: string): Backend => {
    const b = m.backends.find((x) => x.name === name);
    assert.ok(b, `backend ${name} in ${m.backends.map((x) => x.name).join(", ")}`);
    return b;
};
const checked = (b: Backend): string[] => b.servers.filter((s) => s.check).map((s) => s.name);

describe("routes", () => {
    it("serves <name>-v<N> at /<name>/v<N> before unversioned names, only instances tagged rest", () => {
        const m = model([inst("hello", "10.1.0.5", 80), inst("hello-v1", "10.1.0.6", 80), inst("untagged", "10.1.0.7", 80, [])]);
        assert.deepEqual(
            m.routes.map((r) => `${r.path}->${r.backend}`),
            ["hello/v1->svc_hello-v1", "hello->svc_hello"],
        );
        assert.equal(backend(m, "svc_hello-v1").path, "hello/v1");
    });

    for (const name of ["Hello", "hello_world", "a".repeat(64), "hello world", "héllo", "-x", "x-"]) {
        it(`skips a service named ${JSON.stringify(name)} (not a DNS label), naming it by hash`, () => {
            const m = model([inst(name, "10.1.0.5", 80), inst("safe", "10.1.0.6", 80)]);
            assert.deepEqual(
                m.backends.map((b) => b.name),
                ["svc_safe"],
            );
            assert.ok(m.notes.includes(`skipped: service (name sha256 ${sha8(name)}): the name is not a DNS label`), m.notes.join("\n"));
        });
    }

    it("caps routed services, keeping those the stack declares first; routes stay in name order", () => {
        const m = model(
            ["a", "b", "c", "z"].map((n, i) => inst(n, `10.1.0.${10 + i}`, 80)),
            { "limits/services": "2", "services/z/check": "/" },
        );
        assert.deepEqual(
            m.routes.map((r) => r.path),
            ["a", "z"],
        );
        assert.ok(m.notes.includes("skipped: service b: over the cap of 2 routed services (KV service/haproxy/limits/services)"));
    });

    it("caps instances per service in node/ID order and writes a server registered twice once", () => {
        const m = model(
            [
                inst("s", "10.1.0.5", 80, ["rest"], "a"),
                inst("s", "10.1.0.5", 80, ["rest"], "b"),
                inst("s", "10.1.0.6", 80, ["rest"], "c"),
                inst("s", "10.1.0.7", 80, ["rest"], "d"),
            ],
            { "limits/instances": "2" },
        );
        assert.deepEqual(checked(backend(m, "svc_s")), ["10.1.0.5:80", "10.1.0.6:80"]);
        assert.ok(m.notes.includes("skipped: s instance 10.1.0.7:80: over the cap of 2 instances per service (KV service/haproxy/limits/instances)"));
    });

    it("gives every instance an unchecked backup twin (panic routing)", () => {
        const b = backend(model([inst("s", "10.1.0.5", 80)]), "svc_s");
        assert.deepEqual(
            b.servers.map((s) => [s.name, s.check, s.backup]),
            [
                ["10.1.0.5:80", true, false],
                ["panic-10.1.0.5:80", false, true],
            ],
        );
    });
});

describe("ownership: a declared service's route belongs to its replicas", () => {
    // Registrator's IDs: <node>:<container>:<port>; the stack's replicas are <stack>-<consul name>-<i>-<generation>.
    const REPLICAS = { "services/billing-v1/replicas": "dev-billing-v1-1 dev-billing-v1-2", "services/billing-v1/check": "/health" };
    const real1 = inst("billing-v1", "10.1.0.5", 8080, ["rest"], "node1:dev-billing-v1-1-0123abcd:8080");
    const real2 = inst("billing-v1", "10.1.0.6", 8080, ["rest"], "node1:dev-billing-v1-2-89abcdef:8080");
    const routedIn = (m: Model, svc: string): string[] => (m.backends.find((b) => b.name === `svc_${svc}`) ? checked(backend(m, `svc_${svc}`)) : []);

    it("routes an instance whose container is a declared replica, with or without its generation suffix", () => {
        const bare = inst("billing-v1", "10.1.0.7", 8080, ["rest"], "node2:dev-billing-v1-1:8080");
        const m = model([real1, real2, bare], REPLICAS);
        assert.deepEqual(routedIn(m, "billing-v1"), ["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"]);
        assert.equal(m.foreignInstances, 0);
        assert.deepEqual(
            m.notes.filter((n) => n.includes("billing-v1 instance")),
            [],
        );
    });

    it("rejects an instance of a declared service from any other container: noted, counted, never routed; the replicas keep serving", () => {
        const foreign = [
            // An image with ENV SERVICE_8080_NAME=billing-v1, in a container of another service.
            inst("billing-v1", "10.1.0.20", 8080, ["rest", "check=/health"], "node1:dev-hello-v1-1-0123abcd:8080"),
            // Look-alike names: another replica number, a prefix, a suffix that is not a generation.
            inst("billing-v1", "10.1.0.21", 8080, ["rest"], "node1:dev-billing-v1-10:8080"),
            inst("billing-v1", "10.1.0.22", 8080, ["rest"], "node1:xdev-billing-v1-1:8080"),
            inst("billing-v1", "10.1.0.23", 8080, ["rest"], "node1:dev-billing-v1-1-evil:8080"),
            // The replica's name in another field of the ID.
            inst("billing-v1", "10.1.0.24", 8080, ["rest"], "dev-billing-v1-1:evil:8080"),
        ];
        const m = model([real1, ...foreign, real2], REPLICAS);
        assert.deepEqual(routedIn(m, "billing-v1"), ["10.1.0.5:8080", "10.1.0.6:8080"]);
        assert.equal(m.foreignInstances, foreign.length);
        const key = "KV service/haproxy/services/billing-v1/replicas";
        for (const [addr, container] of [
            ["10.1.0.20:8080", "dev-hello-v1-1-0123abcd"],
            ["10.1.0.21:8080", "dev-billing-v1-10"],
            ["10.1.0.22:8080", "xdev-billing-v1-1"],
            ["10.1.0.23:8080", "dev-billing-v1-1-evil"],
            ["10.1.0.24:8080", "evil"],
        ]) {
            assert.ok(
                m.notes.includes(`rejected: billing-v1 instance ${addr}: container ${container} is not a declared replica of billing-v1 (${key}); not routed`),
                m.notes.join("\n"),
            );
        }
        // Its check= tag is not the service's either (the KV check key is).
        assert.equal(backend(m, "svc_billing-v1").checkPath, "/health");
    });

    it("rejects an ID without Registrator's container field, or a container name out of Docker's pattern, naming it by hash", () => {
        const ids = ["billing-v1", "dev-billing-v1-1:8080", "node1:dev billing:8080", "node1:" + "a".repeat(129) + ":8080"];
        const m = model(
            ids.map((id, i) => inst("billing-v1", `10.1.0.${30 + i}`, 8080, ["rest"], id)),
            REPLICAS,
        );
        assert.deepEqual(routedIn(m, "billing-v1"), []);
        assert.equal(m.foreignInstances, ids.length);
        ids.forEach((id, i) =>
            assert.ok(
                m.notes.some((n) =>
                    n.startsWith(`rejected: billing-v1 instance 10.1.0.${30 + i}:8080: its service ID (sha256 ${sha8(id)}) names no container`),
                ),
                m.notes.join("\n"),
            ),
        );
    });

    it("applies to tcp services and to each version of a split", () => {
        const kv = {
            "services/pg/listen": "15432",
            "services/pg/replicas": "dev-pg-1",
            "services/api-v1/replicas": "dev-api-v1-1",
            "services/api-v1/weight": "50",
            "services/api-v2/replicas": "dev-api-v2-1",
            "services/api-v2/weight": "50",
        };
        const m = model(
            [
                inst("pg", "10.1.0.5", 5432, ["tcp"], "node1:dev-pg-1-0123abcd:5432"),
                inst("pg", "10.1.0.6", 5432, ["tcp"], "node1:dev-api-v1-1-0123abcd:5432"),
                inst("api-v1", "10.1.0.7", 80, ["rest"], "node1:dev-api-v1-1-0123abcd:80"),
                inst("api-v2", "10.1.0.8", 80, ["rest"], "node1:dev-api-v2-1-0123abcd:80"),
                inst("api-v2", "10.1.0.9", 80, ["rest"], "node1:dev-api-v1-1-0123abcd:81"),
            ],
            kv,
        );
        assert.deepEqual(routedIn(m, "pg"), ["10.1.0.5:5432"]);
        assert.deepEqual(routedIn(m, "api-v2"), ["10.1.0.8:80"]);
        assert.deepEqual(routedIn(m, "api"), ["v1_10.1.0.7:80", "v2_10.1.0.8:80"]);
        assert.equal(m.foreignInstances, 2);
    });

    it("undeclared services (no replicas key): routed when KV routing/undeclared is true or absent, else skipped and noted", () => {
        const services = [real1, inst("adhoc", "10.1.0.40", 80), inst("adhoc-v2", "10.1.0.41", 80)];
        for (const [kv, routed] of [
            [{}, true],
            [{ "routing/undeclared": "true" }, true],
            [{ "routing/undeclared": "false" }, false],
        ] as const) {
            const m = model(services, { ...REPLICAS, ...kv });
            assert.deepEqual(routedIn(m, "billing-v1"), ["10.1.0.5:8080"], JSON.stringify(kv));
            assert.deepEqual(routedIn(m, "adhoc"), routed ? ["10.1.0.40:80"] : [], JSON.stringify(kv));
            assert.deepEqual(
                m.routes.map((r) => r.path),
                routed ? ["adhoc/v2", "billing/v1", "adhoc"] : ["billing/v1"],
            );
            const skipped = m.notes.filter((n) => n.includes("the stack does not declare it"));
            assert.deepEqual(
                skipped,
                routed
                    ? []
                    : ["adhoc-v2", "adhoc"].map(
                          (s) =>
                              `skipped: service ${s}: the stack does not declare it (no KV service/haproxy/services/${s}/replicas) and KV service/haproxy/routing/undeclared is not true`,
                      ),
            );
            assert.equal(m.foreignInstances, 0, "an undeclared service is no foreign claim");
        }
        // Any other value routes no undeclared service, and says so.
        const m = model(services, { ...REPLICAS, "routing/undeclared": "yes" });
        assert.deepEqual(routedIn(m, "adhoc"), []);
        assert.ok(
            m.notes.includes(
                `rejected: KV service/haproxy/routing/undeclared: value (sha256 ${sha8("yes")}) is neither true nor false; routing no undeclared service`,
            ),
        );
    });

    it("a rejected replicas value keeps the last good one, else routes no instance of the service", () => {
        const bad = "dev-billing-v1-1;evil";
        const fresh = model([real1, real2], { ...REPLICAS, "services/billing-v1/replicas": bad });
        assert.deepEqual(routedIn(fresh, "billing-v1"), []);
        assert.ok(
            fresh.notes.includes(
                `rejected: KV service/haproxy/services/billing-v1/replicas: value (sha256 ${sha8(bad)}) is not container names separated by spaces; no instance of billing-v1 is routed`,
            ),
            fresh.notes.join("\n"),
        );
        const good = model([real1, real2], REPLICAS);
        const kept = model([real1, real2], { ...REPLICAS, "services/billing-v1/replicas": bad }, {}, good);
        assert.deepEqual(routedIn(kept, "billing-v1"), ["10.1.0.5:8080", "10.1.0.6:8080"]);
        assert.deepEqual(kept.quarantined, ["billing-v1"]);
    });
});

describe("trust rules: addresses and ports", () => {
    const cases: [string, number, string][] = [
        ["127.0.0.1", 80, "loopback address (127.0.0.0/8)"],
        ["0.0.0.0", 80, "unspecified address (0.0.0.0/8)"],
        ["169.254.169.254", 80, "link-local address (169.254.0.0/16, cloud metadata)"],
        ["224.0.0.1", 80, "multicast or reserved address (224.0.0.0/3)"],
        ["10.2.0.5", 80, "address outside the networks the stack declares (GATEWAY_BACKEND_NETWORKS)"],
        ["10.1.0.99", 80, "an address of the gateway itself (GATEWAY_OWN_ADDRESSES)"],
        ["10.1.0.5", 8500, "port 8500 is Consul's or the Docker API's"],
        ["10.1.0.5", 2375, "port 2375 is Consul's or the Docker API's"],
        ["10.1.0.1", 22, "port 22 of a node is the gateway's, Consul's or SSH (GATEWAY_NODE_PORTS)"],
        ["10.1.0.1", 8080, "port 8080 of a node is the gateway's, Consul's or SSH (GATEWAY_NODE_PORTS)"],
        ["10.1.0.5", 0, "not a TCP port"],
        ["10.1.0.5", 70000, "not a TCP port"],
    ];
    for (const [address, port, why] of cases) {
        it(`skips ${address}:${port}: ${why}; the other instance keeps serving`, () => {
            const m = model([inst("s", address, port), inst("s", "10.1.0.5", 81)]);
            assert.deepEqual(checked(backend(m, "svc_s")), ["10.1.0.5:81"]);
            assert.ok(m.notes.includes(`skipped: s instance ${address}:${port}: ${why}`), m.notes.join("\n"));
        });
    }
    it("a node's own port 22 is refused but 22 in a container is fine", () => {
        assert.deepEqual(checked(backend(model([inst("s", "10.1.0.5", 22)]), "svc_s")), ["10.1.0.5:22"]);
    });
    for (const address of ["10.1.0.256", "example.com", "10.1.0.5\n    bind :1", "010.1.0.5", ""]) {
        it(`skips an address that is not IPv4 (${JSON.stringify(address)}), naming it by hash`, () => {
            const m = model([{ ...inst("s", address, 80), address }, inst("s", "10.1.0.5", 81)]);
            const expected = address === "" ? [] : [`skipped: s instance at an address (sha256 ${sha8(address)}) that is not IPv4`];
            // An empty address is the node's (10.1.0.1, a node address: port 80 is fine there).
            for (const n of expected) assert.ok(m.notes.includes(n), m.notes.join("\n"));
            assert.ok(!renderConfig(m).includes("bind :1"));
        });
    }
    it("rejects network entries that are not CIDR blocks and routes nothing without a backend network", () => {
        const m = model([inst("s", "10.1.0.5", 80)], {}, { backendNetworks: "10.1.0.0/33 bad" });
        assert.deepEqual(checked(backend(m, "svc_s")), []);
        assert.ok(
            m.notes.includes(`rejected: GATEWAY_BACKEND_NETWORKS entry (sha256 ${sha8("10.1.0.0/33")}) is not an IPv4 CIDR block such as 10.0.0.0/16; ignored`),
        );
        assert.ok(m.notes.includes("rejected: GATEWAY_BACKEND_NETWORKS declares no network: no instance is routed"));
    });
    it("the KV key networks/backends wins over the environment", () => {
        const m = model([inst("s", "10.9.0.5", 80)], { "networks/backends": "10.9.0.0/24" });
        assert.deepEqual(checked(backend(m, "svc_s")), ["10.9.0.5:80"]);
    });
});

describe("health-check path", () => {
    it("the stack's KV key wins over any check= tag", () => {
        const b = backend(model([inst("s", "10.1.0.5", 80, ["rest", "check=/evil"])], { "services/s/check": "/health" }), "svc_s");
        assert.equal(b.checkPath, "/health");
    });
    it("a check= tag counts only when every instance carries the same valid one", () => {
        assert.equal(
            backend(model([inst("s", "10.1.0.5", 80, ["rest", "check=/h"]), inst("s", "10.1.0.6", 80, ["rest", "check=/h"])]), "svc_s").checkPath,
            "/h",
        );
        const m = model([inst("s", "10.1.0.5", 80, ["rest", "check=/h"]), inst("s", "10.1.0.6", 80, ["rest"])]);
        assert.equal(backend(m, "svc_s").checkPath, "/");
        assert.ok(
            m.notes.includes(
                "rejected: check= tags of s: its instances do not all carry the same valid one; checking / (declare its healthCheckPath in the stack)",
            ),
        );
    });
    it("an invalid KV check path is rejected by hash", () => {
        const v = "/ok\n    stats uri /pwn";
        const m = model([inst("s", "10.1.0.5", 80)], { "services/s/check": v });
        assert.equal(backend(m, "svc_s").checkPath, "/");
        assert.ok(m.notes.some((n) => n.startsWith(`rejected: KV service/haproxy/services/s/check: value (sha256 ${sha8(v)}) is not a path`)));
        assert.ok(!renderConfig(m).includes("pwn"));
    });
});

describe("settings", () => {
    const hostile = ["100\n    stats uri /x", "5s # x", "5s;x", "0", "0s", "25d", "999999h", "-1", "1e3", "5S", " 5s"];
    for (const [key, re, def] of [
        ["timeouts/connect", /timeout connect (\S+)/, "5s"],
        ["timeouts/client", /timeout client (\S+)/, "30s"],
        ["timeouts/server", /timeout server (\S+)/, "30s"],
    ] as const) {
        it(`${key}: hostile values run the default ${def}`, () => {
            for (const v of hostile) {
                const m = model([], { [key]: v });
                const cfg = renderConfig(m);
                assert.equal(re.exec(cfg.slice(cfg.indexOf("\ndefaults\n")))?.[1], def, JSON.stringify(v));
                assert.ok(
                    m.notes.includes(`rejected: KV service/haproxy/${key}: value (sha256 ${sha8(v)}) is not a duration HAProxy runs with; running ${def}`),
                );
                assert.ok(!cfg.includes("stats uri /x"));
            }
            assert.equal(model([], { [key]: "7s" }).timeouts[key.split("/")[1] as "connect"], "7s");
        });
    }
    it("maxconn: within the file-descriptor budget, else the default", () => {
        assert.equal(model([], { maxconn: "2345" }).maxconn, 2345);
        const m = model([], { maxconn: "5000" }, { fdLimit: "20000" });
        // 20000 - (2024 + 1000) = 16976 / 2 = 8488: 5000 fits.
        assert.equal(m.maxconn, 5000);
        const tight = model([], { maxconn: "9000" }, { fdLimit: "20000" });
        assert.equal(tight.maxconn, 4096);
        assert.ok(
            tight.notes.includes(
                "rejected: KV service/haproxy/maxconn: 9000 is above what the file descriptor limit of this gateway (20000) leaves beside up to 1000 instances; running 4096",
            ),
        );
        const tiny = model([], {}, { fdLimit: "4000" });
        assert.equal(tiny.maxconn, 488);
        assert.ok(tiny.notes.some((n) => n.startsWith("rejected: maxconn 4096 is above what the file descriptor limit of this gateway (4000)")));
    });
    it("GATEWAY_MAXCONN_LIMIT caps maxconn further", () => {
        assert.equal(model([], {}, { maxconnLimit: "300" }).maxconn, 300);
    });
    it("limits: hostile values run the defaults", () => {
        const m = model([], { "limits/services": "0", "limits/instances": "x" });
        assert.ok(
            m.notes.includes(`rejected: KV service/haproxy/limits/services: value (sha256 ${sha8("0")}) is not an integer from 1 to 100000; running 5000`),
        );
        assert.ok(
            m.notes.includes(`rejected: KV service/haproxy/limits/instances: value (sha256 ${sha8("x")}) is not an integer from 1 to 10000; running 100`),
        );
    });
    it("unknown keys under services/ and routes/ are rejected by hash", () => {
        const m = model([], { "services/a/evil": "1", "routes/a/other": "1" });
        assert.ok(
            m.notes.includes(
                `rejected: KV key under service/haproxy/services/ (sha256 ${sha8("a/evil")}) is not <service>/check, /listen, /weight, /maintenance, /maxconn, /rate, /idle-timeout, /replicas, /hosts or /sni; ignored`,
            ),
        );
        assert.ok(m.notes.includes(`rejected: KV key under service/haproxy/routes/ (sha256 ${sha8("a/other")}) is not <name>/sticky; ignored`));
    });
});

describe("traffic control", () => {
    const v1 = [inst("hello-v1", "10.1.0.5", 80), inst("hello-v1", "10.1.0.6", 80)];
    const v2 = [inst("hello-v2", "10.1.0.7", 80)];

    it("splits /<name>/ by weight whatever the number of instances (90/10 over 2 + 1: 256/256/56)", () => {
        const m = model([...v1, ...v2], { "services/hello-v1/weight": "90", "services/hello-v2/weight": "10" });
        const split = backend(m, "svc_hello");
        assert.equal(split.kind, "split");
        assert.deepEqual(
            split.servers.filter((s) => s.check).map((s) => `${s.name}=${s.weight}`),
            ["v1_10.1.0.5:80=256", "v1_10.1.0.6:80=256", "v2_10.1.0.7:80=56"],
        );
        assert.deepEqual(
            m.routes.map((r) => r.path),
            ["hello/v1", "hello/v2", "hello"],
        );
    });
    it("weight 0 sends nothing; a weight on an unversioned service or a hostile one is rejected", () => {
        const m = model([...v1, ...v2, inst("plain", "10.1.0.8", 80)], {
            "services/hello-v1/weight": "0",
            "services/hello-v2/weight": "257",
            "services/plain/weight": "5",
        });
        assert.deepEqual(
            backend(m, "svc_hello")
                .servers.filter((s) => s.check)
                .map((s) => s.weight),
            [0, 0],
        );
        assert.ok(m.notes.includes("rejected: KV service/haproxy/services/plain/weight: only a versioned service (<name>-v<N>) has a weight; ignored"));
        assert.ok(
            m.notes.some((n) =>
                n.startsWith(`rejected: KV service/haproxy/services/hello-v2/weight: value (sha256 ${sha8("257")}) is not an integer from 0 to 256`),
            ),
        );
    });
    it("an unversioned service of a split name is not routed", () => {
        const m = model([...v1, inst("hello", "10.1.0.9", 80)], { "services/hello-v1/weight": "1" });
        assert.equal(backend(m, "svc_hello").kind, "split");
        assert.ok(
            m.notes.includes("skipped: service hello: /hello/ is split between its versions by their weights (KV service/haproxy/services/hello-v<N>/weight)"),
        );
    });
    it("sticky: one rule per routed version, Set-Cookie added (the application's own cookies kept)", () => {
        const m = model([...v1, ...v2], { "services/hello-v1/weight": "50", "services/hello-v2/weight": "50", "routes/hello/sticky": "true" });
        assert.deepEqual(m.stickyRules, [
            {
                base: "hello",
                versions: [
                    { version: "v1", backend: "svc_hello-v1" },
                    { version: "v2", backend: "svc_hello-v2" },
                ],
            },
        ]);
        const cfg = renderConfig(m);
        assert.match(cfg, /http-response add-header Set-Cookie "sd-hello=/);
        assert.doesNotMatch(cfg, /set-header Set-Cookie/);
    });
    it("maintenance: all, or by container name with or without its generation suffix; other ID fields never match", () => {
        const services = [
            inst("s", "10.1.0.5", 80, ["rest"], "node1:app-s-1-0123abcd:80"),
            inst("s", "10.1.0.6", 80, ["rest"], "node1:app-s-2:80"),
            inst("s", "10.1.0.7", 80, ["rest"], "app-s-1:80"),
            inst("s", "10.1.0.8", 80, ["rest"], "app-s-1:x:80"),
        ];
        const weights = (m: Model): string[] =>
            checked(backend(m, "svc_s"))
                .map((n) => `${n}=${backend(m, "svc_s").servers.find((s) => s.name === n)!.weight ?? 1}`)
                .sort();
        assert.deepEqual(weights(model(services, { "services/s/maintenance": "app-s-1" })), [
            "10.1.0.5:80=0",
            "10.1.0.6:80=1",
            "10.1.0.7:80=1",
            "10.1.0.8:80=1",
        ]);
        assert.deepEqual(weights(model(services, { "services/s/maintenance": "all" })), ["10.1.0.5:80=0", "10.1.0.6:80=0", "10.1.0.7:80=0", "10.1.0.8:80=0"]);
        const bad = "all;x#";
        const m = model(services, { "services/s/maintenance": bad });
        assert.deepEqual(weights(m), ["10.1.0.5:80=1", "10.1.0.6:80=1", "10.1.0.7:80=1", "10.1.0.8:80=1"]);
        assert.ok(
            m.notes.some((n) =>
                n.startsWith(`rejected: KV service/haproxy/services/s/maintenance: value (sha256 ${sha8(bad)}) is neither all nor container names`),
            ),
        );
    });
    it("listen: a TCP service with its own listener; refused ports and conflicts by name order", () => {
        const services = [inst("pg", "10.1.0.5", 5432, ["tcp"]), inst("pg2", "10.1.0.6", 5432, ["tcp"]), inst("x", "10.1.0.7", 1, ["tcp"])];
        const m = model(services, { "services/pg/listen": "15432", "services/pg2/listen": "15432", "services/x/listen": "8500", "services/y/listen": "8080" });
        assert.deepEqual(m.tcpListeners, [{ name: "pg", port: 15432, backend: "svc_pg" }]);
        assert.equal(backend(m, "svc_pg").kind, "tcp");
        assert.equal(m.hardStopAfter, "1h");
        assert.ok(m.notes.some((n) => n.includes("services/pg2/listen") && n.includes("is already the listener of pg")));
        assert.ok(m.notes.some((n) => n.includes("services/x/listen") && n.includes("is Consul's or the Docker API's")));
        assert.ok(m.notes.some((n) => n.includes("services/y/listen") && n.includes("is a port of the gateway's HTTP or stats listener")));
        // An instance without the tcp tag, or tagged rest, is not part of a TCP service.
        assert.deepEqual(checked(backend(model([inst("pg", "10.1.0.5", 5432, ["rest"])], { "services/pg/listen": "15432" }), "svc_pg")), []);
    });
});

describe("quarantine: a rejected value leaves its service on its last good one", () => {
    it("a hostile weight keeps the version's last good weight; other services unaffected", () => {
        const services = [inst("hello-v1", "10.1.0.5", 80), inst("hello-v2", "10.1.0.6", 80), inst("other", "10.1.0.7", 80)];
        const good = model(services, { "services/hello-v1/weight": "30", "services/hello-v2/weight": "70" });
        const bad = "70\n    bind :1";
        const next = model(services, { "services/hello-v1/weight": "30", "services/hello-v2/weight": bad }, {}, good);
        assert.deepEqual(next.quarantined, ["hello-v2"]);
        assert.deepEqual(
            backend(next, "svc_hello").servers.map((s) => s.weight),
            backend(good, "svc_hello").servers.map((s) => s.weight),
        );
        assert.ok(next.notes.some((n) => n.includes(`value (sha256 ${sha8(bad)}) is not an integer from 0 to 256; keeping its last good value (70)`)));
        // Without a previous model, the version leaves the split.
        const cold = model(services, { "services/hello-v1/weight": "30", "services/hello-v2/weight": bad });
        assert.deepEqual(cold.quarantined, []);
        assert.equal(backend(cold, "svc_hello").servers.filter((s) => s.name.includes("v2_")).length, 0);
        // The quarantine holds over several bad values in a row, and ends with a good one.
        const again = model(services, { "services/hello-v1/weight": "30", "services/hello-v2/weight": "x" }, {}, next);
        assert.deepEqual(again.quarantined, ["hello-v2"]);
        const healed = model(services, { "services/hello-v1/weight": "30", "services/hello-v2/weight": "10" }, {}, again);
        assert.deepEqual(healed.quarantined, []);
    });
});

describe("render", () => {
    it("writes every server with its settings and nothing from Consul unchecked", () => {
        const m = model([inst("s", "10.1.0.5", 80, ["rest", "check=/h"])], { "services/s/maintenance": "all" });
        const cfg = renderConfig(m);
        assert.match(
            cfg,
            /^ {4}server 10\.1\.0\.5:80 10\.1\.0\.5:80 check inter 2s fastinter 500ms downinter 2s rise 1 fall 2 weight 0 maxconn 1000 maxqueue 256$/m,
        );
        assert.match(cfg, /^ {4}server panic-10\.1\.0\.5:80 10\.1\.0\.5:80 backup weight 0 maxconn 1000 maxqueue 256$/m);
        assert.match(cfg, /backend svc_s\n(.*\n)*? {4}http-check send meth GET uri \/h\n/);
        assert.match(cfg, /use_backend svc_s if \{ path \/s \} \|\| \{ path_beg \/s\/ \}/);
    });
    it("keeps forwarding headers only from trusted proxies", () => {
        assert.match(renderConfig(model([], {}, { trustedProxies: "10.0.0.0/8" })), /acl trusted_proxy src 10\.0\.0\.0\/8/);
        assert.match(renderConfig(model([])), /^ {4}http-request del-header X-Forwarded-For$/m);
    });
});

describe("diff: runtime API or reload", () => {
    const a = inst("s", "10.1.0.5", 80, ["rest"], "node1:s-a:80");
    const b = inst("s", "10.1.0.6", 80, ["rest"], "node1:s-b:80");
    const ops = (p: Plan): string[] =>
        p.kind === "runtime"
            ? p.ops.map((o) =>
                  o.op === "add"
                      ? addCommand(o)
                      : o.op === "del"
                        ? `del ${o.backend}/${o.server}`
                        : o.op === "weight"
                          ? `weight ${o.backend}/${o.server} ${o.weight}`
                          : `maxconn ${o.backend}/${o.server} ${o.maxconn}`,
              )
            : [p.kind];

    it("the same model: nothing to do", () => {
        assert.deepEqual(planChange(model([a]), model([a])), { kind: "none" });
    });
    it("an instance added or removed: runtime operations, the checked server probed on its health path", () => {
        const added = planChange(model([a], { "services/s/check": "/h" }), model([a, b], { "services/s/check": "/h" }));
        assert.deepEqual(ops(added), [
            "add server svc_s/10.1.0.6:80 10.1.0.6:80 check inter 2s fastinter 500ms downinter 2s rise 1 fall 2 maxconn 1000 maxqueue 256",
            "add server svc_s/panic-10.1.0.6:80 10.1.0.6:80 backup maxconn 1000 maxqueue 256",
        ]);
        assert.ok(added.kind === "runtime" && added.ops[0]!.op === "add" && JSON.stringify(added.ops[0]!.probe) === '{"kind":"http","path":"/h"}');
        assert.deepEqual(ops(planChange(model([a, b]), model([a]))), ["del svc_s/10.1.0.6:80", "del svc_s/panic-10.1.0.6:80"]);
    });
    it("maintenance and weights: weight operations", () => {
        assert.deepEqual(ops(planChange(model([a, b]), model([a, b], { "services/s/maintenance": "s-b" }))), [
            "weight svc_s/10.1.0.6:80 0",
            "weight svc_s/panic-10.1.0.6:80 0",
        ]);
    });
    it("a KV key that makes one of many services declared moves no route: no reload", () => {
        const many = ["a-v1", "b-v1", "c-v1"].map((n, i) => inst(n, `10.1.0.${20 + i}`, 80, ["rest"], `node1:${n}:80`));
        assert.equal(planChange(model(many), model(many, { "services/c-v1/maintenance": "all" })).kind, "runtime");
    });
    it("a new route or a setting: a reload, with the reason", () => {
        assert.deepEqual(planChange(model([a]), model([a, inst("t", "10.1.0.7", 80)])), { kind: "reload", why: "routes changed" });
        assert.deepEqual(planChange(model([a]), model([a], { "timeouts/connect": "7s" })), { kind: "reload", why: "timeout connect 5s -> 7s" });
        assert.deepEqual(planChange(model([a]), model([a], { "services/s/check": "/h" })), { kind: "reload", why: "svc_s: health-check path changed" });
    });
});

describe("budgets: what no client can exhaust", () => {
    // Values the pattern of an integer in its range refuses: zero where 1 is the least, signs,
    // exponents, spaces, leading zeros, words, injections, and numbers past the range.
    const hostileInts = ["-1", "1e9", "10 ", " 10", "010", "abc", "10\n    bind :1", "1.5", "99999999999999", "9".repeat(40)];
    const stack: [string, keyof Model["limits"] | "serverMaxconn", number, readonly [number, number]][] = [
        ["limits/client-connections", "clientConnections", 100, [1, 100000]],
        ["limits/client-rate", "clientRate", 0, [0, 1000000]],
        ["limits/body-size", "bodySize", 10485760, [1, 1000000000000]],
        ["limits/server-maxconn", "serverMaxconn", 1000, [1, 100000]],
    ];
    const valueOf = (m: Model, field: keyof Model["limits"] | "serverMaxconn"): number =>
        field === "serverMaxconn" ? backend(m, "svc_s").servers[0]!.maxconn : m.limits[field];
    for (const [key, field, def, [min, max]] of stack) {
        it(`${key}: ${def} by default, any integer from ${min} to ${max}; hostile values run ${def}`, () => {
            const s = [inst("s", "10.1.0.5", 80)];
            assert.equal(valueOf(model(s), field), def);
            for (const good of [String(min), String(max), "7"]) assert.equal(valueOf(model(s, { [key]: good }), field), Number(good), good);
            const tooSmall = min > 0 ? [String(min - 1)] : [];
            for (const v of [...hostileInts, ...tooSmall, String(max + 1)]) {
                const m = model(s, { [key]: v });
                assert.equal(valueOf(m, field), def, JSON.stringify(v));
                assert.ok(
                    m.notes.includes(`rejected: KV service/haproxy/${key}: value (sha256 ${sha8(v)}) is not an integer from ${min} to ${max}; running ${def}`),
                    `${JSON.stringify(v)}: ${m.notes.join("\n")}`,
                );
                assert.ok(!renderConfig(m).includes("bind :1"));
            }
        });
    }
    for (const [key, field, def] of [
        ["timeouts/http-request", "httpRequest", "5s"],
        ["timeouts/http-keep-alive", "httpKeepAlive", "10s"],
        ["timeouts/tcp-idle", "tcpIdle", "1h"],
    ] as const) {
        it(`${key}: ${def} by default; hostile values run the default`, () => {
            assert.equal(model([]).timeouts[field], def);
            assert.equal(model([], { [key]: "2s" }).timeouts[field], "2s");
            for (const v of ["0", "0s", "25d", "-1", "1e3", "5S", " 5s", "5s\n    stats uri /x"]) {
                const m = model([], { [key]: v });
                assert.equal(m.timeouts[field], def, JSON.stringify(v));
                assert.ok(
                    m.notes.includes(`rejected: KV service/haproxy/${key}: value (sha256 ${sha8(v)}) is not a duration HAProxy runs with; running ${def}`),
                );
            }
        });
    }

    const web = [inst("web", "10.1.0.5", 80), inst("web", "10.1.0.6", 80)];
    const pg = [inst("pg", "10.1.0.7", 5432, ["tcp"])];
    it("services/<name>/maxconn: the maxconn of each of its servers and their panic twins; else the stack's", () => {
        const m = model([...web, ...pg], { "services/web/maxconn": "3", "limits/server-maxconn": "50", "services/pg/listen": "15432" });
        assert.deepEqual(
            backend(m, "svc_web").servers.map((s) => s.maxconn),
            [3, 3, 3, 3],
        );
        assert.deepEqual(
            backend(m, "svc_pg").servers.map((s) => s.maxconn),
            [50, 50],
        );
        assert.match(renderConfig(m), /^ {4}server 10\.1\.0\.5:80 10\.1\.0\.5:80 check .* maxconn 3 maxqueue 256$/m);
    });
    for (const v of [...hostileInts, "0", "100001"]) {
        it(`services/<name>/maxconn ${JSON.stringify(v)}: rejected, the stack's value runs; a last good value is kept (quarantine)`, () => {
            const m = model(web, { "services/web/maxconn": v });
            assert.deepEqual(
                backend(m, "svc_web").servers.map((s) => s.maxconn),
                [1000, 1000, 1000, 1000],
            );
            assert.ok(
                m.notes.includes(
                    `rejected: KV service/haproxy/services/web/maxconn: value (sha256 ${sha8(v)}) is not an integer from 1 to 100000; running the stack's 1000 per server`,
                ),
                m.notes.join("\n"),
            );
            const good = model(web, { "services/web/maxconn": "20" });
            const next = model(web, { "services/web/maxconn": v }, {}, good);
            assert.deepEqual(next.quarantined, ["web"]);
            assert.equal(backend(next, "svc_web").servers[0]!.maxconn, 20);
            assert.ok(
                next.notes.some((n) => n.startsWith("rejected: KV service/haproxy/services/web/maxconn:") && n.endsWith("keeping its last good value (20)")),
            );
        });
    }
    it("services/<name>/rate: a table and a 429 rule in its backend (an http service or a split); a TCP service's is rejected", () => {
        const m = model([...web, ...pg], { "services/web/rate": "20", "services/pg/listen": "15432", "services/pg/rate": "5" });
        assert.equal(backend(m, "svc_web").rate, 20);
        assert.equal(backend(m, "svc_pg").rate, undefined);
        assert.ok(
            m.notes.includes(
                "rejected: KV service/haproxy/services/pg/rate: pg is a TCP service (KV service/haproxy/services/pg/listen); a request rate is an http service's; ignored",
            ),
        );
        const cfg = renderConfig(m);
        assert.match(
            cfg,
            /backend svc_web\n(.*\n)*? {4}stick-table type ip size 100k expire 30s store http_req_rate\(10s\)\n {4}http-request track-sc1 src\n {4}http-request deny deny_status 429 if \{ sc1_http_req_rate gt 20 \}\n/,
        );
        // 0: no rate of its own.
        assert.equal(backend(model(web, { "services/web/rate": "0" }), "svc_web").rate, undefined);
        const split = model([inst("hello-v1", "10.1.0.8", 80), inst("hello-v2", "10.1.0.9", 80)], {
            "services/hello-v1/weight": "1",
            "services/hello-v2/weight": "1",
            "services/hello/rate": "7",
            "services/hello-v2/maxconn": "4",
        });
        assert.equal(backend(split, "svc_hello").rate, 7);
        assert.deepEqual(
            backend(split, "svc_hello")
                .servers.filter((s) => s.check)
                .map((s) => `${s.name}=${s.maxconn}`),
            ["v1_10.1.0.8:80=1000", "v2_10.1.0.9:80=4"],
        );
        for (const v of hostileInts) {
            const bad = model(web, { "services/web/rate": v });
            assert.equal(backend(bad, "svc_web").rate, undefined);
            assert.ok(
                bad.notes.includes(
                    `rejected: KV service/haproxy/services/web/rate: value (sha256 ${sha8(v)}) is not an integer from 0 to 1000000; no request rate of its own`,
                ),
            );
        }
    });
    it("services/<name>/idle-timeout: a TCP service's client and server timeouts; an http service's is rejected", () => {
        const m = model([...web, ...pg], { "services/pg/listen": "15432", "services/pg/idle-timeout": "10m", "services/web/idle-timeout": "1m" });
        assert.equal(backend(m, "svc_pg").idleTimeout, "10m");
        assert.equal(backend(m, "svc_web").idleTimeout, undefined);
        assert.ok(
            m.notes.includes(
                "rejected: KV service/haproxy/services/web/idle-timeout: web is not a TCP service (no KV service/haproxy/services/web/listen or /sni); ignored",
            ),
        );
        const cfg = renderConfig(m);
        assert.match(cfg, /frontend tcp_pg from tcp_services\n(.*\n)*? {4}timeout client 10m\n/);
        assert.match(cfg, /backend svc_pg from tcp_services\n(.*\n)*? {4}timeout server 10m\n/);
        for (const v of ["0", "25d", "10 m", "1h\n    bind :1"]) {
            const bad = model(pg, { "services/pg/listen": "15432", "services/pg/idle-timeout": v });
            assert.equal(backend(bad, "svc_pg").idleTimeout, undefined);
            assert.ok(
                bad.notes.includes(
                    `rejected: KV service/haproxy/services/pg/idle-timeout: value (sha256 ${sha8(v)}) is not a duration HAProxy runs with; running the stack's 1h`,
                ),
            );
        }
    });
    it("each listener has its share of maxconn: the stats listener 1/16 (8 to 256), the TCP listeners half of the rest", () => {
        assert.deepEqual(model([]).listenerMaxconn, { http: 4096 - 256 - 10, tcp: 0, stats: 256 });
        const two = model([...pg, inst("redis", "10.1.0.9", 6379, ["tcp"])], { "services/pg/listen": "15432", "services/redis/listen": "16379" });
        assert.deepEqual(two.listenerMaxconn, { http: 3830 - 2 * 957, tcp: 957, stats: 256 });
        const small = model([], { maxconn: "1000" });
        assert.deepEqual(small.listenerMaxconn, { http: 1000 - 62 - 10, tcp: 0, stats: 62 });
        assert.deepEqual(model([], { maxconn: "20" }).listenerMaxconn, { http: 2, tcp: 0, stats: 8 });
        // The sum never passes the global maxconn: a full public listener leaves the stats one its share.
        for (const m of [model([]), two, small]) {
            const l = m.listenerMaxconn;
            assert.ok(l.http + l.tcp * m.tcpListeners.length + l.stats + 10 <= m.maxconn, JSON.stringify(l));
        }
        const cfg = renderConfig(two);
        assert.match(cfg, /frontend http\n {4}bind .*\n {4}maxconn 1916\n/);
        assert.match(cfg, /frontend tcp_pg from tcp_services\n {4}bind .*\n {4}maxconn 957\n/);
        assert.match(cfg, /frontend stats\n(.*\n)*? {4}maxconn 256\n {4}monitor-uri \/-\/health\n {4}http-request auth /);
    });
    it("renders the per-client limits on every public listener; the request rate only when set", () => {
        const m = model(pg, { "services/pg/listen": "15432", "limits/client-connections": "30" });
        const cfg = renderConfig(m);
        assert.match(cfg, /^backend clients_http\n {4}stick-table type ip size 100k expire 30s store conn_cur\n/m);
        assert.match(
            cfg,
            /frontend http\n(.*\n)*? {4}tcp-request connection track-sc0 src table clients_http\n {4}tcp-request connection reject if \{ sc0_conn_cur gt 30 \}\n/,
        );
        assert.match(
            cfg,
            /frontend tcp_pg from tcp_services\n(.*\n)*? {4}tcp-request connection track-sc0 src\n {4}tcp-request connection reject if \{ sc0_conn_cur gt 30 \}\n/,
        );
        assert.doesNotMatch(cfg, /deny_status 429/);
        assert.match(cfg, /^ {4}http-request deny deny_status 413 if \{ req\.hdr_val\(content-length\) gt 10485760 \}$/m);
        const rated = renderConfig(model([], { "limits/client-rate": "200" }));
        assert.match(rated, /store conn_cur,http_req_rate\(10s\)\n/);
        assert.match(rated, /^ {4}http-request deny deny_status 429 if \{ sc0_http_req_rate gt 200 \}$/m);
        // A trusted proxy carries many clients: it is neither counted nor limited.
        const trusted = renderConfig(model(pg, { "services/pg/listen": "15432" }, { trustedProxies: "10.9.0.0/16" }));
        assert.match(trusted, /^ {4}tcp-request connection track-sc0 src table clients_http unless trusted_proxy$/m);
        assert.match(trusted, /^ {4}tcp-request connection track-sc0 src unless trusted_proxy$/m);
    });
    it("the TCP defaults run the stack's idle timeout", () => {
        const cfg = renderConfig(model(pg, { "services/pg/listen": "15432", "timeouts/tcp-idle": "20m" }));
        assert.match(cfg, /defaults tcp_services\n(.*\n)*? {4}timeout client 20m\n {4}timeout server 20m\n/);
        const http = renderConfig(model([], { "timeouts/http-request": "3s", "timeouts/http-keep-alive": "2s" }));
        assert.match(http, /^ {4}timeout http-request 3s\n {4}timeout http-keep-alive 2s$/m);
    });
});

describe("retries and forwarding headers", () => {
    it("retries a failed connection, and an empty answer or a timeout of a method a replay cannot harm, on another server", () => {
        const cfg = renderConfig(model([]));
        const defaults = cfg.slice(cfg.indexOf("\ndefaults\n"), cfg.indexOf("\nbackend clients_http"));
        assert.match(defaults, /^ {4}option redispatch 1$/m);
        assert.match(defaults, /^ {4}retries 2$/m);
        assert.match(defaults, /^ {4}retry-on conn-failure empty-response response-timeout$/m);
        assert.match(cfg, /^ {4}http-request disable-l7-retry unless \{ method GET HEAD OPTIONS PUT DELETE \}$/m);
    });
    it("drops every forwarding header a client sends, then sets X-Forwarded-Host/-Proto/-Port (X-Forwarded-For: option forwardfor)", () => {
        const cfg = renderConfig(model([]));
        for (const h of FORWARDING_HEADERS) assert.match(cfg, new RegExp(`^ {4}http-request del-header ${h}$`, "m"), h);
        for (const h of ["X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "True-Client-IP", "X-Client-IP", "X-Original-URL", "X-Rewrite-URL"])
            assert.ok(FORWARDING_HEADERS.includes(h), h);
        assert.match(cfg, /^ {4}option forwardfor$/m);
        assert.match(cfg, /^ {4}http-request set-header X-Forwarded-Host %\[req\.hdr\(host\)\] unless \{ req\.fhdr\(x-forwarded-host\) -m found \}$/m);
        assert.match(cfg, /^ {4}http-request set-header X-Forwarded-Proto http unless \{ req\.fhdr\(x-forwarded-proto\) -m found \}$/m);
        // The port clients reach the listener on: the published one when the stack says it, else the listener's.
        assert.match(cfg, /^ {4}http-request set-header X-Forwarded-Port 8080 unless/m);
        assert.match(renderConfig(model([], {}, { publicHttpPort: "80" })), /^ {4}http-request set-header X-Forwarded-Port 80 unless/m);
        const bad = "80\n    bind :1";
        const m = model([], {}, { publicHttpPort: bad });
        assert.equal(m.forwardedPort, 8080);
        assert.ok(m.notes.includes(`rejected: GATEWAY_PUBLIC_HTTP_PORT (sha256 ${sha8(bad)}) is not a port number; X-Forwarded-Port is 8080`));
    });
    it("keeps a trusted proxy's forwarding headers (and sets only those it did not send)", () => {
        const cfg = renderConfig(model([], {}, { trustedProxies: "10.9.0.0/16" }));
        for (const h of FORWARDING_HEADERS) assert.match(cfg, new RegExp(`^ {4}http-request del-header ${h} unless trusted_proxy$`, "m"), h);
        assert.match(cfg, /^ {4}acl trusted_proxy src 10\.9\.0\.0\/16$/m);
    });
});

describe("diff: budgets", () => {
    const a = inst("s", "10.1.0.5", 80, ["rest"], "node1:s-a:80");
    it("a service's maxconn: set at run time on each of its servers, no reload", () => {
        const p = planChange(model([a]), model([a], { "services/s/maxconn": "5" }));
        assert.equal(p.kind, "runtime");
        assert.deepEqual(p.kind === "runtime" ? p.ops.map((o) => (o.op === "maxconn" ? `${o.backend}/${o.server} ${o.maxconn}` : o.op)) : [], [
            "svc_s/10.1.0.5:80 5",
            "svc_s/panic-10.1.0.5:80 5",
        ]);
        assert.equal(planChange(model([a]), model([a], { "limits/server-maxconn": "7" })).kind, "runtime");
    });
    it("every other budget: a reload, with the reason", () => {
        const pg = inst("pg", "10.1.0.7", 5432, ["tcp"], "node1:pg:5432");
        const base = { "services/pg/listen": "15432" };
        for (const [kv, why] of [
            [{ "limits/client-connections": "5" }, "connections per client 100 -> 5"],
            [{ "limits/client-rate": "50" }, "requests per client 0 -> 50"],
            [{ "limits/body-size": "1024" }, "body size 10485760 -> 1024"],
            [{ "timeouts/http-request": "2s" }, "timeout http-request 5s -> 2s"],
            [{ "timeouts/tcp-idle": "5m" }, "timeout tcp-idle 1h -> 5m"],
            [{ "services/s/rate": "9" }, "svc_s: request rate per client none -> 9"],
            [{ "services/pg/idle-timeout": "5m" }, "svc_pg: idle timeout the stack's -> 5m"],
            [{ maxconn: "2000" }, "maxconn 4096 -> 2000"],
        ] as const) {
            assert.deepEqual(planChange(model([a, pg], base), model([a, pg], { ...base, ...kv })), { kind: "reload", why }, why);
        }
    });
});
