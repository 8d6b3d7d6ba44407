// Traffic control in the stack config (docs/traffic-control.md): each services[i] key of tcp
// services, weighted and sticky versions and maintenance, what it resolves to, and every invalid
// value with its exact message, in a fixed order.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSettings, ServiceSettings } from "../../components/config";
import { serviceKeys } from "../../components/gateway-kv";
import { tcpListenPorts, trustRuleEnv, unprivilegedPortStart } from "../../components/gateway";
import { dev, rejects } from "./config-support";

const P = "service-discovery";
const v1 = { name: "hello", version: "v1", build: "components/images/hello" };
const v2 = { name: "hello", version: "v2", build: "components/images/hello" };
const pg = { name: "pg", image: "example/postgres:16.4", containerPort: 5432, protocol: "tcp", listenPort: 5432 };
const RESERVED_TEXT = "reserved: 22, 80, 443, 1936, 2375-2376, 8300-8302, 8500-8503, 8600, 32768-60999";

const parse = (services: unknown[], overrides: Record<string, unknown> = {}) => parseSettings(dev({ ...overrides, services }), "dev");
const service = (services: unknown[], i = 0, overrides: Record<string, unknown> = {}): ServiceSettings => parse(services, overrides).services[i];
/** The message parsing `services` fails with (fails the test when it parses). */
function messageOf(services: unknown[]): string {
    try {
        parse(services);
    } catch (e) {
        return (e as Error).message;
    }
    return assert.fail(`accepted ${JSON.stringify(services)}`);
}

describe("traffic config: valid values and what they resolve to", () => {
    it("an http service keeps today's defaults: no listener, no weight, not sticky, nothing in maintenance", () => {
        const s = service([v1]);
        assert.equal(s.protocol, "http");
        assert.equal(s.listenPort, undefined);
        assert.deepEqual(s.allowedCidrs, []);
        assert.equal(s.weight, undefined);
        assert.equal(s.sticky, false);
        assert.equal(s.maintenance, undefined);
        assert.equal(s.maintenanceInstances, undefined);
        assert.deepEqual(s.containerNames, ["dev-hello-v1-1"]);
    });

    it("a tcp service: its listenPort, the CIDR blocks that may reach it, and replicas in maintenance by container name", () => {
        const s = service([{ ...pg, replicas: 3, allowedCidrs: ["203.0.113.0/24", "0.0.0.0/0", "198.51.100.7/32"], maintenance: [3, 1] }]);
        assert.equal(s.protocol, "tcp");
        assert.equal(s.listenPort, 5432);
        assert.equal(s.consulName, "pg");
        assert.deepEqual(s.allowedCidrs, ["203.0.113.0/24", "0.0.0.0/0", "198.51.100.7/32"]);
        assert.deepEqual(s.containerNames, ["dev-pg-1", "dev-pg-2", "dev-pg-3"]);
        assert.deepEqual(s.maintenanceInstances, ["dev-pg-3", "dev-pg-1"], "in the order listed");
    });

    it("a tcp service may have a version and no allowedCidrs (then only the cluster reaches it)", () => {
        const s = service([{ ...pg, version: "v2", allowedCidrs: [] }]);
        assert.equal(s.consulName, "pg-v2");
        assert.deepEqual(s.allowedCidrs, []);
        assert.deepEqual(s.containerNames, ["dev-pg-v2-1"]);
    });

    it("container names follow the stack", () => {
        assert.deepEqual(parseSettings(dev({ services: [{ ...v1, replicas: 2, maintenance: [2] }] }), "prod").services[0].maintenanceInstances, [
            "prod-hello-v1-2",
        ]);
    });

    it("weights split a name's versions, sticky or not; maintenance true is the whole version", () => {
        const s = parse([
            { ...v1, weight: 90, sticky: true, maintenance: true },
            { ...v2, weight: 10, sticky: true },
            { name: "hello", version: "v3", build: "components/images/hello" },
        ]);
        assert.deepEqual(
            s.services.map((x) => [x.consulName, x.weight, x.sticky, x.maintenanceInstances]),
            [
                ["hello-v1", 90, true, "all"],
                ["hello-v2", 10, true, undefined],
                ["hello-v3", undefined, false, undefined],
            ],
        );
    });

    it("accepts the bounds: weight 0 (drain) and 256, every replica in maintenance, ports next to the reserved ones", () => {
        assert.equal(service([{ ...v1, weight: 0 }]).weight, 0);
        assert.equal(service([{ ...v1, weight: 256 }]).weight, 256);
        assert.deepEqual(service([{ ...v1, replicas: 2, maintenance: [1, 2] }]).maintenanceInstances, ["dev-hello-v1-1", "dev-hello-v1-2"]);
        assert.deepEqual(service([{ ...v1, replicas: 50, maintenance: [50] }]).maintenanceInstances, ["dev-hello-v1-50"]);
        for (const port of [1, 21, 23, 79, 81, 1935, 1937, 2374, 2377, 8299, 8303, 8499, 8504, 8599, 8601, 32767, 61000, 65535]) {
            assert.equal(service([{ ...pg, listenPort: port }]).listenPort, port, String(port));
        }
        // gateway/consul ports moved away free their defaults for a listener (not the fixed ones).
        assert.equal(service([{ ...pg, listenPort: 8080 }], 0, { gateway: { httpPort: 9080 } }).listenPort, 8080);
    });

    it("an unversioned service next to unweighted versions of its name stays allowed", () => {
        const s = parse([v1, { name: "hello", image: "example/hello:1.0" }]);
        assert.deepEqual(
            s.services.map((x) => x.path),
            ["/hello/v1", "/hello"],
        );
    });

    it("several tcp services on different ports", () => {
        const s = parse([pg, { ...pg, name: "cache", listenPort: 6379, containerPort: 6379 }]);
        assert.deepEqual(tcpListenPorts(s), [5432, 6379]);
    });
});

