// Graceful drain (docs/services.md, "Graceful drain"): how long a stopping service container keeps serving
// while the gateways take it out of rotation, and how long Docker waits for it before SIGKILL.
// Plain numbers: the control-plane tests and the bench use the same ones.

/**
 * The grace period: what the program passes each service container as DRAIN_SECONDS (and
 * hello.py's own default). The gateway's checks (every 2 s, out after two failures 500 ms apart)
 * take a draining instance out within ~2.5-4 s, Consul's check (every 5 s) within ~5.5 s; the
 * rest is margin for a loaded node.
 */
export const DEFAULT_DRAIN_SECONDS = 10;
/** hello.py accepts DRAIN_SECONDS up to this. */
export const MAX_DRAIN_SECONDS = 3600;
/**
 * After the grace period, for the requests still in flight: the gateway's default
 * `haproxy.timeouts.server`, how long it waits for an answer. A constant, not that setting: the
 * stop timeout is part of the container, and a KV setting of the gateway must never replace
 * every service container.
 */
export const IN_FLIGHT_SECONDS = 30;

export interface StopTimings {
    /** DRAIN_SECONDS: /health answers 503 while every other request is still served. */
    readonly drainSeconds: number;
    /**
     * Docker's stop timeout (`docker stop`, engine shutdown) and the provider's destroy grace
     * (`pulumi up` replacing, `pulumi destroy`): after it, SIGKILL. Always above the grace.
     */
    readonly stopTimeoutSeconds: number;
}

export function stopTimings(drainSeconds = DEFAULT_DRAIN_SECONDS): StopTimings {
    if (!Number.isInteger(drainSeconds) || drainSeconds < 0 || drainSeconds > MAX_DRAIN_SECONDS) {
        throw new Error(`drain grace ${drainSeconds} is not allowed; expected an integer number of seconds from 0 to ${MAX_DRAIN_SECONDS}`);
    }
    return { drainSeconds, stopTimeoutSeconds: drainSeconds + IN_FLIGHT_SECONDS };
}
