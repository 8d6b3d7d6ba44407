// Stand-in for gliderlabs/registrator:v7, whose image cannot be had on our machines. Used only
// when that image is missing on the test engine; then it does what the declared Registrator
// container would do, following Registrator v7's bridge and consul adapter:
//   - watches the engine's container start/die events and syncs the running containers at start;
//   - the container's ports are its configured bindings (HostConfig.PortBindings) and, on top,
//     its runtime ports (NetworkSettings.Ports: every exposed port, null when not published);
//     each becomes a Consul agent service (unpublished ones only with -internal):
//       ID      <registrator hostname>:<container name>:<container port>   (":udp" for udp)
//       Name    SERVICE_<port>_NAME or SERVICE_NAME (image base name by default; "-<port>" is
//               appended when the container has several ports and the name is not per port)
//       Tags    SERVICE_TAGS split on commas (udp ports also get "udp")
//       Address without -internal: the -ip value, else the container's address on the network
//               named by its HostConfig.NetworkMode (v7's servicePort overwrites the published
//               host IP with it whatever the mode);  Port  the published host port.
//               With -internal (-ip is then ignored): NetworkSettings.IPAddress (empty on a
//               user-defined network), else the container's address on its network (v7 takes
//               the last of NetworkSettings.Networks in Go's random map order: with several
//               networks, any one of them, and the stand-in picks one at random too);  Port  the
//               exposed container port.
//       Check   HTTP http://<address>:<port><SERVICE_CHECK_HTTP>, else with SERVICE_CHECK_TCP
//               TCP <address>:<port>; SERVICE_CHECK_INTERVAL (10s default), SERVICE_CHECK_TIMEOUT;
//               SERVICE_IGNORE skips a container/port;
//   - -deregister=always|on-success on "die"; -resync=<s> re-registers every <s> seconds and,
//     with -cleanup, removes this host's services whose container is gone.
// SERVICE_* settings come from the container's environment and labels, per-port ones first.
// Source: Registrator v7, bridge/bridge.go (add, newService) and bridge/util.go (servicePort).
// One difference on purpose: only containers of this e2e run (E2E_LABEL) are registered, where
// a real Registrator registers every container of the engine.
import { REGISTRATOR_BINARY, registratorWrapper } from "../../../components/registrator";
import { httpRequest } from "../../support/http";
import { Docker } from "./docker";
import { E2E_LABEL, log } from "./engine";

export interface RegistratorOptions {
    /** The Registrator container's hostname: the first part of every service ID. */
    hostname: string;
    ip?: string;
    /** -internal: container addresses and exposed ports instead of published ones. */
    internal: boolean;
    resyncSeconds: number;
    cleanup: boolean;
    deregister: "always" | "on-success";
    /** consul://host:port or consul-unix:///path from the command line, as the container would reach it. */
    registryUri: string;
}

/** A Go boolean flag: `-flag` alone is true, `-flag=<v>` takes Go's strconv.ParseBool values. */
function goBool(arg: string, inline: string | undefined): boolean {
    if (inline === undefined) return true;
    if (["1", "t", "T", "TRUE", "true", "True"].includes(inline)) return true;
    if (["0", "f", "F", "FALSE", "false", "False"].includes(inline)) return false;
    throw new Error(`registrator command: ${JSON.stringify(arg)} is not a boolean flag value`);
}

/** Parses Registrator v7's command line; any flag it does not emulate fails loudly. */
export function parseRegistratorCommand(command: readonly string[], hostname: string): RegistratorOptions {
    const opts: RegistratorOptions = { hostname, internal: false, resyncSeconds: 0, cleanup: false, deregister: "always", registryUri: "" };
    const args = [...command];
    while (args.length > 0) {
        const arg = args.shift()!;
        if (!arg.startsWith("-")) {
            if (opts.registryUri || args.length > 0)
                throw new Error(`registrator command: unexpected argument ${JSON.stringify(arg)} (one registry URI, last)`);
            opts.registryUri = arg;
            continue;
        }
        const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
        if (!m) throw new Error(`registrator command: cannot parse ${JSON.stringify(arg)}`);
        const [, flag, inline] = m;
        const value = (): string => (inline !== undefined ? inline : (args.shift() ?? ""));
        switch (flag) {
            case "ip":
                opts.ip = value();
                break;
            case "internal":
                opts.internal = goBool(arg, inline);
                break;
            case "resync":
                opts.resyncSeconds = Number(value());
                break;
            case "cleanup":
                opts.cleanup = goBool(arg, inline);
                break;
            case "deregister": {
                const v = value();
                if (v !== "always" && v !== "on-success") throw new Error(`registrator command: -deregister=${v} is not always|on-success`);
                opts.deregister = v;
                break;
            }
            default:
                throw new Error(
                    `registrator command: flag -${flag} is not emulated by the e2e harness (Registrator's image is missing, so the harness registers services itself); add it to test/e2e/harness/registrator.ts`,
                );
        }
    }
    // Registrator v7 registers the consul and consul-unix adapters only (consul-tls came later).
    if (!/^(consul:\/\/[^/]+|consul-unix:\/\/\/[^ ]+)$/.test(opts.registryUri)) {
        throw new Error(
            `registrator command: registry ${JSON.stringify(opts.registryUri)} is not one Registrator v7 has (consul://host:port or consul-unix:///path)`,
        );
    }
    if (!Number.isFinite(opts.resyncSeconds) || opts.resyncSeconds < 0) throw new Error(`registrator command: bad -resync`);
    return opts;
}

