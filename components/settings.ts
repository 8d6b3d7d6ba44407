// HAProxy settings kept in Consul's KV store under service/haproxy/, managed by Pulumi:
// `pulumi up` changes them and consul-template reloads the gateway. The template has a
// default for every key, so deleting one restores the default.
import * as consul from "@pulumi/consul";
import * as pulumi from "@pulumi/pulumi";
import { HaproxySettings } from "./config";

export const KV_PREFIX = "service/haproxy";

export interface GatewaySettingsArgs {
    readonly haproxy: HaproxySettings;
    readonly provider: consul.Provider;
}

export class GatewaySettings extends pulumi.ComponentResource {
    public readonly keys: consul.Keys;

    constructor(name: string, args: GatewaySettingsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:settings:GatewaySettings", name, {}, opts);
        const h = args.haproxy;
        this.keys = new consul.Keys(name, {
            keys: [
                { path: `${KV_PREFIX}/maxconn`, value: String(h.maxconn), delete: true },
                { path: `${KV_PREFIX}/timeouts/connect`, value: h.timeouts.connect, delete: true },
                { path: `${KV_PREFIX}/timeouts/client`, value: h.timeouts.client, delete: true },
                { path: `${KV_PREFIX}/timeouts/server`, value: h.timeouts.server, delete: true },
            ],
        }, { parent: this, provider: args.provider });
        this.registerOutputs({});
    }
}
