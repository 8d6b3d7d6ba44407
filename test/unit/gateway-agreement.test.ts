// One route model for the program and the gateway: the KV keys the program writes for each
// stack file, fed to the gateway's own model (components/images/gateway/controller/model.ts)
// with an instance per declared replica, give the route table the stack file declares, and
// nothing of it is rejected. The values the config accepts and the values the gateway accepts
// come from one module (controller/rules.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DURATION_PATTERN, parseSettings, RESERVED_LISTEN_PORTS, SERVICE_NAME_PATTERN, VERSION_PATTERN } from "../../components/config";
import { KV_PREFIX as PROGRAM_KV_PREFIX } from "../../components/gateway-kv";
import { buildModel, routePath, type CatalogService, type Model } from "../../components/images/gateway/controller/model";
import { CONTROL_PORTS, DNS_LABEL, DURATION, KV_PREFIX, VERSIONED_NAME } from "../../components/images/gateway/controller/rules";
import { devWith, evaluate, isSecret, secretValue, stackConfig, TEST_SSH_KEY } from "../support/program";

const ADMIN = "203.0.113.7/32";

/** The stack file, with the two values an aws operator sets before the first `pulumi up`. */
function config(stack: "dev" | "aws"): Record<string, string> {
    const c = stackConfig(stack);
    if (stack === "aws") c["service-discovery:aws"] = JSON.stringify({ ...JSON.parse(c["service-discovery:aws"]!), adminCidr: ADMIN, publicKey: TEST_SSH_KEY });
    return c;
}

async function programKv(stack: "dev" | "aws"): Promise<Map<string, string>> {
    const p = await evaluate(config(stack), stack);
    assert.equal(p.error, null, String(p.error));
    const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: unknown }[];
    return new Map(keys.map((k) => [k.path, String(isSecret(k.value) ? secretValue(k.value) : k.value)]));
}

/** One instance per declared replica, registered as Registrator does: <node>:<container>-<generation>:<port>. */
function replicas(stack: "dev" | "aws", backendNetwork: string): CatalogService[] {
    const settings = parseSettings(
        Object.fromEntries(
            Object.entries(config(stack))
                .filter(([k]) => k.startsWith("service-discovery:"))
                .map(([k, v]) => [k.slice("service-discovery:".length), v]),
        ),
        stack,
    );
    const base = backendNetwork.split("/")[0]!.split(".").slice(0, 2).join(".");
    let host = 10;
    return settings.services.flatMap((s) =>
        s.containerNames.map((c) => ({
            id: `node1:${c}-0123abcd:${s.containerPort}`,
            service: s.consulName,
            address: `${base}.0.${host++}`,
            port: s.containerPort,
            tags: [s.protocol === "tcp" ? "tcp" : "rest"],
        })),
    );
}

function modelFor(kv: Map<string, string>, services: CatalogService[]): Model {
    return buildModel({
        kv,
        nodes: [{ node: "node1", address: "203.0.113.1", services }],
        settings: {
            httpPort: "80",
            statsPort: "1936",
            backendNetworks: "",
            nodeNetworks: "",
            trustedProxies: "",
            ownAddresses: "",
            nodePorts: "22 80 1936",
            fdLimit: "1048576",
            maxconnLimit: "",
        },
    });
}

