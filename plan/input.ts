// What the gateway will see once the stack runs, computed from its config alone: the KV keys the
// program writes (components/gateway-kv.ts, gatewayKeys) and one healthy instance per declared
// replica, registered as Registrator registers it on the node the program places it on
// (components/service.ts). Fed to the gateway's own model (controller/model.ts), this gives the
// route table users will be routed by.
//
// What the program learns only at `pulumi up` is assumed, the same way on both sides of a diff:
// node addresses of virtualbox and aws nodes (inside their network), published host ports, and
// the replicas' generation suffix. None of them decides a route.
import { parseSettings, type RawConfig, type Settings } from "../components/config";
import { gatewayKeys } from "../components/gateway-kv";
import { networksOf, trustRuleEnv } from "../components/gateway";
import { registersContainerAddresses } from "../components/nodes";
import type { CatalogNode, ModelInput, StackSettings } from "../components/images/gateway/controller/model";

/** The address of the n-th (0-based) host of an IPv4 CIDR block, counted from its start + 10. */
function hostIn(cidr: string, n: number): string {
    const [base, prefix] = cidr.split("/") as [string, string];
    const start = base.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(prefix));
    const at = Math.floor(start / size) * size + ((10 + n) % Math.max(1, size - 2));
    return [24, 16, 8, 0].map((shift) => Math.floor(at / 2 ** shift) % 256).join(".");
}

export interface AssumedNode {
    readonly name: string;
    readonly address: string;
    readonly subnet: string;
    readonly registersContainerAddresses: boolean;
}

/** The nodes as components/nodes.ts names and addresses them (addresses assumed where only `pulumi up` knows them). */
export function assumedNodes(settings: Settings): AssumedNode[] {
    return Array.from({ length: settings.nodeCount }, (_, i) => {
        const address =
            settings.target === "local"
                ? settings.network.gateway
                : settings.target === "hosts"
                  ? settings.hosts[i]!.address
                  : settings.target === "aws"
                    ? hostIn(settings.aws.vpcCidr, i)
                    : hostIn("192.168.99.0/24", 90 + i); // docker-machine's VirtualBox host-only network
        return {
            name: `${settings.stack}-node-${i + 1}`,
            address,
            subnet: settings.network.subnet,
            registersContainerAddresses: registersContainerAddresses(settings.target),
        };
    });
}

/** A generation suffix for every replica: the real one is a hash only `pulumi up` computes; the gateway matches replicas without it. */
const GENERATION = "00000000";
/** The first of Docker's ephemeral host ports, where a replica is published (not on local). */
const FIRST_PUBLISHED_PORT = 32768;

/** The gateway's model input for a stack's settings. */
export function modelInput(settings: Settings): ModelInput {
    const nodes = assumedNodes(settings);
    const networks = networksOf(settings, nodes);
    const kv = new Map<string, string>();
    for (const k of gatewayKeys(settings.haproxy, settings.services, networks, settings.gateway.routeUndeclared)) kv.set(k.path, k.value);

    const catalog = new Map<string, CatalogNode & { services: CatalogNode["services"][number][] }>(
        nodes.map((n) => [n.name, { node: n.name, address: n.address, services: [] }]),
    );
    let k = 0;
    for (const s of settings.services) {
        s.containerNames.forEach((container, i) => {
            // components/service.ts: replica i runs on node i mod nodeCount.
            const node = nodes[i % nodes.length]!;
            const n = k++;
            const address = node.registersContainerAddresses ? hostIn(node.subnet, n) : node.address;
            const port = node.registersContainerAddresses ? s.containerPort : FIRST_PUBLISHED_PORT + n;
            catalog.get(node.name)!.services.push({
                id: `${node.name}:${container}-${GENERATION}:${s.containerPort}`,
                service: s.consulName,
                address,
                port,
                tags: s.protocol === "tcp" ? ["tcp"] : ["rest", `check=${s.healthCheckPath}`],
            });
        });
    }

    const env = new Map(trustRuleEnv(settings).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    const stack: StackSettings = {
        httpPort: "80",
        statsPort: "1936",
        backendNetworks: "",
        nodeNetworks: "",
        trustedProxies: env.get("GATEWAY_TRUSTED_PROXIES") ?? "",
        ownAddresses: "",
        nodePorts: env.get("GATEWAY_NODE_PORTS") ?? "",
        fdLimit: "1048576",
        maxconnLimit: "",
        // The HTTPS listener, when the stack has one: a tcp service's hosts are passed through on it.
        tlsSource: settings.gateway.tls.source,
        httpsPort: String(settings.gateway.httpsPort),
    };
    return { kv, nodes: [...catalog.values()], settings: stack };
}

/** A stack's raw config as Pulumi stores it in Pulumi.<stack>.yaml, without the project prefix; secrets left out (no route depends on one). */
export function rawConfig(config: Record<string, unknown>, project = "service-discovery"): RawConfig {
    const raw: RawConfig = {};
    for (const [key, value] of Object.entries(config)) {
        if (!key.startsWith(`${project}:`)) continue;
        if (value !== null && typeof value === "object" && "secure" in (value as object)) continue;
        raw[key.slice(project.length + 1)] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return raw;
}

export function settingsOf(raw: RawConfig, stack: string): Settings {
    return parseSettings(raw, stack);
}
