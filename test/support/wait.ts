// The one polling loop of the tests, harnesses and benchmark: everything that waits for a
// condition (a leader, a route, a render, a health status) goes through waitFor().

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
    /** Default 10 s. */
    timeoutMs?: number;
    /** Pause between two probes; default 25 ms. */
    intervalMs?: number;
    /** What is awaited, for the timeout error. */
    message?: string;
}

/** An error (new, or marked) that ends waitFor() at once: the condition can no longer come true. */
export function fatal(error: string | Error): Error {
    return Object.assign(typeof error === "string" ? new Error(error) : error, { fatal: true });
}

/** Whether waitFor() ended on a fatal() error rather than on its timeout. */
export function isFatal(err: unknown): boolean {
    return !!err && typeof err === "object" && (err as { fatal?: unknown }).fatal === true;
}

/**
 * Polls `probe` until it returns a truthy value (returned) or the timeout expires (throws, with
 * the last error the probe threw). A probe error made by fatal() is thrown at once.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const intervalMs = opts.intervalMs ?? 25;
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
        try {
            const v = await probe();
            if (v) return v as NonNullable<T>;
            lastError = undefined;
        } catch (err) {
            if (isFatal(err)) throw err;
            lastError = err;
        }
        if (Date.now() >= deadline) {
            const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message ?? "condition"}${why}`);
        }
        await sleep(intervalMs);
    }
}

/** A grace period: waits up to `timeoutMs` for `condition`; whether it came true (never throws). */
export function within(timeoutMs: number, condition: () => boolean | Promise<boolean>, intervalMs = 20): Promise<boolean> {
    return waitFor(condition, { timeoutMs, intervalMs }).then(
        () => true,
        () => false,
    );
}
