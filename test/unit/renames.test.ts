// Renamed components keep their former URNs as aliases: a stack created before the rename
// must see the same resources on its next `pulumi up`, not a delete and a create. For the KV
// keys that would mean a moment with the keys gone (the gateway falling back to defaults)
// and, on delete, the keys removed after the new ones were written.
// Runs the component under Pulumi's mocks in this process and computes the aliases the way
// the SDK does for an existing stack (pulumi.allAliases, pulumi.createUrn).
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as consul from "@pulumi/consul";
import * as pulumi from "@pulumi/pulumi";
import { readSettings } from "../../components/config";
import { GatewayKv } from "../../components/gateway-kv";
import { stackConfig } from "../support/program";

const PREFIX = "urn:pulumi:dev::service-discovery::";
const value = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply(resolve));

describe("renames: GatewayKv (was GatewaySettings in components/settings.ts)", () => {
    let kv: GatewayKv;
    const aliasesOf = new Map<string, pulumi.Input<string | pulumi.Alias>[]>();

    before(() => {
        pulumi.runtime.setMocks(
            {
                newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
                call: () => ({}),
            },
            "service-discovery",
            "dev",
            false,
        );
        pulumi.runtime.setAllConfig(stackConfig("dev"));
        const settings = readSettings();
        const provider = new consul.Provider("kv-provider", { address: "https://consul:8501" });
        kv = new GatewayKv(
            "haproxy-settings",
            {
                haproxy: settings.haproxy,
                services: settings.services,
                networks: { backends: "172.28.0.0/24", nodes: "172.28.0.1/32" },
                routeUndeclared: false,
                provider,
            },
            {
                // Sees each resource's options as the component passes them on.
                transformations: [
                    (args) => {
                        aliasesOf.set(`${args.type}::${args.name}`, [...(args.opts.aliases ?? [])]);
                        return undefined;
                    },
                ],
            },
        );
    });

    it("has its new type, so the test below is not vacuous", async () => {
        assert.equal(await value(kv.urn), `${PREFIX}service-discovery:gateway:GatewayKv::haproxy-settings`);
        assert.equal(await value(kv.keys.urn), `${PREFIX}service-discovery:gateway:GatewayKv$consul:index/keys:Keys::haproxy-settings`);
    });

    it("aliases the component to its former URN", async () => {
        const aliases = aliasesOf.get("service-discovery:gateway:GatewayKv::haproxy-settings");
        assert.ok(aliases, "the component was registered");
        const urns = await Promise.all(
            aliases.map(async (a) => {
                const alias = await value(pulumi.output(a));
                return typeof alias === "string"
                    ? alias
                    : value(pulumi.createUrn(alias.name ?? "haproxy-settings", alias.type ?? "service-discovery:gateway:GatewayKv"));
            }),
        );
        assert.deepEqual(urns, [`${PREFIX}service-discovery:settings:GatewaySettings::haproxy-settings`]);
    });

    it("so its KV keys keep their URN of before the rename", async () => {
        const inherited = await Promise.all(pulumi.allAliases([], "haproxy-settings", "consul:index/keys:Keys", kv, "haproxy-settings").map(value));
        assert.deepEqual(inherited, [`${PREFIX}service-discovery:settings:GatewaySettings$consul:index/keys:Keys::haproxy-settings`]);
    });
});
