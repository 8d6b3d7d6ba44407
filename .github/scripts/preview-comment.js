// The pull request's comment for one stack: the routing plan (npm run plan --format markdown),
// then the end of `pulumi preview`'s output. Posted by .github/workflows/pull-request.yml, also
// when the plan or the preview failed. CommonJS, no dependency: actions/github-script requires it.
"use strict";

/** GitHub refuses a comment over 65,536 characters. */
const COMMENT_LIMIT = 65536;

/** The preview's output with every credential the run holds, and any private key, blanked. */
function scrub(text, secrets) {
    let out = text;
    for (const [name, value] of Object.entries(secrets)) {
        if (value && value.length >= 8) out = out.split(value).join(`[${name}]`);
    }
    return out.replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, "[private key]");
}

/** A fence longer than any run of backticks in `text`, so the text cannot close it. */
function fenceFor(text) {
    return "`".repeat(Math.max(3, ...[...text.matchAll(/`+/g)].map((m) => m[0].length + 1)));
}

/**
 * @param {{ stack: string, previewOutcome: string, previewLog?: string, plan?: string, planOutcome: string, runUrl: string, secrets?: Record<string, string | undefined> }} o
 * @returns {string} the comment's body; it starts with the marker that finds it again on the next push.
 */
function previewComment(o) {
    const marker = `<!-- service-discovery preview: ${o.stack} -->`;
    const ok = o.previewOutcome === "success";
    const title = ok ? `preview of \`${o.stack}\` succeeded` : `preview of \`${o.stack}\` FAILED (policy violation or error; the end of its output below)`;
    const plan =
        o.plan && o.plan.trim() !== ""
            ? o.plan.trimEnd()
            : `#### :x: Routing plan of \`${o.stack}\` not computed (${o.planOutcome === "skipped" ? "skipped" : "the plan step failed before writing it"}; see the workflow run)`;
    const head = `${marker}\n${plan}\n\n#### ${ok ? ":white_check_mark:" : ":x:"} ${title}\n\n`;
    const tail = `\n[workflow run](${o.runUrl})`;
    let text = scrub(o.previewLog ?? "(no output)", o.secrets ?? {});
    // Keep the preview's tail, where the result and the policy violations are, within the limit.
    const room = COMMENT_LIMIT - head.length - tail.length - 64;
    if (text.length > room) text = `…\n${text.slice(text.length - Math.max(0, room))}`;
    const fence = fenceFor(text);
    return `${head}${fence}\n${text}\n${fence}${tail}`;
}

module.exports = { previewComment, COMMENT_LIMIT };
