// The images the cluster runs, made once on a builder engine and shipped to each node's engine.
// The nodes' namespaces have no way to the Debian mirror (only to this machine), so nothing is
// built on them: the builder is the e2e suite's own engine on this machine (test/e2e/harness:
// its cached data root keeps the base image and the layers between runs), where the program's
// image builds run exactly as the e2e applier runs them; each image then goes to the node the
// program built it for with `docker save | docker load` (layers the node has are skipped).
// Stands in for @pulumi/docker-build building on a remote engine: the image, its tag and its
// ID (the build's digest) on the node are the same.
import { spawn } from "node:child_process";
import { build } from "../../e2e/applier/docker-resources";
import { canonical, unwrapSecrets } from "../../e2e/applier/inputs";
import type { ApplierScope, Obj } from "../../e2e/applier/scope";
import { Docker, dockerCli } from "../../e2e/harness/docker";
import { acquireEngine, type Engine } from "../../e2e/harness/engine";
import { ensureBaseImage, ensureConsulImage, prepareGatewayContext, readTools } from "../../e2e/harness/images";
import { log } from "./engines";

export class ImageShop {
    private readonly builds = new Map<string, Promise<{ id: string; outputs: Obj }>>();
    private readonly shipped = new Map<string, Promise<void>>();
    /** Seconds during which at least one image was being shipped to a node (wall time), for the report. */
    shippingSeconds = 0;
    private shipping = 0;
    private shippingSince = 0;

    private constructor(
        private readonly builder: Engine,
        /** The Consul image (the stand-in for hashicorp/consul, test/e2e/consul). */
        readonly consulImage: string,
    ) {}

    /** The builder engine with the base images made (debootstrap, the Consul stand-in) and the gateway's build context ready. */
    static async open(): Promise<ImageShop> {
        const builder = await acquireEngine();
        try {
            await ensureBaseImage(builder.docker);
            const consulImage = await ensureConsulImage(builder.docker, readTools().consul);
            prepareGatewayContext();
            return new ImageShop(builder, consulImage);
        } catch (e) {
            await builder.release();
            throw e;
        }
    }

    /**
     * A docker-build Image the program declared for `target`: built on the builder (once for the
     * same inputs, whichever node asked), then shipped to `target`. Outputs as the e2e applier's.
     */
    async build(where: string, inputs: Obj, target: Docker): Promise<{ id: string; outputs: Obj }> {
        const key = canonical(unwrapSecrets(inputs));
        if (!this.builds.has(key)) {
            // build() only runs the docker CLI against the scope's engine: here, the builder's.
            this.builds.set(key, build({ docker: this.builder.docker } as ApplierScope, where, inputs));
        }
        const result = await this.builds.get(key)!;
        await this.ship(result.outputs.ref || result.outputs.digest, target);
        return result;
    }

    /**
     * A new image `tag` made on the builder from `ref` with one label more: the same files, another
     * image ID, as a new release of an image looks to the program (an upgrade, offline).
     */
    async derive(ref: string, tag: string): Promise<string> {
        await this.builder.docker.cli(["build", "--label", `service-discovery.test.derived-from=${ref}`, "-t", tag, "-"], {
            input: `FROM ${ref}\n`,
            timeoutMs: 300_000,
        });
        const [base, derived] = [await this.builder.docker.imageExists(ref), await this.builder.docker.imageExists(tag)];
        if (!derived || derived.Id === base?.Id) throw new Error(`${tag} is not a new image of ${ref}`);
        return tag;
    }

    /** `ref` from the builder into `target`'s engine, unless the same image is there already. */
    ship(ref: string, target: Docker): Promise<void> {
        const key = `${ref} -> ${target.host}`;
        if (!this.shipped.has(key)) this.shipped.set(key, this.transfer(ref, target));
        return this.shipped.get(key)!;
    }

    private async transfer(ref: string, target: Docker): Promise<void> {
        const source = await this.builder.docker.imageExists(ref);
        if (!source) throw new Error(`${ref} is not on the builder engine`);
        const present = await target.imageExists(ref);
        if (present?.Id === source.Id) return;
        const started = Date.now();
        if (this.shipping++ === 0) this.shippingSince = started;
        try {
            await this.saveLoad(ref, target);
        } finally {
            if (--this.shipping === 0) this.shippingSeconds += (Date.now() - this.shippingSince) / 1000;
        }
        const loaded = await target.imageExists(ref);
        if (loaded?.Id !== source.Id) throw new Error(`${ref} on ${target.host} is ${loaded?.Id ?? "missing"} after docker load, not ${source.Id}`);
        log(`shipped ${ref} to ${target.host} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }

    /** docker save on the builder, piped into docker load on the target. */
    private async saveLoad(ref: string, target: Docker): Promise<void> {
        const cli = dockerCli();
        await new Promise<void>((resolve, reject) => {
            const save = spawn(cli, ["save", ref], { env: this.builder.docker.cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
            const load = spawn(cli, ["load", "--quiet"], { env: target.cliEnv(), stdio: ["pipe", "pipe", "pipe"] });
            let errors = "";
            save.stderr.on("data", (d: Buffer) => (errors += d.toString()));
            load.stderr.on("data", (d: Buffer) => (errors += d.toString()));
            load.stdout.resume();
            load.stdin.on("error", () => undefined); // load died: its exit code says so
            save.stdout.pipe(load.stdin);
            let pending = 2;
            let failed = false;
            const done = (what: string) => (code: number | null) => {
                if (code !== 0 && !failed) {
                    failed = true;
                    save.kill("SIGKILL");
                    load.kill("SIGKILL");
                    reject(new Error(`docker ${what} of ${ref} to ${target.host} failed (exit ${code}): ${errors.trim()}`));
                }
                if (--pending === 0 && !failed) resolve();
            };
            save.on("close", done("save"));
            load.on("close", done("load"));
        });
    }

    async release(): Promise<void> {
        await this.builder.release();
    }
}
