// The benchmark's charts (bench/charts.ts): well-formed SVG, bars as long as the values they
// show, labels with the numbers, figures missing from results.json left out without an error,
// and the committed docs/images/*.svg the very charts of the committed bench/results.json.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
    CHART_FILES,
    CHARTS_DIR,
    charts,
    formatCount,
    formatMs,
    latencyChart,
    PLOT_WIDTH,
    PLOT_X,
    reloadsChart,
    scaleChart,
    WIDTH,
    writeCharts,
    type BenchResults,
} from "../../bench/charts";
import { ROOT } from "../support/paths";

const COMMITTED: BenchResults = JSON.parse(fs.readFileSync(path.join(ROOT, "bench", "results.json"), "utf8"));

/**
 * Checks that an SVG document is well-formed XML as far as these charts go (elements, quoted
 * attributes, text, entities; no CDATA, comments or processing instructions): every tag closed in
 * order, one root. Returns the root element's name.
 */
function wellFormed(svg: string): string {
    const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[A-Za-z][\w:.-]*="[^"<]*")*)\s*(\/?)>/y;
    const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
    const open: string[] = [];
    let root: string | undefined;
    let i = 0;
    while (i < svg.length) {
        const lt = svg.indexOf("<", i);
        const textEnd = lt === -1 ? svg.length : lt;
        const between = svg.slice(i, textEnd);
        assert.ok(!badAmp.test(between), `a bare & in text: ${JSON.stringify(between)}`);
        if (open.length === 0) assert.equal(between.trim(), "", `text outside the root element: ${JSON.stringify(between)}`);
        if (lt === -1) break;
        tag.lastIndex = lt;
        const m = tag.exec(svg);
        assert.ok(m, `not a tag at ${lt}: ${JSON.stringify(svg.slice(lt, lt + 60))}`);
        const [whole, closing, name, attrs, selfClosing] = m;
        assert.ok(!badAmp.test(attrs), `a bare & in the attributes of <${name}>`);
        const names = [...attrs.matchAll(/([A-Za-z][\w:.-]*)=/g)].map((a) => a[1]);
        assert.equal(new Set(names).size, names.length, `<${name}> repeats an attribute`);
        if (closing) {
            assert.ok(!selfClosing && attrs === "", `malformed closing tag ${whole}`);
            assert.equal(open.pop(), name, `</${name}> closes another element`);
        } else {
            if (open.length === 0) {
                assert.equal(root, undefined, "a second root element");
                root = name;
            }
            if (!selfClosing) open.push(name);
        }
        i = lt + whole.length;
    }
    assert.deepEqual(open, [], `elements left open: ${open.join(", ")}`);
    assert.ok(root, "no element");
    return root;
}

interface Rect {
    series: string;
    value: number;
    x: number;
    width: number;
}

function attr(tag: string, name: string): string | undefined {
    return new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
}

/** The bars of a chart: their series, the value they show, where they start and their length. */
function bars(svg: string): Rect[] {
    return [...svg.matchAll(/<rect class="bar"[^>]*>/g)].map((m) => ({
        series: attr(m[0], "data-series")!,
        value: Number(attr(m[0], "data-value")),
        x: Number(attr(m[0], "x")),
        width: Number(attr(m[0], "width")),
    }));
}

/** The goals' dashed lines: the goal and where it is drawn. */
function goals(svg: string): Array<{ value: number; x: number }> {
    return [...svg.matchAll(/<line class="goal"[^>]*>/g)].map((m) => ({ value: Number(attr(m[0], "data-value")), x: Number(attr(m[0], "x1")) }));
}

/** The visible text of a chart, entities decoded. */
function texts(svg: string): string[] {
    return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
        m[1]
            .replace(/&lt;/g, "<")
            .replace(/&gt;/g, ">")
            .replace(/&quot;/g, '"')
            .replace(/&amp;/g, "&"),
    );
}

/** Known numbers: the largest latency 80 ms (axis 0–80), the scale run on powers of ten, 1000 failed requests. */
const FIXTURE: BenchResults = {
    machine: 'Test CPU "fast" & small, 2 cores',
    convergence_ms: { p50: 10, p99: 40 },
    removal_ms: { p50: 20, p99: 30 },
    reload: { runs: 4, requests: 2_000_000, failed_ours: 250, failed_ours_worst_run: 100, failed_seed_style: 1000, reloads: 80 },
    scale2000: {
        services: 2000,
        instances: 5,
        register_to_all_live_ms: 10,
        add_p50_ms: 100,
        add_p99_ms: 1000,
        kv_p50_ms: 1000,
        weight_p50_ms: 10,
        weight_p99_ms: 100,
    },
    previous_design: {
        commit: "abc1234",
        add_p50_ms: 60,
        add_p99_ms: 80,
        remove_p50_ms: 50,
        scale2000: { start_to_all_live_ms: 1000, add_p50_ms: 1000, kv_p50_ms: 1000, weight_p50_ms: 1000 },
    },
};

