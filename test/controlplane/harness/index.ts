// Control-plane test harness: real Consul, the real gateway (the bundled controller driving an
// HAProxy master, exactly as in the image) and real HTTP backends (hello.py), all on free
// loopback ports, each in its own process group and temp dir. Everything started here is
// stopped again: by stop()/after hooks, and by a process 'exit' safety net if a test dies.
// The one index of the lifecycle modules in this folder and of the shared helpers in test/support:
// the control-plane tests and the benchmark import from here. The scenario helpers beside it
// (traffic.ts, trust-rules.ts, draining-backend.ts, socket-proxy.ts) are imported by name.
export { httpRequest, type HttpOptions, type HttpResult } from "../../support/http";
export { ROOT as REPO_ROOT } from "../../support/paths";
export { freePort } from "../../support/ports";
export { readTools, type Tools } from "../../support/tools";
export { sleep, waitFor, type WaitOptions } from "../../support/wait";
export * from "./backends";
export * from "./catalog";
export * from "./consul";
export * from "./control-plane";
export * from "./gateway";
export * from "./load";
export * from "./network";
export * from "./pki";
export * from "./postgres";
export * from "./processes";
export * from "./programmable";
