// Whether processes still run, and signals that do not throw when they are gone.
import * as fs from "node:fs";

/** Sends `signal`; false when the process (or group, for a negative pid) is gone. */
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
    try {
        process.kill(pid, sig);
        return true;
    } catch {
        return false;
    }
}

/** Whether a process with this pid exists (a zombie counts until it is reaped). */
export function pidAlive(pid: number): boolean {
    return signal(pid, 0);
}

/** The pid a lock file of takePidLock holds, or undefined when there is none (or it is unreadable). */
export function lockHolder(file: string): number | undefined {
    try {
        const pid = Number(fs.readFileSync(file, "utf8").trim());
        return pid > 0 ? pid : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Takes a lock file that holds this process's pid (created exclusively); false while another
 * live process holds it. A lock left by a process that died is taken over.
 */
export function takePidLock(file: string): boolean {
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            fs.writeFileSync(file, String(process.pid), { flag: "wx" });
            return true;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
            const holder = lockHolder(file);
            if (holder !== undefined && pidAlive(holder)) return false;
            fs.rmSync(file, { force: true }); // left by a process that died
        }
    }
    return false;
}

/** Whether a process of group `pgid` still runs; zombies (left for init to reap) do not count. */
export function groupAlive(pgid: number): boolean {
    if (pgid <= 0 || !signal(-pgid, 0)) return false;
    let entries: string[];
    try {
        entries = fs.readdirSync("/proc").filter((e) => /^[0-9]+$/.test(e));
    } catch {
        return true; // no /proc: trust kill(0)
    }
    for (const e of entries) {
        let stat: string;
        try {
            stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
        } catch {
            continue;
        }
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(fields[2]) === pgid && fields[0] !== "Z") return true;
    }
    return false;
}
