// The e2e applier's consul.Keys, written through Consul's KV API with the provider's settings,
// updated in place on a later evaluation.
import { waitFor } from "../../support/wait";
import { allow, list } from "./inputs";
import { type Applied, type ApplierScope, type Obj } from "./scope";
import { log } from "../harness/engine";
import * as secure from "./secure-resources";

export async function consulKeys(applier: ApplierScope, where: string, inputs: Obj, provider: Obj, previous?: Applied): Promise<{ id: string; outputs: Obj }> {
    const p = allow(where, inputs, ["keys"]);
    const keys = list(`${where}.keys`, p.keys).map((x, i) => allow(`${where}.keys[${i}]`, x, ["path"], ["value", "delete"]));
    const dc = provider.datacenter ? `?dc=${encodeURIComponent(provider.datacenter)}` : "";
    // Consul answers a write without a leader with 500 "No cluster leader" (after holding it
    // ~7 s), and the provider does not retry. The program waits only for the container's
    // health check; when that passes before a leader exists, record it (a scenario reports
    // it) and wait for the leader, so the rest of the stack can still be exercised.
    if (!previous) {
        const leader = (await kvRequest(provider, "GET", "/v1/status/leader")).replace(/"/g, "").trim();
        if (leader === "") {
            const message = `${where}: Consul at ${provider.address} had no leader when its provider became usable (the container was already healthy); \`pulumi up\` would fail here with "No cluster leader" about half the time`;
            applier.findings.push(message);
            log(`${message}; waiting for a leader`);
            await waitForHttp(`${secure.consulOrigin(provider as secure.ConsulProviderInputs)}/v1/status/leader`, 60_000, { caPem: provider.caPem });
        }
    }
    const before = new Map<string, Obj>((previous ? (previous.inputs.keys as Obj[]) : []).map((k) => [k.path, k]));
    for (const k of keys) {
        const old = before.get(k.path);
        if (old && old.value === k.value) continue;
        const answer = await kvRequest(provider, "PUT", `/v1/kv/${k.path}${dc}`, String(k.value ?? ""));
        if (answer.trim() !== "true") throw new Error(`${where}: PUT ${k.path} answered ${answer}`);
    }
    const now = new Set(keys.map((k) => k.path));
    for (const [p_, old] of before) {
        // consul_keys: a key dropped from the list is deleted only when it was `delete: true`.
        if (!now.has(p_) && old.delete === true) await kvRequest(provider, "DELETE", `/v1/kv/${p_}${dc}`);
    }
    return { id: "consul", outputs: { datacenter: provider.datacenter ?? "" } };
}

function kvRequest(provider: Obj, method: string, pathAndQuery: string, body?: string): Promise<string> {
    return secure.consulRequest(provider as secure.ConsulProviderInputs, method, pathAndQuery, body);
}

/** Waits until Consul answers a URL (over `socketPath` when given) with a non-empty body, e.g. a leader. */
export async function waitForHttp(url: string, timeoutMs: number, via: { caPem?: string; socketPath?: string } = {}): Promise<void> {
    const { origin, pathname } = new URL(url);
    await waitFor(async () => (await secure.consulRequest({ address: origin, ...via }, "GET", pathname)).replace(/"/g, "").trim() !== "", {
        timeoutMs,
        intervalMs: 250,
        message: `${url} to answer with a non-empty body`,
    });
}
