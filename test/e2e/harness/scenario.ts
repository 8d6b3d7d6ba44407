// Helpers the scenarios share: requests through the gateway, the hello service's answers,
// Consul's view, container state.
import assert from "node:assert/strict";
import type { HelloResponse as Hello } from "../../support/hello";
import { fatal } from "../../support/wait";
import { eventually, get, type Stack } from "./stack";

export type { Hello };

/** GET through the gateway; the hello service's JSON answer (throws on non-200). */
export async function hello(stack: Stack, path: string): Promise<Hello> {
    const r = await get(`${stack.outputs.gatewayUrl}${path}`);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.trim()}`);
    return JSON.parse(r.body) as Hello;
}

/** `n` requests in a row; the hostnames that answered, in order. */
export async function hostnames(stack: Stack, path: string, n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push((await hello(stack, path)).hostname);
    return out;
}

/** Waits until `n` requests in a row are all answered (200) by exactly the `expected` hosts. */
export function rotationIs(stack: Stack, path: string, expected: readonly string[], timeoutMs = 30_000): Promise<string[]> {
    const want = [...expected].sort().join(",");
    return eventually(
        `${path} answered by exactly ${want}`,
        async () => {
            const seen = await hostnames(stack, path, expected.length * 4);
            const got = [...new Set(seen)].sort().join(",");
            if (got !== want) throw new Error(`answered by ${got}`);
            return seen;
        },
        timeoutMs,
    );
}

/** The declared service containers (Docker names) of a Consul service name, e.g. hello-v1. */
export function replicasOf(stack: Stack, consulName: string): string[] {
    return stack
        .declaredContainers()
        .filter((name) => {
            const envs: string[] = stack.applied.containers.get(name)!.envs;
            return envs.includes(`SERVICE_NAME=${consulName}`);
        })
        .sort();
}

export function hostnameOf(stack: Stack, container: string): string {
    return stack.applied.containers.get(container)!.hostname;
}

/** Consul's HTTPS API as an operator reaches it: the stack's CA and its management token (stack outputs). */
export function operator(stack: Stack): { ca: string; token: string } {
    return { ca: stack.outputs.consulCaPem, token: stack.outputs.consulManagementToken };
}

export async function consulGet<T = any>(stack: Stack, path: string): Promise<T> {
    const api = stack.outputs.consulUiUrl.replace(/\/ui\/?$/, "");
    const r = await get(`${api}${path}`, operator(stack));
    if (r.status !== 200) throw new Error(`consul GET ${path}: ${r.status} ${r.body.trim()}`);
    return JSON.parse(r.body) as T;
}

/** A KV value as Consul stores it, or undefined when the key is absent. */
export async function kvValue(stack: Stack, key: string): Promise<string | undefined> {
    const api = stack.outputs.consulUiUrl.replace(/\/ui\/?$/, "");
    const r = await get(`${api}/v1/kv/${key}?raw`, operator(stack));
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`consul GET kv ${key}: ${r.status} ${r.body.trim()}`);
    return r.body;
}

export async function startedAt(stack: Stack, container: string): Promise<string> {
    return (await stack.docker.inspectContainer(container)).State.StartedAt;
}

/** The gateway's metrics (Prometheus text) through the published stats port. */
/**
 * How many times a gateway's HAProxy master reloaded: `show proc` on its CLI (the master's line
 * carries the count). The image has Node.js (the controller) and no socat: Node speaks to the socket.
 */
export async function masterReloads(stack: Stack, gateway: string): Promise<number> {
    const out = await stack.exec(gateway, [
        "node",
        "-e",
        'const s = require("net").connect("/run/gateway/master.sock"); s.end("show proc\\n"); s.pipe(process.stdout);',
    ]);
    const n = Number(
        out
            .split("\n")
            .find((l) => /\bmaster\b/.test(l))
            ?.trim()
            .split(/\s+/)[2],
    );
    if (!Number.isInteger(n)) throw new Error(`no reload count in the master's "show proc": ${out}`);
    return n;
}

export async function metric(stack: Stack, name: string, path = "/metrics"): Promise<number | undefined> {
    const r = await get(`${stack.outputs.statsUrl.replace(/\/$/, "")}${path}`, { user: stack.outputs.statsUser, password: stack.outputs.statsPassword });
    assert.equal(r.status, 200, `metrics: ${r.status}`);
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(r.body);
    return m ? Number(m[1]) : undefined;
}

/** Waits for Docker's health status of a container. */
export function healthy(stack: Stack, container: string, timeoutMs = 60_000): Promise<true> {
    return eventually(
        `${container} healthy`,
        async () => {
            const c = await stack.docker.inspectContainer(container);
            const status = c.State?.Health?.Status;
            if (status === "unhealthy") {
                const last = (c.State.Health.Log ?? [])
                    .slice(-1)
                    .map((l: any) => `exit ${l.ExitCode}: ${String(l.Output).trim()}`)
                    .join("");
                throw fatal(`${container} is unhealthy; last probe ${last}`);
            }
            return status === "healthy" ? true : undefined;
        },
        timeoutMs,
        500,
    );
}

/** Names of the processes running in a container (from /proc; the images have no ps). */
export async function processes(stack: Stack, container: string): Promise<string[]> {
    // A short-lived process (a check, a reload step) may exit between the glob and the read.
    const out = await stack.exec(container, ["bash", "-c", "cat /proc/[0-9]*/comm 2>/dev/null; true"]);
    return out
        .split("\n")
        .map((s) => s.trim())
        .filter(Boolean);
}