/**
 * The Consul token the Registrator container's process would have, from its entrypoint, environment
 * and uploads. The image's own entrypoint (/bin/registrator): CONSUL_HTTP_TOKEN from the
 * container's environment, which Consul's Go client reads. The program's wrapper
 * (components/registrator.ts, registratorWrapper: `/bin/sh -c <script> registrator`): the
 * content of the uploaded file the script names, command substitution's trailing newlines
 * stripped; a missing or empty file stops the container (exit 78), so the emulation fails too.
 * Any other entrypoint is not emulated.
 */
export function registratorToken(
    entrypoints: readonly string[] | undefined,
    env: Readonly<Record<string, string>>,
    uploads: readonly { file: string; content: Buffer }[],
): string | undefined {
    if (entrypoints === undefined || (entrypoints.length === 1 && entrypoints[0] === REGISTRATOR_BINARY)) return env.CONSUL_HTTP_TOKEN || undefined;
    const file = /^token="\$\(cat '([^']+)'\)"/.exec(entrypoints[2] ?? "")?.[1];
    const wrapper = file === undefined ? undefined : ["/bin/sh", "-c", registratorWrapper(file, REGISTRATOR_BINARY), "registrator"];
    if (!wrapper || entrypoints.length !== wrapper.length || entrypoints.some((x, i) => x !== wrapper[i]))
        throw new Error(
            `registrator entrypoint ${JSON.stringify(entrypoints)} is not emulated: the image's own (${REGISTRATOR_BINARY}) or the program's token wrapper (components/registrator.ts)`,
        );
    const upload = uploads.find((u) => u.file === file);
    if (!upload) throw new Error(`registrator: cannot read its Consul ACL token from ${file} (no upload there; the container would exit 78)`);
    const token = upload.content.toString("utf8").replace(/\n+$/, "");
    if (token === "") throw new Error(`registrator: ${file} is empty (its Consul ACL token; the container would exit 78)`);
    return token;
}

interface Service {
    ID: string;
    Name: string;
    Tags: string[];
    Address: string;
    Port: number;
    Check?: { HTTP?: string; TCP?: string; Interval: string; Timeout?: string };
    /** The container's name, for -cleanup. */
    containerName: string;
}

/** Registrator's serviceMetaData: SERVICE_* from env and labels; SERVICE_<port>_* win. */
function metadata(env: string[], labels: Record<string, string>, port: string): { meta: Record<string, string>; fromPort: Set<string> } {
    const meta: Record<string, string> = {};
    const fromPort = new Set<string>();
    const all = [...env, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)];
    for (const kv of all) {
        const i = kv.indexOf("=");
        if (i < 0) continue;
        const k = kv.slice(0, i);
        const v = kv.slice(i + 1);
        if (!k.startsWith("SERVICE_")) continue;
        const key = k.slice("SERVICE_".length).toLowerCase();
        if (fromPort.has(key)) continue;
        const parts = key.split("_");
        const first = parts[0];
        if (/^[0-9]+$/.test(first) && parts.length > 1) {
            if (first !== port) continue;
            const rest = key.slice(first.length + 1);
            meta[rest] = v;
            fromPort.add(rest);
        } else {
            meta[key] = v;
        }
    }
    return { meta, fromPort };
}

export class RegistratorEmulator {
    /** Services registered per container id, as Registrator's bridge keeps them. */
    private readonly services = new Map<string, Service[]>();
    private closeEvents?: () => void;
    private resync?: NodeJS.Timeout;
    private queue: Promise<void> = Promise.resolve();
    private stopped = false;
    /** Fatal: the emulation itself broke (e.g. the event stream ended). */
    readonly errors: string[] = [];
    /** What Registrator would log and carry on from (e.g. "register failed"). */
    readonly logged: string[] = [];

