// Trust rules of the gateway's template (docs/security.md, "Trust rules"): the addresses an instance may
// register, used as an attacker would (the other rules are in trust-rules.test.ts). Each test
// registers the attack with the harness's helpers (the tokens the stack gives Registrator and
// Pulumi), waits until the gateway has rendered it, and asserts that the attack never becomes a
// server, that the real instances keep serving, and that the skip is logged once (not on every
// render) with its reason.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { GATEWAY_OWN_ADDRESS, Harness, NODE_ADDRESS, OUTSIDE_ADDRESS, waitFor, type Backend } from "./harness";
import { servers, startServer, TrustRig } from "./harness/trust-rules";

describe("trust rules", { timeout: 300_000 }, () => {
    let rig: TrustRig;
    let h: Harness;
    let realA: Backend;
    let realB: Backend;

    before(
        async () => {
            rig = await TrustRig.start();
            ({ h, realA, realB } = rig);
        },
        { timeout: 60_000 },
    );

    after(async () => {
        await rig?.stop();
    });

    afterEach(async () => {
        await rig?.cleanup();
    });

    describe("server addresses", () => {
        const attacks: Array<{ what: string; address: () => string; port: () => number; reason: RegExp }> = [
            {
                what: "the gateway itself on loopback (a loop filling maxconn)",
                address: () => "127.0.0.1",
                port: () => h.gateway.httpPort,
                reason: /loopback address \(127\.0\.0\.0\/8\)/,
            },
            { what: "Consul's API on loopback", address: () => "127.0.0.1", port: () => h.consul.ports.https, reason: /loopback address/ },
            {
                what: "the cloud metadata service",
                address: () => "169.254.169.254",
                port: () => 80,
                reason: /link-local address \(169\.254\.0\.0\/16, cloud metadata\)/,
            },
            { what: "an unspecified address", address: () => "0.1.2.3", port: () => 80, reason: /unspecified address \(0\.0\.0\.0\/8\)/ },
            { what: "a multicast address", address: () => "224.0.0.1", port: () => 80, reason: /multicast or reserved address \(224\.0\.0\.0\/3\)/ },
            { what: "a reserved address", address: () => "240.0.0.1", port: () => 80, reason: /multicast or reserved address/ },
            { what: "the broadcast address", address: () => "255.255.255.255", port: () => 80, reason: /multicast or reserved address/ },
            {
                what: "the gateway's published port on the node",
                address: () => NODE_ADDRESS,
                port: () => h.gateway.httpPort,
                reason: /port \d+ of a node is the gateway's, Consul's or SSH/,
            },
            { what: "the stats port on the node", address: () => NODE_ADDRESS, port: () => h.gateway.statsPort, reason: /port \d+ of a node is/ },
            { what: "Consul's published port on the node", address: () => NODE_ADDRESS, port: () => h.consul.ports.https, reason: /port \d+ of a node is/ },
            { what: "SSH on the node", address: () => NODE_ADDRESS, port: () => 22, reason: /port 22 of a node is/ },
            {
                what: "Consul's API port on another address of the network",
                address: () => "198.18.0.9",
                port: () => 8500,
                reason: /port 8500 is Consul's or the Docker API's/,
            },
            { what: "Consul's server RPC port", address: () => "198.18.0.9", port: () => 8300, reason: /port 8300 is Consul's/ },
            { what: "the Docker API (socket proxy)", address: () => "198.18.0.9", port: () => 2375, reason: /port 2375 is Consul's or the Docker API's/ },
            { what: "a port that is not a TCP port", address: () => NODE_ADDRESS, port: () => 70000, reason: /not a TCP port/ },
        ];

        for (const attack of attacks) {
            it(`never routes to ${attack.what}`, async () => {
                const id = `trust:addr:${rig.next()}`;
                const address = attack.address();
                const port = attack.port();
                const reloads = await rig.settled();
                rig.undo.push(() => h.consul.deregister(id));
                await h.consul.register({ ID: id, Name: "real-v1", Tags: ["rest", "check=/health"], Address: address, Port: port });
                const line = `skipped: real-v1 instance ${address}:${port}: `;
                await waitFor(
                    () =>
                        rig
                            .stderr()
                            .split("\n")
                            .some((l) => l.startsWith(`gateway: ${line}`)),
                    { timeoutMs: 10_000, message: `"${line}" logged` },
                );
                const logLine = rig
                    .stderr()
                    .split("\n")
                    .find((l) => l.startsWith(`gateway: ${line}`))!;
                assert.match(logLine, attack.reason);
                const cfg = h.gateway.readRenderedConfig("live");
                assert.deepEqual(servers(cfg, "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort(), "only the real instances are servers");
                assert.equal(await rig.settled(), reloads, "a skipped instance changes only the list: no reload");
                await rig.rerender();
                await rig.rerender();
                assert.equal(
                    rig
                        .stderr()
                        .split("\n")
                        .filter((l) => l === logLine).length,
                    1,
                    "logged once, not on every render",
                );
                await rig.realKeepServing();
                await h.consul.deregister(id);
            });
        }

        it("never routes to 0.0.0.0 (Linux connects it to the gateway's own host)", async () => {
            rig.undo.push(() => h.consul.deregister("trust:zero"));
            const res = await h.consul.tryRegister({
                ID: "trust:zero",
                Name: "real-v1",
                Tags: ["rest", "check=/health"],
                Address: "0.0.0.0",
                Port: h.gateway.httpPort,
            });
            if (res.status === 200) {
                await rig.waitLogged(`skipped: real-v1 instance 0.0.0.0:${h.gateway.httpPort}: unspecified address (0.0.0.0/8)`);
            } else {
                assert.equal(res.status, 400, `Consul refuses it or the gateway skips it: ${res.status} ${res.body}`);
                await rig.rerender();
            }
            assert.deepEqual(servers(h.gateway.readRenderedConfig("live"), "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort());
            await rig.realKeepServing();
        });

        it("never routes outside the declared networks, nor to the gateway's own address, even where a server answers", async () => {
            const outsideServer = await startServer(OUTSIDE_ADDRESS, () => ({ hostname: "decoy-outside" }));
            h.onStop(outsideServer.close);
            const own = await startServer(GATEWAY_OWN_ADDRESS, () => ({ hostname: "decoy-own" }));
            h.onStop(own.close);
            rig.undo.push(
                () => h.consul.deregister("trust:outside"),
                () => h.consul.deregister("trust:own"),
            );
            await h.consul.register({
                ID: "trust:outside",
                Name: "real-v1",
                Tags: ["rest", "check=/health"],
                Address: OUTSIDE_ADDRESS,
                Port: outsideServer.port,
            });
            await h.consul.register({ ID: "trust:own", Name: "real-v1", Tags: ["rest", "check=/health"], Address: GATEWAY_OWN_ADDRESS, Port: own.port });
            await rig.waitLogged(
                `skipped: real-v1 instance ${OUTSIDE_ADDRESS}:${outsideServer.port}: address outside the networks the stack declares (GATEWAY_BACKEND_NETWORKS)`,
            );
            await rig.waitLogged(`skipped: real-v1 instance ${GATEWAY_OWN_ADDRESS}:${own.port}: an address of the gateway itself (GATEWAY_OWN_ADDRESSES)`);
            assert.deepEqual(servers(h.gateway.readRenderedConfig("live"), "svc_real-v1").sort(), [realA.serverName, realB.serverName].sort());
            for (let i = 0; i < 10; i++) {
                const res = await h.gateway.get("/real/v1/x");
                assert.ok(!res.body.includes("decoy"), `a decoy answered: ${res.body}`);
            }
            await rig.realKeepServing();
            await h.consul.deregister("trust:outside");
            await h.consul.deregister("trust:own");
        });

        it("routes an ordinary service listening on 80 in its own container (an address that is not a node)", async () => {
            rig.undo.push(() => h.consul.deregister("trust:port80"));
            await h.consul.register({ ID: "trust:port80", Name: "web-v1", Tags: ["rest", "check=/health"], Address: "198.18.0.7", Port: 80 });
            const cfg = await h.waitForConfig((c) => servers(c, "svc_web-v1").length > 0, "web-v1 rendered");
            assert.deepEqual(servers(cfg, "svc_web-v1"), ["198.18.0.7:80"]);
            await h.consul.deregister("trust:port80");
        });
    });
});