describe("traffic config: invalid values", () => {
    const cases: [string, unknown[], string, Record<string, unknown>?][] = [
        // protocol
        [
            "an unknown protocol",
            [{ ...v1, protocol: "udp" }],
            `${P}:services[0].protocol: "udp" is not allowed; expected http (routed by URL path) or tcp (a gateway listener on listenPort)`,
        ],
        [
            "a protocol in capitals",
            [{ ...v1, protocol: "TCP" }],
            `${P}:services[0].protocol: "TCP" is not allowed; expected http (routed by URL path) or tcp (a gateway listener on listenPort)`,
        ],
        // listenPort
        [
            "a tcp service without listenPort",
            [{ name: "pg", image: "example/postgres:16.4", protocol: "tcp" }],
            `${P}:services[0].listenPort: missing is not allowed; expected the port the gateway listens on for this tcp service, such as 5432 (required with protocol tcp unless hosts names the TLS host names passed through to it on gateway.httpsPort)`,
        ],
        [
            "listenPort on an http service",
            [{ ...v1, listenPort: 5432 }],
            `${P}:services[0].listenPort: 5432 is not allowed; expected no listenPort for protocol http (http services are served on gateway.httpPort; set protocol tcp for a listener of its own)`,
        ],
        ["listenPort 0", [{ ...pg, listenPort: 0 }], `${P}:services[0].listenPort: 0 is not allowed; expected an integer from 1 to 65535`],
        ["listenPort beyond 65535", [{ ...pg, listenPort: 65536 }], `${P}:services[0].listenPort: 65536 is not allowed; expected an integer from 1 to 65535`],
        [
            "listenPort not an integer",
            [{ ...pg, listenPort: 5432.5 }],
            `${P}:services[0].listenPort: 5432.5 is not allowed; expected an integer from 1 to 65535`,
        ],
        ["listenPort as text", [{ ...pg, listenPort: "5432" }], `${P}:services[0].listenPort: "5432" is not allowed; expected an integer from 1 to 65535`],
        [
            "listenPort on gateway.httpPort",
            [{ ...pg, listenPort: 80 }],
            `${P}:services[0].listenPort: 80 is not allowed; expected a port not already used by gateway.httpPort`,
        ],
        [
            "listenPort on a moved gateway.httpPort",
            [{ ...pg, listenPort: 8080 }],
            `${P}:services[0].listenPort: 8080 is not allowed; expected a port not already used by gateway.httpPort`,
            { gateway: { httpPort: 8080 } },
        ],
        [
            "listenPort on gateway.statsPort",
            [{ ...pg, listenPort: 9090 }],
            `${P}:services[0].listenPort: 9090 is not allowed; expected a port not already used by gateway.statsPort`,
            { gateway: { statsPort: 9090 } },
        ],
        [
            "listenPort on consul.httpsPort",
            [{ ...pg, listenPort: 18501 }],
            `${P}:services[0].listenPort: 18501 is not allowed; expected a port not already used by consul.httpsPort`,
            { consul: { httpsPort: 18501 } },
        ],
        [
            "listenPort on consul.dnsPort",
            [{ ...pg, listenPort: 8600 }],
            `${P}:services[0].listenPort: 8600 is not allowed; expected a port not already used by consul.dnsPort`,
        ],
        [
            "listenPort 80 when the gateway is published elsewhere (the container still listens on 80)",
            [{ ...pg, listenPort: 80 }],
            `${P}:services[0].listenPort: 80 is not allowed; expected a port the stack does not use itself: 80 is the gateway container's own HTTP port (${RESERVED_TEXT})`,
            { gateway: { httpPort: 8080 } },
        ],
        [
            "listenPort 1936 when stats are published elsewhere",
            [{ ...pg, listenPort: 1936 }],
            `${P}:services[0].listenPort: 1936 is not allowed; expected a port the stack does not use itself: 1936 is the gateway container's own stats port (${RESERVED_TEXT})`,
            { gateway: { statsPort: 9090 } },
        ],
        [
            "listenPort 22",
            [{ ...pg, listenPort: 22 }],
            `${P}:services[0].listenPort: 22 is not allowed; expected a port the stack does not use itself: 22 is SSH (${RESERVED_TEXT})`,
        ],
        [
            "Consul's DNS port when consul.dnsPort publishes it elsewhere",
            [{ ...pg, listenPort: 8600 }],
            `${P}:services[0].listenPort: 8600 is not allowed; expected a port the stack does not use itself: 8600 is Consul's DNS port (${RESERVED_TEXT})`,
            { consul: { dnsPort: 18600 } },
        ],
        [
            "Consul's HTTPS port when consul.httpsPort publishes it elsewhere",
            [{ ...pg, listenPort: 8501 }],
            `${P}:services[0].listenPort: 8501 is not allowed; expected a port the stack does not use itself: 8500-8503 are Consul's HTTP, HTTPS and gRPC ports (${RESERVED_TEXT})`,
            { consul: { httpsPort: 18501 } },
        ],
        ...[2375, 2376].map((port): [string, unknown[], string] => [
            `the Docker API's port ${port}`,
            [{ ...pg, listenPort: port }],
            `${P}:services[0].listenPort: ${port} is not allowed; expected a port the stack does not use itself: 2375-2376 are the Docker API's (${RESERVED_TEXT})`,
        ]),
        ...[8300, 8301, 8302].map((port): [string, unknown[], string] => [
            `Consul's port ${port}`,
            [{ ...pg, listenPort: port }],
            `${P}:services[0].listenPort: ${port} is not allowed; expected a port the stack does not use itself: 8300-8302 are Consul's server RPC and gossip ports (${RESERVED_TEXT})`,
        ]),
        ...[8500, 8502, 8503].map((port): [string, unknown[], string] => [
            `Consul's port ${port}`,
            [{ ...pg, listenPort: port }],
            `${P}:services[0].listenPort: ${port} is not allowed; expected a port the stack does not use itself: 8500-8503 are Consul's HTTP, HTTPS and gRPC ports (${RESERVED_TEXT})`,
        ]),
        ...[32768, 45000, 60999].map((port): [string, unknown[], string] => [
            `Docker's ephemeral port ${port}`,
            [{ ...pg, listenPort: port }],
            `${P}:services[0].listenPort: ${port} is not allowed; expected a port the stack does not use itself: 32768-60999 are Docker's ephemeral host ports, where service replicas are published (${RESERVED_TEXT})`,
        ]),
        [
            "the same listenPort on two services",
            [v1, pg, { ...pg, name: "pg2" }],
            `${P}:services[2].listenPort: 5432 is not allowed; expected each listenPort once (also at services[1])`,
        ],
        // allowedCidrs
        [
            "allowedCidrs on an http service",
            [{ ...v1, allowedCidrs: ["203.0.113.0/24"] }],
            `${P}:services[0].allowedCidrs: ["203.0.113.0/24"] is not allowed; expected no allowedCidrs for protocol http (they open a tcp service's listenPort; the gateway's HTTP port is public)`,
        ],
        [
            "an empty allowedCidrs on an http service",
            [{ ...v1, allowedCidrs: [] }],
            `${P}:services[0].allowedCidrs: [] is not allowed; expected no allowedCidrs for protocol http (they open a tcp service's listenPort; the gateway's HTTP port is public)`,
        ],
        [
            "allowedCidrs not a list",
            [{ ...pg, allowedCidrs: "203.0.113.0/24" }],
            `${P}:services[0].allowedCidrs: "203.0.113.0/24" is not allowed; expected a list of IPv4 CIDR blocks allowed to reach listenPort, such as ["203.0.113.0/24"]`,
        ],
        ...["203.0.113.7", "203.0.113.0/33", "example.com/24", "::/0", "203.0.113.0/24\n  stats uri /pwn", " 10.0.0.0/8"].map(
            (cidr): [string, unknown[], string] => [
                `an allowed CIDR ${JSON.stringify(cidr)}`,
                [{ ...pg, allowedCidrs: ["10.0.0.0/8", cidr] }],
                `${P}:services[0].allowedCidrs[1]: ${JSON.stringify(cidr)} is not allowed; expected an aligned IPv4 CIDR block such as 203.0.113.0/24 (no host bits set), or 0.0.0.0/0 for the world`,
            ],
        ),
        [
            "an allowed CIDR with host bits",
            [{ ...pg, allowedCidrs: ["203.0.113.7/24"] }],
            `${P}:services[0].allowedCidrs[0]: "203.0.113.7/24" is not allowed; expected an aligned IPv4 CIDR block such as 203.0.113.0/24 (no host bits set), or 0.0.0.0/0 for the world`,
        ],
        [
            "an allowed CIDR that is not text",
            [{ ...pg, allowedCidrs: [24] }],
            `${P}:services[0].allowedCidrs[0]: 24 is not allowed; expected an aligned IPv4 CIDR block such as 203.0.113.0/24 (no host bits set), or 0.0.0.0/0 for the world`,
        ],
        [
            "the same CIDR twice",
            [{ ...pg, allowedCidrs: ["203.0.113.0/24", "10.0.0.0/8", "203.0.113.0/24"] }],
            `${P}:services[0].allowedCidrs[2]: "203.0.113.0/24" is not allowed; expected each CIDR block once (also at allowedCidrs[0])`,
        ],
        [
            "more than 20 CIDR blocks",
            [{ ...pg, allowedCidrs: Array.from({ length: 21 }, (_, i) => `10.${i}.0.0/16`) }],
            `${P}:services[0].allowedCidrs: ${JSON.stringify(Array.from({ length: 21 }, (_, i) => `10.${i}.0.0/16`)).slice(0, 77)}... is not allowed; expected at most 20 CIDR blocks (each is a security-group rule; a group holds 60 by default)`,
        ],
        // healthCheckPath
        [
            "a health-check path on a tcp service",
            [{ ...pg, healthCheckPath: "/health" }],
            `${P}:services[0].healthCheckPath: "/health" is not allowed; expected no healthCheckPath for protocol tcp (the gateway and Consul check a tcp service by connecting to it)`,
        ],
        // weight
        ["a negative weight", [{ ...v1, weight: -1 }], `${P}:services[0].weight: -1 is not allowed; expected an integer from 0 to 256`],
        ["a weight beyond 256", [{ ...v1, weight: 257 }], `${P}:services[0].weight: 257 is not allowed; expected an integer from 0 to 256`],
        ["a fractional weight", [{ ...v1, weight: 2.5 }], `${P}:services[0].weight: 2.5 is not allowed; expected an integer from 0 to 256`],
        ["a weight as text", [{ ...v1, weight: "90" }], `${P}:services[0].weight: "90" is not allowed; expected an integer from 0 to 256`],
        [
            "a weight on an unversioned service",
            [{ name: "hello", build: "components/images/hello", weight: 10 }],
            `${P}:services[0].weight: 10 is not allowed; expected a weight only on a versioned service (it is that version's share of /hello/); set version`,
        ],
        [
            "a weight on a tcp service",
            [{ ...pg, version: "v1", weight: 10 }],
            `${P}:services[0].weight: 10 is not allowed; expected no weight for protocol tcp (a weight is a version's share of the http path /pg/)`,
        ],
        [
            "an unversioned service next to a weighted version of its name",
            [
                { ...v1, weight: 90 },
                { name: "hello", image: "example/hello:1.0" },
            ],
            `${P}:services[1].name: "hello" is not allowed; expected a name without weighted versions: services[0] (hello-v1) has a weight, so hello is the split of its versions at /hello/`,
        ],
        [
            "an unversioned service before a weighted version of its name",
            [{ name: "hello", image: "example/hello:1.0" }, v2, { ...v1, weight: 0 }],
            `${P}:services[0].name: "hello" is not allowed; expected a name without weighted versions: services[2] (hello-v1) has a weight, so hello is the split of its versions at /hello/`,
        ],
        [
            "an unversioned tcp service named like a weighted version",
            [
                { ...v1, weight: 90 },
                { ...pg, name: "hello" },
            ],
            `${P}:services[1].name: "hello" is not allowed; expected a name without weighted versions: services[0] (hello-v1) has a weight, so hello is the split of its versions at /hello/`,
        ],
        // sticky
        ["sticky not a boolean", [{ ...v1, weight: 1, sticky: "yes" }], `${P}:services[0].sticky: "yes" is not allowed; expected true or false`],
        [
            "sticky without weight",
            [{ ...v1, sticky: true }],
            `${P}:services[0].sticky: true is not allowed; expected sticky only together with weight (it keeps a client on one version of the split of /hello/)`,
        ],
        [
            "sticky false without weight",
            [{ ...v1, sticky: false }],
            `${P}:services[0].sticky: false is not allowed; expected sticky only together with weight (it keeps a client on one version of the split of /hello/)`,
        ],
        [
            "sticky on a tcp service",
            [{ ...pg, sticky: true }],
            `${P}:services[0].sticky: true is not allowed; expected sticky only together with weight (it keeps a client on one version of the split of /pg/)`,
        ],
        [
            "weighted versions that disagree on sticky (one unset)",
            [
                { ...v1, weight: 90, sticky: true },
                { ...v2, weight: 10 },
            ],
            `${P}:services[1].sticky: false is not allowed; expected true like services[0].sticky (every weighted version of hello says the same)`,
        ],
        [
            "weighted versions that disagree on sticky (the first unset)",
            [{ ...v1, weight: 90 }, { ...v2 }, { name: "hello", version: "v3", build: "components/images/hello", weight: 10, sticky: true }],
            `${P}:services[2].sticky: true is not allowed; expected false like services[0].sticky (every weighted version of hello says the same)`,
        ],
        // maintenance
        [
            "maintenance false",
            [{ ...v1, maintenance: false }],
            `${P}:services[0].maintenance: false is not allowed; expected true (the whole service) or a list of replica numbers such as [2]; remove the key to end maintenance`,
        ],
        [
            "maintenance all",
            [{ ...v1, maintenance: "all" }],
            `${P}:services[0].maintenance: "all" is not allowed; expected true (the whole service) or a list of replica numbers such as [2]; remove the key to end maintenance`,
        ],
        [
            "maintenance as a number",
            [{ ...v1, maintenance: 2 }],
            `${P}:services[0].maintenance: 2 is not allowed; expected true (the whole service) or a list of replica numbers such as [2]; remove the key to end maintenance`,
        ],
        [
            "an empty maintenance list",
            [{ ...v1, maintenance: [] }],
            `${P}:services[0].maintenance: [] is not allowed; expected true (the whole service) or a non-empty list of replica numbers such as [2]; remove the key to end maintenance`,
        ],
        ["replica 0 in maintenance", [{ ...v1, maintenance: [0] }], `${P}:services[0].maintenance[0]: 0 is not allowed; expected an integer from 1 to 50`],
        [
            "replica 51 in maintenance",
            [{ ...v1, maintenance: [1, 51] }],
            `${P}:services[0].maintenance[1]: 51 is not allowed; expected an integer from 1 to 50`,
        ],
        [
            "a replica number as text",
            [{ ...v1, maintenance: ["1"] }],
            `${P}:services[0].maintenance: ["1"] is not allowed; expected true (the whole service) or a list of replica numbers such as [2]; remove the key to end maintenance`,
        ],
        [
            "a replica the service does not have",
            [{ ...v1, replicas: 2, maintenance: [3] }],
            `${P}:services[0].maintenance[0]: 3 is not allowed; expected a replica number from 1 to 2 (replicas)`,
        ],
        [
            "a replica beyond the default single one",
            [{ ...pg, maintenance: [1, 2] }],
            `${P}:services[0].maintenance[1]: 2 is not allowed; expected a replica number from 1 to 1 (replicas)`,
        ],
        [
            "a replica listed twice",
            [{ ...v1, replicas: 3, maintenance: [2, 3, 2] }],
            `${P}:services[0].maintenance[2]: 2 is not allowed; expected each replica number once`,
        ],
        // The key list names the new keys.
        [
            "an unknown service key",
            [{ ...v1, weights: 10 }],
            `${P}:services[0].weights: an unknown key is not allowed; expected only the keys name, version, image, build, containerPort, replicas, healthCheckPath, protocol, hosts, listenPort, allowedCidrs, drainSeconds, weight, sticky, connectionsPerInstance, requestsPerClient, idleTimeout, maintenance, capAdd, readOnlyRootFilesystem, tmpfs, tmpfsMb, memoryMb, cpus, pidsLimit, sharedNetwork`,
        ],
    ];
    for (const [title, services, message, overrides] of cases) {
        it(`rejects ${title}`, () => rejects(dev({ ...overrides, services }), message));
    }
});

