// Free loopback ports for the processes the tests start.
import * as dgram from "node:dgram";
import * as net from "node:net";

// The kernel may hand the same free port out twice in a row: never give one out twice.
const handedOut = new Set<number>();

function tcpFree(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
            const p = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(p));
        });
    });
}

function udpFree(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const s = dgram.createSocket("udp4");
        s.once("error", () => resolve(false));
        s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
}

/**
 * Below Linux's ephemeral range (ip_local_port_range, 32768-60999 by default) and above the fixed
 * ports some tests take (15432 up: a tcp listenPort): a port the kernel
 * hands out for port 0 is also one it may give the next outgoing connection — the tests open
 * thousands (health checks, wrk) — before the process it was meant for binds it.
 */
const FULL = { from: 20000, to: 32767 } as const;

/**
 * Test files that run at the same time in separate processes (test/run-controlplane.sh runs the
 * control-plane files in several workers) each take a slice of the range, so two never pick the same port before
 * either binds it: SD_TEST_PORT_SLICE=<i>/<n> (0 <= i < n) gives slice i of n; unset, the whole range.
 */
export function portRange(slice: string | undefined): { from: number; to: number } {
    if (slice === undefined || slice === "") return FULL;
    const m = /^(\d+)\/(\d+)$/.exec(slice);
    const i = Number(m?.[1]);
    const n = Number(m?.[2]);
    if (!m || n < 1 || n > 16 || i >= n) throw new Error(`SD_TEST_PORT_SLICE=${slice} is not allowed; expected <i>/<n> with 0 <= i < n <= 16, such as 0/2`);
    const size = Math.floor((FULL.to - FULL.from + 1) / n);
    return { from: FULL.from + i * size, to: FULL.from + (i + 1) * size - 1 };
}

const RANGE = portRange(process.env.SD_TEST_PORT_SLICE);

/** A free port on 127.0.0.1, outside the ephemeral range, distinct from every one handed out before; `udp` also checks the UDP port. */
export async function freePort(udp = false): Promise<number> {
    for (let i = 0; i < 200; i++) {
        const p = RANGE.from + Math.floor(Math.random() * (RANGE.to - RANGE.from + 1));
        if (handedOut.has(p)) continue;
        if (
            !(await tcpFree(p).then(
                () => true,
                () => false,
            ))
        )
            continue;
        if (udp && !(await udpFree(p))) continue;
        handedOut.add(p);
        return p;
    }
    throw new Error(`no free port found between ${RANGE.from} and ${RANGE.to}`);
}
