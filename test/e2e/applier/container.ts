// The e2e applier's Docker containers: created, started (unless start is false) and checked as the provider does, and
// deleted as it deletes them (stopped with destroyGraceSeconds first when declared).
import { fatal, isFatal, waitFor } from "../../support/wait";
import { ABSENT, clearLeftover, runLabels } from "./docker-resources";
import { allow, durationNs, list, logOptions, strings } from "./inputs";
import { emulateRegistrator } from "./registrator-emulation";
import { type ApplierScope, type Obj } from "./scope";
import { DockerError } from "../harness/docker";
import { log } from "../harness/engine";
import * as secure from "./secure-resources";

export async function container(applier: ApplierScope, where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const p = allow(
        where,
        inputs,
        ["name", "image"],
        [
            "hostname",
            "entrypoints",
            "command",
            "envs",
            "ports",
            "volumes",
            "networksAdvanced",
            "restart",
            "healthcheck",
            "wait",
            "waitTimeout",
            "logDriver",
            "logOpts",
            "uploads",
            "securityOpts",
            "capabilities",
            "readOnly",
            "sysctls",
            "init",
            "stopTimeout",
            "destroyGraceSeconds",
            "tmpfs",
            "memory",
            "memorySwap",
            "cpus",
            "start",
            "mustRun",
        ],
    );
    const name: string = p.name;
    const command = p.command === undefined ? undefined : strings(`${where}.command`, p.command);
    // Replaces the image's ENTRYPOINT (the provider's `entrypoints`); Cmd follows it as its arguments.
    const entrypoints = p.entrypoints === undefined ? undefined : strings(`${where}.entrypoints`, p.entrypoints);
    const envs = strings(`${where}.envs`, p.envs);
    const uploads = list(`${where}.uploads`, p.uploads).map((u, i) => secure.parseUpload(`${where}.uploads[${i}]`, u as Obj));
    const ports = list(`${where}.ports`, p.ports).map((x, i) => {
        const port = allow(`${where}.ports[${i}]`, x, ["internal"], ["external", "ip", "protocol"]);
        return {
            internal: Number(port.internal),
            external: port.external === undefined ? undefined : Number(port.external),
            ip: port.ip ?? "0.0.0.0",
            protocol: port.protocol ?? "tcp",
        };
    });
    const volumes = list(`${where}.volumes`, p.volumes).map((x, i) => {
        const v = allow(`${where}.volumes[${i}]`, x, ["containerPath"], ["volumeName", "hostPath", "readOnly"]);
        if ((v.volumeName === undefined) === (v.hostPath === undefined)) throw new Error(`${where}.volumes[${i}]: exactly one of volumeName and hostPath`);
        return v;
    });
    const networks = list(`${where}.networksAdvanced`, p.networksAdvanced).map((x, i) => {
        const n = allow(`${where}.networksAdvanced[${i}]`, x, ["name"], ["aliases"]);
        return { name: n.name as string, aliases: strings(`${where}.networksAdvanced[${i}].aliases`, n.aliases) };
    });
    if (p.restart !== undefined && !["no", "on-failure", "always", "unless-stopped"].includes(p.restart)) throw new Error(`${where}: restart ${p.restart}`);
    const health =
        p.healthcheck === undefined ? undefined : allow(`${where}.healthcheck`, p.healthcheck, ["tests"], ["interval", "timeout", "retries", "startPeriod"]);
    if (p.logDriver !== undefined && typeof p.logDriver !== "string") throw new Error(`${where}: logDriver ${JSON.stringify(p.logDriver)}`);
    const logOpts = logOptions(`${where}.logOpts`, p.logOpts);
    const securityOpts = strings(`${where}.securityOpts`, p.securityOpts);
    const caps = p.capabilities === undefined ? undefined : allow(`${where}.capabilities`, p.capabilities, [], ["adds", "drops"]);
    // Namespaced kernel settings of the container (a map of strings, as the engine takes them).
    const sysctls = logOptions(`${where}.sysctls`, p.sysctls);
    for (const k of ["readOnly", "init", "start", "mustRun"]) {
        if (p[k] !== undefined && typeof p[k] !== "boolean") throw new Error(`${where}: ${k} ${JSON.stringify(p[k])}`);
    }
    for (const k of ["stopTimeout", "destroyGraceSeconds"]) {
        if (p[k] !== undefined && !(Number.isInteger(p[k]) && p[k] >= 0)) throw new Error(`${where}: ${k} ${JSON.stringify(p[k])}`);
    }
    // Folder -> mount options (a map of strings, as the engine takes them).
    const tmpfs = logOptions(`${where}.tmpfs`, p.tmpfs);
    const resources = resourceLimits(where, p);
    applier.containers.set(name, { ...p, entrypoints, command, envs, ports, volumes, networks });

    if (typeof p.image === "string" && p.image.startsWith(ABSENT))
        return emulateRegistrator(
            applier,
            where,
            p.image.slice(ABSENT.length),
            name,
            p.hostname ?? name,
            { entrypoints, command: command ?? [], envs, uploads },
            networks,
        );

    const binds = volumes.map((v) => {
        let source: string = v.volumeName ?? v.hostPath;
        if (
            v.hostPath !== undefined &&
            ["/var/run/docker.sock", "/run/docker.sock"].includes(v.hostPath) &&
            applier.options.engineSocket &&
            applier.options.engineSocket !== v.hostPath
        ) {
            log(`${name}: mounting the test engine's socket ${applier.options.engineSocket} where the program mounts ${v.hostPath}`);
            source = applier.options.engineSocket;
        }
        return `${source}:${v.containerPath}${v.readOnly ? ":ro" : ""}`;
    });
    const exposed: Obj = {};
    const bindings: Obj = {};
    for (const port of ports) {
        const key = `${port.internal}/${port.protocol}`;
        exposed[key] = {};
        (bindings[key] ??= []).push({ HostIp: port.ip, HostPort: port.external === undefined ? "" : String(port.external) });
    }
    const [first, ...more] = networks;
    const body: Obj = {
        Hostname: p.hostname,
        Image: p.image,
        ...(entrypoints === undefined ? {} : { Entrypoint: entrypoints }),
        Cmd: command,
        Env: envs,
        Labels: runLabels(applier),
        ExposedPorts: exposed,
        // Seconds `docker stop` (without -t) and an engine shutdown wait before SIGKILL.
        StopTimeout: p.stopTimeout,
        Healthcheck: health && {
            Test: strings(`${where}.healthcheck.tests`, health.tests),
            Interval: health.interval === undefined ? undefined : durationNs(`${where}.healthcheck.interval`, health.interval),
            Timeout: health.timeout === undefined ? undefined : durationNs(`${where}.healthcheck.timeout`, health.timeout),
            StartPeriod: health.startPeriod === undefined ? undefined : durationNs(`${where}.healthcheck.startPeriod`, health.startPeriod),
            Retries: health.retries,
        },
        HostConfig: {
            Binds: binds,
            PortBindings: bindings,
            RestartPolicy: { Name: p.restart ?? "no" },
            SecurityOpt: securityOpts,
            CapAdd: caps ? strings(`${where}.capabilities.adds`, caps.adds) : undefined,
            CapDrop: caps ? strings(`${where}.capabilities.drops`, caps.drops) : undefined,
            ReadonlyRootfs: p.readOnly === true,
            // The engine's minimal init (docker-init) as process 1, as `docker run --init`.
            Init: p.init === true,
            ...(sysctls === undefined ? {} : { Sysctls: sysctls }),
            ...(tmpfs === undefined || Object.keys(tmpfs).length === 0 ? {} : { Tmpfs: tmpfs }),
            ...resources,
            // Unset, the engine's default driver and options apply, as with the provider.
            ...(p.logDriver === undefined && logOpts === undefined ? {} : { LogConfig: { Type: p.logDriver ?? "", Config: logOpts ?? {} } }),
            NetworkMode: first?.name ?? "default",
        },
        NetworkingConfig: first ? { EndpointsConfig: { [first.name]: { Aliases: first.aliases } } } : undefined,
    };
    const path_ = `/containers/create?name=${encodeURIComponent(name)}`;
    let created: { Id: string };
    try {
        created = await applier.docker.request("POST", path_, body);
    } catch (e) {
        if (!(e instanceof DockerError) || e.status !== 409) throw new Error(`${where}: ${(e as Error).message}`);
        await clearLeftover(applier, "container", name);
        created = await applier.docker.request("POST", path_, body);
    }
    if (!applier.created.some((c) => c.kind === "container" && c.name === name)) applier.created.push({ kind: "container", name });
    for (const n of more)
        await applier.docker.request("POST", `/networks/${encodeURIComponent(n.name)}/connect`, {
            Container: created.Id,
            EndpointConfig: { Aliases: n.aliases },
        });
    // The provider copies uploads into the created container before it starts it.
    if (uploads.length > 0) await applier.docker.request("PUT", `/containers/${created.Id}/archive?path=/`, secure.tarOf(uploads));
    // The provider's start (default true): false only creates it.
    if (p.start !== false) await applier.docker.request("POST", `/containers/${created.Id}/start`);
    // The provider's mustRun (default true): the container must be running after create (with start
    // false and mustRun true the provider fails, "failed to be in running state"); false: it exists.
    const state = (await applier.docker.inspectContainer(created.Id)).State;
    if (p.mustRun !== false && !state.Running)
        throw new Error(
            `${where}: container ${name} is not running after ${p.start === false ? "create (start false, mustRun true)" : "start"} (${state.Status}, exit ${state.ExitCode}); logs:\n${await applier.docker.logs(name)}`,
        );
    if (p.wait === true) await waitHealthy(applier, where, name, Number(p.waitTimeout ?? 60));
    return { id: created.Id, outputs: {} };
}

