// Versions and weights (docs/traffic-control.md): the unversioned path /hello/ split between
// hello-v1 and hello-v2 by the Pulumi-managed KV keys services/<name>-v<N>/weight, counted by
// the version the example service (hello.py) names in each answer. 10,000 requests land within
// 2 points of 90/10; sticky clients (cookie sd-hello) never switch version; weights change under
// load without a failed request and without a reload; a default version takes everything.
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, before, describe, it } from "node:test";
import { Harness, httpRequest, sleep, waitFor, type Backend, type HttpResult } from "./harness";
import { helloVersion, runningShares, sample, setWeights, share, startWrk, stickyKey, waitForSplit } from "./harness/traffic";

const NAME = "hello";

describe("weighted versions of /hello/", { timeout: 300_000 }, () => {
    let h: Harness;
    let v1: Backend[];
    const url = (p: string): string => h.gateway.url(p);

    before(
        async () => {
            h = await Harness.start();
            // Two instances of v1, one of v2: a version's weight is its share whatever its number of instances.
            v1 = [await h.addInstance("hello-v1", "sd-hello-v1-1"), await h.addInstance("hello-v1", "sd-hello-v1-2")];
            await h.addInstance("hello-v2", "sd-hello-v2-1");
            await setWeights(h.consul, NAME, { v1: 90, v2: 10 });
            await h.waitForRoute("/hello/v1/");
            await h.waitForRoute("/hello/v2/");
            await waitForSplit(h.gateway, NAME, { v1: 90, v2: 10 });
            await h.waitForRoute("/hello/");
        },
        { timeout: 60_000 },
    );

    after(async () => {
        if (process.env.DEBUG_TRAFFIC) console.error(h?.diagnostics());
        await h?.stop();
    });

    it("10,000 requests to /hello/ land within 2 points of 90/10, v1's share spread over its instances", async (t) => {
        const t0 = Date.now();
        const s = await sample(url("/hello/"), 10_000, (res) => `${helloVersion(res)}/${(JSON.parse(res.body) as { hostname: string }).hostname}`);
        t.diagnostic(`${JSON.stringify(s.counts)} in ${Date.now() - t0} ms`);
        assert.equal(s.failed, 0, JSON.stringify(s.counts));
        const byVersion = { v1: 0, v2: 0 } as Record<string, number>;
        for (const [k, n] of Object.entries(s.counts)) byVersion[k.split("/")[0]!] = (byVersion[k.split("/")[0]!] ?? 0) + n;
        assert.deepEqual(Object.keys(byVersion).sort(), ["v1", "v2"], JSON.stringify(s.counts));
        assert.ok(Math.abs(byVersion.v1! / s.total - 0.9) <= 0.02, `v1 got ${byVersion.v1} of ${s.total}`);
        assert.ok(Math.abs(byVersion.v2! / s.total - 0.1) <= 0.02, `v2 got ${byVersion.v2} of ${s.total}`);
        for (const b of v1) assert.ok(Math.abs(share(s, `v1/${b.instance}`) - 0.45) <= 0.03, `${b.instance}: ${s.counts[`v1/${b.instance}`]}`);
        // The versioned paths are not split.
        const only2 = await sample(url("/hello/v2/x"), 100, helloVersion);
        assert.deepEqual(only2.counts, { v2: 100 });
    });

    it("sticky: a client without the cookie gets sd-hello=<version>; clients keeping it never switch version", async (t) => {
        await h.consul.kvPut(stickyKey(NAME), "true");
        await h.waitForConfig((cfg) => cfg.includes("sd-hello="), "sticky cookie rendered");
        const fresh = async (headers: http.OutgoingHttpHeaders = {}): Promise<{ res: HttpResult; version: string; cookie: string }> => {
            const res = await httpRequest(url("/hello/"), { headers });
            assert.equal(res.status, 200, res.body);
            const set = ([] as string[]).concat(res.headers["set-cookie"] ?? []);
            assert.equal(set.length, 1, `Set-Cookie: ${JSON.stringify(set)}`);
            const m = /^sd-hello=(v1|v2)(;|$)/.exec(set[0]!);
            assert.ok(m, `Set-Cookie: ${set[0]}`);
            assert.match(set[0]!, /; ?Path=\/hello(;|$)/i, "cookie limited to /hello");
            const version = helloVersion(res);
            assert.equal(m[1], version, "the cookie names the version that answered");
            return { res, version, cookie: `sd-hello=${version}` };
        };
        await waitFor(async () => ([] as string[]).concat((await httpRequest(url("/hello/"))).headers["set-cookie"] ?? []).length > 0, {
            timeoutMs: 10_000,
            message: "Set-Cookie from the running worker",
        });
        // Enough clients that both versions have sticky ones (v2 gets 1 new client in 10).
        const clients: Array<{ version: string; cookie: string }> = [];
        for (let i = 0; i < 400 && !(clients.filter((c) => c.version === "v1").length >= 3 && clients.filter((c) => c.version === "v2").length >= 2); i++) {
            const c = await fresh();
            if (clients.filter((x) => x.version === c.version).length < 3) clients.push(c);
        }
        t.diagnostic(`clients: ${clients.map((c) => c.version).join(" ")}`);
        assert.ok(clients.filter((c) => c.version === "v2").length >= 2, "no v2 client in 400 fresh ones");
        // Every client at once, 60 requests each on its own keep-alive connection, on paths under /hello/.
        await Promise.all(
            clients.map(async (c) => {
                const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
                try {
                    for (let i = 0; i < 60; i++) {
                        const res = await httpRequest(url(i % 2 ? "/hello/" : `/hello/page/${i}`), { agent, headers: { cookie: c.cookie } });
                        assert.equal(res.status, 200);
                        assert.equal(helloVersion(res), c.version, `a ${c.cookie} client got ${helloVersion(res)} on request ${i}`);
                        const set = ([] as string[]).concat(res.headers["set-cookie"] ?? []);
                        assert.ok(
                            set.every((s) => s.startsWith(`${c.cookie};`)),
                            `a ${c.cookie} client was told ${JSON.stringify(set)}`,
                        );
                        if (i % 2 === 0) assert.equal((JSON.parse(res.body) as { path: string }).path, `/page/${i}`, "path as the version sees it");
                    }
                } finally {
                    agent.destroy();
                }
            }),
        );
        // A cookie naming no version of the split: the split decides, and a new cookie says where.
        for (const bogus of ["sd-hello=v9", "sd-hello=v1x", "sd-hello=../v1"]) {
            const c = await fresh({ cookie: bogus });
            assert.ok(["v1", "v2"].includes(c.version), bogus);
        }
    });

    it("weights change under load (90/10 -> 50/50 -> 0/100): no failed request, no reload; sticky v1 clients stay on a weight-0 v1", async (t) => {
        const reloads0 = await h.gateway.masterReloads();
        const load = startWrk(h.tools, { url: url("/hello/"), threads: 2, connections: 16 });
        await sleep(1500);
        await setWeights(h.consul, NAME, { v1: 50, v2: 50 });
        await waitForSplit(h.gateway, NAME, { v1: 50, v2: 50 });
        const half = await sample(url("/hello/"), 600, helloVersion, { concurrency: 4 });
        await setWeights(h.consul, NAME, { v1: 0, v2: 100 });
        await waitForSplit(h.gateway, NAME, { v1: 0, v2: 100 });
        const none = await sample(url("/hello/"), 300, helloVersion, { concurrency: 4 });
        const sticky = await sample(url("/hello/"), 50, helloVersion, { concurrency: 2, headers: { cookie: "sd-hello=v1" } });
        await sleep(1000);
        const wrk = await load.stop();
        t.diagnostic(
            `wrk: ${wrk.requests} requests, ${wrk.failed} failed; 50/50 sample ${JSON.stringify(half.counts)}; 0/100 sample ${JSON.stringify(none.counts)}`,
        );
        assert.ok(wrk.requests > 2000, `wrk made only ${wrk.requests} requests`);
        assert.equal(wrk.failed, 0, wrk.raw);
        assert.equal(await h.gateway.masterReloads(), reloads0, "the HAProxy master reloaded");
        assert.equal(half.failed, 0);
        // A sample taken beside wrk's requests (round robin interleaves both): it shows the new
        // split runs; its accuracy is the first test's.
        assert.ok(Math.abs(share(half, "v1") - 0.5) <= 0.1, `50/50 gave ${JSON.stringify(half.counts)}`);
        assert.deepEqual(none.counts, { v2: 300 });
        assert.deepEqual(sticky.counts, { v1: 50 }, "weight 0 drains: sticky clients stay");
        const running = await runningShares(h.gateway, NAME);
        assert.deepEqual(running, { v1: 0, v2: 1 });
    });

    it("a default version: only hello-v2 has a weight, it gets all of /hello/; /hello/v1/ still serves v1", async () => {
        await setWeights(h.consul, NAME, { v1: undefined, v2: 10 });
        await h.waitForConfig((cfg) => !/^\s+server v1_/m.test(cfg) && /^\s+server v2_/m.test(cfg), "v1 out of the split");
        await waitFor(async () => Object.keys(await runningShares(h.gateway, NAME)).join() === "v2", { timeoutMs: 10_000, message: "running split: v2 only" });
        const s = await sample(url("/hello/"), 1000, helloVersion);
        assert.deepEqual(s.counts, { v2: 1000 });
        const s1 = await sample(url("/hello/v1/"), 100, helloVersion);
        assert.deepEqual(s1.counts, { v1: 100 });
    });
});