describe("bench charts: SVG", () => {
    const cases: Array<[string, BenchResults]> = [
        ["the committed results", COMMITTED],
        ["the fixture (text with &, quotes)", FIXTURE],
        ["empty results", {}],
        ["results with nulls", { previous_design: null, scale2000: null, reload: {} }],
    ];
    for (const [name, results] of cases) {
        it(`is well-formed, ${WIDTH} px wide, titled and described: ${name}`, () => {
            for (const { file, svg } of charts(results)) {
                assert.equal(wellFormed(svg), "svg", file);
                assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /, file);
                assert.equal(attr(svg.slice(0, svg.indexOf(">")), "width"), String(WIDTH), file);
                assert.match(svg, /role="img"/, file);
                const title = /<title id="([^"]+)">([^<]+)<\/title>/.exec(svg);
                const desc = /<desc id="([^"]+)">([^<]+)<\/desc>/.exec(svg);
                assert.ok(title && desc, `${file}: <title> and <desc>`);
                assert.match(svg, new RegExp(`aria-labelledby="${title[1]} ${desc[1]}"`), file);
                // An opaque background, so the chart reads on a dark page too.
                assert.match(svg, /<rect width="\d+" height="\d+" rx="\d+" fill="#ffffff"/, file);
            }
        });
    }
});

describe("bench charts: bars as long as their values", () => {
    it("latency: a linear axis from 0 to 80 ms, each bar value/80 of the plot", () => {
        const svg = latencyChart(FIXTURE);
        const shown = bars(svg);
        assert.deepEqual(
            shown.map((b) => [b.series, b.value]),
            [
                ["ours", 10],
                ["previous", 60],
                ["ours", 40],
                ["previous", 80],
                ["ours", 20],
                ["previous", 50],
                ["ours", 30],
            ],
        );
        for (const b of shown) {
            assert.equal(b.x, PLOT_X);
            assert.ok(Math.abs(b.width - (b.value / 80) * PLOT_WIDTH) <= 0.05, `${b.series} ${b.value}: width ${b.width}`);
        }
        assert.equal(shown.find((b) => b.value === 40)!.width, PLOT_WIDTH / 2);
        assert.equal(shown.find((b) => b.value === 80)!.width, PLOT_WIDTH);
        // Goals 15, 40, 15 ms, on the same axis.
        assert.deepEqual(
            goals(svg).map((g) => [g.value, g.x]),
            [
                [15, PLOT_X + (15 / 80) * PLOT_WIDTH],
                [40, PLOT_X + PLOT_WIDTH / 2],
                [15, PLOT_X + (15 / 80) * PLOT_WIDTH],
            ],
        );
        assert.deepEqual(
            texts(svg).filter((t) => /^\d+ ms$/.test(t)),
            // The axis' ticks, then the bars' values.
            ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "10 ms", "60 ms", "40 ms", "80 ms", "20 ms", "50 ms", "30 ms"],
        );
    });

    it("scale: a logarithmic axis from 1 ms to 10 s, each power of ten a quarter of the plot", () => {
        const shown = bars(scaleChart(FIXTURE));
        assert.equal(shown.length, 10);
        const quarter = PLOT_WIDTH / 4;
        for (const b of shown) assert.ok(Math.abs(b.width - Math.log10(b.value) * quarter) <= 0.05, `${b.series} ${b.value}: width ${b.width}`);
        assert.deepEqual(
            [...new Set(shown.map((b) => b.width))].sort((a, b) => a - b),
            [quarter, 2 * quarter, 3 * quarter],
        );
        assert.deepEqual(
            goals(scaleChart(FIXTURE)).map((g) => g.value),
            [1500, 50, 50, 700],
        );
        assert.ok(texts(scaleChart(FIXTURE)).includes("10 s"));
    });

    it("reloads: a linear axis from 0 to 1,000 failed requests", () => {
        const svg = reloadsChart(FIXTURE);
        assert.deepEqual(
            bars(svg).map((b) => [b.series, b.value, b.width]),
            [
                ["ours", 250, PLOT_WIDTH / 4],
                ["seed", 1000, PLOT_WIDTH],
            ],
        );
        const t = texts(svg);
        assert.ok(t.includes("250 failed of 2,000,000 requests (worst run: 100)"), t.join(" | "));
        assert.ok(t.includes("1,000 failed"));
        assert.ok(t.includes("All 4 runs of each style, 20 reloads each, summed"));
    });

    it("a bar of 0 has no length (and still says 0)", () => {
        const svg = reloadsChart({ reload: { failed_ours: 0, requests: 10, failed_seed_style: 8 } });
        assert.deepEqual(
            bars(svg).map((b) => [b.series, b.width]),
            [
                ["ours", 0],
                ["seed", PLOT_WIDTH],
            ],
        );
        assert.ok(texts(svg).includes("0 failed of 10 requests"));
    });
});