/**
 * The memory and CPU limits as the provider sets them in HostConfig (upstream docker_container,
 * resourceDockerContainerCreate): `memory` in MB to Memory in bytes; `memorySwap` in MB to bytes,
 * -1 (unlimited swap) kept as is; each only when set and not 0 (the provider's GetOk). `cpus`, a
 * decimal string as `docker run --cpus` takes it, to NanoCpus (docker/cli's ParseCPUs: the value
 * times 10^9, refused when that is not a whole number).
 */
function resourceLimits(where: string, p: Obj): { Memory?: number; MemorySwap?: number; NanoCpus?: number } {
    const out: { Memory?: number; MemorySwap?: number; NanoCpus?: number } = {};
    for (const k of ["memory", "memorySwap"]) {
        if (p[k] !== undefined && !(Number.isInteger(p[k]) && p[k] >= (k === "memory" ? 0 : -1))) throw new Error(`${where}: ${k} ${JSON.stringify(p[k])}`);
    }
    if (p.memory) out.Memory = p.memory * 1024 * 1024;
    if (p.memorySwap) out.MemorySwap = p.memorySwap > 0 ? p.memorySwap * 1024 * 1024 : p.memorySwap;
    if (p.cpus !== undefined && p.cpus !== "") {
        const m = typeof p.cpus === "string" ? /^([0-9]+)(?:\.([0-9]*))?$/.exec(p.cpus) : null;
        if (!m || (m[2] ?? "").replace(/0+$/, "").length > 9)
            throw new Error(`${where}: cpus ${JSON.stringify(p.cpus)} is not a number of CPUs docker run --cpus takes`);
        out.NanoCpus = Number(m[1]) * 1e9 + Number((m[2] ?? "").replace(/0+$/, "").padEnd(9, "0") || "0");
    }
    return out;
}

