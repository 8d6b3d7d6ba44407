// The applier's guard (components/images/gateway/controller/apply.ts), on a real HAProxy: a
// configuration `haproxy -c` rejects is set aside, the running one stays live and keeps serving,
// the operator sees it (log line, MAINT on gateway_config/latest-render-running, the metric), and
// the next good model runs — through the runtime API when only servers changed.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { Applier } from "../../components/images/gateway/controller/apply";
import { HaproxyMaster, RuntimeApi } from "../../components/images/gateway/controller/haproxy";
import { newMetrics, renderMetrics, type ControllerMetrics } from "../../components/images/gateway/controller/metrics";
import { buildModel, type CatalogService, type Model } from "../../components/images/gateway/controller/model";
import {
    Backend,
    freePort,
    GATEWAY_CONF_DIR,
    httpRequest,
    makeTempDir,
    readTools,
    removeTempDir,
    TEST_NETWORK,
    waitFor,
    type HelloResponse,
    type Tools,
} from "./harness";

describe("reload guard", { timeout: 90_000 }, () => {
    let tools: Tools;
    let dir: string;
    let port: number;
    let master: HaproxyMaster;
    let api: RuntimeApi;
    let applier: Applier;
    let metrics: ControllerMetrics;
    const backends: Backend[] = [];
    const log: string[] = [];

    const model = (instances: Backend[]): Model =>
        buildModel({
            kv: new Map(),
            nodes: [
                {
                    node: "node1",
                    address: "198.18.0.1",
                    services: instances.map((b): CatalogService => ({
                        id: `node1:${b.instance}:${b.port}`,
                        service: "guard-v1",
                        address: b.address,
                        port: b.port,
                        tags: ["rest"],
                    })),
                },
            ],
            settings: {
                httpPort: String(port),
                statsPort: "1",
                backendNetworks: TEST_NETWORK,
                nodeNetworks: "",
                trustedProxies: "",
                ownAddresses: "",
                nodePorts: "",
                fdLimit: "",
                maxconnLimit: "",
            },
        });
    const get = (p: string) => httpRequest(`http://127.0.0.1:${port}${p}`, { timeoutMs: 2000 });

    before(
        async () => {
            tools = readTools();
            dir = makeTempDir("guard");
            port = await freePort();
            const env = {
                ...process.env,
                GATEWAY_RUN_DIR: dir,
                GATEWAY_HTTP_PORT: String(port),
                GATEWAY_STATS_PORT: String(await freePort()),
                GATEWAY_BIND: "127.0.0.1",
                STATS_USER: "stats",
                STATS_PASSWORD: `pw-${process.pid}`,
            };
            fs.copyFileSync(path.join(GATEWAY_CONF_DIR, "bootstrap.cfg"), path.join(dir, "haproxy.cfg"));
            master = await HaproxyMaster.start({
                bin: tools.HAPROXY_BIN,
                configFile: path.join(dir, "haproxy.cfg"),
                runDir: dir,
                env,
                log: (l) => log.push(l),
            });
            api = new RuntimeApi(path.join(dir, "admin.sock"));
            metrics = newMetrics();
            applier = new Applier({ runDir: dir, haproxyBin: tools.HAPROXY_BIN, haproxyEnv: env, master, api, metrics, log: (l) => log.push(l) });
            backends.push(await Backend.start(tools, { service: "guard", version: "v1", instance: "guard-a" }));
            backends.push(await Backend.start(tools, { service: "guard", version: "v1", instance: "guard-b" }));
        },
        { timeout: 60_000 },
    );

    after(async () => {
        api?.close();
        await master?.stop();
        for (const b of backends) await b.stop();
        if (dir) removeTempDir(dir);
    });

    test("a model haproxy -c rejects is set aside; the gateway keeps serving; the next good model runs at runtime", async () => {
        assert.equal(await applier.apply(model([backends[0]!])), "reload");
        assert.equal((await get("/guard/v1/x")).status, 200);
        const live = fs.readFileSync(path.join(dir, "haproxy.cfg"), "utf8");

        // A value no rule of the model would let through, as a bug might: HAProxy refuses it.
        const good = model([backends[0]!]);
        const broken: Model = { ...good, timeouts: { ...good.timeouts, connect: "5parsecs" } };
        assert.equal(await applier.apply(broken), "rejected");
        assert.ok(
            log.some((l) => /^gateway: rendered config rejected by haproxy -c, keeping the running one: /.test(l)),
            log.join("\n"),
        );
        assert.match(fs.readFileSync(path.join(dir, "haproxy.cfg.rejected"), "utf8"), /timeout connect 5parsecs/);
        assert.equal(fs.readFileSync(path.join(dir, "haproxy.cfg"), "utf8"), live, "the live config is untouched");
        assert.equal((await get("/guard/v1/x")).status, 200);
        assert.match(renderMetrics(metrics), /^gateway_controller_latest_render_running 0$/m);
        assert.match(renderMetrics(metrics), /^gateway_controller_rejected_renders_total 1$/m);
        const state = (await api.run(["show stat"]))[0]!.split("\n").find((l) => l.startsWith("gateway_config,latest-render-running,"));
        assert.match(state ?? "", /,MAINT,/);

        // The next model differs from the running one only in a server: runtime API, no reload.
        const reloads = (await master.reloadCounts()).reloads;
        assert.equal(await applier.apply(model([backends[0]!, backends[1]!])), "runtime");
        assert.equal((await master.reloadCounts()).reloads, reloads);
        const seen = new Set<string>();
        await waitFor(
            async () => {
                const r = await get("/guard/v1/x");
                if (r.status === 200) seen.add((JSON.parse(r.body) as HelloResponse).hostname);
                return seen.size === 2;
            },
            { timeoutMs: 5000, message: "both instances answer" },
        );
        assert.match(renderMetrics(metrics), /^gateway_controller_latest_render_running 1$/m);
        assert.ok(log.some((l) => l.startsWith("gateway: the latest render is running again")));
    });
});
