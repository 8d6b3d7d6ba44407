// The one place the tests reach past @pulumi/pulumi's documented mock API, kept small on purpose.
// Why: Mocks.newResource() is handed a resource's type, name, inputs and provider, but not its
// parent, its dependencies, deleteBeforeReplace or ignoreChanges, which the graph tests assert; only the
// registration request the SDK sends to its resource monitor carries them. The monitor is reached
// through the public pulumi.runtime.getMonitor() (after setMocks it is the mock monitor); the
// request is the engine protocol's RegisterResourceRequest (proto/pulumi/resource.proto).
// test/unit/pulumi-monitor.test.ts fails loudly when either changes shape on an SDK upgrade.
import * as pulumi from "@pulumi/pulumi";

/** What a registration request says beyond what Mocks.newResource() is handed. */
export interface RegistrationExtras {
    type: string;
    name: string;
    /** URN of the parent ("" for none). */
    parent: string;
    /** URNs the resource depends on: dependsOn and the resources its inputs come from. */
    dependencies: string[];
    deleteBeforeReplace: boolean;
    /** Whether the program set deleteBeforeReplace at all (unset: the provider's default decides). */
    deleteBeforeReplaceDefined: boolean;
    /** The aliases the resource was declared with: the former names and types it keeps the URNs of. */
    aliases: { name: string; type: string }[];
    /** The ignoreChanges resource option: inputs whose changes never update or replace the resource. */
    ignoreChanges: string[];
}

/** The getters of RegisterResourceRequest read here. */
const GETTERS = [
    "getType",
    "getName",
    "getParent",
    "getDependenciesList",
    "getDeletebeforereplace",
    "getDeletebeforereplacedefined",
    "getAliasesList",
    "getIgnorechangesList",
] as const;
type Request = Record<(typeof GETTERS)[number], () => unknown>;

const WHERE = "test/support/pulumi-monitor.ts";

/** Reads a registration request; throws naming what is missing when its shape changed. */
export function readRegistration(req: unknown): RegistrationExtras {
    const missing = GETTERS.filter((g) => typeof (req as Record<string, unknown> | undefined)?.[g] !== "function");
    if (missing.length > 0) {
        throw new Error(
            `${WHERE}: the resource monitor's registration request has no ${missing.join(", ")}: @pulumi/pulumi changed its RegisterResourceRequest; adapt ${WHERE}`,
        );
    }
    const r = req as Request;
    const extras = {
        type: r.getType(),
        name: r.getName(),
        parent: r.getParent(),
        dependencies: r.getDependenciesList(),
        deleteBeforeReplace: r.getDeletebeforereplace(),
        deleteBeforeReplaceDefined: r.getDeletebeforereplacedefined(),
        aliases: (r.getAliasesList() as { toObject(): { spec?: { name?: string; type?: string } } }[]).map((a) => ({
            name: a.toObject().spec?.name ?? "",
            type: a.toObject().spec?.type ?? "",
        })),
        ignoreChanges: r.getIgnorechangesList(),
    };
    if (
        typeof extras.type !== "string" ||
        typeof extras.name !== "string" ||
        typeof extras.parent !== "string" ||
        !Array.isArray(extras.dependencies) ||
        typeof extras.deleteBeforeReplace !== "boolean" ||
        typeof extras.deleteBeforeReplaceDefined !== "boolean" ||
        !Array.isArray(extras.ignoreChanges)
    ) {
        throw new Error(`${WHERE}: unexpected registration request fields ${JSON.stringify(extras)}: adapt ${WHERE}`);
    }
    return extras as RegistrationExtras;
}

/**
 * Calls `record` with each registration's extras, before the mocks' newResource() sees it.
 * Call after pulumi.runtime.setMocks() and before the program declares anything.
 */
export function recordRegistrations(record: (extras: RegistrationExtras) => void): void {
    const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource?: (req: unknown, ...rest: unknown[]) => unknown } | undefined;
    const original = monitor?.registerResource;
    if (!monitor || typeof original !== "function") {
        throw new Error(
            `${WHERE}: pulumi.runtime.getMonitor() gives no resource monitor with registerResource after setMocks(): @pulumi/pulumi changed how mocks are wired; adapt ${WHERE}`,
        );
    }
    monitor.registerResource = function (this: unknown, req: unknown, ...rest: unknown[]) {
        record(readRegistration(req));
        return original.call(monitor, req, ...rest);
    };
}
