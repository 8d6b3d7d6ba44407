// Where the tests find things: the repository, and the cache shared with test/tools/install.sh.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** The repository root. */
export const ROOT = path.resolve(__dirname, "..", "..");

/** ${XDG_CACHE_HOME:-~/.cache}/service-discovery, shared with test/tools/install.sh; created when missing. */
export function cacheDir(): string {
    const dir = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "service-discovery");
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}
