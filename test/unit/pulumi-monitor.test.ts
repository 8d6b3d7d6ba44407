// What the graph tests take from @pulumi/pulumi beyond its documented mock API, checked against
// the installed SDK: the registration extras (parent, dependencies, deleteBeforeReplace) read by
// test/support/pulumi-monitor.ts, and secrets in the wire form test/support/secrets.ts reads.
// If an SDK upgrade changes either, these fail here, by name, instead of every graph test
// silently losing its parents or secrets.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { readRegistration, recordRegistrations, type RegistrationExtras } from "../support/pulumi-monitor";
import { isWireSecret, mapSecrets, SECRET_SIG, SECRET_SIG_KEY } from "../support/secrets";

class Parent extends pulumi.ComponentResource {
    constructor(name: string) {
        super("test:index:Parent", name, {}, {});
        this.registerOutputs({});
    }
}

class Thing extends pulumi.CustomResource {
    constructor(name: string, props: pulumi.Inputs, opts: pulumi.CustomResourceOptions = {}) {
        super("test:index:Thing", name, props, opts);
    }
}

class TestProvider extends pulumi.ProviderResource {
    constructor(name: string) {
        super("test", name, {}, {});
    }
}

const urnOf = (r: pulumi.Resource): Promise<string> => new Promise((resolve) => r.urn.apply(resolve));
const idOf = (r: pulumi.CustomResource): Promise<string> => new Promise((resolve) => r.id.apply(resolve));

