// Control-plane test harness: real Consul, the real gateway entrypoint (HAProxy master-worker +
// consul-template, exactly as in the image) and real HTTP backends (hello.py), all on free
// loopback ports, each in its own process group and temp dir. Everything started here is
// stopped again: by stop()/after hooks, and by a process 'exit' safety net if a test dies.
// The one index of the modules in harness/ and of the shared helpers in test/support: the
// control-plane tests and the benchmark import from here.
export { httpRequest, type HttpOptions, type HttpResult } from "../support/http";
export { ROOT as REPO_ROOT } from "../support/paths";
export { freePort } from "../support/ports";
export { readTools, type Tools } from "../support/tools";
export { sleep, waitFor, type WaitOptions } from "../support/wait";
export * from "./harness/backends";
export * from "./harness/catalog";
export * from "./harness/consul";
export * from "./harness/control-plane";
export * from "./harness/gateway";
export * from "./harness/load";
export * from "./harness/network";
export * from "./harness/pki";
export * from "./harness/postgres";
export * from "./harness/processes";
export * from "./harness/programmable";
