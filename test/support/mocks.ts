// Shared between the graph tests and the evaluation script: the outputs a provider would
// compute for each resource type, and the shape of what an evaluation reports.

export interface Declared {
    type: string;
    name: string;
    custom: boolean;
    /** Inputs as the program set them; secrets appear as {"$secret": value}. */
    inputs: Record<string, unknown>;
    parent: string;
    dependencies: string[];
    provider: string;
    urn: string;
}

export interface Evaluation {
    resources: Declared[];
    outputs: Record<string, unknown>;
    error: string | null;
}

/** Deterministic stand-ins for provider-computed outputs. */
export function mockOutputs(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> {
    switch (type) {
        case "random:index/randomPassword:RandomPassword":
            return { result: `generated-password-${name}` };
        case "random:index/randomId:RandomId":
            return { b64Std: Buffer.from(`generated-key-${name}`.padEnd(32, "x").slice(0, 32)).toString("base64"), hex: "00" };
        case "docker-build:index:Image":
            return { ref: `${(inputs.tags ?? [name])[0]}@sha256:${"0".repeat(64)}`, digest: `sha256:${"0".repeat(64)}` };
        case "docker:index/remoteImage:RemoteImage":
            return { imageId: `${inputs.name}@sha256:${"1".repeat(64)}`, repoDigest: `${inputs.name}@sha256:${"1".repeat(64)}` };
        default:
            return {};
    }
}