describe("traffic config: the order of errors", () => {
    it("a value the schema refuses comes first, then one service's rules: listenPort, allowedCidrs, healthCheckPath, weight, sticky, maintenance", () => {
        assert.match(
            messageOf([{ ...pg, listenPort: 22, weight: -1 }]),
            /^service-discovery:services\[0\]\.weight: -1 is not allowed; expected an integer from 0 to 256$/,
        );
        // Each fault passes the schema alone: the rules between keys run in this order.
        const bad = { ...pg, listenPort: 22, allowedCidrs: ["10.0.0.0/8", "10.0.0.0/8"], healthCheckPath: "/h", weight: 5, sticky: true, maintenance: [9] };
        const steps: [Record<string, unknown>, RegExp][] = [
            [{}, /^service-discovery:services\[0\]\.listenPort: 22 /],
            [{ listenPort: 5432 }, /^service-discovery:services\[0\]\.allowedCidrs\[1\]: /],
            [{ listenPort: 5432, allowedCidrs: [] }, /^service-discovery:services\[0\]\.healthCheckPath: /],
            [{ listenPort: 5432, allowedCidrs: [], healthCheckPath: undefined }, /^service-discovery:services\[0\]\.weight: 5 /],
            [{ listenPort: 5432, allowedCidrs: [], healthCheckPath: undefined, weight: undefined }, /^service-discovery:services\[0\]\.sticky: true /],
            [
                { listenPort: 5432, allowedCidrs: [], healthCheckPath: undefined, weight: undefined, sticky: undefined },
                /^service-discovery:services\[0\]\.maintenance\[0\]: 9 /,
            ],
        ];
        for (const [fix, expected] of steps) {
            const s = JSON.parse(JSON.stringify({ ...bad, ...fix }));
            assert.match(messageOf([s]), expected, JSON.stringify(fix));
        }
        // Every fault of every service before any rule between services, in the order of the services.
        assert.match(messageOf([pg, { ...pg, name: "pg2" }, { ...v1, sticky: true }]), /^service-discovery:services\[2\]\.sticky: /);
        assert.match(
            messageOf([
                { ...v1, weight: 1 },
                { ...pg, name: "hello" },
                { ...pg, name: "pg2" },
            ]),
            /^service-discovery:services\[2\]\.listenPort: 5432 .*also at services\[1\]/,
        );
    });

    it("the same config always fails with the same message", () => {
        const services = [{ ...v1, weight: 90, sticky: true }, { ...v2, weight: 10 }, pg, { ...pg, name: "other" }];
        const messages = new Set<string>();
        for (let i = 0; i < 5; i++) messages.add(messageOf(services));
        assert.deepEqual([...messages], [`${P}:services[3].listenPort: 5432 is not allowed; expected each listenPort once (also at services[2])`]);
    });
});

