// The dev stack's config on a real engine (stack e2e), brought up ONCE for the suites in shared/:
// each of them looks at the running stack, attacks it from inside, or changes only what it puts
// back, so they need no stack of their own (a bring-up is about 25 s of `pulumi up` on 2 cores).
// In this order: the socket proxy's suite restarts a hello-v2 replica, and the resilience suite
// stops, restarts and kills containers (each put back, but the stack is not the one `pulumi up`
// left any more), so they run last. A suite that changes the stack for good (a second
// `pulumi up`) brings up its own, as the other files here do.
import { describe } from "node:test";
import { skipReason } from "./harness/engine";
import { stackForSuite } from "./harness/stack";
import { gatewayTrustSuite } from "./shared/gateway-trust";
import { replicaHardeningSuite } from "./shared/replica-hardening";
import { resilienceSuite } from "./shared/resilience";
import { securitySuite } from "./shared/security";
import { socketProxySuite } from "./shared/socket-proxy";

describe("the dev stack on a real engine (stack e2e), one bring-up for five suites", { skip: skipReason() }, () => {
    const up = stackForSuite();
    gatewayTrustSuite(up);
    securitySuite(up);
    replicaHardeningSuite(up);
    socketProxySuite(up);
    resilienceSuite(up);
});
