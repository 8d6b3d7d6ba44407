// The pull request's comment (.github/scripts/preview-comment.js, posted by pull-request.yml):
// rendered from a fixture of `pulumi preview`'s output and a real routing plan.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { plan } from "../../plan";
import { markdown } from "../../plan/report";
import { ROOT } from "../support/paths";
import { TEST_SSH_KEY } from "../support/program";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { previewComment, COMMENT_LIMIT } = require("../../.github/scripts/preview-comment.js") as {
    previewComment: (o: Record<string, unknown>) => string;
    COMMENT_LIMIT: number;
};

const PREVIEW = fs.readFileSync(path.join(__dirname, "fixtures", "preview-aws.txt"), "utf8");
const RUN = "https://github.com/o/r/actions/runs/1";

function awsPlan(): string {
    const config = (parseYaml(fs.readFileSync(path.join(ROOT, "Pulumi.aws.yaml"), "utf8")) as { config: Record<string, any> }).config;
    config["service-discovery:aws"] = { ...config["service-discovery:aws"], adminCidr: "203.0.113.7/32", publicKey: TEST_SSH_KEY };
    const head = structuredClone(config);
    head["service-discovery:services"][2].maintenance = true;
    return markdown(plan("aws", head, { name: "main's Pulumi.aws.yaml", config }));
}

describe("the pull request's comment", () => {
    it("the marker, the routing plan, then the preview's output in a fence and the run's link", () => {
        const planText = awsPlan();
        const body = previewComment({ stack: "aws", previewOutcome: "success", previewLog: PREVIEW, plan: planText, planOutcome: "success", runUrl: RUN });
        assert.equal(
            body,
            `<!-- service-discovery preview: aws -->\n${planText.trimEnd()}\n\n#### :white_check_mark: preview of \`aws\` succeeded\n\n\`\`\`\n${PREVIEW}\n\`\`\`\n[workflow run](${RUN})`,
        );
        assert.match(body, /\| :pencil2: \| `tcp :5432` \| in maintenance 0 → 2 \|/);
    });

    it("a failed preview and a plan that was never written still make one comment, saying both", () => {
        const body = previewComment({ stack: "dev", previewOutcome: "failure", previewLog: "error: policy violation", planOutcome: "failure", runUrl: RUN });
        assert.match(
            body,
            /^<!-- service-discovery preview: dev -->\n#### :x: Routing plan of `dev` not computed \(the plan step failed before writing it; see the workflow run\)\n\n#### :x: preview of `dev` FAILED/,
        );
        assert.match(body, /```\nerror: policy violation\n```/);
    });

    it("blanks the run's credentials and any private key the output holds", () => {
        const log = `${PREVIEW}passphrase s3cr3t-passphrase here\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\nshort x\n`;
        const body = previewComment({
            stack: "aws",
            previewOutcome: "success",
            previewLog: log,
            plan: awsPlan(),
            planOutcome: "success",
            runUrl: RUN,
            secrets: { PULUMI_CONFIG_PASSPHRASE: "s3cr3t-passphrase", AWS_SESSION_TOKEN: "x", PULUMI_ACCESS_TOKEN: undefined },
        });
        assert.doesNotMatch(body, /s3cr3t-passphrase|BEGIN OPENSSH|abc\n/);
        assert.match(body, /passphrase \[PULUMI_CONFIG_PASSPHRASE\] here\n\[private key\]\nshort x/);
    });

    it("stays within GitHub's limit, keeping the end of a long preview, and no backticks in it close the fence", () => {
        const long = `${"x".repeat(100)}\n`.repeat(1000) + "```` the end\n";
        const body = previewComment({ stack: "aws", previewOutcome: "failure", previewLog: long, plan: awsPlan(), planOutcome: "success", runUrl: RUN });
        assert.ok(body.length <= COMMENT_LIMIT, `${body.length}`);
        assert.match(body, /\n`````\n…\n/);
        assert.match(body, /```` the end\n\n`````\n\[workflow run\]/);
    });

    it("is what the workflow posts: pull-request.yml requires this module (the base branch's copy) and hands it the plan and the preview", () => {
        const workflow = fs.readFileSync(path.join(ROOT, ".github/workflows/pull-request.yml"), "utf8");
        assert.match(workflow, /require\(`\$\{process\.env\.BASE_DIR\}\/\.github\/scripts\/preview-comment\.js`\)/, "the base branch's script");
        assert.match(workflow, /npm run -s plan -- --base FETCH_HEAD --format markdown --out "\$PLAN_FILE"/);
        assert.match(workflow, /plan: read\(PLAN_FILE\)/);
        assert.match(workflow, /previewLog: read\(PREVIEW_LOG\)/);
    });
});
