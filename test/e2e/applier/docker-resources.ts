// The e2e applier's Docker networks, volumes, images and image builds, made on the test engine
// and labelled with the run (containers: applier-container.ts).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT } from "../../support/program";
import { allow, list, strings } from "./inputs";
import { type ApplierScope, type Obj } from "./scope";
import { DockerError } from "../harness/docker";
import { E2E_LABEL, log } from "../harness/engine";
import { LOCAL_BASE_BUILD_ARGS } from "../harness/images";

/** Image id of the Registrator image when it is not on the engine: its container is emulated. */
export const ABSENT = "e2e-image-not-on-engine:";

/** The label that marks what this run created (removed at teardown, or as an earlier run's leftover). */
export function runLabels(applier: ApplierScope): Obj {
    return { [E2E_LABEL]: applier.options.runId };
}

/** On a name conflict: remove a leftover of an earlier e2e run, refuse anything else. */
export async function clearLeftover(applier: ApplierScope, kind: "container" | "network" | "volume", name: string): Promise<void> {
    const paths = { container: `/containers/${name}/json`, network: `/networks/${name}`, volume: `/volumes/${name}` };
    const existing = await applier.docker.request("GET", paths[kind]);
    const labels = (kind === "container" ? existing.Config?.Labels : existing.Labels) ?? {};
    if (!(E2E_LABEL in labels)) {
        throw new Error(
            `a ${kind} named ${name} already exists on the test engine and was not made by the e2e harness; remove it or point DOCKER_HOST at another engine`,
        );
    }
    log(`removing ${kind} ${name} left by an earlier e2e run`);
    if (kind === "container") await applier.docker.request("DELETE", `/containers/${name}?force=true&v=true`);
    else if (kind === "network") await applier.docker.request("DELETE", `/networks/${name}`);
    else await applier.docker.request("DELETE", `/volumes/${name}?force=true`);
}

export async function network(applier: ApplierScope, where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const p = allow(where, inputs, ["name"], ["driver", "ipamConfigs", "internal"]);
    if (p.internal !== undefined && typeof p.internal !== "boolean") throw new Error(`${where}: internal ${JSON.stringify(p.internal)}`);
    const ipam = list(`${where}.ipamConfigs`, p.ipamConfigs).map((c, i) => {
        const cfg = allow(`${where}.ipamConfigs[${i}]`, c, ["subnet"], ["gateway"]);
        return { Subnet: cfg.subnet, ...(cfg.gateway ? { Gateway: cfg.gateway } : {}) };
    });
    const body = {
        Name: p.name,
        Driver: p.driver ?? "bridge",
        Internal: p.internal === true,
        CheckDuplicate: true,
        Labels: runLabels(applier),
        IPAM: { Driver: "default", Config: ipam },
    };
    let created: { Id: string };
    try {
        created = await applier.docker.request("POST", "/networks/create", body);
    } catch (e) {
        if (!(e instanceof DockerError) || e.status !== 409) throw e;
        await clearLeftover(applier, "network", p.name);
        created = await applier.docker.request("POST", "/networks/create", body);
    }
    applier.created.push({ kind: "network", name: p.name });
    // As the provider reads it back: the subnet the engine picked when none was given.
    const inspected = await applier.docker.request("GET", `/networks/${created.Id}`);
    const ipamConfigs = ((inspected.IPAM?.Config ?? []) as { Subnet?: string; Gateway?: string }[]).map((c) => ({
        ...(c.Subnet ? { subnet: c.Subnet } : {}),
        ...(c.Gateway ? { gateway: c.Gateway } : {}),
    }));
    return { id: created.Id, outputs: { driver: body.Driver, internal: body.Internal, ipamConfigs } };
}

