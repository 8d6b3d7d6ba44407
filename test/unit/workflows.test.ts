// The GitHub workflows (.github/workflows): every action pinned by commit, the Pulumi CLI pinned,
// and previews that cannot change production: credentials of their own (never the deploy
// environments' secrets), the base branch's policy pack, runners of their own, and on aws a
// network that admits them to SSH only. Each rule is a function checked against the shipped
// workflows and against a workflow that breaks it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { devWith, evaluate, ROOT, TEST_SSH_KEY } from "../support/program";

const DIR = path.join(ROOT, ".github/workflows");
const read = (name: string): string => fs.readFileSync(path.join(DIR, name), "utf8");
const WORKFLOWS = fs.readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));

/** Commits of the actions' release tags, as their repositories tag them. */
const CONFIRMED: Record<string, string> = {
    "actions/checkout@v4.2.2": "11bd71901bbe5b1630ceea73d27597364c9af683",
    "actions/github-script@v7.0.1": "60a0d83039c74a4aee543508d2ffcb1c3799cdea",
    "actions/setup-node@v4.4.0": "49933ea5288caeca8642d1e84afbd3f7d6820020",
    "actions/upload-artifact@v4.6.2": "ea165f8d65b6e75b540449e92b4886f43607fa02",
    "actions/setup-go@v5.2.0": "3041bf56c941b39c61721a86cd11f3bb1338122a",
    "actions/cache@v4.2.0": "1bd1e32a3bdc45362d1e726936510720a7c30a57",
    "aws-actions/configure-aws-credentials@v4.0.2": "e3dd6a429d7300a6a4c196c26e071d42e0343502",
};

/** Every `uses:` that is not `owner/repo@<40 hex> # vX.Y.Z` (a local action or a digest-pinned image excepted), or a tag's commit other than the confirmed one. */
function unpinnedActions(text: string): string[] {
    const problems: string[] = [];
    for (const line of text.split("\n")) {
        const m = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
        if (!m) continue;
        const [, ref, rest] = m;
        if (ref.startsWith("./") || /^docker:\/\/[^@]+@sha256:[0-9a-f]{64}$/.test(ref)) continue;
        const pinned = /^([A-Za-z0-9_.-]+\/[A-Za-z0-9_.\/-]+)@([0-9a-f]{40})$/.exec(ref);
        const tag = /^\s+#\s+(v[0-9]+\.[0-9]+\.[0-9]+)\s*$/.exec(rest);
        if (!pinned || !tag) {
            problems.push(`${ref}${rest}: not pinned by a commit SHA with its version tag in a comment`);
            continue;
        }
        const known = CONFIRMED[`${pinned[1]}@${tag[1]}`];
        if (known === undefined) problems.push(`${pinned[1]} ${tag[1]}: no confirmed commit for this tag (add it to CONFIRMED once checked)`);
        else if (known !== pinned[2]) problems.push(`${pinned[1]} ${tag[1]}: commit ${pinned[2]} is not the tag's ${known}`);
    }
    return problems;
}

type Step = { uses?: string; run?: string; env?: Record<string, string>; with?: Record<string, string>; name?: string };
type Job = { "runs-on"?: string; environment?: string | { name: string }; env?: Record<string, string>; steps?: Step[] };
const jobsOf = (text: string): Record<string, Job> => (parseYaml(text) as { jobs: Record<string, Job> }).jobs;

