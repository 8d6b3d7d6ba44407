// Types shared by the e2e applier (applier.ts) and its per-type modules.
import { type Docker } from "../harness/docker";
import { type RegistratorEmulator } from "../harness/registrator";

export type Obj = Record<string, any>;

export interface Applied {
    type: string;
    name: string;
    id: string;
    /** Inputs with secrets unwrapped, canonical JSON. */
    inputsKey: string;
    inputs: Obj;
    outputs: Obj;
    /** The provider reference it was applied with ("" for none): what deleting it goes through. */
    provider?: string;
}

export interface ApplierOptions {
    /** The Registrator image: when it is missing locally, its container is emulated. */
    registratorImage: string;
    /** Value of the E2E label on everything created (one per run). */
    runId: string;
    /** Where the engine's socket is on this machine, when it is a unix socket. */
    engineSocket?: string;
    /**
     * How this machine reaches a container's address on one of the engine's networks, as a
     * DOCKER_HOST-style endpoint. Unset: directly (tcp://address:port), the engine's networks being
     * routed here; an engine in a network namespace of its own needs a way in (test/cluster).
     */
    reachContainer?: (address: string, port: number) => Promise<string>;
}

/** What the per-type appliers read and record: the Applier's engine, options and state. */
export interface ApplierScope {
    readonly docker: Docker;
    readonly options: ApplierOptions;
    readonly state: Map<string, Applied>;
    readonly created: { kind: "container" | "network" | "volume"; name: string }[];
    readonly containers: Map<string, Obj>;
    readonly findings: string[];
    readonly emulated: string[];
    registrator?: RegistratorEmulator;
    registratorEngine?: { dockerHost: string; container?: string; endpoint: string };
}