describe("traffic config: what the components take from it", () => {
    it("the KV keys: check for http, listen for tcp, the replicas, weight, maintenance (all or container names), one sticky key per split", () => {
        const s = parse([
            { ...v1, replicas: 3, weight: 90, sticky: true, maintenance: [3, 1] },
            { ...v2, weight: 10, sticky: true, healthCheckPath: "/ready" },
            { name: "hello", version: "v3", build: "components/images/hello", maintenance: true },
            { ...pg, replicas: 2, maintenance: true },
            { name: "api", version: "v1", image: "example/api:1.0", weight: 0 },
        ]);
        assert.deepEqual(serviceKeys(s.services), [
            { path: "service/haproxy/services/hello-v1/check", value: "/health", delete: true },
            { path: "service/haproxy/services/hello-v1/replicas", value: "dev-hello-v1-1 dev-hello-v1-2 dev-hello-v1-3", delete: true },
            { path: "service/haproxy/services/hello-v1/weight", value: "90", delete: true },
            { path: "service/haproxy/services/hello-v1/maintenance", value: "dev-hello-v1-3 dev-hello-v1-1", delete: true },
            { path: "service/haproxy/services/hello-v2/check", value: "/ready", delete: true },
            { path: "service/haproxy/services/hello-v2/replicas", value: "dev-hello-v2-1", delete: true },
            { path: "service/haproxy/services/hello-v2/weight", value: "10", delete: true },
            { path: "service/haproxy/services/hello-v3/check", value: "/health", delete: true },
            { path: "service/haproxy/services/hello-v3/replicas", value: "dev-hello-v3-1", delete: true },
            { path: "service/haproxy/services/hello-v3/maintenance", value: "all", delete: true },
            { path: "service/haproxy/services/pg/listen", value: "5432", delete: true },
            { path: "service/haproxy/services/pg/replicas", value: "dev-pg-1 dev-pg-2", delete: true },
            { path: "service/haproxy/services/pg/maintenance", value: "all", delete: true },
            { path: "service/haproxy/services/api-v1/check", value: "/health", delete: true },
            { path: "service/haproxy/services/api-v1/replicas", value: "dev-api-v1-1", delete: true },
            { path: "service/haproxy/services/api-v1/weight", value: "0", delete: true },
            { path: "service/haproxy/routes/hello/sticky", value: "true", delete: true },
        ]);
    });

    it("no sticky key for a split that is not sticky", () => {
        const s = parse([
            { ...v1, weight: 50 },
            { ...v2, weight: 50 },
        ]);
        assert.deepEqual(
            serviceKeys(s.services).map((k) => k.path),
            [
                "service/haproxy/services/hello-v1/check",
                "service/haproxy/services/hello-v1/replicas",
                "service/haproxy/services/hello-v1/weight",
                "service/haproxy/services/hello-v2/check",
                "service/haproxy/services/hello-v2/replicas",
                "service/haproxy/services/hello-v2/weight",
            ],
        );
    });

    it("the gateway binds the lowest port it listens on without privileges, and refuses its listeners as backends", () => {
        assert.equal(unprivilegedPortStart(parse([v1])), 80);
        assert.equal(unprivilegedPortStart(parse([pg])), 80, "5432 is above 80");
        assert.equal(unprivilegedPortStart(parse([pg, { ...pg, name: "smtp", listenPort: 25 }, { ...pg, name: "x", listenPort: 79 }])), 25);
        assert.equal(unprivilegedPortStart(parse([{ ...pg, listenPort: 1 }])), 1);
        assert.deepEqual(trustRuleEnv(parse([v1, pg, { ...pg, name: "smtp", listenPort: 25 }])), [
            "GATEWAY_NODE_PORTS=80 443 1936 8501 8600 22 5432 25",
            "GATEWAY_TRUSTED_PROXIES=",
        ]);
    });
});
