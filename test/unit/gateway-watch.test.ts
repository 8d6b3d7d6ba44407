// The gateway controller's Consul watch: the pure parts (index handling as Consul's blocking-query
// guide asks, back-off, the stall limit, parsing Consul's answers, reading the environment). The
// watch itself runs against a real Consul in test/controlplane/gateway-watch.test.ts.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import {
    BACKOFF_MAX_MS,
    BACKOFF_MIN_MS,
    backoffMs,
    connectionFromEnv,
    consulOrigin,
    nextIndex,
    parseKv,
    parseNode,
    parseNodeList,
    SPIN_DELAY_MS,
    spinDelayMs,
    stallTimeoutMs,
} from "../../components/images/gateway/controller/watch";

describe("gateway watch: blocking-query index", () => {
    it("follows the index Consul returns", () => {
        assert.equal(nextIndex(0, "42"), 42);
        assert.equal(nextIndex(42, "42"), 42);
        assert.equal(nextIndex(42, "43"), 43);
        assert.equal(nextIndex(42, ["50"]), 50);
    });

    it("resets to 0 when the index goes backwards (a restored snapshot, another server)", () => {
        assert.equal(nextIndex(100, "7"), 0);
        assert.equal(nextIndex(100, "99"), 0);
    });

    it("never goes below 1 after an answer (index 0 would turn every request into a non-blocking one)", () => {
        assert.equal(nextIndex(0, "0"), 1);
        assert.equal(nextIndex(0, undefined), 1);
    });

    it("keeps the last index when the header is missing or not a number", () => {
        assert.equal(nextIndex(42, undefined), 42);
        assert.equal(nextIndex(42, "abc"), 42);
        assert.equal(nextIndex(42, "-3"), 42);
        assert.equal(nextIndex(42, "1e3"), 42);
    });

    it("waits before re-issuing a blocking query that came back early with the same index, not otherwise", () => {
        assert.equal(spinDelayMs(42, 42, 3, 300), SPIN_DELAY_MS);
        assert.equal(spinDelayMs(1, 1, 3, 300), SPIN_DELAY_MS, "a missing header after the first answer");
        assert.equal(spinDelayMs(42, 42, 300_000, 300), 0, "the wait expired: the normal case");
        assert.equal(spinDelayMs(42, 43, 3, 300), 0, "the data moved");
        assert.equal(spinDelayMs(42, 0, 3, 300), 0, "a reset: the next request is the full read");
        assert.equal(spinDelayMs(0, 5, 3, 300), 0, "the first, non-blocking request");
    });
});

describe("gateway watch: back-off and stall limit", () => {
    it("doubles from 250 ms to 5 s with full jitter", () => {
        const top = (attempt: number): number => backoffMs(attempt, () => 0.999999);
        assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map(top), [249, 499, 999, 1999, 3999, 4999, 4999, 4999]);
        assert.equal(
            backoffMs(3, () => 0),
            0,
            "full jitter reaches 0",
        );
        assert.equal(
            backoffMs(3, () => 0.5),
            1000,
        );
        for (let i = 0; i < 1000; i++) {
            const d = backoffMs(i % 30);
            assert.ok(d >= 0 && d < BACKOFF_MAX_MS, `${d}`);
        }
        assert.equal(BACKOFF_MIN_MS, 250);
    });

    it("gives a blocking query its wait, Consul's jitter (wait/16, at least 15 s here) and 5 s", () => {
        assert.equal(stallTimeoutMs(300), (300 + 18.75 + 5) * 1000);
        assert.equal(stallTimeoutMs(1), 21_000);
        assert.equal(stallTimeoutMs(0), 20_000, "a non-blocking request");
    });
});

