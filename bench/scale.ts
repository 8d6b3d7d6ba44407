// Scale: 200 services x 5 instances
import * as fs from "node:fs";
import { type Backend, type Harness } from "../test/controlplane/harness";
import { sleep, waitFor } from "../test/support/wait";
import { SCALE_INSTANCES, SCALE_SERVICES, SCALE_TRIALS } from "./settings";

export interface ScaleResult {
    registerToRoutesMs: number;
    reloadMs: number[];
    renderMs: number[];
    checkMs: number;
    configBytes: number;
}

export async function scale(h: Harness): Promise<ScaleResult> {
    const backends: Backend[] = [];
    for (let i = 0; i < SCALE_INSTANCES; i++) backends.push(await h.startBackend("scale", `scale-${i}`));
    const regs = [];
    for (let s = 0; s < SCALE_SERVICES; s++) {
        for (const b of backends) {
            regs.push({
                ...b.registration(`scale${s}`, { status: "passing", interval: "30s" }),
                ID: `${b.id}:scale${s}`,
            });
        }
    }
    const t0 = performance.now();
    for (let i = 0; i < regs.length; i += 20) await Promise.all(regs.slice(i, i + 20).map((r) => h.consul.register(r)));
    const last = `scale${SCALE_SERVICES - 1}`;
    await h.waitForConfig(
        (cfg) =>
            (cfg.match(/^backend svc_scale\d+$/gm)?.length ?? 0) === SCALE_SERVICES &&
            (cfg.match(/^    server /gm)?.length ?? 0) >= SCALE_SERVICES * SCALE_INSTANCES,
        "all scale routes live",
        120_000,
    );
    await h.waitForRoute(`/${last}/x`, { timeoutMs: 30_000 });
    const registerToRoutesMs = performance.now() - t0;
    await sleep(2000);
    const reloadMs: number[] = [];
    const renderMs: number[] = [];
    for (let i = 0; i < SCALE_TRIALS; i++) {
        const value = String(5000 + i);
        const t1 = performance.now();
        await h.consul.kvPut("service/haproxy/maxconn", value);
        let rendered = 0;
        await waitFor(
            async () => {
                if (!rendered && h.gateway.readRenderedConfig("new").includes(`    maxconn ${value}\n`)) rendered = performance.now() - t1;
                return (await h.gateway.showInfo()).Maxconn === value;
            },
            { timeoutMs: 30_000, intervalMs: 2, message: `Maxconn ${value} running` },
        );
        reloadMs.push(performance.now() - t1);
        renderMs.push(rendered || performance.now() - t1);
        await sleep(500);
    }
    const t2 = performance.now();
    const check = h.gateway.haproxyCheck(h.gateway.liveConfigPath);
    const checkMs = performance.now() - t2;
    if (!check.ok) throw new Error(`haproxy -c failed at scale:\n${check.output}`);
    return { registerToRoutesMs, reloadMs, renderMs, checkMs, configBytes: fs.statSync(h.gateway.liveConfigPath).size };
}
