// The e2e applier's input checks: each resource type's allow-list of input keys (an input it does
// not apply fails the run loudly), and the value parsers its appliers share.
import { mapSecrets } from "../../support/secrets";
import { type Obj } from "./scope";

/** Pulumi's wire form of a secret, {sig, value}, replaced by the value, recursively. */
export function unwrapSecrets(value: unknown): unknown {
    return mapSecrets(value, (inner) => inner);
}

/** Stable JSON (sorted keys), for comparing inputs between evaluations. */
export function canonical(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
        const obj = value as Record<string, unknown>;
        return `{${Object.keys(obj)
            .filter((k) => obj[k] !== undefined)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`)
            .join(",")}}`;
    }
    return JSON.stringify(value);
}

/** Checks an input object against its allow-list: unknown keys and missing required keys throw. */
export function allow(where: string, value: unknown, required: readonly string[], optional: readonly string[] = []): Obj {
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: expected an object, got ${JSON.stringify(value)}`);
    const obj = value as Obj;
    const unknown = Object.keys(obj).filter((k) => obj[k] !== undefined && !required.includes(k) && !optional.includes(k));
    if (unknown.length > 0) {
        throw new Error(
            `${where}: input ${unknown.map((k) => `${k}=${JSON.stringify(obj[k])}`).join(", ")} is not applied by the e2e applier (test/e2e/applier/index.ts); teach it, or the test engine would silently differ from the program`,
        );
    }
    const missing = required.filter((k) => obj[k] === undefined);
    if (missing.length > 0) throw new Error(`${where}: required input ${missing.join(", ")} missing`);
    return obj;
}

export function list(where: string, value: unknown): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
    return value;
}

export function strings(where: string, value: unknown): string[] {
    return list(where, value).map((v, i) => {
        if (typeof v !== "string") throw new Error(`${where}[${i}]: expected a string, got ${JSON.stringify(v)}`);
        return v;
    });
}

/** A log driver's options: a map of strings, as the engine takes them. */
export function logOptions(where: string, value: unknown): Record<string, string> | undefined {
    if (value === undefined) return undefined;
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: expected a map, got ${JSON.stringify(value)}`);
    for (const [k, v] of Object.entries(value)) if (typeof v !== "string") throw new Error(`${where}.${k}: expected a string, got ${JSON.stringify(v)}`);
    return value as Record<string, string>;
}

/** Go-style duration ("2s", "500ms", "1m30s") in nanoseconds. */
export function durationNs(where: string, value: unknown): number {
    if (typeof value !== "string" || !/^([0-9.]+(ns|us|µs|ms|s|m|h))+$/.test(value)) throw new Error(`${where}: ${JSON.stringify(value)} is not a duration`);
    const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
    let total = 0;
    for (const m of value.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
    return Math.round(total);
}
