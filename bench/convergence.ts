// Convergence and removal: a registered instance until it serves through the gateway, a
// deregistered one until it no longer does.
import { type Harness } from "../test/controlplane/harness";
import { sleep } from "../test/support/wait";
import { who } from "./dataplane";
import { TRIALS } from "./settings";

/** `reloads`: how many times the HAProxy master reloaded during the trials (the route existed before). */
export async function convergence(h: Harness, trials = TRIALS): Promise<{ up: number[]; down: number[]; reloads: number }> {
    await h.addInstance("conv-v1", "conv-base");
    const extra = await h.startBackend("conv", "conv-new", "v1");
    await h.waitForRoute("/conv/v1/", { instance: "conv-base" });
    const reg = extra.registration("conv-v1", { status: "passing" });
    const up: number[] = [];
    const down: number[] = [];
    const reloads0 = await h.gateway.masterReloads();
    for (let i = 0; i < trials + 2; i++) {
        // Registered with Status passing -> first 200 from the new instance through the gateway.
        const t0 = performance.now();
        await h.consul.register(reg);
        for (;;) {
            if ((await who(h.gateway, "/conv/v1/c")) === "conv-new") break;
            if (performance.now() - t0 > 10_000) throw new Error("convergence: instance never served");
        }
        const tUp = performance.now() - t0;
        await sleep(150);
        // Deregistered -> no longer served: the first of 20 answers in a row from the others
        // (round robin over two instances would have given it every other request).
        const t1 = performance.now();
        await h.consul.deregister(reg.ID);
        let runStart = -1;
        let run = 0;
        for (;;) {
            const t = performance.now();
            const w = await who(h.gateway, "/conv/v1/c");
            if (w === "conv-base") {
                if (run === 0) runStart = t;
                if (++run >= 20) break;
            } else {
                run = 0;
            }
            if (t - t1 > 10_000) throw new Error("removal: instance still served");
        }
        const tDown = runStart - t1;
        // The first two trials warm up caches and connections; they are not counted.
        if (i >= 2) {
            up.push(tUp);
            down.push(tDown);
        }
        await sleep(150);
    }
    return { up, down, reloads: (await h.gateway.masterReloads()) - reloads0 };
}
