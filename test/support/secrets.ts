// Pulumi's wire form of a secret, {[specialSigKey]: specialSecretSig, value}, as the mocks hand
// inputs to newResource. The signature is the SDK's own public export, not a copy of its value.
import * as pulumi from "@pulumi/pulumi";

export const SECRET_SIG_KEY: string = pulumi.runtime.specialSigKey;
export const SECRET_SIG: string = pulumi.runtime.specialSecretSig;

/** Whether `value` is a secret in Pulumi's wire form. */
export function isWireSecret(value: unknown): value is { value: unknown } {
    return !!value && typeof value === "object" && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** Copies `value` with each wire-form secret replaced by onSecret(its value, itself mapped), at any depth. */
export function mapSecrets(value: unknown, onSecret: (inner: unknown) => unknown): unknown {
    const walk = (v: unknown): unknown => {
        if (Array.isArray(v)) return v.map(walk);
        if (isWireSecret(v)) return onSecret(walk(v.value));
        if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
        return v;
    };
    return walk(value);
}
