// A suite's own cluster stack: brought up (and converged) before its tests, taken down after
// them, even when one fails. The cluster layer's stackForSuite.
import { after, before } from "node:test";
import { converged } from "./observe";
import { ClusterStack } from "./stack";

export function clusterForSuite(options?: Parameters<typeof ClusterStack.up>[0]): () => ClusterStack {
    let stack: ClusterStack | undefined;
    before(
        async () => {
            stack = await ClusterStack.up(options);
            await converged(stack);
        },
        { timeout: 20 * 60_000 },
    );
    after(
        async () => {
            await stack?.down();
        },
        { timeout: 5 * 60_000 },
    );
    return () => {
        if (!stack) throw new Error("the suite's cluster stack is not up");
        return stack;
    };
}
