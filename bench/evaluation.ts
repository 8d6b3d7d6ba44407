// Program evaluation time under Pulumi's mocks for growing node counts (aws target, the
// largest graph per node): what `pulumi preview` costs the program itself, before any
// provider work. Prints medians and writes bench/evaluation.json and bench/evaluation.md.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bundleController } from "../components/images/gateway/bundle";
import { devWith, evaluate, TEST_SSH_KEY as SSH_KEY } from "../test/support/program";

const COUNTS = [1, 10, 50, 100];
const TRIALS = Number(process.env.BENCH_EVAL_TRIALS ?? 5);

function median(xs: number[]): number {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Compiles the project with tsc into a temporary folder: Pulumi runs a program as JavaScript. */
function compile(): string {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sd-eval-"));
    const root = path.resolve(__dirname, "..");
    execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.json"), "--outDir", out], { stdio: "inherit" });
    fs.symlinkSync(path.join(root, "node_modules"), path.join(out, "node_modules"), "dir");
    // The gateway's controller is bundled from its TypeScript sources, which tsc does not copy:
    // the build gets the bundle itself.
    const bundle = path.join(out, "components", "images", "gateway", "dist", "controller.js");
    fs.mkdirSync(path.dirname(bundle), { recursive: true });
    fs.copyFileSync(bundleController(), bundle);
    return out;
}

async function main(): Promise<void> {
    const compiled = compile();
    const rows: { nodes: number; resources: number; medianMs: number; perNodeMs: number; trials: number[] }[] = [];
    for (const nodes of COUNTS) {
        const trials: number[] = [];
        let resources = 0;
        for (let t = 0; t < TRIALS; t++) {
            const p = await evaluate(devWith({ target: "aws", nodeCount: nodes, aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY } }), "dev", compiled);
            if (p.error) throw new Error(`evaluation failed at ${nodes} nodes: ${p.error}`);
            trials.push(p.evaluation.programMs ?? NaN);
            resources = p.resources.length;
        }
        const m = median(trials);
        rows.push({ nodes, resources, medianMs: Math.round(m), perNodeMs: Math.round((m / nodes) * 10) / 10, trials: trials.map(Math.round) });
        console.log(`evaluation: ${nodes} nodes, ${resources} resources: median ${Math.round(m)} ms over ${TRIALS} runs`);
    }
    const machine = `${os.cpus()[0]?.model ?? "cpu"} x${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
    const at100 = rows.find((r) => r.nodes === 100)!;
    const first = rows[0];
    const result = {
        machine,
        date: new Date().toISOString().slice(0, 10),
        trials: TRIALS,
        rows,
        goal: { maxMsAt100: 5000, met: at100.medianMs <= 5000 },
        // Linear growth: cost per resource at 100 nodes against cost per resource at 1 node.
        perResourceRatio100to1: Math.round((at100.medianMs / at100.resources / (first.medianMs / first.resources)) * 100) / 100,
    };
    const dir = path.resolve(__dirname);
    fs.writeFileSync(path.join(dir, "evaluation.json"), JSON.stringify(result, null, 2) + "\n");
    const md = [
        "# Program evaluation under mocks",
        "",
        `${result.date}, ${machine}; aws target; the program compiled to JavaScript (as Pulumi runs it), median of ${TRIALS} runs each; time from loading the program to every resource registered, in one process per run.`,
        "",
        "| nodes | resources | median ms | ms per node |",
        "|---:|---:|---:|---:|",
        ...rows.map((r) => `| ${r.nodes} | ${r.resources} | ${r.medianMs} | ${r.perNodeMs} |`),
        "",
        `Goal ≤ 5000 ms at 100 nodes: ${result.goal.met ? "met" : "not met"}. Cost per resource at 100 nodes / at 1 node: ${result.perResourceRatio100to1} (1.0 = linear).`,
        "",
    ].join("\n");
    fs.writeFileSync(path.join(dir, "evaluation.md"), md);
    fs.rmSync(compiled, { recursive: true, force: true });
    console.log(md);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
