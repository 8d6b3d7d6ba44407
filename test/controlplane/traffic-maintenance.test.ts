// Maintenance (docs/traffic-control.md): the Pulumi-managed KV key
// services/<consulName>/maintenance takes a whole version ("all") or single instances (their
// container names, the middle field of Registrator's ID <node>:<container>:<port>, as it is or
// without its -<8 hex> generation suffix) out of rotation by draining them: weight 0, no new
// request, the ones in flight finish; sticky clients of a version wholly in maintenance go to
// the split; removing the key brings them back. Applied through HAProxy's runtime API: no reload.
import assert from "node:assert/strict";
import * as os from "node:os";
import { after, before, describe, it } from "node:test";
import { Harness, httpRequest, sleep, startProgrammableBackend, waitFor, type HttpResult, type ProgrammableBackend } from "./harness";
import { helloInstance, sample, serverWeights, serviceKey, setWeights, share, stickyKey, waitForSplit } from "./harness/traffic";

const NAME = "hello";

describe("maintenance of versions and instances", { timeout: 300_000 }, () => {
    let h: Harness;
    // Container names as the stack gives them: <stack>-<consulName>-<i>.
    let v1a: ProgrammableBackend;
    let v1b: ProgrammableBackend;
    let v2a: ProgrammableBackend;
    const url = (p: string): string => h.gateway.url(p);

    /** The version an answer came from (its instance's container name says it). */
    const versionOf = (res: HttpResult): string => /-(v[0-9]+)-[0-9]+$/.exec(helloInstance(res))?.[1] ?? "?";

    /** A slow request (a stream of `ms` milliseconds) started now; resolves with its answer when it ends (status 0 when it was cut). */
    function slow(p: string, ms: number, headers: Record<string, string> = {}): Promise<HttpResult> {
        return httpRequest(url(`${p}stream?ms=${ms}`), { timeoutMs: ms + 15_000, headers }).catch((e: Error) => ({
            status: 0,
            headers: {},
            body: `cut: ${e.message}`,
        }));
    }

    /** Waits until the running worker gives exactly `drained` (server names) weight 0 among the routed servers of `backend`. */
    async function waitForDrained(backend: string, drained: string[], message: string): Promise<void> {
        let last: Record<string, number> = {};
        await waitFor(
            async () => {
                last = await serverWeights(h.gateway, backend);
                const zero = Object.entries(last)
                    .filter(([s, w]) => w === 0 && !s.startsWith("panic-"))
                    .map(([s]) => s.replace(/^v[0-9]+_/, ""))
                    .sort();
                return JSON.stringify(zero) === JSON.stringify([...drained].sort());
            },
            { timeoutMs: 10_000, message },
        ).catch((e: Error) => {
            throw new Error(`${e.message}: running weights ${JSON.stringify(last)}`);
        });
    }

    /** No maintenance key: every instance back (a test that failed half-way leaves none to the next). */
    async function clearMaintenance(): Promise<void> {
        await h.consul.kvDelete(serviceKey("hello-v1", "maintenance"));
        await waitForDrained("svc_hello-v1", [], "every v1 instance back");
    }

    before(
        async () => {
            h = await Harness.start();
            // Replica names (the hostnames the backends answer with); the containers of two of
            // them carry a generation suffix as components/service.ts names them (<replica>-<8 hex>).
            for (const [name, consulName, generation] of [
                ["sd-hello-v1-1", "hello-v1", ""],
                ["sd-hello-v1-2", "hello-v1", "-0f3a9c21"],
                ["sd-hello-v2-1", "hello-v2", "-7e2b4d10"],
            ] as const) {
                const b = await startProgrammableBackend(name);
                h.onStop(b.close);
                const reg = b.registration(consulName);
                reg.ID = `${os.hostname()}:${name}${generation}:${b.port}`;
                await h.consul.register(reg);
                if (name === "sd-hello-v1-1") v1a = b;
                else if (name === "sd-hello-v1-2") v1b = b;
                else v2a = b;
            }
            await setWeights(h.consul, NAME, { v1: 50, v2: 50 });
            for (const b of [v1a, v1b]) await h.waitForRoute("/hello/v1/", { instance: b.instance });
            await h.waitForRoute("/hello/v2/", { instance: v2a.instance });
            await waitForSplit(h.gateway, NAME, { v1: 50, v2: 50 });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        if (process.env.DEBUG_TRAFFIC) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("maintenance all on hello-v1: no new request reaches v1, requests in flight finish, /hello/ goes to v2; no reload", async (t) => {
        const reloads0 = await h.gateway.masterReloads();
        // In flight before the key: two on the versioned path (round robin: one per instance) and
        // several on the split (some on v1).
        const inflight = [slow("/hello/v1/", 4000), slow("/hello/v1/", 4000), ...Array.from({ length: 6 }, () => slow("/hello/", 4000))];
        await sleep(500);
        await h.consul.kvPut(serviceKey("hello-v1", "maintenance"), "all");
        await waitForDrained("svc_hello-v1", [v1a.serverName, v1b.serverName], "v1 drained on /hello/v1/");
        await waitForDrained("svc_hello", [v1a.serverName, v1b.serverName], "v1 drained in the split");
        const versioned = await sample(url("/hello/v1/x"), 40, (res) => helloInstance(res), { concurrency: 2 });
        t.diagnostic(`/hello/v1/ during maintenance: ${JSON.stringify(versioned.counts)}`);
        assert.ok(!Object.keys(versioned.counts).some((k) => k.includes("-v1-")), `a v1 instance answered: ${JSON.stringify(versioned.counts)}`);
        // The versioned path has no other version: HAProxy's answer when no server may take a request.
        assert.deepEqual(versioned.counts, { "<503>": 40 });
        const split = await sample(url("/hello/"), 200, versionOf);
        assert.deepEqual(split.counts, { v2: 200 });
        const done = await Promise.all(inflight);
        const onV1 = done.filter((r) => /sd-hello-v1-[12]\n$/.test(r.body)).length;
        for (const r of done) {
            assert.equal(r.status, 200, r.body);
            // The whole stream: a chunk every 100 ms for 4 s, then the instance's name.
            assert.match(r.body, /^\.{30,}sd-hello-v[12]-[12]\n$/, "drained, not cut");
        }
        assert.ok(onV1 >= 3, `only ${onV1} of the requests in flight were on v1`);
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
    });

    it("key removed: v1 back on /hello/v1/ and in the split; no reload", async () => {
        const reloads0 = await h.gateway.masterReloads();
        await h.consul.kvDelete(serviceKey("hello-v1", "maintenance"));
        await waitForDrained("svc_hello-v1", [], "v1 back");
        await waitForSplit(h.gateway, NAME, { v1: 50, v2: 50 });
        const versioned = await sample(url("/hello/v1/x"), 40, helloInstance, { concurrency: 2 });
        assert.deepEqual(versioned.counts, { [v1a.instance]: 20, [v1b.instance]: 20 });
        const split = await sample(url("/hello/"), 400, versionOf);
        assert.ok(Math.abs(share(split, "v1") - 0.5) <= 0.05, JSON.stringify(split.counts));
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
    });

    it("one instance by container name: only it gets no new request (its request in flight finishes); back when the key goes; no reload", async () => {
        const reloads0 = await h.gateway.masterReloads();
        const inflight = [slow("/hello/v1/", 3000), slow("/hello/v1/", 3000)];
        await sleep(500);
        await h.consul.kvPut(serviceKey("hello-v1", "maintenance"), v1b.instance);
        await waitForDrained("svc_hello-v1", [v1b.serverName], `${v1b.instance} drained`);
        await waitForDrained("svc_hello", [v1b.serverName], `${v1b.instance} drained in the split`);
        const versioned = await sample(url("/hello/v1/x"), 40, helloInstance, { concurrency: 2 });
        assert.deepEqual(versioned.counts, { [v1a.instance]: 40 });
        const split = await sample(url("/hello/"), 300, helloInstance);
        assert.deepEqual(Object.keys(split.counts).sort(), [v1a.instance, v2a.instance].sort(), JSON.stringify(split.counts));
        const done = await Promise.all(inflight);
        assert.deepEqual(
            done.map((r) => /(sd-hello-v1-[12])\n$/.exec(r.body)?.[1]).sort(),
            [v1a.instance, v1b.instance],
            "one in flight on each, both finished",
        );

        await h.consul.kvDelete(serviceKey("hello-v1", "maintenance"));
        await waitForDrained("svc_hello-v1", [], `${v1b.instance} back`);
        const back = await sample(url("/hello/v1/x"), 40, helloInstance, { concurrency: 2 });
        assert.deepEqual(back.counts, { [v1a.instance]: 20, [v1b.instance]: 20 });
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
    });

    it("a name matches only the container field of an instance's ID, as it is or without its -<8 hex> suffix: the node, a port, a prefix, another service's name drain nothing", async () => {
        await clearMaintenance();
        // An instance whose ID has no port field (<node>:<container>): fewer than 3 fields, so no
        // name matches it, not even the one in its second field.
        const short = await startProgrammableBackend("sd-hello-v1-3");
        h.onStop(short.close);
        const shortId = `${os.hostname()}:${short.instance}`;
        await h.consul.register({ ...short.registration("hello-v1"), ID: shortId });
        await h.waitForRoute("/hello/v1/", { instance: short.instance });
        const serving = [v1a.instance, short.instance].sort();
        try {
            // v1b's ID is <node>:sd-hello-v1-2-0f3a9c21:<port>: both its container field and the
            // replica's name drain it.
            for (const value of [v1b.instance, `${v1b.instance}-0f3a9c21`]) {
                await h.consul.kvPut(serviceKey("hello-v1", "maintenance"), value);
                await waitForDrained("svc_hello-v1", [v1b.serverName], `${JSON.stringify(value)}: ${v1b.instance} drained`);
                await clearMaintenance();
            }
            // Attacks on the matching: each value also names v1b, so the render that applied it is
            // visible; the other v1 instances must keep their weight and keep serving.
            const attacks = [
                os.hostname(), // the node field of every ID
                h.consul.nodeName, // the Consul node
                String(v1a.port), // the port field of v1a's ID
                String(v2a.port),
                "sd-hello-v1", // a prefix of every v1 container
                "sd-hello",
                `${v1a.instance}-0f3a9c21`, // a suffix v1a's container does not carry
                v2a.instance, // another service's instance
                short.instance, // the 2nd field of an ID with only 2
            ];
            for (const other of attacks) {
                const value = `${other} ${v1b.instance}`;
                await h.consul.kvPut(serviceKey("hello-v1", "maintenance"), value);
                await waitForDrained("svc_hello-v1", [v1b.serverName], `${JSON.stringify(value)}: only ${v1b.instance} drained`);
                await waitForDrained("svc_hello", [v1b.serverName], `${JSON.stringify(value)}: only ${v1b.instance} drained in the split`);
                await waitForDrained("svc_hello-v2", [], `${JSON.stringify(value)}: v2 untouched`);
                const versioned = await sample(url("/hello/v1/x"), 20, helloInstance, { concurrency: 2 });
                assert.deepEqual(Object.keys(versioned.counts).sort(), serving, `${JSON.stringify(value)}: ${JSON.stringify(versioned.counts)}`);
                assert.equal((await httpRequest(url("/hello/v2/x"))).status, 200, `${JSON.stringify(value)}: v2 serves`);
                await clearMaintenance();
            }
        } finally {
            await h.consul.deregister(shortId);
            await waitFor(async () => !Object.keys(await serverWeights(h.gateway, "svc_hello-v1")).includes(short.serverName), {
                timeoutMs: 10_000,
                message: `${short.instance} gone`,
            });
        }
    });

    it("sticky clients of a version wholly in maintenance get the other version at their next request (and its cookie); in flight to it finishes; weight 0 alone keeps them", async () => {
        await clearMaintenance();
        await h.consul.kvPut(stickyKey(NAME), "true");
        await h.waitForConfig((cfg) => cfg.includes("sd-hello="), "sticky cookie rendered");
        await waitFor(async () => ([] as string[]).concat((await httpRequest(url("/hello/"))).headers["set-cookie"] ?? []).length > 0, {
            timeoutMs: 10_000,
            message: "Set-Cookie from the running worker",
        });
        // "<version that answered> <version in the Set-Cookie sd-hello, or -: none>".
        const versionAndCookie = (res: HttpResult): string => {
            const cookie = ([] as string[]).concat(res.headers["set-cookie"] ?? []).find((c) => c.startsWith("sd-hello="));
            return `${versionOf(res)} ${cookie ? /^sd-hello=([^;]*)/.exec(cookie)![1] : "-"}`;
        };
        const sticky = { headers: { cookie: "sd-hello=v1" }, concurrency: 2 };
        const before = await sample(url("/hello/"), 20, versionAndCookie, sticky);
        assert.deepEqual(before.counts, { "v1 -": 20 }, "sticky before maintenance");
        const reloads0 = await h.gateway.masterReloads();
        // In flight on v1 through the cookie when the key comes (round robin: one per instance).
        const inflight = [slow("/hello/", 4000, { cookie: "sd-hello=v1" }), slow("/hello/", 4000, { cookie: "sd-hello=v1" })];
        await sleep(500);
        await h.consul.kvPut(serviceKey("hello-v1", "maintenance"), "all");
        await waitForDrained("svc_hello-v1", [v1a.serverName, v1b.serverName], "v1 drained on /hello/v1/");
        await waitForDrained("svc_hello", [v1a.serverName, v1b.serverName], "v1 drained in the split");
        const fresh = await sample(url("/hello/"), 100, versionOf);
        assert.deepEqual(fresh.counts, { v2: 100 }, "no new client for v1");
        // The first request after the drain already moves, and each answer re-pins the client to v2.
        const moved = await sample(url("/hello/"), 40, versionAndCookie, sticky);
        assert.deepEqual(moved.counts, { "v2 v2": 40 }, "a v1 client of a version wholly in maintenance goes to the split (TRAFFIC.md: maintenance)");
        const done = await Promise.all(inflight);
        for (const r of done) assert.match(r.body, /^\.{30,}sd-hello-v1-[12]\n$/, "in flight on v1: drained, not cut");
        assert.deepEqual(
            done.map((r) => r.status),
            [200, 200],
        );
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");

        // Back: the cookie sends the client to v1 again.
        await h.consul.kvDelete(serviceKey("hello-v1", "maintenance"));
        await waitForDrained("svc_hello-v1", [], "v1 back");
        await waitForSplit(h.gateway, NAME, { v1: 50, v2: 50 });
        const back = await sample(url("/hello/"), 20, versionAndCookie, sticky);
        assert.deepEqual(back.counts, { "v1 -": 20 }, "sticky to v1 again");

        // Weight 0 without maintenance drains new clients only: v1's sticky clients stay.
        try {
            await setWeights(h.consul, NAME, { v1: 0 });
            await waitForSplit(h.gateway, NAME, { v1: 0, v2: 100 });
            assert.deepEqual((await sample(url("/hello/"), 50, versionOf)).counts, { v2: 50 }, "no new client for a weight-0 v1");
            assert.deepEqual((await sample(url("/hello/"), 20, versionAndCookie, sticky)).counts, { "v1 -": 20 }, "weight 0 keeps sticky clients");
        } finally {
            await setWeights(h.consul, NAME, { v1: 50 });
        }
        await waitForSplit(h.gateway, NAME, { v1: 50, v2: 50 });
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
    });
});
