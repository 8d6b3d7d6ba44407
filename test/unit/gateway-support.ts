// What the gateway's unit tests share: the stack settings a gateway runs with (its environment,
// as components/gateway.ts sets it), on a test network.
import type { StackSettings } from "../../components/images/gateway/controller/model";

export const SETTINGS: StackSettings = {
    httpPort: "8080",
    statsPort: "8936",
    backendNetworks: "10.1.0.0/16",
    nodeNetworks: "10.1.0.1/32",
    trustedProxies: "",
    ownAddresses: "10.1.0.99",
    nodePorts: "22 8501",
    fdLimit: "1048576",
    maxconnLimit: "",
};
