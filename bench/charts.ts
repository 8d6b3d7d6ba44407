// Charts of the control-plane benchmark, drawn from bench/results.json as hand-written SVG (no
// dependency) for docs/performance.md: the latency of instance changes, the scale run
// (2000 services x 5 instances) and the requests failed during reloads under load. Each chart is
// a pure function of the results; a figure missing from them leaves its bar out. `npm run bench`
// redraws them after a run (bench/run.ts), `npm run bench:charts` from the committed results.json.
import * as fs from "node:fs";
import * as path from "node:path";

/** The fields of results.json the charts read (bench/run.ts writes them); any may be missing. */
export interface BenchResults {
    machine?: string;
    convergence_ms?: { p50?: number; p99?: number };
    removal_ms?: { p50?: number; p99?: number };
    reload?: { runs?: number; requests?: number; failed_ours?: number; failed_ours_worst_run?: number; failed_seed_style?: number; reloads?: number };
    scale2000?: {
        services?: number;
        instances?: number;
        register_to_all_live_ms?: number;
        add_p50_ms?: number;
        add_p99_ms?: number;
        kv_p50_ms?: number;
        weight_p50_ms?: number;
        weight_p99_ms?: number;
    } | null;
    previous_design?: {
        commit?: string;
        add_p50_ms?: number;
        add_p99_ms?: number;
        remove_p50_ms?: number;
        scale2000?: { start_to_all_live_ms?: number; add_p50_ms?: number; kv_p50_ms?: number; weight_p50_ms?: number } | null;
    } | null;
}

/** The charts and their files under docs/images/. */
export const CHART_FILES = { latency: "bench-latency.svg", scale: "bench-scale.svg", reloads: "bench-reloads.svg" } as const;

interface Series {
    key: string;
    /** Legend text. */
    label: string;
    /** Beside each bar, so that colour is not the only cue. */
    short: string;
    color: string;
}

interface Bar {
    series: string;
    /** undefined (or not a finite number): the bar is left out. */
    value: number | undefined;
    /** The text after the bar; the formatted value when absent. */
    text?: string;
}

interface Group {
    label: string;
    bars: Bar[];
    /** A dashed line at the goal (the label says what it is). */
    goal?: number;
}

interface BarChart {
    /** Unique per chart: the ids of its <title> and <desc>. */
    id: string;
    title: string;
    subtitle: string;
    /** What the chart shows, for screen readers (<desc>). */
    desc: string;
    series: Series[];
    groups: Group[];
    scale: "linear" | "log";
    /** The axis' title. */
    axis: string;
    format: (n: number) => string;
    /** The small print under the axis: where the figures come from. */
    footer: string;
    /** The axis' tick labels; format when absent. */
    tick?: (n: number) => string;
}

// Layout (px). Bars run left to right from PLOT_X; the group's label is above its bars, each
// bar's series name to its left, its value to its right.
export const WIDTH = 720;
export const PLOT_X = 150;
export const PLOT_WIDTH = 440;
const BAR_HEIGHT = 16;
const BAR_GAP = 4;
const GROUP_LABEL = 20;
const GROUP_GAP = 14;
const TOP = 96;

const COLORS = { text: "#1f2328", muted: "#59636e", grid: "#d1d9e0", axis: "#59636e", goal: "#b42318", ours: "#1f6feb", other: "#d4700f" };
const FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif";

/** A finite number, else undefined (a field missing from results.json, or null). */
function finite(n: unknown): number | undefined {
    return typeof n === "number" && Number.isFinite(n) ? n : undefined;
}

/** Milliseconds: one decimal below 100 ms (none when whole), whole ms below 1 s, seconds above. */
export function formatMs(n: number): string {
    if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
    if (n >= 100) return `${Math.round(n)} ms`;
    const r = Math.round(n * 10) / 10;
    return `${Number.isInteger(r) ? r.toFixed(0) : r.toFixed(1)} ms`;
}

/** An axis tick in milliseconds: "20 ms", "1 s", "10 s". */
export function formatTickMs(n: number): string {
    return n >= 1000 ? `${n / 1000} s` : `${n} ms`;
}