describe("gateway watch: Consul's answers", () => {
    it("decodes KV values as UTF-8 and keeps full keys", () => {
        const kv = parseKv([
            { Key: "service/haproxy/maxconn", Value: Buffer.from("2000").toString("base64") },
            { Key: "service/haproxy/", Value: null },
            { Key: "service/haproxy/note", Value: Buffer.from("déjà vu").toString("base64") },
        ]);
        assert.deepEqual(
            [...kv],
            [
                ["service/haproxy/maxconn", "2000"],
                ["service/haproxy/", ""],
                ["service/haproxy/note", "déjà vu"],
            ],
        );
        assert.throws(() => parseKv({}), /not a list/);
        assert.throws(() => parseKv([{ Value: "" }]), /without a Key/);
    });

    it("reads a node's services sorted by ID, keeping an empty service address", () => {
        const node = parseNode({
            Node: { ID: "x", Node: "n1", Address: "10.0.0.1" },
            Services: {
                b: { ID: "b", Service: "hello-v1", Tags: ["rest"], Address: "", Port: 8080 },
                a: { ID: "a", Service: "db", Tags: null, Address: "10.0.0.9", Port: 5432 },
            },
        });
        assert.deepEqual(node, {
            node: "n1",
            address: "10.0.0.1",
            services: [
                { id: "a", service: "db", address: "10.0.0.9", port: 5432, tags: [] },
                { id: "b", service: "hello-v1", address: "", port: 8080, tags: ["rest"] },
            ],
        });
        assert.deepEqual(parseNode({ Node: { Node: "n2", Address: "10.0.0.2" }, Services: null }), { node: "n2", address: "10.0.0.2", services: [] });
        assert.equal(parseNode(null), undefined, "Consul answers null for a node that is gone");
        assert.throws(() => parseNode("x"), /unexpected JSON/);
    });

    it("reads the node list", () => {
        assert.deepEqual(
            [
                ...parseNodeList([
                    { Node: "a", Address: "10.0.0.1" },
                    { Node: "b", Address: "10.0.0.2" },
                ]),
            ],
            [
                ["a", "10.0.0.1"],
                ["b", "10.0.0.2"],
            ],
        );
    });
});

describe("gateway watch: the environment", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gateway-watch-"));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const ca = path.join(dir, "ca.pem");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n");
    const tokenFile = path.join(dir, "token");
    fs.writeFileSync(tokenFile, "secret\n");

    it("reads the variables Consul's clients read", () => {
        assert.deepEqual(
            connectionFromEnv({
                CONSUL_HTTP_ADDR: "consul.internal:8501",
                CONSUL_HTTP_SSL: "true",
                CONSUL_CACERT: ca,
                CONSUL_TLS_SERVER_NAME: "server.dc1.consul",
                CONSUL_HTTP_TOKEN: "t",
                CONSUL_HTTP_TOKEN_FILE: tokenFile,
            }),
            { addr: "consul.internal:8501", https: true, caFile: ca, serverName: "server.dc1.consul", token: "t", tokenFile },
        );
        assert.deepEqual(connectionFromEnv({}), { addr: "consul:8500", https: false });
    });

    it("takes TLS from an https:// address, and never drops it for http:// when CONSUL_HTTP_SSL is on", () => {
        const https = connectionFromEnv({ CONSUL_HTTP_ADDR: "https://10.0.0.5:8501" });
        assert.equal(https.https, true);
        assert.equal(consulOrigin(https), "https://10.0.0.5:8501");
        const forced = connectionFromEnv({ CONSUL_HTTP_ADDR: "http://10.0.0.5:8501", CONSUL_HTTP_SSL: "1" });
        assert.equal(consulOrigin(forced), "https://10.0.0.5:8501");
        assert.equal(consulOrigin(connectionFromEnv({ CONSUL_HTTP_ADDR: "127.0.0.1:8500", CONSUL_HTTP_SSL: "false" })), "http://127.0.0.1:8500");
    });

    it("refuses bad values with an error naming the variable", () => {
        assert.throws(() => connectionFromEnv({ CONSUL_HTTP_SSL: "maybe" }), /^Error: CONSUL_HTTP_SSL=maybe is not understood; use true or false$/);
        assert.throws(
            () => connectionFromEnv({ CONSUL_HTTP_SSL: "true", CONSUL_CACERT: path.join(dir, "missing.pem") }),
            /^Error: CONSUL_CACERT=.*missing\.pem is not a readable CA file/,
        );
        assert.throws(
            () => connectionFromEnv({ CONSUL_HTTP_TOKEN_FILE: path.join(dir, "nope") }),
            /^Error: CONSUL_HTTP_TOKEN_FILE=.*nope is not a readable token file/,
        );
        assert.throws(
            () => connectionFromEnv({ CONSUL_HTTP_ADDR: "unix:///run/consul.sock" }),
            /^Error: CONSUL_HTTP_ADDR=unix:\/\/\/run\/consul\.sock: only host:port/,
        );
        assert.throws(() => connectionFromEnv({ CONSUL_HTTP_SSL_VERIFY: "false" }), /^Error: CONSUL_HTTP_SSL_VERIFY=false: the gateway always verifies/);
    });
});