describe("Pulumi SDK: what the graph tests read past the mock API", () => {
    const extras = new Map<string, RegistrationExtras>();
    const mocked = new Map<string, pulumi.runtime.MockResourceArgs>();
    const urns: Record<string, string> = {};
    let providerRef = "";

    before(async () => {
        pulumi.runtime.setMocks(
            {
                newResource(args: pulumi.runtime.MockResourceArgs) {
                    mocked.set(args.name, args);
                    return { id: `${args.name}-id`, state: args.inputs };
                },
                call() {
                    return {};
                },
            },
            "project",
            "stack",
            false,
        );
        recordRegistrations((e) => extras.set(e.name, e));

        const parent = new Parent("parent");
        const first = new Thing("first", { value: "plain" }, { parent });
        const other = new Thing("other", {}, { deleteBeforeReplace: false });
        const provider = new TestProvider("prov");
        const second = new Thing(
            "second",
            {
                fromFirst: first.id,
                secret: pulumi.secret("s3cret"),
                nested: [{ deep: pulumi.secret("d") }],
            },
            { parent, dependsOn: [other], provider, deleteBeforeReplace: true, aliases: [{ name: "former", type: "test:index:Former" }] },
        );
        // Drains the registrations, as evaluate.ts does before it reports.
        await pulumi.runtime.disconnect();
        for (const [name, r] of Object.entries({ parent, first, other, prov: provider, second })) urns[name] = await urnOf(r);
        providerRef = `${urns.prov}::${await idOf(provider)}`;
    });

    it("reads every registration, all answered once disconnect() has drained them", () => {
        assert.deepEqual([...extras.keys()].sort(), ["first", "other", "parent", "prov", "second"]);
        assert.deepEqual([...mocked.keys()].sort(), ["first", "other", "parent", "prov", "second"]);
        for (const urn of Object.values(urns)) assert.match(urn, /^urn:pulumi:stack::project::/);
    });

    it("reads the parent, the dependencies (dependsOn and inputs) and deleteBeforeReplace of a resource", () => {
        const second = extras.get("second")!;
        assert.equal(second.type, "test:index:Thing");
        assert.equal(second.parent, urns.parent);
        assert.deepEqual([...second.dependencies].sort(), [urns.first, urns.other].sort());
        assert.equal(second.deleteBeforeReplace, true);
        assert.equal(second.deleteBeforeReplaceDefined, true);
    });

    it("reads the aliases a resource keeps the URNs of, and none where none were set", () => {
        assert.deepEqual(extras.get("second")!.aliases, [{ name: "former", type: "test:index:Former" }]);
        assert.deepEqual(extras.get("first")!.aliases, []);
    });

    it("tells deleteBeforeReplace set to false from not set (the provider's default decides then)", () => {
        assert.deepEqual([extras.get("other")!.deleteBeforeReplace, extras.get("other")!.deleteBeforeReplaceDefined], [false, true]);
        assert.deepEqual([extras.get("first")!.deleteBeforeReplace, extras.get("first")!.deleteBeforeReplaceDefined], [false, false]);
    });

    it("reads none of them where the program set none", () => {
        const first = extras.get("first")!;
        assert.equal(first.parent, urns.parent);
        assert.deepEqual(first.dependencies, []);
        assert.equal(first.deleteBeforeReplace, false);
        assert.equal(first.deleteBeforeReplaceDefined, false);
        assert.equal(extras.get("other")!.parent, "");
    });

    it("gets the provider reference from the public mock arguments", () => {
        assert.equal(mocked.get("second")!.provider, providerRef);
        assert.match(providerRef, /^urn:pulumi:stack::project::pulumi:providers:test::prov::prov-id$/);
    });

    it("hands secret inputs to the mocks in the wire form whose signature the SDK exports", () => {
        assert.equal(typeof SECRET_SIG_KEY, "string");
        assert.equal(typeof SECRET_SIG, "string");
        assert.match(SECRET_SIG_KEY, /^[0-9a-f]{32}$/);
        assert.match(SECRET_SIG, /^[0-9a-f]{32}$/);
        const inputs = mocked.get("second")!.inputs as Record<string, unknown>;
        assert.ok(isWireSecret(inputs.secret), `wire form: ${JSON.stringify(inputs.secret)}`);
        assert.deepEqual(
            mapSecrets(inputs, (v) => ({ $secret: v })),
            {
                fromFirst: "first-id",
                secret: { $secret: "s3cret" },
                // The SDK lifts a secret inside a list to the whole list.
                nested: { $secret: [{ deep: "d" }] },
            },
        );
        assert.equal(isWireSecret(mocked.get("first")!.inputs.value), false);
    });

    it("maps secrets at any depth, secrets inside secrets included", () => {
        const wire = (value: unknown): Record<string, unknown> => ({ [SECRET_SIG_KEY]: SECRET_SIG, value });
        assert.deepEqual(
            mapSecrets({ a: [1, wire({ b: wire("x"), c: "y" })], d: { [SECRET_SIG_KEY]: "another signature", value: "z" } }, (v) => ({ $secret: v })),
            { a: [1, { $secret: { b: { $secret: "x" }, c: "y" } }], d: { [SECRET_SIG_KEY]: "another signature", value: "z" } },
        );
        assert.deepEqual(
            mapSecrets([wire(wire("x"))], (v) => v),
            ["x"],
        );
    });

    it("fails by name when the registration request changes shape", () => {
        assert.throws(
            () => readRegistration({}),
            /has no getType, getName, getParent, getDependenciesList, getDeletebeforereplace, getDeletebeforereplacedefined, getAliasesList, getIgnorechangesList: @pulumi\/pulumi changed/,
        );
        const wrong = {
            getType: () => "t",
            getName: () => "n",
            getParent: () => "",
            getDependenciesList: () => "not a list",
            getDeletebeforereplace: () => false,
            getDeletebeforereplacedefined: () => false,
            getAliasesList: () => [],
            getIgnorechangesList: () => [],
        };
        assert.throws(
            () => readRegistration({ ...wrong, getDependenciesList: () => [], getDeletebeforereplacedefined: () => "no" }),
            /unexpected registration request fields/,
        );
        assert.throws(() => readRegistration(wrong), /unexpected registration request fields/);
        assert.throws(
            () => readRegistration({ ...wrong, getDependenciesList: () => [], getIgnorechangesList: () => "ami" }),
            /unexpected registration request fields/,
        );
    });
});
