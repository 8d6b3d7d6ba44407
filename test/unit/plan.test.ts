// The routing plan (plan/, scripts/plan.ts): the route table of the shipped stack files, its
// difference from another config, every lint rule, the comment it renders, and the command.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import type { RouteTable } from "../../components/images/gateway/controller/routes";
import { failed, plan, stackTable, type Finding, type Plan } from "../../plan";
import { diffTables } from "../../plan/diff";
import { lint } from "../../plan/lint";
import { markdown, text } from "../../plan/report";
import { evaluate, isSecret, secretValue, TEST_SSH_KEY } from "../support/program";
import { ROOT } from "../support/paths";

type Config = Record<string, any>;

function stackFile(stack: "dev" | "aws"): Config {
    const config = (parseYaml(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Config }).config;
    // The two values an aws operator sets before the first `pulumi up`.
    if (stack === "aws") config["service-discovery:aws"] = { ...config["service-discovery:aws"], adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY };
    return config;
}

/** A copy of a stack file with its services changed. */
function withServices(config: Config, change: (services: any[]) => void): Config {
    const copy = structuredClone(config);
    change(copy["service-discovery:services"]);
    return copy;
}

function tableOf(config: Config, stack = "dev"): RouteTable {
    const t = stackTable(config, stack);
    assert.ok("table" in t, "error" in t ? t.error.message : "");
    return t.table;
}

const rules = (p: Plan | Finding[]): string[] => ("findings" in p ? p.findings : p).map((f) => `${f.level} ${f.rule} ${f.key}`);

