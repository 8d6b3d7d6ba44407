// The e2e applier's stand-in for a Registrator container whose image is not on the engine: the
// emulator (registrator.ts) run here, reaching Consul and the engine as the container would.
import * as path from "node:path";
import { waitForHttp } from "./consul";
import { type ApplierScope, type Obj } from "./scope";
import { Docker } from "../harness/docker";
import { log } from "../harness/engine";
import { waitFor } from "../../support/wait";
import { parseRegistratorCommand, RegistratorEmulator, registratorToken } from "../harness/registrator";
import { type Upload } from "./secure-resources";

export async function emulateRegistrator(
    applier: ApplierScope,
    where: string,
    image: string,
    name: string,
    hostname: string,
    declared: { entrypoints?: string[]; command: string[]; envs: string[]; uploads: Upload[] },
    networks: { name: string }[],
): Promise<{ id: string; outputs: Obj }> {
    if (applier.registrator) throw new Error(`${where}: a second emulated Registrator is not supported`);
    const opts = parseRegistratorCommand(declared.command, hostname);
    const env = Object.fromEntries(declared.envs.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    let token: string | undefined;
    try {
        token = registratorToken(declared.entrypoints, env, declared.uploads);
    } catch (e) {
        throw new Error(`${where}: ${(e as Error).message}`);
    }
    const client = await registratorConsul(applier, where, name, opts.registryUri, networks);
    const engine = await registratorDocker(applier, where, name, env.DOCKER_HOST, networks);
    applier.registrator = new RegistratorEmulator(engine, client.origin, opts, { socketPath: client.socketPath, token });
    await applier.registrator.start();
    applier.emulated.push(name);
    log(`${name} (${image}) emulated`);
    return { id: `emulated-${name}`, outputs: {} };
}

/**
 * Consul as Registrator reaches it, from this machine: consul-unix:// is the agent's socket in a
 * volume the container mounts (found at the volume's mount point on the engine's host);
 * consul:// is a declared container on its networks (reached through the port it publishes).
 * Registrator's client reads its token from CONSUL_HTTP_TOKEN (registratorToken: from the file
 * the program's entrypoint exports it from).
 */
async function registratorConsul(
    applier: ApplierScope,
    where: string,
    name: string,
    uri: string,
    networks: { name: string }[],
): Promise<{ origin: string; socketPath?: string }> {
    if (uri.startsWith("consul-unix://")) {
        const socket = uri.slice("consul-unix://".length);
        const mount = (applier.containers.get(name)?.volumes ?? []).find(
            (v: Obj) => v.volumeName !== undefined && socket.startsWith(`${String(v.containerPath).replace(/\/$/, "")}/`),
        );
        if (!mount) throw new Error(`${where}: ${uri}, but no volume is mounted where the socket is`);
        const volume = await applier.docker.request("GET", `/volumes/${encodeURIComponent(mount.volumeName)}`);
        const socketPath = path.join(volume.Mountpoint, socket.slice(String(mount.containerPath).replace(/\/$/, "").length + 1));
        // Registrator pings the agent (status/leader, no ACL needed) before it registers anything.
        await waitForHttp("http://consul/v1/status/leader", 60_000, { socketPath });
        return { origin: "http://consul", socketPath };
    }
    const [host, port] = uri.slice("consul://".length).split(":");
    const onNetwork = new Set(networks.map((n) => n.name));
    const target = [...applier.containers.values()].find(
        (c) =>
            (c.name === host || c.hostname === host || c.networks.some((n: Obj) => onNetwork.has(n.name) && n.aliases.includes(host))) &&
            c.networks.some((n: Obj) => onNetwork.has(n.name)),
    );
    if (!target) throw new Error(`${where}: no declared container answers to ${host} on ${[...onNetwork].join(", ")} for the emulated Registrator`);
    const inspect = await applier.docker.inspectContainer(target.name);
    const binding = inspect.NetworkSettings?.Ports?.[`${port ?? "8500"}/tcp`]?.[0];
    if (!binding) throw new Error(`${where}: ${target.name} does not publish ${port}/tcp; the emulated Registrator cannot reach Consul`);
    const hostIp = binding.HostIp === "0.0.0.0" || binding.HostIp === "" ? "127.0.0.1" : binding.HostIp;
    const origin = `http://${hostIp}:${binding.HostPort}`;
    await waitForHttp(`${origin}/v1/status/leader`, 60_000);
    return { origin };
}

/**
 * The engine as Registrator reaches it: DOCKER_HOST from its environment (Registrator v7
 * defaults to unix:///tmp/docker.sock, a mounted socket). tcp://<name>:<port> is a declared
 * container on one of its networks, reached at its address there, as Registrator would.
 */
async function registratorDocker(
    applier: ApplierScope,
    where: string,
    name: string,
    dockerHost: string | undefined,
    networks: { name: string }[],
): Promise<Docker> {
    const host = dockerHost ?? "unix:///tmp/docker.sock";
    if (host.startsWith("unix://")) {
        const inContainer = host.slice("unix://".length);
        const mount = (applier.containers.get(name)?.volumes ?? []).find((v: Obj) => v.containerPath === inContainer && v.hostPath !== undefined);
        if (!mount) throw new Error(`${where}: DOCKER_HOST ${host}, but no socket is mounted at ${inContainer}`);
        applier.registratorEngine = { dockerHost: host, endpoint: applier.docker.host };
        return applier.docker; // mounted sockets are the test engine's (see container())
    }
    const m = /^tcp:\/\/([^:/]+):([0-9]+)$/.exec(host);
    if (!m) throw new Error(`${where}: DOCKER_HOST ${JSON.stringify(host)} is not emulated (unix:// or tcp://host:port)`);
    const [, target, port] = m;
    const onNetwork = new Set(networks.map((n) => n.name));
    let via: { container: string; network: string } | undefined;
    for (const c of applier.containers.values()) {
        if (c.name === name) continue;
        const shared = (c.networks as { name: string; aliases: string[] }[]).find(
            (n) => onNetwork.has(n.name) && (c.name === target || n.aliases.includes(target)),
        );
        if (shared) via = { container: c.name, network: shared.name };
    }
    if (!via) throw new Error(`${where}: DOCKER_HOST ${host}: no declared container answers to ${target} on ${[...onNetwork].join(", ")}`);
    const ip = (await applier.docker.inspectContainer(via.container)).NetworkSettings?.Networks?.[via.network]?.IPAddress;
    if (!ip) throw new Error(`${where}: ${via.container} has no address on ${via.network}`);
    const engine = new Docker(applier.options.reachContainer ? await applier.options.reachContainer(ip, Number(port)) : `tcp://${ip}:${port}`);
    // The proxy was just started: Registrator v7 exits when the engine does not answer and its
    // restart policy starts it again, so a proxy that answers within 30 s is one it reads.
    await waitFor(() => engine.ping(5000), {
        timeoutMs: 30_000,
        intervalMs: 250,
        message: `${where}: DOCKER_HOST ${host} (${via.container} at ${ip} on ${via.network}) to answer /_ping`,
    });
    applier.registratorEngine = { dockerHost: host, container: via.container, endpoint: engine.host };
    log(`${name}: reading the engine at ${host} (${via.container}, ${ip} on ${via.network}), as Registrator does`);
    return engine;
}
