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

/** A free port on 127.0.0.1 (bound to port 0 and released), distinct from every one handed out before; `udp` also checks the UDP port. */
export async function freePort(udp = false): Promise<number> {
    for (let i = 0; i < 50; i++) {
        const p = await tcpFree(0);
        if (handedOut.has(p)) continue;
        if (udp && !(await udpFree(p))) continue;
        handedOut.add(p);
        return p;
    }
    throw new Error("no free port found");
}