describe("routing plan: the route table of the shipped stack files", () => {
    it("Pulumi.dev.yaml: the two versions of hello, at their prefixes, with their replicas", () => {
        const t = tableOf(stackFile("dev"));
        assert.deepEqual(t.http, [
            { prefix: "/hello/v1/", service: "hello-v1", servers: 2, drained: 0 },
            { prefix: "/hello/v2/", service: "hello-v2", servers: 1, drained: 0 },
        ]);
        assert.deepEqual(t.tcp, []);
        assert.deepEqual(t.notes, []);
    });

    it("Pulumi.aws.yaml: the versions, the 90/10 split of /hello/ as HAProxy weighs it, and the tcp listener", () => {
        const t = tableOf(stackFile("aws"), "aws");
        assert.deepEqual(
            t.http.map((e) => e.prefix),
            ["/hello/v1/", "/hello/v2/", "/hello/"],
        );
        const split = t.http[2]!;
        assert.equal(split.service, "hello");
        assert.equal(split.sticky, false);
        // Per-server weights 256, 256 (v1's two replicas) and 56 (v2's one): 512/568 = 90.1 %.
        assert.deepEqual(split.split, [
            { version: "v1", share: 90.1, servers: 2, drained: 0 },
            { version: "v2", share: 9.9, servers: 1, drained: 0 },
        ]);
        assert.deepEqual(t.tcp, [{ port: 5432, service: "pg", servers: 2, drained: 0 }]);
        assert.deepEqual(plan("aws", stackFile("aws")).findings, []);
    });

    it("feeds the gateway's model exactly the keys the program writes (only the node addresses are assumed)", async () => {
        const { modelInput, settingsOf, rawConfig } = await import("../../plan/input");
        const p = await evaluate(Object.fromEntries(Object.entries(stackFile("dev")).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
        assert.equal(p.error, null, String(p.error));
        const written = (p.one("consul:index/keys:Keys", "haproxy-settings").inputs.keys as { path: string; value: unknown }[]).map(
            (k) => [k.path, String(isSecret(k.value) ? secretValue(k.value) : k.value)] as const,
        );
        const planned = [...modelInput(settingsOf(rawConfig(stackFile("dev")), "dev")).kv];
        const networks = (key: string) => key.includes("/networks/");
        assert.deepEqual(
            planned.filter(([k]) => !networks(k)),
            written.filter(([k]) => !networks(k)),
        );
        assert.deepEqual(
            planned.filter(([k]) => networks(k)).map(([k]) => k),
            written.filter(([k]) => networks(k)).map(([k]) => k),
        );
    });
});

describe("routing plan: the difference from another config", () => {
    const dev = stackFile("dev");

    it("the same config: no change", () => {
        assert.deepEqual(diffTables(tableOf(dev), tableOf(dev)), []);
    });

    it("a new version, a removed version, a new tcp listener, a replica more", () => {
        const head = withServices(dev, (s) => {
            s[0].replicas = 3;
            s.splice(1, 1);
            s.push({ name: "hello", version: "v3", build: "components/images/hello", containerPort: 8080, healthCheckPath: "/health" });
            s.push({ name: "pg", build: "components/images/postgres", containerPort: 5432, protocol: "tcp", listenPort: 5432, replicas: 2 });
        });
        assert.deepEqual(diffTables(tableOf(dev), tableOf(head)), [
            { kind: "changed", route: "/hello/v1/", what: ["2 replicas → 3"] },
            { kind: "added", route: "/hello/v3/", to: "hello-v3 (1 replica)" },
            { kind: "added", route: "tcp :5432", to: "pg (2 replicas)" },
            { kind: "removed", route: "/hello/v2/", from: "hello-v2 (1 replica)" },
        ]);
    });

    it("a replica in maintenance, then a split's weights and stickiness", () => {
        const head = withServices(dev, (s) => (s[0].maintenance = [2]));
        assert.deepEqual(diffTables(tableOf(dev), tableOf(head)), [{ kind: "changed", route: "/hello/v1/", what: ["in maintenance 0 → 1"] }]);
        const aws = stackFile("aws");
        const canary = withServices(aws, (s) => {
            s[0].weight = 50;
            s[1].weight = 50;
            s[0].sticky = true;
            s[1].sticky = true;
        });
        assert.deepEqual(diffTables(tableOf(aws, "aws"), tableOf(canary, "aws")), [
            { kind: "changed", route: "/hello/", what: ["v1 90.1 % → 50 %", "v2 9.9 % → 50 %", "sticky"] },
        ]);
    });
});

describe("routing plan: lint, each finding with the key to change", () => {
    const dev = stackFile("dev");
    const aws = stackFile("aws");

    it("config: a refused config names its key, and nothing else is planned", () => {
        const p = plan(
            "dev",
            withServices(dev, (s) => (s[0].replicas = 0)),
        );
        assert.deepEqual(rules(p), ["error config service-discovery:services[0].replicas"]);
        assert.equal(p.table, undefined);
        assert.match(p.findings[0]!.message, /^0 is not allowed/);
        assert.equal(failed(p), true);
    });

    it("unrouted: a declared service over the routed-services cap", () => {
        const config = structuredClone(dev);
        config["service-discovery:haproxy"].maxServices = 1;
        const p = plan("dev", config);
        assert.deepEqual(rules(p), ["error unrouted service-discovery:haproxy.maxServices"]);
        assert.match(p.findings[0]!.message, /^hello-v2 would not be routed: skipped: service hello-v2: over the cap of 1/);
    });

    it("no-replica: every replica on an address the gateway refuses (a node at the metadata address)", () => {
        const config = structuredClone(dev);
        delete config["service-discovery:nodeCount"];
        config["service-discovery:target"] = "hosts";
        config["service-discovery:hosts"] = [{ name: "a", host: "ssh://u@h", address: "169.254.169.254" }];
        const p = plan("dev", config);
        assert.deepEqual(rules(p), ["error no-replica service-discovery:hosts[0].address", "error no-replica service-discovery:hosts[0].address"]);
        assert.match(
            p.findings[0]!.message,
            /^\/hello\/v1\/ has no replica to route to: every request gets 503 \(the gateway skipped: hello-v1 instance 169\.254\.169\.254:/,
        );
        // The same stack on an ordinary address plans cleanly: the rule is the address's.
        config["service-discovery:hosts"] = [{ name: "a", host: "ssh://u@h", address: "10.0.0.5" }];
        assert.deepEqual(rules(plan("dev", config)), []);
    });

    it("no-share: weights that send 0 % to every version", () => {
        const p = plan(
            "aws",
            withServices(aws, (s) => {
                s[0].weight = 0;
                s[1].weight = 0;
            }),
        );
        assert.deepEqual(rules(p), ["error no-share service-discovery:services[0].weight"]);
        assert.match(p.findings[0]!.message, /\/hello\/ sends 0 % to every version \(hello-v1 weight 0, hello-v2 weight 0\)/);
    });

    it("weight-step: a share moved by more than the step without sticky warns; sticky or a small step does not", () => {
        const base = { name: "base", config: aws };
        const jump = withServices(aws, (s) => {
            s[0].weight = 40;
            s[1].weight = 60;
        });
        const p = plan("aws", jump, base);
        assert.deepEqual(rules(p), ["warning weight-step service-discovery:services[0].sticky", "warning weight-step service-discovery:services[1].sticky"]);
        assert.equal(failed(p), false, "a warning does not fail the plan");
        const sticky = withServices(jump, (s) => {
            s[0].sticky = true;
            s[1].sticky = true;
        });
        assert.deepEqual(rules(plan("aws", sticky, base)), []);
        const small = withServices(aws, (s) => {
            s[0].weight = 80;
            s[1].weight = 20;
        });
        assert.deepEqual(rules(plan("aws", small, base)), []);
        assert.deepEqual(rules(plan("aws", jump, base, { weightStep: 60 })), [], "the step is an option");
        assert.deepEqual(rules(plan("aws", jump)), [], "without a base there is no step");
    });

    it("all-in-maintenance: every replica of an http and of a tcp service drained warns; some do not", () => {
        const p = plan(
            "aws",
            withServices(aws, (s) => {
                s[1].maintenance = true;
                s[2].maintenance = true;
                s[0].maintenance = [1];
            }),
        );
        assert.deepEqual(rules(p), [
            "warning all-in-maintenance service-discovery:services[1].maintenance",
            "warning all-in-maintenance service-discovery:services[2].maintenance",
        ]);
        assert.match(p.findings[1]!.message, /^tcp :5432 \(pg\): every replica is in maintenance/);
    });

    it("shadowed, tcp-port and rejected: a table the model would never give is still judged (the rules guard the model too)", () => {
        const settings = (stackTable(aws, "aws") as { settings: any }).settings;
        const t = tableOf(aws, "aws");
        const reordered: RouteTable = { ...t, http: [t.http[2]!, t.http[0]!, t.http[1]!] };
        assert.deepEqual(rules(lint(settings, reordered)), ["error shadowed service-discovery:services[0]", "error shadowed service-discovery:services[1]"]);
        const twice: RouteTable = { ...t, tcp: [t.tcp[0]!, { ...t.tcp[0]!, service: "hello-v1" }] };
        assert.deepEqual(rules(lint(settings, twice)), ["error tcp-port service-discovery:services[0].listenPort"]);
        const refused: RouteTable = { ...t, notes: ["rejected: KV service/haproxy/services/pg/listen: value (sha256 0123abcd) is not a port; running none"] };
        assert.deepEqual(rules(lint(settings, refused)), ["error rejected service-discovery:services[2]"]);
    });
});

describe("routing plan: the comment and the terminal", () => {
    const aws = stackFile("aws");
    const head = withServices(aws, (s) => {
        s[0].weight = 40;
        s[1].weight = 60;
        s[2].maintenance = true;
    });
    const p = plan("aws", head, { name: "main's Pulumi.aws.yaml", config: aws });

    it("markdown: the verdict, the changes table, the lint with keys, the full table folded", () => {
        const md = markdown(p);
        const expected = [
            "#### :white_check_mark: Routing plan of `aws` against main's Pulumi.aws.yaml",
            "",
            "| | route | users get |",
            "|---|---|---|",
            "| :pencil2: | `/hello/` | v1 90.1 % → 39.9 %, v2 9.9 % → 60.1 % |",
            "| :pencil2: | `tcp :5432` | in maintenance 0 → 2 |",
            "",
            "**Lint**: 0 errors, 3 warnings",
        ].join("\n");
        assert.ok(md.startsWith(expected), md);
        assert.match(md, /- :warning: weight-step `service-discovery:services\[0\]\.sticky`: \/hello\/: v1 moves from 90\.1 % to 39\.9 %/);
        assert.match(
            md,
            /<details><summary>Route table \(4 routes\)<\/summary>\n\n\| route \| users get \|\n\|---\|---\|\n\| `\/hello\/v1\/` \| hello-v1 \(2 replicas\) \|/,
        );
        assert.match(md, /\| `tcp :5432` \| pg \(2 replicas, 2 in maintenance\) \|\n\n<\/details>\n$/);
    });

    it("markdown: an error turns the verdict, and no value can break the table", () => {
        const bad: Plan = {
            ...p,
            findings: [{ level: "error", rule: "config", key: "service-discovery:services[0].name", message: '"a|b\n`x`" is not allowed' }],
        };
        const md = markdown(bad);
        assert.match(md, /^#### :x: Routing plan/);
        assert.match(md, /- :x: config `service-discovery:services\[0\]\.name`: "a\\\|b `x`" is not allowed\n/);
    });

    it("text: routes in matching order, changes and lint", () => {
        const out = text(p);
        assert.match(
            out,
            /^Routing plan of aws against main's Pulumi\.aws\.yaml\n\nRoutes \(in matching order\):\n {2}\/hello\/v1\/ {2}hello-v1 \(2 replicas\)\n/,
        );
        assert.match(out, /\nChanges:\n {2}~ \/hello\/ {2}v1 90\.1 % → 39\.9 %, v2 9\.9 % → 60\.1 %\n {2}~ tcp :5432 {2}in maintenance 0 → 2\n/);
        assert.match(out, /\nLint: 0 errors, 3 warnings\n {2}warning \[weight-step\] service-discovery:services\[0\]\.sticky: /);
    });
});

describe("npm run plan", () => {
    const run = (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
        new Promise((resolve) =>
            execFile(
                process.execPath,
                ["--import", "tsx", path.join(ROOT, "scripts/plan.ts"), ...args],
                { cwd: ROOT, env: { ...process.env, ...env } },
                (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
            ),
        );

    it("prints the dev stack's plan and exits 0; compared with the committed file (git), no change", async () => {
        const r = await run(["--stack", "dev", "--base", "HEAD"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^Routing plan of dev against HEAD's Pulumi\.dev\.yaml\n/);
        assert.match(r.stdout, /\nNo route changes\.\n/);
    });

    it("--base-file: exits 1 on a lint error, with the markdown the pull request shows and the file --out wrote", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-plan-"));
        try {
            const base = path.join(dir, "base.yaml");
            fs.writeFileSync(base, toYaml({ config: withServices(stackFile("dev"), (s) => s.splice(1, 1)) }));
            const out = path.join(dir, "plan.md");
            const r = await run(["--stack", "dev", "--base-file", base, "--format", "markdown", "--out", out]);
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stdout, /\| :heavy_plus_sign: \| `\/hello\/v2\/` \| hello-v2 \(1 replica\) \|/);
            assert.equal(fs.readFileSync(out, "utf8"), r.stdout);
            const json = await run(["--stack", "dev", "--format", "json"]);
            assert.deepEqual(
                (JSON.parse(json.stdout) as Plan).table!.http.map((e) => e.prefix),
                ["/hello/v1/", "/hello/v2/"],
            );
            const aws = await run(["--stack", "aws"]);
            assert.equal(aws.code, 1, "the shipped aws file lacks the operator's adminCidr: the config error fails the plan");
            assert.match(aws.stdout, /error \[config\] service-discovery:aws\.adminCidr: missing is not allowed/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("usage errors exit 2 and say what is allowed", async () => {
        for (const [args, message] of [
            [["--format", "html"], /--format html: text, markdown or json/],
            [["--base", "no-such-ref-xyz"], /--base no-such-ref-xyz: no such git revision here/],
            [["--stack", "nope"], /Pulumi\.nope\.yaml does not exist/],
            [["--gateway", "http://127.0.0.1:9"], /--gateway needs the stats login in STATS_USER and STATS_PASSWORD/],
            [["--base", "HEAD", "--base-file", "x"], /exclude each other/],
        ] as const) {
            const r = await run([...args], { STATS_USER: "", STATS_PASSWORD: "" });
            assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
            assert.match(r.stderr, message);
            assert.match(r.stderr, /usage: npm run plan/);
        }
    });
});
