// The tests' node network. The gateway never routes to loopback (127.0.0.0/8), so backends
// listen and are registered on addresses of the benchmarking range 198.18.0.0/15 (RFC 2544),
// added to the loopback interface: reachable from this machine only. The gateway is told
// TEST_NETWORK is the network the stack declares, NODE_ADDRESS its node, GATEWAY_OWN_ADDRESS its
// own address (components/gateway.ts computes the same variables for a stack).
import { spawnSync } from "node:child_process";
import * as os from "node:os";

export const TEST_NETWORK = "198.18.0.0/24";
/** The node: backends listen and are registered here, as Registrator registers a node address. */
export const NODE_ADDRESS = "198.18.0.1";
/** The gateway's own address, as far as its trust rules know: nothing is ever routed there. */
export const GATEWAY_OWN_ADDRESS = "198.18.0.2";
/** Outside TEST_NETWORK: a backend may listen here but is never routed to. */
export const OUTSIDE_ADDRESS = "198.18.1.1";
const TEST_ADDRESSES = [NODE_ADDRESS, GATEWAY_OWN_ADDRESS, OUTSIDE_ADDRESS];
let testAddressesReady = false;

/** Puts the test addresses on the loopback interface when missing (as test/tools/install.sh does). */
export function ensureTestAddresses(): void {
    if (testAddressesReady) return;
    const present = new Set(
        Object.values(os.networkInterfaces())
            .flat()
            .map((a) => a?.address),
    );
    for (const address of TEST_ADDRESSES.filter((a) => !present.has(a))) {
        const r = process.getuid?.() === 0 ? spawnSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { encoding: "utf8" }) : undefined;
        if (!r || (r.status !== 0 && !/exists/i.test(r.stderr))) {
            throw new Error(
                `the control-plane tests need ${address} on the loopback interface: run bash test/tools/install.sh, or: sudo ip addr add ${address}/32 dev lo${r ? ` (${r.stderr.trim()})` : ""}`,
            );
        }
    }
    testAddressesReady = true;
}