/** Jobs that run the Pulumi CLI without installing a pinned version, checked against the release's checksums, first. */
function unpinnedPulumi(text: string): string[] {
    const problems: string[] = [];
    for (const [name, job] of Object.entries(jobsOf(text))) {
        const steps = job.steps ?? [];
        for (const s of steps) {
            if (s.uses && /^pulumi\//.test(s.uses)) problems.push(`${name}: ${s.uses} installs a Pulumi CLI of its choosing`);
        }
        const uses = steps.findIndex((s) => /(^|\n)\s*pulumi (preview|up|login|stack)\b/.test(s.run ?? ""));
        if (uses === -1) continue;
        const install = steps.findIndex(
            (s) =>
                /^[0-9]+\.[0-9]+\.[0-9]+$/.test(String(s.env?.PULUMI_VERSION ?? "")) &&
                /releases\/download\/v\$PULUMI_VERSION/.test(s.run ?? "") &&
                /sha256sum -c/.test(s.run ?? ""),
        );
        if (install === -1 || install > uses) problems.push(`${name}: runs pulumi without first installing a pinned PULUMI_VERSION verified by sha256sum`);
    }
    return problems;
}

/** The version each workflow installs. */
const pulumiVersions = (text: string): string[] => [...text.matchAll(/PULUMI_VERSION:\s*"([^"]+)"/g)].map((m) => m[1]);

/** `secrets.NAME` a job reads, anywhere in it. */
const secretsOf = (job: Job): Set<string> => new Set([...JSON.stringify(job).matchAll(/secrets\.([A-Za-z0-9_]+)/g)].map((m) => m[1]));

/** A preview job with another job's (deploy's) credentials, outside its environment, or on the deploy runners. */
function previewCredentialProblems(pullRequest: string, deploy: string): string[] {
    const problems: string[] = [];
    const preview = jobsOf(pullRequest).preview;
    if (!preview) return ["pull-request.yml has no preview job"];
    const deployJobs = Object.values(jobsOf(deploy));
    const deploySecrets = new Set(deployJobs.flatMap((j) => [...secretsOf(j)]));
    const env = typeof preview.environment === "string" ? preview.environment : preview.environment?.name;
    if (env !== "preview") problems.push(`the preview job runs in environment ${JSON.stringify(env)}, not preview`);
    for (const name of secretsOf(preview)) {
        if (!name.startsWith("PREVIEW_")) problems.push(`the preview job reads secrets.${name}: a preview's secrets are named PREVIEW_*`);
        if (deploySecrets.has(name)) problems.push(`the preview job reads secrets.${name}, which deploy.yml uses`);
    }
    for (const job of deployJobs) {
        const deployEnv = typeof job.environment === "string" ? job.environment : job.environment?.name;
        if (deployEnv === "preview") problems.push("a deploy job runs in the preview environment");
        if (job["runs-on"] === preview["runs-on"]) problems.push(`preview and deploy run on the same runners (${preview["runs-on"]})`);
        for (const name of secretsOf(job)) if (name.startsWith("PREVIEW_")) problems.push(`deploy reads the preview's secrets.${name}`);
    }
    if (!/vars\.PREVIEW_RUNNER/.test(String(preview["runs-on"]))) problems.push(`the preview job's runs-on ${preview["runs-on"]} is not vars.PREVIEW_RUNNER`);
    return problems;
}

/** A `pulumi preview` whose policy pack is not the base branch's checkout (a separate directory at the base commit). */
function previewPolicyPackProblems(pullRequest: string): string[] {
    const problems: string[] = [];
    for (const [name, job] of Object.entries(jobsOf(pullRequest))) {
        const steps = job.steps ?? [];
        const base = steps.find((s) => /^actions\/checkout@/.test(s.uses ?? "") && s.with?.ref === "${{ github.event.pull_request.base.sha }}" && s.with?.path);
        const baseDir = String(job.env?.BASE_DIR ?? "");
        for (const s of steps) {
            for (const m of (s.run ?? "").matchAll(/pulumi preview\b[^\n]*/g)) {
                const pack = /--policy-pack[ =]("[^"]+"|\S+)/.exec(m[0])?.[1].replace(/"/g, "");
                if (pack === undefined) problems.push(`${name}: ${m[0]} runs no policy pack`);
                else if (pack !== "$BASE_DIR/policy") problems.push(`${name}: the policy pack ${pack} is the pull request's own tree`);
                else if (!base || !baseDir.endsWith(`/${base.with!.path}`))
                    problems.push(`${name}: BASE_DIR (${baseDir}) is not a checkout of the base commit (github.event.pull_request.base.sha)`);
            }
        }
    }
    return problems;
}