    /**
     * `client`: what Registrator's Consul client has: the agent's socket (consul-unix://) and the
     * token of CONSUL_HTTP_TOKEN, which Consul's Go client reads from its process environment
     * (registratorToken: the container's, or set by the program's entrypoint from a file).
     */
    constructor(
        private readonly docker: Docker,
        private readonly consulHttp: string,
        readonly options: RegistratorOptions,
        readonly client: { readonly token?: string; readonly socketPath?: string } = {},
    ) {}

    async start(): Promise<void> {
        const filters = encodeURIComponent(JSON.stringify({ type: ["container"], event: ["start", "die"], label: [E2E_LABEL] }));
        this.closeEvents = await this.docker.stream(
            `/events?filters=${filters}`,
            (event) => {
                const id: string = event.id ?? event.Actor?.ID;
                const action: string = event.Action ?? event.status;
                this.enqueue(() => (action === "start" ? this.add(id) : this.removeOnExit(id, Number(event.Actor?.Attributes?.exitCode ?? 0))));
            },
            (e) => {
                if (!this.stopped) this.errors.push(`event stream ended${e ? `: ${e.message}` : ""}`);
            },
        );
        await this.enqueue(() => this.sync());
        if (this.options.resyncSeconds > 0) {
            this.resync = setInterval(() => void this.enqueue(() => this.sync()), this.options.resyncSeconds * 1000);
        }
        log(
            `Registrator image missing: registering services as Registrator would (${this.options.hostname}, ${this.options.internal ? "-internal" : `-ip=${this.options.ip ?? "(container address on its network)"}`})`,
        );
    }

    async stop(): Promise<void> {
        this.stopped = true;
        if (this.resync) clearInterval(this.resync);
        this.closeEvents?.();
        await this.queue.catch(() => undefined);
    }

    /** Waits until the events seen so far are handled. */
    settle(): Promise<void> {
        return this.enqueue(async () => undefined);
    }

    private enqueue(job: () => Promise<void>): Promise<void> {
        const next = this.queue.then(job).catch((e: Error) => {
            if (!this.stopped) this.note(e.message);
        });
        this.queue = next;
        return next;
    }

    private note(message: string): void {
        this.logged.push(message);
        log(`registrator (emulated): ${message}`);
    }

    private async consul(method: string, path: string, body?: unknown): Promise<string> {
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        // Like Registrator's Consul client: no deadline of its own (Consul holds requests
        // while it has no leader); 60 s only so that a hung agent cannot hang the suite.
        const headers = { ...(payload ? { "Content-Length": payload.length } : {}), ...(this.client.token ? { "X-Consul-Token": this.client.token } : {}) };
        const res = await httpRequest(new URL(path, this.consulHttp).href, {
            method,
            headers,
            timeoutMs: 60_000,
            ...(payload ? { body: payload } : {}),
            ...(this.client.socketPath ? { socketPath: this.client.socketPath } : {}),
        });
        if (res.status >= 400) throw new Error(`consul ${method} ${path}: ${res.status} ${res.body.trim()}`);
        return res.body;
    }

