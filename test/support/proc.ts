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