describe("workflows: every action pinned by commit", () => {
    it("the shipped workflows: each uses: is owner/repo@<40 hex> # vX.Y.Z, the tag's confirmed commit", () => {
        assert.ok(
            ["deploy.yml", "pull-request.yml", "rebuild.yml"].every((f) => WORKFLOWS.includes(f)),
            WORKFLOWS.join(", "),
        );
        for (const f of WORKFLOWS) assert.deepEqual(unpinnedActions(read(f)), [], f);
        assert.ok(WORKFLOWS.some((f) => /uses: actions\/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4\.2\.2/.test(read(f))));
    });

    it("fails a tag, a branch, a short SHA, a SHA without its tag, and a SHA that is not the tag's", () => {
        const step = (uses: string) => `jobs:\n  a:\n    steps:\n      - uses: ${uses}\n`;
        for (const bad of [
            "actions/checkout@v4.2.2",
            "actions/checkout@main",
            "actions/checkout@11bd719",
            "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
            "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4",
            "actions/checkout@0000000000000000000000000000000000000000 # v4.2.2",
            "pulumi/actions@v6.0.0",
        ]) {
            assert.equal(unpinnedActions(step(bad)).length, 1, bad);
        }
        assert.deepEqual(unpinnedActions(step("./.github/actions/local")), []);
    });
});

/**
 * What the scheduled rebuild misses: a weekly schedule and a manual trigger, a build of every
 * shipped image that fetches the base again and installs every package again (--pull --no-cache),
 * a scan for pending security updates, and a failure someone sees (an issue).
 */