export async function volume(applier: ApplierScope, where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const p = allow(where, inputs, ["name"], ["driver", "driverOpts"]);
    try {
        await applier.docker.request("GET", `/volumes/${p.name}`);
        await clearLeftover(applier, "volume", p.name); // Docker would hand back the old volume, data and all
    } catch (e) {
        if (!(e instanceof DockerError) || e.status !== 404) throw e;
    }
    const v = await applier.docker.request("POST", "/volumes/create", {
        Name: p.name,
        Driver: p.driver ?? "local",
        DriverOpts: p.driverOpts ?? {},
        Labels: runLabels(applier),
    });
    applier.created.push({ kind: "volume", name: p.name });
    return { id: p.name, outputs: { driver: v.Driver, mountpoint: v.Mountpoint } };
}

export async function remoteImage(applier: ApplierScope, where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const p = allow(where, inputs, ["name"], ["keepLocally"]);
    const image = await applier.docker.imageExists(p.name);
    if (!image) {
        if (p.name === applier.options.registratorImage) {
            log(`${p.name} is not on the test engine: its container will be emulated (test/e2e/harness/registrator.ts)`);
            return { id: `${ABSENT}${p.name}`, outputs: { imageId: `${ABSENT}${p.name}`, repoDigest: "" } };
        }
        throw new Error(`${where}: image ${p.name} is not on the test engine and the e2e harness never pulls; build or load ${p.name} there first`);
    }
    return { id: `${image.Id}${p.name}`, outputs: { imageId: image.Id, repoDigest: image.RepoDigests?.[0] ?? "" } };
}

export async function build(applier: ApplierScope, where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const p = allow(where, inputs, ["context"], ["dockerfile", "buildArgs", "tags", "network", "push", "load", "buildOnPreview"]);
    const context = allow(`${where}.context`, p.context, ["location"]);
    const dockerfile = p.dockerfile === undefined ? undefined : allow(`${where}.dockerfile`, p.dockerfile, ["location"]);
    if (p.push === true) throw new Error(`${where}: push=true is not applied by the e2e applier (no registry)`);
    if (p.load !== true) throw new Error(`${where}: load=${p.load}: only images loaded into the engine can be run; the applier builds with load`);
    if (p.network !== undefined && !["default", "host", "none"].includes(p.network)) throw new Error(`${where}: network ${p.network}`);
    const args = ["build", "--network", p.network ?? "default"];
    if (dockerfile) args.push("--file", path.resolve(ROOT, dockerfile.location));
    const buildArgs = (p.buildArgs ?? {}) as Obj;
    for (const [k, v] of Object.entries(buildArgs)) {
        if (typeof v !== "string") throw new Error(`${where}.buildArgs.${k}: expected a string, got ${JSON.stringify(v)}`);
        args.push("--build-arg", `${k}=${v}`);
    }
    // The shipped Dockerfiles start FROM a base pinned by digest, which the harness never pulls:
    // the local stand-in instead, unless the program chose a base itself (test/e2e/harness/images.ts).
    for (const [k, v] of Object.entries(LOCAL_BASE_BUILD_ARGS)) if (!(k in buildArgs)) args.push("--build-arg", `${k}=${v}`);
    const tags = strings(`${where}.tags`, p.tags);
    for (const t of tags) args.push("--tag", t);
    const iidDir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-iid-"));
    const iidFile = path.join(iidDir, "iid");
    args.push("--iidfile", iidFile, path.resolve(ROOT, context.location));
    const started = Date.now();
    // A first build downloads and installs packages for minutes: say what runs before it does.
    log(`building ${tags.join(", ") || "an image"} from ${context.location}${dockerfile ? ` (${dockerfile.location})` : ""} (cached layers make it seconds)`);
    try {
        await applier.docker.cli(args, { timeoutMs: 900_000 });
        const digest = fs.readFileSync(iidFile, "utf8").trim();
        log(`built ${tags.join(", ") || digest} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return { id: tags[0] ?? digest, outputs: { ref: tags[0] ?? "", digest } };
    } finally {
        fs.rmSync(iidDir, { recursive: true, force: true });
    }
}
