// The gateway's keys in Consul's KV store (service/haproxy/), managed by Pulumi: `pulumi up`
// changes them and the gateway's controller applies them. The gateway has a default for every
// key, so deleting one restores the default. The keys: HAProxy's maxconn and timeouts, the caps
// of the trust rules and the budgets of clients and servers (limits/*), where servers may lie
// (networks/*), each declared http service's
// health-check path (services/<consul name>/check), which no instance's check= tag can override,
// and the traffic settings (docs/traffic-control.md): a tcp service's listener
// (services/<consul name>/listen), a version's weight in the split of its unversioned path
// (services/<consul name>/weight), the instances in maintenance (services/<consul name>/maintenance),
// a sticky split (routes/<name>/sticky), a service's own budgets (services/<consul name>/maxconn,
// /rate, /idle-timeout), the host names it is routed by (services/<consul name>/hosts) and a tcp
// service's TLS host names passed through by SNI on the HTTPS port (services/<consul name>/sni). Routes
// belong to declared replicas (docs/security.md): each declared service's replica names
// (services/<consul name>/replicas), the only containers whose instances of it are routed, and
// whether services the stack does not declare are routed (routing/undeclared).
import * as consul from "@pulumi/consul";
import * as pulumi from "@pulumi/pulumi";
import { HaproxySettings, ServiceSettings } from "./config";
import { KV_KEYS, KV_PREFIX } from "./images/gateway/controller/rules";

// The prefix and the key names are the gateway's (controller/rules.ts): one home for both sides.
export { KV_PREFIX };

export interface GatewayKvArgs {
    readonly haproxy: HaproxySettings;
    /** The services the stack declares: their check path, and they are routed first under the cap. */
    readonly services: readonly ServiceSettings[];
    /** Where servers may lie, and which addresses are nodes (components/gateway.ts backendNetworks). */
    readonly networks: pulumi.Input<{ backends: string; nodes: string }>;
    /** gateway.routeUndeclared: route services no container of the stack registers. */
    readonly routeUndeclared: boolean;
    readonly provider: consul.Provider;
}

/** KV key of a service's health-check path, read by the gateway's controller. */
export function serviceCheckKey(consulName: string): string {
    return `${KV_PREFIX}/${KV_KEYS.service(consulName, "check")}`;
}

/** The per-service and per-route keys the stack's services declare, in the order of the services. */
export function serviceKeys(services: readonly ServiceSettings[]): { path: string; value: string; delete: true }[] {
    const key = (path: string, value: string) => ({ path: `${KV_PREFIX}/${path}`, value, delete: true as const });
    const keys = services.flatMap((s) => [
        ...(s.protocol === "tcp"
            ? s.listenPort !== undefined
                ? [key(KV_KEYS.service(s.consulName, "listen"), String(s.listenPort))]
                : []
            : [{ path: serviceCheckKey(s.consulName), value: s.healthCheckPath, delete: true as const }]),
        // The replicas' names without their generation (components/service.ts): known before
        // `pulumi up`, and the gateway matches a replaced replica's new container by them.
        key(KV_KEYS.service(s.consulName, "replicas"), s.containerNames.join(" ")),
        ...(s.weight !== undefined ? [key(KV_KEYS.service(s.consulName, "weight"), String(s.weight))] : []),
        ...(s.maintenanceInstances === undefined
            ? []
            : [key(KV_KEYS.service(s.consulName, "maintenance"), s.maintenanceInstances === "all" ? "all" : s.maintenanceInstances.join(" "))]),
        ...(s.connectionsPerInstance !== undefined ? [key(KV_KEYS.service(s.consulName, "maxconn"), String(s.connectionsPerInstance))] : []),
        ...(s.requestsPerClient !== undefined ? [key(KV_KEYS.service(s.consulName, "rate"), String(s.requestsPerClient))] : []),
        ...(s.idleTimeout !== undefined ? [key(KV_KEYS.service(s.consulName, "idle-timeout"), s.idleTimeout)] : []),
        // An http service is routed by these names (Host header); a tcp service's TLS is passed through by them (SNI).
        ...(s.hosts.length > 0 ? [key(KV_KEYS.service(s.consulName, s.protocol === "tcp" ? "sni" : "hosts"), s.hosts.join(" "))] : []),
    ]);
    // Config validation makes every weighted version of a name agree: one key per split.
    const sticky = [...new Set(services.filter((s) => s.weight !== undefined && s.sticky).map((s) => s.name))];
    return [...keys, ...sticky.map((name) => key(KV_KEYS.sticky(name), "true"))];
}

