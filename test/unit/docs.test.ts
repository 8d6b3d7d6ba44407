// The documentation holds together: README.md is a landing page, every page of docs/ is reachable
// from it, every relative link and #anchor in README.md and docs/*.md resolves (anchors as GitHub
// makes them from headings), and every code comment that cites a section ("docs/security.md,
// "Trust rules"", or the README) names one that exists.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "../support/program";

const DOCS = fs
    .readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`);
const PAGES = ["README.md", ...DOCS];
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), "utf8");

/** Markdown without its fenced code blocks (each line kept, blanked): no heading or link in code. */
function withoutFences(markdown: string): string {
    let fence: string | undefined;
    return markdown
        .split("\n")
        .map((line) => {
            const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
            if (fence === undefined && m && !(m[1][0] === "`" && m[2].includes("`"))) {
                fence = m[1];
                return "";
            }
            if (fence !== undefined) {
                if (m && m[1][0] === fence[0] && m[1].length >= fence.length && m[2].trim() === "") fence = undefined;
                return "";
            }
            return line;
        })
        .join("\n");
}

/** The text GitHub shows for a heading's inline Markdown. */
function headingText(raw: string): string {
    return raw
        .replace(/\s+#+\s*$/, "")
        .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
        .replace(/`([^`]*)`/g, "$1")
        .replace(/(\*\*|__|\*|_)(\S(?:.*?\S)?)\1/g, "$2")
        .replace(/<[^>]+>/g, "")
        .trim();
}

/** GitHub's anchor for a heading (github-slugger): lower case, punctuation dropped, spaces to -. */
function slug(text: string): string {
    return text
        .toLowerCase()
        .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
        .replace(/ /g, "-");
}

/** The anchors of a Markdown file: one per heading, repeats numbered -1, -2 as GitHub does. */
function anchorsOf(markdown: string): Set<string> {
    const seen = new Map<string, number>();
    const out = new Set<string>();
    for (const m of withoutFences(markdown).matchAll(/^ {0,3}#{1,6}[ \t]+(.+)$/gm)) {
        const base = slug(headingText(m[1]));
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        out.add(n === 0 ? base : `${base}-${n}`);
    }
    return out;
}

/** The headings' texts of a Markdown file. */
function headingsOf(markdown: string): string[] {
    return [...withoutFences(markdown).matchAll(/^ {0,3}#{1,6}[ \t]+(.+)$/gm)].map((m) => headingText(m[1]));
}

/** Inline links and images, and reference definitions, outside code: [line, target]. */
function linksOf(markdown: string): Array<{ line: number; target: string }> {
    const out: Array<{ line: number; target: string }> = [];
    withoutFences(markdown)
        .split("\n")
        .forEach((text, i) => {
            const prose = text.replace(/`[^`]*`/g, "");
            for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line: i + 1, target: m[1] });
            const def = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/.exec(prose);
            if (def) out.push({ line: i + 1, target: def[1] });
        });
    return out;
}

describe("docs: README.md and docs/*.md", () => {
    it("the slugs follow GitHub's rules", () => {
        assert.equal(slug(headingText("Verify on Docker Desktop (macOS, Windows)")), "verify-on-docker-desktop-macos-windows");
        assert.equal(slug(headingText("Consul: ACLs, TLS, gossip encryption")), "consul-acls-tls-gossip-encryption");
        assert.equal(slug(headingText("The stack's CA in a browser")), "the-stacks-ca-in-a-browser");
        assert.equal(slug(headingText("`npm run up` — the `dev` stack")), "npm-run-up--the-dev-stack");
        assert.deepEqual([...anchorsOf("# A\n## A\n```\n# not a heading\n```\n## A\n")], ["a", "a-1", "a-2"]);
        assert.deepEqual([...anchorsOf("````\n```\n# no\n```\n````\n# yes\n")], ["yes"]);
    });

    it("README.md is a landing page: at most 15 KB, and every docs page is linked from it", () => {
        const size = fs.statSync(path.join(ROOT, "README.md")).size;
        assert.ok(size <= 15 * 1024, `README.md is ${size} bytes`);
        const linked = new Set(linksOf(read("README.md")).map((l) => l.target.split("#")[0]));
        for (const page of DOCS) assert.ok(linked.has(page), `README.md does not link ${page}`);
        assert.ok(DOCS.length >= 8, DOCS.join(", "));
    });

    it("every relative link points at a file of the repository, and every #anchor at a heading", () => {
        const broken: string[] = [];
        let checked = 0;
        for (const page of PAGES) {
            for (const { line, target } of linksOf(read(page))) {
                if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
                checked++;
                const [file, anchor] = target.split("#", 2);
                const resolved = file === "" ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), decodeURI(file)));
                const where = `${page}:${line}: ${target}`;
                if (resolved.startsWith("..") || !fs.existsSync(path.join(ROOT, resolved))) {
                    broken.push(`${where}: no ${resolved}`);
                    continue;
                }
                if (anchor !== undefined && resolved.endsWith(".md") && !anchorsOf(read(resolved)).has(anchor)) {
                    broken.push(`${where}: no heading #${anchor} in ${resolved}`);
                }
            }
        }
        assert.deepEqual(broken, []);
        assert.ok(checked >= 60, `${checked} links checked`);
    });

    it("every section a code comment cites exists where it says (README.md, or docs/<page>.md)", () => {
        const readmeHeadings = new Set(headingsOf(read("README.md")));
        /** Which page holds a heading now: for the message when a citation is stale. */
        const homes = new Map<string, string>();
        for (const page of DOCS) for (const h of headingsOf(read(page))) if (!homes.has(h)) homes.set(h, page);
        const files: string[] = [];
        const walk = (dir: string) => {
            for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
                const rel = dir === "." ? entry.name : `${dir}/${entry.name}`;
                if (entry.isDirectory()) {
                    if (!["node_modules", ".git", "docs", "bin", ".pulumi"].includes(entry.name)) walk(rel);
                } else if (
                    !/\.(md|json|lock|png|svg|pem)$/.test(entry.name) &&
                    rel !== "test/unit/docs.test.ts" &&
                    fs.statSync(path.join(ROOT, rel)).size < 2_000_000
                )
                    files.push(rel);
            }
        };
        walk(".");
        const stale: string[] = [];
        let citations = 0;
        for (const file of files) {
            const text = fs.readFileSync(path.join(ROOT, file), "utf8");
            if (text.includes("\u0000")) continue;
            text.split("\n").forEach((line, i) => {
                for (const m of line.matchAll(/README(?:\.md)?,? "([^"]+)"/g)) {
                    citations++;
                    if (!readmeHeadings.has(m[1])) stale.push(`${file}:${i + 1}: README, "${m[1]}": now ${homes.get(m[1]) ?? "nowhere"}`);
                }
                for (const m of line.matchAll(/\bdocs\/([a-z0-9-]+\.md)(?:, "([^"]+)")?/g)) {
                    citations++;
                    const page = `docs/${m[1]}`;
                    if (!DOCS.includes(page)) stale.push(`${file}:${i + 1}: ${page} does not exist`);
                    else if (m[2] !== undefined && !headingsOf(read(page)).includes(m[2])) stale.push(`${file}:${i + 1}: no heading "${m[2]}" in ${page}`);
                }
            });
        }
        assert.deepEqual(stale, []);
        assert.ok(citations >= 10, `${citations} citations`);
    });
});
