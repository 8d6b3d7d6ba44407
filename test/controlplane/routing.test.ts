// Routing through the real gateway: versions, prefix strip, round robin, segment-exact
// matching and longest prefix, with services registered in Consul as Registrator does.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Harness, hello, type HelloResponse } from "./harness";

describe("routing", { timeout: 120_000 }, () => {
    let h: Harness;

    before(
        async () => {
            h = await Harness.start();
            await h.addInstance("hello-v1", "v1-a");
            await h.addInstance("hello-v1", "v1-b");
            await h.addInstance("hello-v2", "v2-a");
            await h.addInstance("echo", "echo-a");
            await h.addInstance("hello", "plain-a");
            await h.addInstance("hello-world", "world-a");
            // Not tagged rest: must never be routed.
            await h.addInstance("internal", "internal-a", { tags: ["check=/health"] });
            await h.waitForConfig(
                (cfg) => ["hello-v1", "hello-v2", "echo", "hello", "hello-world"].every((s) => cfg.includes(`backend svc_${s}\n`)),
                "all routes rendered",
            );
            await h.waitForRoute("/hello-world/", { instance: "world-a" });
            await h.waitForRoute("/hello/v1/", { instance: "v1-b" });
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await h?.stop();
    });

    async function get(p: string): Promise<HelloResponse> {
        const res = await h.gateway.get(p);
        assert.equal(res.status, 200, `GET ${p}: ${res.status} ${res.body}`);
        return hello(res);
    }

    it("serves each version only from its own instances, prefix stripped", async () => {
        for (let i = 0; i < 6; i++) {
            const v1 = await get("/hello/v1/x");
            assert.equal(v1.version, "v1");
            assert.match(v1.hostname, /^v1-[ab]$/);
            assert.equal(v1.path, "/x");
            assert.equal(v1.forwarded_prefix, "/hello/v1");
            assert.equal(v1.forwarded_for, "127.0.0.1", "X-Forwarded-For is set");
            const v2 = await get("/hello/v2/x");
            assert.equal(v2.version, "v2");
            assert.equal(v2.hostname, "v2-a");
            assert.equal(v2.path, "/x");
        }
        assert.equal((await get("/hello/v1/a/b?q=1")).path, "/a/b?q=1");
        assert.equal((await get("/hello/v1")).path, "/");
        assert.equal((await get("/hello/v1/")).path, "/");
    });

    it("balances round robin across the v1 instances", async () => {
        const seen: string[] = [];
        for (let i = 0; i < 10; i++) seen.push((await get("/hello/v1/rr")).hostname);
        assert.deepEqual(new Set(seen), new Set(["v1-a", "v1-b"]), `both instances answer: ${seen.join(",")}`);
        for (let i = 1; i < seen.length; i++) {
            assert.notEqual(seen[i], seen[i - 1], `round robin alternates: ${seen.join(",")}`);
        }
    });

    it("serves an unversioned service at /<name>", async () => {
        const r = await get("/echo/some/path");
        assert.equal(r.hostname, "echo-a");
        assert.equal(r.path, "/some/path");
        assert.equal(r.forwarded_prefix, "/echo");
        assert.equal((await get("/echo")).path, "/");
    });

    it("matches whole path segments only", async () => {
        assert.equal((await get("/hello-world/x")).hostname, "world-a");
        assert.equal((await get("/hello/x")).hostname, "plain-a");
        assert.equal((await get("/hello")).hostname, "plain-a");
        const notRouted = ["/hellox", "/echox/y", "/hello-worldx", "/hello/v1x"];
        for (const p of notRouted) {
            const res = await h.gateway.get(p);
            if (p === "/hello/v1x") {
                // Falls through to the unversioned /hello route, never to hello-v1.
                assert.equal(res.status, 200);
                assert.equal(hello(res).hostname, "plain-a", p);
                assert.equal(hello(res).path, "/v1x");
            } else {
                assert.equal(res.status, 404, `${p} must not be captured: ${res.body}`);
                assert.equal(res.body, "no route\n");
            }
        }
    });

    it("prefers the longest prefix: /hello/v1 over /hello", async () => {
        for (let i = 0; i < 4; i++) {
            const r = await get("/hello/v1/y");
            assert.equal(r.version, "v1");
            assert.equal(r.path, "/y");
        }
        const v3 = await get("/hello/v3/y");
        assert.equal(v3.hostname, "plain-a", "an unknown version goes to the unversioned service");
        assert.equal(v3.path, "/v3/y");
    });

    it("routes only services tagged rest and answers 404 elsewhere", async () => {
        const res = await h.gateway.get("/internal/x");
        assert.equal(res.status, 404);
        assert.equal(res.body, "no route\n");
        assert.doesNotMatch(h.gateway.readRenderedConfig(), /svc_internal/);
        const root = await h.gateway.get("/");
        assert.equal(root.status, 404);
    });
});