describe("the program's KV and the gateway's model agree", () => {
    it("one KV prefix", () => {
        assert.equal(PROGRAM_KV_PREFIX, KV_PREFIX);
    });

    for (const stack of ["dev", "aws"] as const) {
        it(`Pulumi.${stack}.yaml: every declared service is routed where the config says, nothing rejected`, async () => {
            const kv = await programKv(stack);
            const network = kv.get(`${KV_PREFIX}/networks/backends`)!.split(" ")[0]!;
            const model = modelFor(kv, replicas(stack, network));
            assert.deepEqual(
                model.notes.filter((n) => n.startsWith("rejected")),
                [],
            );
            assert.deepEqual(
                model.notes.filter((n) => n.startsWith("skipped")),
                [],
            );
            const raw = stackConfig(stack)["service-discovery:services"];
            const declared = JSON.parse(raw ?? "[]") as {
                name: string;
                version?: string;
                protocol?: string;
                listenPort?: number;
                replicas?: number;
                weight?: number;
            }[];
            for (const s of declared) {
                const consulName = s.version ? `${s.name}-${s.version}` : s.name;
                if (s.protocol === "tcp") {
                    assert.ok(
                        model.tcpListeners.some((l) => l.name === consulName && l.port === s.listenPort),
                        `${consulName} listens on ${s.listenPort}`,
                    );
                } else {
                    assert.ok(
                        model.routes.some((r) => r.path === routePath(consulName) && r.backend === `svc_${consulName}`),
                        `${consulName} at /${routePath(consulName)}/`,
                    );
                }
                const b = model.backends.find((x) => x.name === `svc_${consulName}`)!;
                assert.equal(b.servers.filter((x) => x.check).length, s.replicas ?? 1, `${consulName}: one server per replica`);
            }
            // Weighted versions: the unversioned path is split by the declared weights.
            const weighted = declared.filter((s) => s.weight !== undefined);
            for (const name of new Set(weighted.map((s) => s.name))) {
                const split = model.backends.find((b) => b.name === `svc_${name}`);
                assert.equal(split?.kind, "split", `/${name}/ is split`);
                const share = (version: string): number =>
                    split!.servers.filter((x) => x.check && x.name.startsWith(`${version}_`)).reduce((n, x) => n + (x.weight ?? 1), 0);
                const total = weighted.filter((s) => s.name === name).reduce((n, s) => n + share(s.version!), 0);
                for (const s of weighted.filter((x) => x.name === name)) {
                    const want = s.weight! / weighted.filter((x) => x.name === name).reduce((n, x) => n + x.weight!, 0);
                    assert.ok(Math.abs(share(s.version!) / total - want) < 0.01, `${s.name}-${s.version}: ${share(s.version!) / total} ≈ ${want}`);
                }
            }
            // The program's settings are the ones the gateway runs.
            const haproxy = JSON.parse(stackConfig(stack)["service-discovery:haproxy"] ?? "{}") as { maxconn?: number };
            if (haproxy.maxconn !== undefined) assert.equal(model.maxconn, haproxy.maxconn);
        });
    }

    it("the budgets a stack sets (haproxy.*, a service's own) are the ones the gateway runs, nothing rejected", async () => {
        const p = await evaluate(
            devWith({
                haproxy: {
                    connectionsPerClient: 40,
                    requestsPerClient: 300,
                    maxBodyBytes: 1048576,
                    connectionsPerInstance: 200,
                    timeouts: { httpRequest: "3s", httpKeepAlive: "4s", tcpIdle: "30m" },
                },
                services: [
                    { name: "hello", version: "v1", build: "components/images/hello", connectionsPerInstance: 8, requestsPerClient: 50 },
                    { name: "pg", image: "example/postgres:16.4", protocol: "tcp", containerPort: 5432, listenPort: 5432, idleTimeout: "2h" },
                ],
            }),
        );
        assert.equal(p.error, null, String(p.error));
        const keys = p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: string }[];
        const kv = new Map(keys.map((k) => [k.path, String(k.value)]));
        const services: CatalogService[] = [
            { id: "node1:dev-hello-v1-1-0123abcd:8080", service: "hello-v1", address: "172.28.0.10", port: 8080, tags: ["rest"] },
            { id: "node1:dev-pg-1-0123abcd:5432", service: "pg", address: "172.28.0.11", port: 5432, tags: ["tcp"] },
        ];
        const model = modelFor(kv, services);
        assert.deepEqual(model.notes, []);
        assert.deepEqual(model.limits, { clientConnections: 40, clientRate: 300, bodySize: 1048576 });
        assert.deepEqual([model.timeouts.httpRequest, model.timeouts.httpKeepAlive, model.timeouts.tcpIdle], ["3s", "4s", "30m"]);
        const hello = model.backends.find((b) => b.name === "svc_hello-v1")!;
        assert.equal(hello.rate, 50);
        assert.deepEqual([...new Set(hello.servers.map((x) => x.maxconn))], [8]);
        const pg = model.backends.find((b) => b.name === "svc_pg")!;
        assert.equal(pg.idleTimeout, "2h");
        assert.deepEqual([...new Set(pg.servers.map((x) => x.maxconn))], [200]);
    });

    it("every Consul name the config can produce is one the gateway routes, at the configured path", () => {
        for (const [service, version] of [
            ["hello", "v1"],
            ["a", "v9999"],
            ["my-api", "v2"],
            ["x".repeat(32), "v10"],
        ] as const) {
            assert.match(service, SERVICE_NAME_PATTERN);
            assert.match(version, VERSION_PATTERN);
            assert.match(`${service}-${version}`, DNS_LABEL);
            assert.match(`${service}-${version}`, VERSIONED_NAME);
            assert.equal(routePath(`${service}-${version}`), `${service}/${version}`);
            assert.match(service, DNS_LABEL);
            assert.doesNotMatch(service, VERSIONED_NAME, "an unversioned name is never mistaken for a version");
        }
    });

    it("a duration the config accepts is one the gateway accepts: one pattern", () => {
        assert.equal(DURATION_PATTERN, DURATION);
    });

    it("every port the gateway refuses on every address is refused as a listenPort", () => {
        for (const port of CONTROL_PORTS)
            assert.ok(
                RESERVED_LISTEN_PORTS.some((r) => port >= r.from && port <= r.to),
                `${port} is reserved`,
            );
    });
});
