// Why the program declares its resources with V8's stack traces off.
//
// The Pulumi SDK makes four promises for every output property of every resource it registers
// (value, known, secret, dependencies) and captures a stack trace for each one (`new Error().stack`
// in @pulumi/pulumi runtime/debuggable.js), kept only to be printed when PULUMI_DEBUG_PROMISE_LEAKS
// is set. A docker.Container has 78 output properties: 312 stack traces. At 100 nodes that is
// ~245,000 traces, over half of the program's evaluation time (bench/evaluation.ts,
// docs/performance.md). With Error.stackTraceLimit at 0 each costs next to nothing.
//
// What it does not change: the resources, their inputs and options; the source position Pulumi
// records for each resource (the SDK raises the limit itself to capture it); the stack of an error
// made outside the declarations (config validation runs before, apply callbacks after). What it
// does change: an error thrown while the resources are declared carries its message only. Setting
// PULUMI_DEBUG_PROMISE_LEAKS (the SDK's own switch for those stacks) keeps every stack trace.

/**
 * Turns stack traces off until the function it returns is called, which restores the previous
 * limit; does nothing when PULUMI_DEBUG_PROMISE_LEAKS is set.
 */
export function suspendStackTraces(): () => void {
    if (process.env.PULUMI_DEBUG_PROMISE_LEAKS) return () => {};
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    return () => {
        Error.stackTraceLimit = limit;
    };
}