    /** The services Registrator v7's bridge derives from one container (add, servicePort, newService). */
    private servicesOf(container: any): Service[] {
        const name: string = String(container.Name).replace(/^\//, "");
        const networks: Record<string, { IPAddress?: string }> = container.NetworkSettings?.Networks ?? {};
        // servicePort: the host IP becomes the address on the network named by NetworkMode (its
        // mode test is always true in v7); the exposed IP is the default bridge's address, else
        // the container's address on its (last) network.
        const networkModeIp = networks[container.HostConfig?.NetworkMode ?? ""]?.IPAddress ?? "";
        const exposedIp = (): string => {
            if (container.NetworkSettings?.IPAddress) return container.NetworkSettings.IPAddress;
            // v7 keeps the last address of a loop over a Go map, whose order is random on every
            // pass: one network, its address; several (the gateway on one node: the node network and
            // each service's), any one of them, anew at each registration. So here: one at random.
            const ips = [...new Set(Object.values(networks).map((n) => n.IPAddress ?? ""))];
            return ips[Math.floor(Math.random() * ips.length)] ?? "";
        };
        const ports = new Map<string, { exposedPort: string; type: string; hostPort: string }>();
        const add = (key: string, published: { HostIp?: string; HostPort?: string }[] | null): void => {
            const [exposedPort, type] = key.split("/");
            const first = published && published.length > 0 ? published[0] : undefined;
            ports.set(key, { exposedPort, type: type ?? "tcp", hostPort: first?.HostPort ?? "" });
        };
        // Configured bindings first, then the runtime ports (every exposed port; null = not published).
        for (const [key, published] of Object.entries(container.HostConfig?.PortBindings ?? {})) add(key, published as any);
        for (const [key, published] of Object.entries(container.NetworkSettings?.Ports ?? {})) add(key, published as any);
        // v7 counts every port of the container, published or not.
        const isGroup = ports.size > 1;
        const image: string = container.Config?.Image ?? "";
        const defaultName = (image.split("/").pop() ?? image).split(":")[0];
        const out: Service[] = [];
        for (const port of ports.values()) {
            if (!this.options.internal && port.hostPort === "") continue; // "not published on host"
            const { meta, fromPort } = metadata(container.Config?.Env ?? [], container.Config?.Labels ?? {}, port.exposedPort);
            if (meta.ignore) continue;
            const ip = this.options.internal ? exposedIp() : this.options.ip || networkModeIp;
            let id = `${this.options.hostname}:${name}:${port.exposedPort}`;
            let serviceName = meta.name ?? defaultName;
            if (isGroup && !fromPort.has("name")) serviceName += `-${port.exposedPort}`;
            const tags = meta.tags ? meta.tags.split(",") : [];
            if (port.type === "udp") {
                tags.push("udp");
                id += ":udp";
            }
            if (meta.id) id = meta.id;
            const portNumber = Number(this.options.internal ? port.exposedPort : port.hostPort);
            const service: Service = { ID: id, Name: serviceName, Tags: tags, Address: ip, Port: portNumber, containerName: name };
            for (const unsupported of ["check_https", "check_script", "check_cmd", "check_ttl", "check_initial_status"]) {
                if (meta[unsupported]) throw new Error(`container ${name}: SERVICE_${unsupported.toUpperCase()} is not emulated by the e2e harness`);
            }
            if (meta.check_http) {
                service.Check = { HTTP: `http://${ip}:${portNumber}${meta.check_http}`, Interval: meta.check_interval || "10s" };
                if (meta.check_timeout) service.Check.Timeout = meta.check_timeout;
            } else if (meta.check_tcp) {
                // v7's buildCheck: any non-empty SERVICE_CHECK_TCP, when no HTTP check is set.
                service.Check = { TCP: `${ip}:${portNumber}`, Interval: meta.check_interval || "10s" };
                if (meta.check_timeout) service.Check.Timeout = meta.check_timeout;
            }
            out.push(service);
        }
        return out;
    }

    /** Registrator logs a failed registration and carries on; -resync retries it later. */
    private async register(s: Service): Promise<void> {
        try {
            await this.registerOrThrow(s);
        } catch (e) {
            this.note(`register failed: ${s.ID}: ${(e as Error).message}`);
        }
    }

    private async registerOrThrow(s: Service): Promise<void> {
        await this.consul("PUT", "/v1/agent/service/register", { ID: s.ID, Name: s.Name, Tags: s.Tags, Address: s.Address, Port: s.Port, Check: s.Check });
    }

    private async add(containerId: string): Promise<void> {
        let container: any;
        try {
            container = await this.docker.inspectContainer(containerId);
        } catch {
            return; // already gone
        }
        if (!container.State?.Running) return;
        const services = this.servicesOf(container);
        for (const s of services) await this.register(s);
        this.services.set(container.Id, services);
    }

    private async removeOnExit(containerId: string, exitCode: number): Promise<void> {
        const id = [...this.services.keys()].find((k) => k === containerId || k.startsWith(containerId));
        if (!id) return;
        if (this.options.deregister === "on-success" && exitCode !== 0) return;
        for (const s of this.services.get(id)!) await this.consul("PUT", `/v1/agent/service/deregister/${encodeURIComponent(s.ID)}`);
        this.services.delete(id);
    }

    /** Registrator's Sync: (re-)register running containers; with -cleanup drop dangling ones. */
    private async sync(): Promise<void> {
        const filters = encodeURIComponent(JSON.stringify({ label: [E2E_LABEL], status: ["running"] }));
        const running: any[] = await this.docker.request("GET", `/containers/json?filters=${filters}`);
        for (const c of running) {
            const known = this.services.get(c.Id);
            if (known) for (const s of known) await this.register(s);
            else await this.add(c.Id);
        }
        if (!this.options.cleanup) return;
        const live = new Set(running.map((c) => c.Id as string));
        for (const id of [...this.services.keys()]) if (!live.has(id)) await this.removeOnExit(id, 0);
        const registered: Record<string, { ID: string; Service: string }> = JSON.parse(await this.consul("GET", "/v1/agent/services"));
        for (const ext of Object.values(registered)) {
            const m = /^(.+?):([a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?$/.exec(ext.ID);
            if (!m || m[1] !== this.options.hostname) continue;
            const ours = [...this.services.values()].some((list) => list.some((s) => s.Name === ext.Service && s.containerName === m[2]));
            if (!ours) await this.consul("PUT", `/v1/agent/service/deregister/${encodeURIComponent(ext.ID)}`);
        }
    }
}
