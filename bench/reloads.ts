// Reloads under load: ours (Consul change -> the controller -> haproxy -c -> master-worker reload)
// and the 2015 way (a new `haproxy -f cfg -p pid -sf <old pids>` process per reload)
import * as fs from "node:fs";
import * as path from "node:path";
import {
    Proc,
    makeTempDir,
    removeTempDir,
    runWrk,
    stopDaemons,
    trackDaemon,
    type Harness,
    type Registration,
    type WrkResult,
} from "../test/controlplane/harness";
import { httpRequest } from "../test/support/http";
import { freePort } from "../test/support/ports";
import { sleep, waitFor } from "../test/support/wait";
import { LOAD_SEC, RELOADS } from "./settings";

export interface LoadRun {
    backend: string;
    mode: string;
    wrk: WrkResult;
    reloads: number;
}

/** A route under load and the extra instance whose registration toggles for our reloads. */
export interface Target {
    backend: string;
    path: string;
    extra: Registration;
}

export const MODES: Array<[string, string[]]> = [
    ["keep-alive", []],
    ["Connection: close", ["Connection: close"]],
];

export async function reloadOurs(h: Harness, target: Target, mode: [string, string[]]): Promise<LoadRun> {
    const reg = target.extra;
    let on = false;
    const r0 = h.gateway.reloads();
    const wrk = runWrk(h.tools, { url: h.gateway.url(target.path), durationSec: LOAD_SEC, headers: mode[1] });
    await sleep(1000);
    for (let i = 0; i < RELOADS; i++) {
        const t0 = Date.now();
        const before = h.gateway.reloads();
        if (on) await h.consul.deregister(reg.ID);
        else await h.consul.register(reg);
        on = !on;
        while (h.gateway.reloads() === before && Date.now() - t0 < 3000) await sleep(5);
        await sleep(Math.max(0, 500 - (Date.now() - t0)));
    }
    const result = await wrk;
    const reloads = h.gateway.reloads() - r0;
    if (on) {
        await h.consul.deregister(reg.ID);
        await waitFor(() => h.gateway.reloads() > r0 + reloads, { timeoutMs: 3000 });
    }
    return { backend: target.backend, mode: mode[0], wrk: result, reloads };
}

export async function reloadSeedStyle(h: Harness, target: Target, mode: [string, string[]]): Promise<LoadRun> {
    // The same config file the gateway runs, on its own ports and run dir (its variables).
    const dir = makeTempDir("seed");
    const cfg = path.join(dir, "haproxy.cfg");
    fs.copyFileSync(h.gateway.liveConfigPath, cfg);
    const pidFile = path.join(dir, "haproxy.pid");
    const port = await freePort();
    const env = {
        ...h.gateway.env,
        GATEWAY_RUN_DIR: dir,
        GATEWAY_HTTP_PORT: String(port),
        GATEWAY_STATS_PORT: String(await freePort()),
    };
    // The 2015 commands: `haproxy -f cfg -p pid -D`, then `... -D -sf $(cat pid)` per reload.
    const daemons = new Set<number>();
    const launch = async (args: string[]): Promise<number> => {
        const p = new Proc("haproxy -D (2015 style)", h.tools.HAPROXY_BIN, ["-f", cfg, "-p", pidFile, "-D", ...args], {
            env,
            stdout: "ignore",
        });
        const { code } = await p.exited;
        const out = p.output();
        p.release();
        if (code !== 0) throw new Error(`haproxy -D failed (${code}):\n${out}`);
        const pid = Number(fs.readFileSync(pidFile, "utf8").trim().split(/\s+/)[0]);
        trackDaemon(pid);
        daemons.add(pid);
        return pid;
    };
    try {
        await launch([]);
        await waitFor(async () => (await httpRequest(`http://127.0.0.1:${port}${target.path}`, { timeoutMs: 500 })).status === 200, {
            timeoutMs: 10_000,
            message: "2015-style haproxy",
        });
        const wrk = runWrk(h.tools, { url: `http://127.0.0.1:${port}${target.path}`, durationSec: LOAD_SEC, headers: mode[1] });
        await sleep(1000);
        for (let i = 0; i < RELOADS; i++) {
            const t0 = Date.now();
            const old = fs.readFileSync(pidFile, "utf8").trim().split(/\s+/);
            await launch(["-sf", ...old]);
            await sleep(Math.max(0, 500 - (Date.now() - t0)));
        }
        const result = await wrk;
        return { backend: target.backend, mode: mode[0], wrk: result, reloads: RELOADS };
    } finally {
        await stopDaemons([...daemons]);
        removeTempDir(dir);
    }
}
