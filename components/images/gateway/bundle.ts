// The gateway's controller (controller/, entry point main.ts) bundled by esbuild into one
// CommonJS file, dist/controller.js, with its npm dependencies inside: the image carries Node.js
// and that file, no node_modules. The program bundles it while it is evaluated (`pulumi up`,
// `pulumi preview`), before the image is built from this folder; `npm run build:gateway` does
// the same by hand.
import { buildSync } from "esbuild";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The project: the nearest folder above this file that holds the controller's sources, else the
 * working directory (Pulumi runs a program in its project folder; the benchmark evaluates a tsc
 * build of it from elsewhere).
 */
function projectRoot(): string {
    const has = (dir: string): boolean => fs.existsSync(path.join(dir, "components", "images", "gateway", "controller", "main.ts"));
    for (let dir = __dirname; path.dirname(dir) !== dir; dir = path.dirname(dir)) if (has(dir)) return dir;
    return process.cwd();
}
const IMAGE_DIR = path.join(projectRoot(), "components", "images", "gateway");
/** The controller's sources. */
export const CONTROLLER_DIR = path.join(IMAGE_DIR, "controller");
export const CONTROLLER_ENTRY = path.join(CONTROLLER_DIR, "main.ts");
/** The bundle, where the Dockerfile copies it from (dist/ is not committed). */
export const CONTROLLER_BUNDLE = path.join(IMAGE_DIR, "dist", "controller.js");

/** Newest modification time (ms) of the files under `dir`, recursively; 0 when there are none. */
function newestUnder(dir: string): number {
    let newest = 0;
    for (const entry of fs.readdirSync(dir, { recursive: true, encoding: "utf8" })) {
        const stat = fs.statSync(path.join(dir, entry));
        if (stat.isFile()) newest = Math.max(newest, stat.mtimeMs);
    }
    return newest;
}

/**
 * Bundles controller/main.ts into dist/controller.js and returns that path. Skipped when the
 * bundle is newer than every file under controller/, than this file (the build options) and
 * than package-lock.json (the bundled dependencies' versions): a few stat calls, so it runs on
 * every evaluation of the program.
 */
export function bundleController(): string {
    if (!fs.existsSync(CONTROLLER_ENTRY)) {
        // A build of the program without the sources (the benchmark evaluates one): the bundle made beside it serves.
        if (fs.existsSync(CONTROLLER_BUNDLE)) return CONTROLLER_BUNDLE;
        throw new Error(`the gateway controller's entry point ${path.relative(process.cwd(), CONTROLLER_ENTRY)} is missing: nothing to bundle`);
    }
    const lockFile = path.join(IMAGE_DIR, "..", "..", "..", "package-lock.json");
    const inputs = Math.max(
        newestUnder(CONTROLLER_DIR),
        fs.statSync(path.join(IMAGE_DIR, "bundle.ts")).mtimeMs,
        fs.existsSync(lockFile) ? fs.statSync(lockFile).mtimeMs : 0,
    );
    if (fs.existsSync(CONTROLLER_BUNDLE) && fs.statSync(CONTROLLER_BUNDLE).mtimeMs > inputs) return CONTROLLER_BUNDLE;

    const result = buildSync({
        entryPoints: [CONTROLLER_ENTRY],
        outfile: CONTROLLER_BUNDLE,
        bundle: true,
        platform: "node",
        target: "node22",
        format: "cjs",
        minify: false,
        // Inline, so the image needs only this file; the entry point runs Node.js with
        // --enable-source-maps, so stack traces name the TypeScript files and lines. The sources
        // themselves are left out: traces need only the mappings.
        sourcemap: "inline",
        sourcesContent: false,
        // The licence notices of the bundled dependencies travel with their code.
        legalComments: "eof",
        write: false,
        logLevel: "silent",
    });
    const output = result.outputFiles[0];
    // Written whole, then renamed: a build of the image never copies half a file.
    fs.mkdirSync(path.dirname(CONTROLLER_BUNDLE), { recursive: true });
    const partial = `${CONTROLLER_BUNDLE}.${process.pid}.tmp`;
    fs.writeFileSync(partial, output.contents);
    fs.renameSync(partial, CONTROLLER_BUNDLE);
    return CONTROLLER_BUNDLE;
}
