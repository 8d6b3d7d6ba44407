// A plan in words: Markdown for the pull request's comment, plain text for a terminal. Pure.
import { describeHost, describeHttp, describeSni, describeTcp, hostRoute, sniRoute, tcpRoute } from "./diff";
import type { Plan } from "./index";

const SYMBOL = { added: "+", removed: "-", changed: "~" } as const;
const EMOJI = { added: ":heavy_plus_sign:", removed: ":heavy_minus_sign:", changed: ":pencil2:" } as const;

/** A table cell: no pipe or line break from a value can break the table. */
const cell = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
const code = (text: string): string => `\`${text.replace(/`/g, "'")}\``;

function changeText(c: Plan["changes"][number]): string {
    return c.kind === "added" ? c.to : c.kind === "removed" ? `was ${c.from}` : c.what.join(", ");
}

function tableRows(p: Plan): [string, string][] {
    if (!p.table) return [];
    return [
        ...p.table.hosts.map((e): [string, string] => [hostRoute(e.host), describeHost(e)]),
        ...p.table.http.map((e): [string, string] => [e.prefix, describeHttp(e)]),
        ...p.table.tcp.map((e): [string, string] => [tcpRoute(e.port), describeTcp(e)]),
        ...(p.table.sni ?? []).map((e): [string, string] => [sniRoute(e.host), describeSni(e)]),
    ];
}

function counts(p: Plan): string {
    const errors = p.findings.filter((f) => f.level === "error").length;
    const warnings = p.findings.length - errors;
    return `${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}`;
}

export function markdown(p: Plan): string {
    const lines: string[] = [];
    const verdict = p.findings.some((f) => f.level === "error") ? ":x:" : ":white_check_mark:";
    lines.push(`#### ${verdict} Routing plan of ${code(p.stack)}${p.baseName ? ` against ${cell(p.baseName)}` : ""}`, "");
    if (p.baseName !== undefined) {
        if (p.changes.length === 0) lines.push(p.table ? "No route changes." : "No route table: the config is refused (below).");
        else {
            lines.push("| | route | users get |", "|---|---|---|");
            for (const c of p.changes) lines.push(`| ${EMOJI[c.kind]} | ${code(c.route)} | ${cell(changeText(c))} |`);
        }
        lines.push("");
    }
    if (p.findings.length > 0) {
        lines.push(`**Lint**: ${counts(p)}`, "");
        for (const f of p.findings) lines.push(`- ${f.level === "error" ? ":x:" : ":warning:"} ${f.rule} ${code(f.key)}: ${cell(f.message)}`);
        lines.push("");
    } else lines.push("**Lint**: nothing found.", "");
    const rows = tableRows(p);
    if (rows.length > 0) {
        lines.push(`<details><summary>Route table (${rows.length} route${rows.length === 1 ? "" : "s"})</summary>`, "", "| route | users get |", "|---|---|");
        for (const [route, to] of rows) lines.push(`| ${code(route)} | ${cell(to)} |`);
        lines.push("", "</details>");
    }
    return lines.join("\n").trimEnd() + "\n";
}

export function text(p: Plan): string {
    const lines: string[] = [`Routing plan of ${p.stack}${p.baseName ? ` against ${p.baseName}` : ""}`];
    const rows = tableRows(p);
    if (rows.length > 0) {
        const width = Math.max(...rows.map(([r]) => r.length));
        lines.push("", "Routes (in matching order):", ...rows.map(([route, to]) => `  ${route.padEnd(width)}  ${to}`));
    }
    if (p.baseName !== undefined) {
        lines.push("", p.changes.length === 0 ? "No route changes." : "Changes:");
        for (const c of p.changes) lines.push(`  ${SYMBOL[c.kind]} ${c.route}  ${changeText(c)}`);
    }
    lines.push("", `Lint: ${p.findings.length === 0 ? "nothing found" : counts(p)}`);
    for (const f of p.findings) lines.push(`  ${f.level} [${f.rule}] ${f.key}: ${f.message}`);
    return lines.join("\n") + "\n";
}