describe("bench charts: the numbers of the committed results", () => {
    it("labels every figure the charts read, formatted", () => {
        const latency = texts(latencyChart(COMMITTED));
        for (const s of ["10 ms", "15.9 ms", "5.3 ms", "7.3 ms", "57.6 ms", "78.2 ms", "50 ms"]) assert.ok(latency.includes(s), `latency: ${s}`);
        const scale = texts(scaleChart(COMMITTED));
        for (const s of ["11 ms", "1.60 s", "56.4 ms", "1.80 s", "187 ms", "41 ms", "2.16 s", "124 ms", "962 ms", "2.15 s"])
            assert.ok(scale.includes(s), `scale: ${s}`);
        assert.ok(scale.some((t) => t.startsWith("2,000 services × 5 instances")));
        const reloads = texts(reloadsChart(COMMITTED));
        assert.ok(reloads.includes("0 failed of 1,105,927 requests (worst run: 0)"), reloads.join(" | "));
        assert.ok(reloads.includes("1,773 failed"));
        // The legend names the previous design's commit.
        assert.ok(latency.includes("previous design (2a6c58f)"));
    });

    it("formats milliseconds with at most one decimal, seconds from 1 s, counts with separators", () => {
        assert.equal(formatMs(5.3), "5.3 ms");
        assert.equal(formatMs(10), "10 ms");
        assert.equal(formatMs(15.94), "15.9 ms");
        assert.equal(formatMs(99.96), "100 ms");
        assert.equal(formatMs(186.5), "187 ms");
        assert.equal(formatMs(1599), "1.60 s");
        assert.equal(formatCount(1105927), "1,105,927");
        assert.equal(formatCount(999), "999");
    });
});

describe("bench charts: missing figures", () => {
    it("without the previous design, its series is left out (bars and legend)", () => {
        const results = { ...FIXTURE, previous_design: null };
        for (const svg of [latencyChart(results), scaleChart(results)]) {
            assert.ok(bars(svg).length > 0);
            assert.ok(
                bars(svg).every((b) => b.series === "ours"),
                "only our bars",
            );
            assert.ok(!svg.includes("previous design"), "no legend entry for the previous design");
        }
    });

    it("a field missing, null or not a number leaves out that bar only", () => {
        const results = {
            convergence_ms: { p50: 12 },
            removal_ms: { p50: "fast", p99: null },
            previous_design: { add_p50_ms: 30, scale2000: null },
            scale2000: { add_p50_ms: 70 },
        } as unknown as BenchResults;
        assert.deepEqual(
            bars(latencyChart(results)).map((b) => [b.series, b.value]),
            [
                ["ours", 12],
                ["previous", 30],
            ],
        );
        assert.deepEqual(
            bars(scaleChart(results)).map((b) => [b.series, b.value]),
            [["ours", 70]],
        );
        // No goal line for a group left out.
        assert.deepEqual(
            goals(latencyChart(results)).map((g) => g.value),
            [15],
        );
    });

    it("with no figure at all, each chart says so instead of drawing an axis", () => {
        for (const { file, svg } of charts({})) {
            assert.deepEqual(bars(svg), [], file);
            assert.ok(texts(svg).includes("No figures for this chart in bench/results.json."), file);
        }
    });
});

describe("bench charts: the committed images", () => {
    it("docs/images/ holds the charts of the committed bench/results.json (npm run bench:charts redraws them)", () => {
        for (const { file, svg } of charts(COMMITTED)) {
            const committed = path.join(CHARTS_DIR, file);
            assert.ok(fs.existsSync(committed), `${path.relative(ROOT, committed)} is missing: run npm run bench:charts`);
            assert.equal(fs.readFileSync(committed, "utf8"), svg, `${path.relative(ROOT, committed)} is stale: run npm run bench:charts`);
        }
        assert.equal(path.relative(ROOT, CHARTS_DIR), path.join("docs", "images"));
    });

    it("docs/performance.md shows every chart", () => {
        const doc = fs.readFileSync(path.join(ROOT, "docs", "performance.md"), "utf8");
        for (const file of Object.values(CHART_FILES)) assert.match(doc, new RegExp(`!\\[[^\\]]+\\]\\(images/${file.replace(/\./g, "\\.")}\\)`), file);
    });

    it("writeCharts writes the same files into a directory it creates", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-charts-"));
        try {
            const out = path.join(dir, "images");
            const written = writeCharts(COMMITTED, out);
            assert.deepEqual(
                written.map((f) => path.basename(f)),
                charts(COMMITTED).map((c) => c.file),
            );
            for (const { file, svg } of charts(COMMITTED)) assert.equal(fs.readFileSync(path.join(out, file), "utf8"), svg);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