/** The type this component had as GatewaySettings (components/settings.ts): kept as an alias. */
export const GATEWAY_KV_FORMER_TYPE = "service-discovery:settings:GatewaySettings";

/**
 * Every key the stack writes, in order: the global settings, the services' keys, and where
 * servers may lie. Pure, so `npm run plan` computes the route table from exactly these keys.
 */
export function gatewayKeys<N>(
    haproxy: HaproxySettings,
    services: readonly ServiceSettings[],
    networks: { backends: N; nodes: N },
    routeUndeclared: boolean,
): { path: string; value: string | N; delete: true }[] {
    const key = <V>(path: string, value: V) => ({ path: `${KV_PREFIX}/${path}`, value, delete: true as const });
    return [
        key(KV_KEYS.maxconn, String(haproxy.maxconn)),
        key(KV_KEYS.timeoutConnect, haproxy.timeouts.connect),
        key(KV_KEYS.timeoutClient, haproxy.timeouts.client),
        key(KV_KEYS.timeoutServer, haproxy.timeouts.server),
        key(KV_KEYS.timeoutHttpRequest, haproxy.timeouts.httpRequest),
        key(KV_KEYS.timeoutHttpKeepAlive, haproxy.timeouts.httpKeepAlive),
        key(KV_KEYS.timeoutTcpIdle, haproxy.timeouts.tcpIdle),
        key(KV_KEYS.limitServices, String(haproxy.maxServices)),
        key(KV_KEYS.limitInstances, String(haproxy.maxInstancesPerService)),
        key(KV_KEYS.limitClientConnections, String(haproxy.connectionsPerClient)),
        key(KV_KEYS.limitClientRate, String(haproxy.requestsPerClient)),
        key(KV_KEYS.limitBodySize, String(haproxy.maxBodyBytes)),
        key(KV_KEYS.limitServerMaxconn, String(haproxy.connectionsPerInstance)),
        key(KV_KEYS.routeUndeclared, String(routeUndeclared)),
        ...serviceKeys(services),
        // Adding a node updates these in place: the gateways re-render, none is replaced.
        key(KV_KEYS.networkBackends, networks.backends),
        key(KV_KEYS.networkNodes, networks.nodes),
    ];
}

export class GatewayKv extends pulumi.ComponentResource {
    public readonly keys: consul.Keys;

    constructor(name: string, args: GatewayKvArgs, opts?: pulumi.ComponentResourceOptions) {
        // The alias keeps the URNs of stacks created before the rename (this component's and,
        // through it, its keys'), so `pulumi up` neither deletes nor recreates the KV keys.
        super("service-discovery:gateway:GatewayKv", name, {}, pulumi.mergeOptions(opts, { aliases: [{ type: GATEWAY_KV_FORMER_TYPE }] }));
        const networks = pulumi.output(args.networks);
        this.keys = new consul.Keys(
            name,
            {
                keys: gatewayKeys(
                    args.haproxy,
                    args.services,
                    { backends: networks.apply((n) => n.backends), nodes: networks.apply((n) => n.nodes) },
                    args.routeUndeclared,
                ),
            },
            { parent: this, provider: args.provider },
        );
        this.registerOutputs({});
    }
}