function rebuildProblems(text: string): string[] {
    const problems: string[] = [];
    const wf = parseYaml(text) as { on?: Record<string, unknown> };
    const schedule = (wf.on?.schedule ?? []) as { cron?: string }[];
    if (!schedule.some((s) => /^\S+ \S+ \* \* [0-6]$/.test(s.cron ?? ""))) problems.push("no weekly schedule (cron on one day of the week)");
    if (!("workflow_dispatch" in (wf.on ?? {}))) problems.push("no workflow_dispatch");
    const runs = Object.values(jobsOf(text))
        .flatMap((j) => j.steps ?? [])
        .map((s) => s.run ?? "")
        .join("\n");
    if (!/for dir in components\/images\/\*\//.test(runs)) problems.push("does not rebuild every folder of components/images");
    if (!/docker build --pull --no-cache\b/.test(runs)) problems.push("builds without --pull --no-cache (a cached layer keeps old packages)");
    if (!/apt list --upgradable/.test(runs)) problems.push("no scan for pending updates (apt list --upgradable)");
    if (!/gh issue (create|comment)/.test(runs)) problems.push("a failure opens no issue");
    return problems;
}

describe("workflows: the scheduled rebuild", () => {
    it("rebuild.yml: weekly and on demand, every image with --pull --no-cache, scanned, an issue on failure", () => {
        assert.deepEqual(rebuildProblems(read("rebuild.yml")), []);
    });
    it("fails a rebuild that uses the cache, runs daily only, or scans nothing", () => {
        const good = read("rebuild.yml");
        assert.deepEqual(rebuildProblems(good.replace("--pull --no-cache ", "")), ["builds without --pull --no-cache (a cached layer keeps old packages)"]);
        assert.deepEqual(rebuildProblems(good.replace(/cron: "[^"]+"/, 'cron: "17 5 * * *"')), ["no weekly schedule (cron on one day of the week)"]);
        assert.deepEqual(rebuildProblems(good.replace(/apt list --upgradable/g, "true")), ["no scan for pending updates (apt list --upgradable)"]);
    });
});

describe("workflows: the Pulumi CLI pinned", () => {
    it("each job that runs pulumi first installs PULUMI_VERSION from the release, checked by sha256sum; one version everywhere", () => {
        for (const f of WORKFLOWS) assert.deepEqual(unpinnedPulumi(read(f)), [], f);
        const versions = new Set(WORKFLOWS.flatMap((f) => pulumiVersions(read(f))));
        assert.equal(versions.size, 1, [...versions].join(", "));
        const sdk = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/@pulumi/pulumi/package.json"), "utf8")).version as string;
        assert.equal([...versions][0], sdk, "the CLI of the SDK's release");
    });

    it("fails pulumi/actions, and a pulumi command with no pinned install before it", () => {
        const preview = read("pull-request.yml");
        const unpinned = preview.replace(/PULUMI_VERSION: "[^"]+"/, 'PULUMI_VERSION: "latest"');
        assert.match(unpinnedPulumi(unpinned).join(), /runs pulumi without first installing a pinned PULUMI_VERSION/);
        const action = "jobs:\n  up:\n    steps:\n      - uses: pulumi/actions@v6.0.0\n      - run: pulumi up --yes\n";
        assert.equal(unpinnedPulumi(action).length, 2);
    });
});

describe("workflows: previews that cannot change production", () => {
    it("the preview job: environment preview, PREVIEW_* secrets only (none of deploy's), its own runners", () => {
        assert.deepEqual(previewCredentialProblems(read("pull-request.yml"), read("deploy.yml")), []);
    });

    it("fails a preview with the deploy secrets, outside its environment, or on the deploy runners", () => {
        const pr = read("pull-request.yml");
        const deploy = read("deploy.yml");
        assert.match(
            previewCredentialProblems(pr.replace("secrets.PREVIEW_NODES_SSH_KEY", "secrets.NODES_SSH_PRIVATE_KEY"), deploy).join("\n"),
            /reads secrets\.NODES_SSH_PRIVATE_KEY, which deploy\.yml uses/,
        );
        assert.match(
            previewCredentialProblems(pr.replace("secrets.PREVIEW_PULUMI_CONFIG_PASSPHRASE", "secrets.PULUMI_CONFIG_PASSPHRASE"), deploy).join("\n"),
            /secrets\.PULUMI_CONFIG_PASSPHRASE/,
        );
        assert.match(previewCredentialProblems(pr.replace("environment: preview", "environment: aws"), deploy).join(), /not preview/);
        assert.match(previewCredentialProblems(pr.replace("vars.PREVIEW_RUNNER", "vars.DEPLOY_RUNNER"), deploy).join(), /same runners/);
    });

    it("the preview's policy pack is the base branch's checkout, not the pull request's tree", () => {
        const pr = read("pull-request.yml");
        assert.deepEqual(previewPolicyPackProblems(pr), []);
        assert.match(previewPolicyPackProblems(pr.replace('--policy-pack "$BASE_DIR/policy"', "--policy-pack policy")).join(), /pull request's own tree/);
        assert.match(previewPolicyPackProblems(pr.replace('--policy-pack "$BASE_DIR/policy" ', "")).join(), /runs no policy pack/);
        assert.match(
            previewPolicyPackProblems(pr.replace("ref: ${{ github.event.pull_request.base.sha }}", "ref: ${{ github.event.pull_request.head.sha }}")).join(),
            /not a checkout of the base commit/,
        );
        assert.match(pr, /require\(`\$\{process\.env\.BASE_DIR\}\/\.github\/scripts\/preview-comment\.js`\)/, "the comment script is the base branch's too");
    });

    it("aws.previewCidr: the preview runners reach SSH only (their key's read-only Docker API), never stats or the Consul API", async () => {
        const aws = { adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY, previewCidr: "198.51.100.7/32" };
        const p = await evaluate(devWith({ target: "aws", nodeCount: 3, aws }));
        assert.equal(p.error, null, String(p.error));
        const fromPreview = p
            .ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
            .filter((r) => r.inputs.cidrIpv4 === aws.previewCidr)
            .map((r) => [r.inputs.ipProtocol, r.inputs.fromPort, r.inputs.toPort]);
        assert.deepEqual(fromPreview, [["tcp", 22, 22]]);
        const without = await evaluate(devWith({ target: "aws", nodeCount: 3, aws: { ...aws, previewCidr: undefined } }));
        assert.equal(
            without.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").length + 1,
            p.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").length,
        );
    });
});
