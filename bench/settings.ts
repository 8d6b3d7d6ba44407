// Sizes of the control-plane benchmark, shared by its measures (bench/run.ts and the modules
// beside it). BENCH_* variables shrink them for a quick run.
export const TRIALS = Number(process.env.BENCH_TRIALS ?? 60);
export const SCALE_TRIALS = Number(process.env.BENCH_SCALE_TRIALS ?? 15);
export const RELOADS = 20;
export const LOAD_SEC = 12;
export const SCALE_SERVICES = 200;
export const SCALE_INSTANCES = 5;
export const DRAIN_INSTANCES = 3;
/** Requests counted over the 90/10 weight split (issue: within 2 points over 10,000). */
export const WEIGHT_REQUESTS = Number(process.env.BENCH_WEIGHT_REQUESTS ?? 10_000);
/** Rounds of the four reload runs (two backends x two connection modes) per reload style. */
export const RELOAD_ROUNDS = Number(process.env.BENCH_RELOAD_ROUNDS ?? 2);
export const OVERLOAD_RUNS = 2;
export const PREVIOUS_TRIALS = Math.max(5, Math.round(TRIALS / 3));
/** The edge (bench/edge.ts): rounds of each wrk run, their length, and first ACME certificates timed. */
export const EDGE_ROUNDS = Number(process.env.BENCH_EDGE_ROUNDS ?? 3);
export const EDGE_SECONDS = 8;
export const EDGE_FIRST_CERTIFICATE_TRIALS = Number(process.env.BENCH_EDGE_CERT_TRIALS ?? 3);