/**
 * Deletes a container as the provider does: stopped first with `destroyGraceSeconds` as the
 * timeout when declared (`ignoreGrace`: as if it were not), then removed with force (named
 * volumes stay). It is no longer among the applier's containers.
 */
export async function deleteContainer(applier: ApplierScope, inputs: Obj, options: { ignoreGrace?: boolean } = {}): Promise<void> {
    const dockerName: string = inputs.name;
    const grace = options.ignoreGrace ? undefined : inputs.destroyGraceSeconds;
    if (typeof grace === "number" && grace > 0) {
        await applier.docker.request("POST", `/containers/${encodeURIComponent(dockerName)}/stop?t=${grace}`, undefined, (grace + 30) * 1000);
    }
    await applier.docker.request("DELETE", `/containers/${encodeURIComponent(dockerName)}?force=true`);
    applier.containers.delete(dockerName);
    const i = applier.created.findIndex((c) => c.kind === "container" && c.name === dockerName);
    if (i >= 0) applier.created.splice(i, 1);
}

/** Applier.replaceContainer (see there): removed as the provider deletes, then created again. */
export async function replaceContainer(applier: ApplierScope, dockerName: string, options: { ignoreGrace?: boolean } = {}): Promise<string> {
    const entry = [...applier.state.values()].find((r) => r.type === "docker:index/container:Container" && r.inputs.name === dockerName);
    if (!entry) throw new Error(`no declared container named ${dockerName}`);
    await deleteContainer(applier, entry.inputs, options);
    const result = await container(applier, `${entry.type} ${entry.name}`, entry.inputs);
    entry.id = result.id;
    return result.id;
}

/** The provider's wait/waitTimeout: the container must become healthy in time. */
async function waitHealthy(applier: ApplierScope, where: string, name: string, timeoutSeconds: number): Promise<void> {
    let c: Obj = {};
    // Done when healthy, or when it never will be: the container stopped. Undefined on timeout.
    const status = await waitFor(
        async () => {
            c = await applier.docker.inspectContainer(name).catch((e: Error) => {
                throw fatal(e);
            });
            const s: string | undefined = c.State?.Health?.Status;
            if (s === undefined) throw fatal(`${where}: wait=true but ${name} has no health check`);
            return s === "healthy" || !c.State.Running ? s : undefined;
        },
        { timeoutMs: timeoutSeconds * 1000, intervalMs: 250 },
    ).catch((e: Error) => {
        if (isFatal(e)) throw e;
        return undefined;
    });
    if (status === "healthy") return;
    const probes = (c.State.Health.Log ?? [])
        .slice(-3)
        .map((l: Obj) => `exit ${l.ExitCode}: ${String(l.Output).trim()}`)
        .join("\n");
    throw new Error(
        `${where}: ${name} not healthy within ${timeoutSeconds} s (${c.State.Status}/${c.State.Health.Status}); last probes:\n${probes}\nlogs:\n${await applier.docker.logs(name)}`,
    );
}