/** A count with thousands separators: 1,105,927. */
export function formatCount(n: number): string {
    return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function escapeXml(s: string): string {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Coordinates with at most one decimal, so the files stay small and stable. */
function px(n: number): string {
    return String(Math.round(n * 10) / 10);
}

/** Ticks of a linear axis from 0: a step of 1, 2 or 5 x 10^k giving at most 6 intervals. */
export function linearTicks(max: number): number[] {
    const top = max > 0 ? max : 1;
    const raw = top / 6;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
    const ticks: number[] = [];
    for (let t = 0; t < top + step / 2; t += step) ticks.push(Math.round(t * 1e6) / 1e6);
    if (ticks[ticks.length - 1]! < top) ticks.push(Math.round((ticks[ticks.length - 1]! + step) * 1e6) / 1e6);
    return ticks;
}

/** Ticks of a logarithmic axis: the powers of ten from 1 to the first at or above max. */
export function logTicks(max: number): number[] {
    const top = Math.max(1, Math.ceil(Math.log10(Math.max(max, 10))));
    return Array.from({ length: top + 1 }, (_, i) => 10 ** i);
}

/** Where a value falls on the axis, from 0 (PLOT_X) to PLOT_WIDTH. */
export function position(value: number, ticks: number[], scale: "linear" | "log"): number {
    const max = ticks[ticks.length - 1]!;
    if (scale === "log") {
        const v = Math.min(Math.max(value, 1), max);
        return (Math.log10(v) / Math.log10(max)) * PLOT_WIDTH;
    }
    return (Math.min(Math.max(value, 0), max) / max) * PLOT_WIDTH;
}

function text(x: number, y: number, content: string, attrs = ""): string {
    return `<text x="${px(x)}" y="${px(y)}"${attrs ? ` ${attrs}` : ""}>${escapeXml(content)}</text>`;
}

/** A horizontal grouped bar chart as an SVG document. */
export function renderBarChart(chart: BarChart): string {
    // Only the bars with a value; only the groups with a bar; only the series with a bar.
    const groups = chart.groups
        .map((g) => ({ ...g, bars: g.bars.filter((b) => finite(b.value) !== undefined && chart.series.some((s) => s.key === b.series)) }))
        .filter((g) => g.bars.length > 0);
    const used = chart.series.filter((s) => groups.some((g) => g.bars.some((b) => b.series === s.key)));
    const hasGoal = groups.some((g) => finite(g.goal) !== undefined);
    const values = groups.flatMap((g) => [...g.bars.map((b) => b.value!), ...(finite(g.goal) !== undefined ? [g.goal!] : [])]);
    const max = Math.max(0, ...values);
    const ticks = chart.scale === "log" ? logTicks(max) : linearTicks(max);

    const body: string[] = [];
    // Legend: one swatch per series shown, and the goal's dashed line.
    let lx = 16;
    for (const s of used) {
        body.push(`<rect x="${px(lx)}" y="62" width="12" height="12" rx="2" fill="${s.color}"/>`);
        body.push(text(lx + 18, 72, s.label));
        lx += 18 + s.label.length * 6.6 + 24;
    }
    if (hasGoal) {
        body.push(`<line x1="${px(lx)}" y1="68" x2="${px(lx + 14)}" y2="68" stroke="${COLORS.goal}" stroke-width="2" stroke-dasharray="4 3"/>`);
        body.push(text(lx + 20, 72, "goal"));
    }

    let y = TOP;
    // Three layers: the bars, the goals' lines over them, the labels over both.
    const bars: string[] = [];
    const goals: string[] = [];
    const labels: string[] = [];
    for (const g of groups) {
        // Labels stand on a white ground (about as wide as their text): no grid or goal line crosses them.
        labels.push(`<rect x="12" y="${px(y)}" width="${px(g.label.length * 7.2 + 8)}" height="${GROUP_LABEL - 2}" fill="#ffffff"/>`);
        labels.push(text(16, y + 13, g.label, `font-weight="600"`));
        y += GROUP_LABEL;
        const top = y;
        for (const b of g.bars) {
            const s = chart.series.find((x) => x.key === b.series)!;
            const value = b.value!;
            const w = position(value, ticks, chart.scale);
            const shown = b.text ?? chart.format(value);
            labels.push(text(PLOT_X - 8, y + 12, s.short, `text-anchor="end" fill="${COLORS.muted}"`));
            bars.push(
                `<rect class="bar" data-series="${escapeXml(s.key)}" data-value="${value}" x="${PLOT_X}" y="${px(y)}" width="${px(w)}" height="${BAR_HEIGHT}" fill="${s.color}">` +
                    `<title>${escapeXml(`${s.label}: ${shown}`)}</title></rect>`,
            );
            labels.push(`<rect x="${px(PLOT_X + w + 3)}" y="${px(y)}" width="${px(shown.length * 6.8 + 6)}" height="${BAR_HEIGHT}" fill="#ffffff"/>`);
            labels.push(text(PLOT_X + w + 6, y + 12, shown));
            y += BAR_HEIGHT + BAR_GAP;
        }
        const goal = finite(g.goal);
        if (goal !== undefined) {
            const gx = PLOT_X + position(goal, ticks, chart.scale);
            goals.push(
                `<line class="goal" data-value="${goal}" x1="${px(gx)}" y1="${px(top - 3)}" x2="${px(gx)}" y2="${px(y - BAR_GAP + 3)}" stroke="${COLORS.goal}" stroke-width="2" stroke-dasharray="4 3"/>`,
            );
        }
        y += GROUP_GAP;
    }
    if (groups.length === 0) {
        labels.push(text(16, y + 14, "No figures for this chart in bench/results.json.", `fill="${COLORS.muted}"`));
        y += 30;
    }

    // Axis (when there are bars): vertical grid lines at the ticks (under the bars), their values, the axis' title.
    const plotBottom = y - GROUP_GAP + 4;
    const grid: string[] = [];
    if (groups.length > 0) {
        for (const t of ticks) {
            const x = PLOT_X + position(t, ticks, chart.scale);
            grid.push(`<line x1="${px(x)}" y1="${TOP - 4}" x2="${px(x)}" y2="${px(plotBottom)}" stroke="${COLORS.grid}" stroke-width="1"/>`);
            grid.push(text(x, plotBottom + 16, (chart.tick ?? chart.format)(t), `text-anchor="middle" fill="${COLORS.muted}" font-size="11"`));
        }
        grid.push(`<line x1="${PLOT_X}" y1="${TOP - 4}" x2="${PLOT_X}" y2="${px(plotBottom)}" stroke="${COLORS.axis}" stroke-width="1"/>`);
        grid.push(text(PLOT_X + PLOT_WIDTH / 2, plotBottom + 36, chart.axis, `text-anchor="middle" fill="${COLORS.muted}"`));
    }
    const height = Math.round(plotBottom + 72);

    return [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-labelledby="${chart.id}-title ${chart.id}-desc" font-family="${FONT}" font-size="12" fill="${COLORS.text}">`,
        `<title id="${chart.id}-title">${escapeXml(chart.title)}</title>`,
        `<desc id="${chart.id}-desc">${escapeXml(chart.desc)}</desc>`,
        // Opaque, so the chart reads the same on a dark page.
        `<rect width="${WIDTH}" height="${height}" rx="6" fill="#ffffff" stroke="${COLORS.grid}"/>`,
        text(16, 28, chart.title, `font-size="16" font-weight="600"`),
        text(16, 47, chart.subtitle, `fill="${COLORS.muted}"`),
        ...body,
        ...grid,
        ...bars,
        ...goals,
        ...labels,
        text(16, plotBottom + 60, chart.footer, `fill="${COLORS.muted}" font-size="11"`),
        "</svg>",
        "",
    ].join("\n");
}

const OURS: Series = { key: "ours", label: "gateway controller", short: "controller", color: COLORS.ours };

function previousSeries(r: BenchResults): Series {
    const commit = r.previous_design?.commit;
    return { key: "previous", label: `previous design${commit ? ` (${commit})` : ""}`, short: "previous", color: COLORS.other };
}

/** Where the figures come from. */
function footer(r: BenchResults): string {
    return `From bench/results.json${r.machine ? `, measured on ${r.machine}` : ""}.`;
}

/** A plain-text list of the bars, for <desc>. */
function describe(chart: Omit<BarChart, "desc">): string {
    const parts = chart.groups.flatMap((g) => {
        const shown = g.bars.filter((b) => finite(b.value) !== undefined);
        if (shown.length === 0) return [];
        const each = shown.map((b) => `${chart.series.find((s) => s.key === b.series)?.label ?? b.series} ${b.text ?? chart.format(b.value!)}`);
        return [`${g.label}: ${each.join(", ")}`];
    });
    return parts.length ? `${parts.join(". ")}.` : "No figures in bench/results.json.";
}

function chart(c: Omit<BarChart, "desc">): string {
    return renderBarChart({ ...c, desc: describe(c) });
}

/** New instance → first 200 and removal → no longer served, p50 and p99, ours and the previous design's. */
export function latencyChart(r: BenchResults): string {
    const p = r.previous_design ?? undefined;
    return chart({
        id: "bench-latency",
        title: "Instance changes: time until the gateway serves them",
        subtitle: "p50 and p99 of the benchmark's trials; lower is better",
        footer: footer(r),
        series: [OURS, previousSeries(r)],
        scale: "linear",
        axis: "milliseconds",
        format: formatMs,
        tick: formatTickMs,
        groups: [
            {
                label: "New instance registered → first 200 from it, p50 (goal ≤ 15 ms)",
                goal: 15,
                bars: [
                    { series: "ours", value: finite(r.convergence_ms?.p50) },
                    { series: "previous", value: finite(p?.add_p50_ms) },
                ],
            },
            {
                label: "New instance registered → first 200 from it, p99 (goal ≤ 40 ms)",
                goal: 40,
                bars: [
                    { series: "ours", value: finite(r.convergence_ms?.p99) },
                    { series: "previous", value: finite(p?.add_p99_ms) },
                ],
            },
            {
                label: "Instance deregistered → no longer served, p50 (goal ≤ 15 ms)",
                goal: 15,
                bars: [
                    { series: "ours", value: finite(r.removal_ms?.p50) },
                    { series: "previous", value: finite(p?.remove_p50_ms) },
                ],
            },
            {
                label: "Instance deregistered → no longer served, p99",
                bars: [{ series: "ours", value: finite(r.removal_ms?.p99) }],
            },
        ],
    });
}

/** The 2000 x 5 run: each change's time to running, ours and the previous design's, with the goals. */
export function scaleChart(r: BenchResults): string {
    const s = r.scale2000 ?? undefined;
    const p = r.previous_design?.scale2000 ?? undefined;
    const size =
        s && finite(s.services) !== undefined && finite(s.instances) !== undefined
            ? `${formatCount(s.services!)} services × ${s.instances} instances`
            : "The scale run";
    return chart({
        id: "bench-scale",
        title: `${size}: time until a change runs`,
        subtitle: "p50 unless noted; lower is better; logarithmic scale (each grid line is 10× the one before)",
        footer: footer(r),
        series: [OURS, previousSeries(r)],
        scale: "log",
        axis: "time (logarithmic scale)",
        format: formatMs,
        tick: formatTickMs,
        groups: [
            {
                label: `Last registration → every route live (goal ≤ 1.5 s${finite(p?.start_to_all_live_ms) !== undefined ? "; previous design: from its start" : ""})`,
                goal: 1500,
                bars: [
                    { series: "ours", value: finite(s?.register_to_all_live_ms) },
                    { series: "previous", value: finite(p?.start_to_all_live_ms) },
                ],
            },
            {
                label: "New instance → first 200 from it (goal ≤ 50 ms)",
                goal: 50,
                bars: [
                    { series: "ours", value: finite(s?.add_p50_ms) },
                    { series: "previous", value: finite(p?.add_p50_ms) },
                ],
            },
            { label: "New instance → first 200 from it, p99", bars: [{ series: "ours", value: finite(s?.add_p99_ms) }] },
            {
                label: "KV maintenance (weight 0) → running (goal ≤ 50 ms)",
                goal: 50,
                bars: [
                    { series: "ours", value: finite(s?.weight_p50_ms) },
                    { series: "previous", value: finite(p?.weight_p50_ms) },
                ],
            },
            { label: "KV maintenance (weight 0) → running, p99", bars: [{ series: "ours", value: finite(s?.weight_p99_ms) }] },
            {
                label: "KV setting (maxconn, a reload) → running (goal ≤ 700 ms)",
                goal: 700,
                bars: [
                    { series: "ours", value: finite(s?.kv_p50_ms) },
                    { series: "previous", value: finite(p?.kv_p50_ms) },
                ],
            },
        ],
    });
}

/** Requests failed during reloads under load: our master-worker reload and the 2015 `-sf` reload. */
export function reloadsChart(r: BenchResults): string {
    const x = r.reload;
    const runs = finite(x?.runs);
    const reloads = finite(x?.reloads);
    const requests = finite(x?.requests);
    const worst = finite(x?.failed_ours_worst_run);
    const ours = finite(x?.failed_ours);
    const oursText =
        ours === undefined
            ? undefined
            : `${formatCount(ours)} failed${requests !== undefined ? ` of ${formatCount(requests)} requests` : ""}${worst !== undefined ? ` (worst run: ${formatCount(worst)})` : ""}`;
    const seed = finite(x?.failed_seed_style);
    const perRun = runs !== undefined && reloads !== undefined && runs > 0 ? `, ${formatCount(reloads / runs)} reloads each` : "";
    return chart({
        id: "bench-reloads",
        title: "Requests failed during reloads under load",
        subtitle: "wrk, 2 threads × 64 connections, keep-alive and Connection: close; lower is better",
        footer: footer(r),
        series: [OURS, { key: "seed", label: "2015-style reload (haproxy -sf)", short: "haproxy -sf", color: COLORS.other }],
        scale: "linear",
        axis: "failed requests (non-2xx and socket errors)",
        format: formatCount,
        groups: [
            {
                label: runs !== undefined ? `All ${formatCount(runs)} runs of each style${perRun}, summed` : "All runs of each style, summed",
                bars: [
                    { series: "ours", value: ours, ...(oursText ? { text: oursText } : {}) },
                    { series: "seed", value: seed, ...(seed !== undefined ? { text: `${formatCount(seed)} failed` } : {}) },
                ],
            },
        ],
    });
}

/** Every chart with its file name. */
export function charts(r: BenchResults): Array<{ file: string; svg: string }> {
    return [
        { file: CHART_FILES.latency, svg: latencyChart(r) },
        { file: CHART_FILES.scale, svg: scaleChart(r) },
        { file: CHART_FILES.reloads, svg: reloadsChart(r) },
    ];
}

/** Writes the charts into dir (created when missing); returns the files written. */
export function writeCharts(r: BenchResults, dir: string): string[] {
    fs.mkdirSync(dir, { recursive: true });
    return charts(r).map(({ file, svg }) => {
        const out = path.join(dir, file);
        fs.writeFileSync(out, svg);
        return out;
    });
}

/** Where the charts live: docs/images/, shown by docs/performance.md. */
export const CHARTS_DIR = path.join(__dirname, "..", "docs", "images");

// `npm run bench:charts`: the charts from the committed results.json, without running the benchmark.
if (require.main === module) {
    const results = JSON.parse(fs.readFileSync(path.join(__dirname, "results.json"), "utf8")) as BenchResults;
    for (const file of writeCharts(results, CHARTS_DIR)) process.stderr.write(`[bench] wrote ${path.relative(process.cwd(), file)}\n`);
}
