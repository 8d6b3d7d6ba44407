// Applies the resources the program declares, for real, on the test engine: what the mock's
// newResource hands over (see apply-child.ts) is created here and answered with real ids and
// outputs. Each resource type has an allow-list of input keys; an input this applier does not
// apply fails the run loudly, so nothing the program sets is silently dropped.
// A second evaluation works like a second `pulumi up`: unchanged resources are kept as they
// are, changed consul.Keys are updated in place, any other change fails loudly.
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT } from "../../support/program";
import { Docker, DockerError } from "./docker";
import { E2E_LABEL, log } from "./engine";
import { parseRegistratorCommand, RegistratorEmulator } from "./registrator";
import * as secure from "./secure-resources";

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** Pulumi's wire form of a secret, {sig, value}, replaced by the value, recursively. */
export function unwrapSecrets(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    if (value && typeof value === "object") {
        const obj = value as Record<string, unknown>;
        if (obj[SECRET_SIG_KEY] === SECRET_SIG) return unwrapSecrets(obj.value);
        return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

/** Stable JSON (sorted keys), for comparing inputs between evaluations. */
function canonical(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
        const obj = value as Record<string, unknown>;
        return `{${Object.keys(obj).filter((k) => obj[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(",")}}`;
    }
    return JSON.stringify(value);
}

type Obj = Record<string, any>;

/** Checks an input object against its allow-list: unknown keys and missing required keys throw. */
function allow(where: string, value: unknown, required: readonly string[], optional: readonly string[] = []): Obj {
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: expected an object, got ${JSON.stringify(value)}`);
    const obj = value as Obj;
    const unknown = Object.keys(obj).filter((k) => obj[k] !== undefined && !required.includes(k) && !optional.includes(k));
    if (unknown.length > 0) {
        throw new Error(`${where}: input ${unknown.map((k) => `${k}=${JSON.stringify(obj[k])}`).join(", ")} is not applied by the e2e applier (test/e2e/harness/applier.ts); teach it, or the test engine would silently differ from the program`);
    }
    const missing = required.filter((k) => obj[k] === undefined);
    if (missing.length > 0) throw new Error(`${where}: required input ${missing.join(", ")} missing`);
    return obj;
}

function list(where: string, value: unknown): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
    return value;
}

function strings(where: string, value: unknown): string[] {
    return list(where, value).map((v, i) => {
        if (typeof v !== "string") throw new Error(`${where}[${i}]: expected a string, got ${JSON.stringify(v)}`);
        return v;
    });
}

/** A log driver's options: a map of strings, as the engine takes them. */
function logOptions(where: string, value: unknown): Record<string, string> | undefined {
    if (value === undefined) return undefined;
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: expected a map, got ${JSON.stringify(value)}`);
    for (const [k, v] of Object.entries(value)) if (typeof v !== "string") throw new Error(`${where}.${k}: expected a string, got ${JSON.stringify(v)}`);
    return value as Record<string, string>;
}

/** Go-style duration ("2s", "500ms", "1m30s") in nanoseconds. */
export function durationNs(where: string, value: unknown): number {
    if (typeof value !== "string" || !/^([0-9.]+(ns|us|µs|ms|s|m|h))+$/.test(value)) throw new Error(`${where}: ${JSON.stringify(value)} is not a duration`);
    const unit: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
    let total = 0;
    for (const m of value.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
    return Math.round(total);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Applied {
    type: string;
    name: string;
    id: string;
    /** Inputs with secrets unwrapped, canonical JSON. */
    inputsKey: string;
    inputs: Obj;
    outputs: Obj;
}

export interface ApplierOptions {
    /** The Registrator image: when it is missing locally, its container is emulated. */
    registratorImage: string;
    /** Value of the E2E label on everything created (one per run). */
    runId: string;
    /** Where the engine's socket is on this machine, when it is a unix socket. */
    engineSocket?: string;
}

const ABSENT = "e2e-image-not-on-engine:";

export class Applier {
    /** Like a stack's state: what was applied, by type::name. */
    readonly state = new Map<string, Applied>();
    /** Containers, networks, volumes created, in creation order (torn down in reverse). */
    readonly created: { kind: "container" | "network" | "volume"; name: string }[] = [];
    /** Declared containers by Docker name, with their unwrapped inputs. */
    readonly containers = new Map<string, Obj>();
    registrator?: RegistratorEmulator;
    /** Where the emulated Registrator reads the engine: its DOCKER_HOST, and what answers there. */
    registratorEngine?: { dockerHost: string; container?: string; endpoint: string };
    /** Problems of the program seen while applying, that the provider would turn into failures. */
    readonly findings: string[] = [];
    /** Registrator containers emulated (their image was missing). */
    readonly emulated: string[] = [];
    private readonly providers = new Map<string, { type: string; inputs: Obj }>();
    private seen = new Set<string>();
    private evaluation = 0;

    constructor(private readonly docker: Docker, private readonly options: ApplierOptions) {}

    beginEvaluation(): void {
        this.seen = new Set();
        this.evaluation++;
    }

    /** After an evaluation: a resource the program no longer declares would be deleted. */
    endEvaluation(): void {
        const gone = [...this.state.keys()].filter((k) => !this.seen.has(k));
        if (gone.length > 0) throw new Error(`evaluation ${this.evaluation} no longer declares ${gone.join(", ")}; deleting resources is not implemented by the e2e applier`);
    }

    async apply(type: string, name: string, rawInputs: Obj, providerRef: string): Promise<{ id: string; outputs: Obj }> {
        const key = `${type}::${name}`;
        if (this.seen.has(key)) throw new Error(`${key} declared twice`);
        this.seen.add(key);
        const inputs = unwrapSecrets(rawInputs) as Obj;
        const inputsKey = canonical(inputs);
        const previous = this.state.get(key);
        if (previous) {
            if (previous.inputsKey === inputsKey) return { id: previous.id, outputs: previous.outputs };
            if (type !== "consul:index/keys:Keys") {
                const changed = [...new Set([...Object.keys(previous.inputs), ...Object.keys(inputs)])].filter((k) => canonical(previous.inputs[k]) !== canonical(inputs[k]));
                throw new Error(`${key}: inputs ${changed.join(", ")} changed between evaluations; the e2e applier updates only consul.Keys in place`);
            }
        }
        const where = `${type} ${name}`;
        const result = await this.create(type, name, where, inputs, providerRef, previous);
        this.state.set(key, { type, name, id: result.id, inputsKey, inputs, outputs: result.outputs });
        return result;
    }

    private provider(where: string, ref: string, type: "docker" | "consul"): Obj | undefined {
        if (!ref) {
            if (type === "consul") throw new Error(`${where}: uses the default Consul provider (no address); the applier needs an explicit consul.Provider`);
            return undefined; // default Docker provider: DOCKER_HOST, which is the test engine
        }
        const id = ref.slice(ref.lastIndexOf("::") + 2);
        const p = this.providers.get(id);
        if (!p || p.type !== type) throw new Error(`${where}: provider ${ref} is not a ${type} provider the applier created`);
        return p.inputs;
    }

    private async create(type: string, name: string, where: string, inputs: Obj, providerRef: string, previous?: Applied): Promise<{ id: string; outputs: Obj }> {
        if (type.startsWith("service-discovery:")) {
            allow(where, inputs, []);
            return { id: "", outputs: {} }; // component resources
        }
        switch (type) {
            case "pulumi:providers:docker": {
                const p = allow(where, inputs, [], ["host", "version"]);
                if (p.host !== undefined && p.host !== this.docker.host) {
                    throw new Error(`${where}: host ${p.host} is not the test engine (${this.docker.host})`);
                }
                this.providers.set(`${name}-provider-id`, { type: "docker", inputs: p });
                return { id: `${name}-provider-id`, outputs: {} };
            }
            case "pulumi:providers:consul": {
                const p = allow(where, inputs, ["address"], ["datacenter", "version", "scheme", "caPem", "token"]);
                this.providers.set(`${name}-provider-id`, { type: "consul", inputs: p });
                return { id: `${name}-provider-id`, outputs: {} };
            }
            case "random:index/randomPassword:RandomPassword": return this.randomPassword(where, inputs);
            case "random:index/randomId:RandomId": return this.randomId(where, inputs);
            case "random:index/randomUuid:RandomUuid": allow(where, inputs, []); return { id: "uuid", outputs: { result: randomUUID() } };
            case "tls:index/privateKey:PrivateKey": return secure.privateKey(allow(where, inputs, ["algorithm"], ["ecdsaCurve", "rsaBits"]));
            case "tls:index/selfSignedCert:SelfSignedCert":
                return secure.selfSignedCert(allow(where, inputs, ["privateKeyPem", "validityPeriodHours", "allowedUses"], ["subject", "isCaCertificate"]));
            case "tls:index/certRequest:CertRequest": return secure.certRequest(allow(where, inputs, ["privateKeyPem"], ["subject", "dnsNames", "ipAddresses"]));
            case "tls:index/locallySignedCert:LocallySignedCert":
                return secure.locallySignedCert(allow(where, inputs, ["certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours", "allowedUses"], ["earlyRenewalHours"]));
            case "consul:index/aclPolicy:AclPolicy":
                return secure.aclPolicy(this.consulProvider(where, providerRef), allow(where, inputs, ["name", "rules"], ["description", "datacenters"]));
            case "consul:index/aclToken:AclToken":
                return secure.aclToken(this.consulProvider(where, providerRef), allow(where, inputs, [], ["description", "policies", "nodeIdentities", "local"]));
            case "consul:index/aclTokenPolicyAttachment:AclTokenPolicyAttachment":
                return secure.aclTokenPolicyAttachment(this.consulProvider(where, providerRef), allow(where, inputs, ["tokenId", "policy"]));
            case "command:local:Command": return secure.localCommand(where, allow(where, inputs, ["create"], ["environment", "triggers"]), ROOT);
            case "docker:index/network:Network": this.provider(where, providerRef, "docker"); return this.network(where, inputs);
            case "docker:index/volume:Volume": this.provider(where, providerRef, "docker"); return this.volume(where, inputs);
            case "docker:index/remoteImage:RemoteImage": this.provider(where, providerRef, "docker"); return this.remoteImage(where, inputs);
            case "docker-build:index:Image": return this.build(where, inputs);
            case "docker:index/container:Container": this.provider(where, providerRef, "docker"); return this.container(where, inputs);
            case "consul:index/keys:Keys": return this.keys(where, inputs, this.provider(where, providerRef, "consul")!, previous);
            default:
                throw new Error(`${where}: resource type ${type} is not applied by the e2e applier (test/e2e/harness/applier.ts)`);
        }
    }

    /** A Consul provider the applier created, with what its requests need (address, CA, token). */
    private consulProvider(where: string, ref: string): secure.ConsulProviderInputs {
        return this.provider(where, ref, "consul") as secure.ConsulProviderInputs;
    }

    /** A provider function (data source) the program invoked, answered for real. */
    async invoke(token: string, inputs: Obj, providerRef: string): Promise<Obj> {
        const where = `invoke ${token}`;
        switch (token) {
            case "consul:index/getAclTokenSecretId:getAclTokenSecretId":
                return secure.aclTokenSecretId(this.consulProvider(where, providerRef), allow(where, unwrapSecrets(inputs), ["accessorId"]));
            default:
                throw new Error(`${where}: not implemented by the e2e applier (test/e2e/harness/applier.ts)`);
        }
    }

    // --- random ------------------------------------------------------------------------------

    private randomPassword(where: string, inputs: Obj): { id: string; outputs: Obj } {
        const p = allow(where, inputs, ["length"], ["special", "upper", "lower", "numeric"]);
        let chars = "";
        if (p.lower !== false) chars += "abcdefghijklmnopqrstuvwxyz";
        if (p.upper !== false) chars += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        if (p.numeric !== false) chars += "0123456789";
        if (p.special !== false) chars += "!@#$%&*()-_=+[]{}<>:?";
        let result = "";
        for (let i = 0; i < Number(p.length); i++) result += chars[randomInt(chars.length)];
        return { id: "none", outputs: { result } };
    }

    private randomId(where: string, inputs: Obj): { id: string; outputs: Obj } {
        const p = allow(where, inputs, ["byteLength"]);
        const bytes = randomBytes(Number(p.byteLength));
        const b64Url = bytes.toString("base64url");
        return {
            id: b64Url,
            outputs: { b64Std: bytes.toString("base64"), b64Url, hex: bytes.toString("hex"), dec: BigInt(`0x${bytes.toString("hex")}`).toString(), id: b64Url },
        };
    }

    // --- Docker objects ------------------------------------------------------------------------

    private labels(): Obj {
        return { [E2E_LABEL]: this.options.runId };
    }

    /** On a name conflict: remove a leftover of an earlier e2e run, refuse anything else. */
    private async clearLeftover(kind: "container" | "network" | "volume", name: string): Promise<void> {
        const paths = { container: `/containers/${name}/json`, network: `/networks/${name}`, volume: `/volumes/${name}` };
        const existing = await this.docker.request("GET", paths[kind]);
        const labels = (kind === "container" ? existing.Config?.Labels : existing.Labels) ?? {};
        if (!(E2E_LABEL in labels)) {
            throw new Error(`a ${kind} named ${name} already exists on the test engine and was not made by the e2e harness; remove it or point DOCKER_HOST at another engine`);
        }
        log(`removing ${kind} ${name} left by an earlier e2e run`);
        if (kind === "container") await this.docker.request("DELETE", `/containers/${name}?force=true&v=true`);
        else if (kind === "network") await this.docker.request("DELETE", `/networks/${name}`);
        else await this.docker.request("DELETE", `/volumes/${name}?force=true`);
    }

    private async network(where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["name"], ["driver", "ipamConfigs", "internal"]);
        if (p.internal !== undefined && typeof p.internal !== "boolean") throw new Error(`${where}: internal ${JSON.stringify(p.internal)}`);
        const ipam = list(`${where}.ipamConfigs`, p.ipamConfigs).map((c, i) => {
            const cfg = allow(`${where}.ipamConfigs[${i}]`, c, ["subnet"], ["gateway"]);
            return { Subnet: cfg.subnet, ...(cfg.gateway ? { Gateway: cfg.gateway } : {}) };
        });
        const body = { Name: p.name, Driver: p.driver ?? "bridge", Internal: p.internal === true, CheckDuplicate: true, Labels: this.labels(), IPAM: { Driver: "default", Config: ipam } };
        let created: { Id: string };
        try {
            created = await this.docker.request("POST", "/networks/create", body);
        } catch (e) {
            if (!(e instanceof DockerError) || e.status !== 409) throw e;
            await this.clearLeftover("network", p.name);
            created = await this.docker.request("POST", "/networks/create", body);
        }
        this.created.push({ kind: "network", name: p.name });
        return { id: created.Id, outputs: { driver: body.Driver } };
    }

    private async volume(where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["name"], ["driver", "driverOpts"]);
        try {
            await this.docker.request("GET", `/volumes/${p.name}`);
            await this.clearLeftover("volume", p.name); // Docker would hand back the old volume, data and all
        } catch (e) {
            if (!(e instanceof DockerError) || e.status !== 404) throw e;
        }
        const v = await this.docker.request("POST", "/volumes/create", { Name: p.name, Driver: p.driver ?? "local", DriverOpts: p.driverOpts ?? {}, Labels: this.labels() });
        this.created.push({ kind: "volume", name: p.name });
        return { id: p.name, outputs: { driver: v.Driver, mountpoint: v.Mountpoint } };
    }

    private async remoteImage(where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["name"], ["keepLocally"]);
        const image = await this.docker.imageExists(p.name);
        if (!image) {
            if (p.name === this.options.registratorImage) {
                log(`${p.name} is not on the test engine: its container will be emulated (test/e2e/harness/registrator.ts)`);
                return { id: `${ABSENT}${p.name}`, outputs: { imageId: `${ABSENT}${p.name}`, repoDigest: "" } };
            }
            throw new Error(`${where}: image ${p.name} is not on the test engine and the e2e harness never pulls; build or load ${p.name} there first`);
        }
        return { id: `${image.Id}${p.name}`, outputs: { imageId: image.Id, repoDigest: image.RepoDigests?.[0] ?? "" } };
    }

    private async build(where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["context"], ["dockerfile", "buildArgs", "tags", "network", "push", "load", "buildOnPreview"]);
        const context = allow(`${where}.context`, p.context, ["location"]);
        const dockerfile = p.dockerfile === undefined ? undefined : allow(`${where}.dockerfile`, p.dockerfile, ["location"]);
        if (p.push === true) throw new Error(`${where}: push=true is not applied by the e2e applier (no registry)`);
        if (p.load !== true) throw new Error(`${where}: load=${p.load}: only images loaded into the engine can be run; the applier builds with load`);
        if (p.network !== undefined && !["default", "host", "none"].includes(p.network)) throw new Error(`${where}: network ${p.network}`);
        const args = ["build", "--network", p.network ?? "default"];
        if (dockerfile) args.push("--file", path.resolve(ROOT, dockerfile.location));
        for (const [k, v] of Object.entries((p.buildArgs ?? {}) as Obj)) {
            if (typeof v !== "string") throw new Error(`${where}.buildArgs.${k}: expected a string, got ${JSON.stringify(v)}`);
            args.push("--build-arg", `${k}=${v}`);
        }
        const tags = strings(`${where}.tags`, p.tags);
        for (const t of tags) args.push("--tag", t);
        const iidDir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-iid-"));
        const iidFile = path.join(iidDir, "iid");
        args.push("--iidfile", iidFile, path.resolve(ROOT, context.location));
        const started = Date.now();
        try {
            await this.docker.cli(args, { timeoutMs: 900_000 });
            const digest = fs.readFileSync(iidFile, "utf8").trim();
            log(`built ${tags.join(", ") || digest} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
            return { id: tags[0] ?? digest, outputs: { ref: tags[0] ?? "", digest } };
        } finally {
            fs.rmSync(iidDir, { recursive: true, force: true });
        }
    }

    private async container(where: string, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["name", "image"], [
            "hostname", "command", "envs", "ports", "volumes", "networksAdvanced", "restart", "healthcheck", "wait", "waitTimeout",
            "logDriver", "logOpts", "uploads", "securityOpts", "capabilities", "readOnly", "sysctls",
        ]);
        const name: string = p.name;
        const command = p.command === undefined ? undefined : strings(`${where}.command`, p.command);
        const envs = strings(`${where}.envs`, p.envs);
        const uploads = list(`${where}.uploads`, p.uploads).map((u, i) => secure.parseUpload(`${where}.uploads[${i}]`, u as Obj));
        const ports = list(`${where}.ports`, p.ports).map((x, i) => {
            const port = allow(`${where}.ports[${i}]`, x, ["internal"], ["external", "ip", "protocol"]);
            return { internal: Number(port.internal), external: port.external === undefined ? undefined : Number(port.external), ip: port.ip ?? "0.0.0.0", protocol: port.protocol ?? "tcp" };
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
        const health = p.healthcheck === undefined ? undefined : allow(`${where}.healthcheck`, p.healthcheck, ["tests"], ["interval", "timeout", "retries", "startPeriod"]);
        if (p.logDriver !== undefined && typeof p.logDriver !== "string") throw new Error(`${where}: logDriver ${JSON.stringify(p.logDriver)}`);
        const logOpts = logOptions(`${where}.logOpts`, p.logOpts);
        const securityOpts = strings(`${where}.securityOpts`, p.securityOpts);
        const caps = p.capabilities === undefined ? undefined : allow(`${where}.capabilities`, p.capabilities, [], ["adds", "drops"]);
        // Namespaced kernel settings of the container (a map of strings, as the engine takes them).
        const sysctls = logOptions(`${where}.sysctls`, p.sysctls);
        if (p.readOnly !== undefined && typeof p.readOnly !== "boolean") throw new Error(`${where}: readOnly ${JSON.stringify(p.readOnly)}`);
        this.containers.set(name, { ...p, command, envs, ports, volumes, networks });

        if (typeof p.image === "string" && p.image.startsWith(ABSENT)) return this.emulateRegistrator(where, p.image.slice(ABSENT.length), name, p.hostname ?? name, command ?? [], networks, envs);

        const binds = volumes.map((v) => {
            let source: string = v.volumeName ?? v.hostPath;
            if (v.hostPath !== undefined && ["/var/run/docker.sock", "/run/docker.sock"].includes(v.hostPath) && this.options.engineSocket && this.options.engineSocket !== v.hostPath) {
                log(`${name}: mounting the test engine's socket ${this.options.engineSocket} where the program mounts ${v.hostPath}`);
                source = this.options.engineSocket;
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
            Cmd: command,
            Env: envs,
            Labels: this.labels(),
            ExposedPorts: exposed,
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
                ...(sysctls === undefined ? {} : { Sysctls: sysctls }),
                // Unset, the engine's default driver and options apply, as with the provider.
                ...(p.logDriver === undefined && logOpts === undefined ? {} : { LogConfig: { Type: p.logDriver ?? "", Config: logOpts ?? {} } }),
                NetworkMode: first?.name ?? "default",
            },
            NetworkingConfig: first ? { EndpointsConfig: { [first.name]: { Aliases: first.aliases } } } : undefined,
        };
        const path_ = `/containers/create?name=${encodeURIComponent(name)}`;
        let created: { Id: string };
        try {
            created = await this.docker.request("POST", path_, body);
        } catch (e) {
            if (!(e instanceof DockerError) || e.status !== 409) throw new Error(`${where}: ${(e as Error).message}`);
            await this.clearLeftover("container", name);
            created = await this.docker.request("POST", path_, body);
        }
        if (!this.created.some((c) => c.kind === "container" && c.name === name)) this.created.push({ kind: "container", name });
        for (const n of more) await this.docker.request("POST", `/networks/${encodeURIComponent(n.name)}/connect`, { Container: created.Id, EndpointConfig: { Aliases: n.aliases } });
        // The provider copies uploads into the created container before it starts it.
        if (uploads.length > 0) await this.docker.request("PUT", `/containers/${created.Id}/archive?path=/`, secure.tarOf(uploads));
        await this.docker.request("POST", `/containers/${created.Id}/start`);
        // The provider's mustRun (default true): the container must be running after start.
        const state = (await this.docker.inspectContainer(created.Id)).State;
        if (!state.Running) throw new Error(`${where}: container ${name} is not running after start (${state.Status}, exit ${state.ExitCode}); logs:\n${await this.docker.logs(name)}`);
        if (p.wait === true) await this.waitHealthy(where, name, Number(p.waitTimeout ?? 60));
        return { id: created.Id, outputs: {} };
    }

    /**
     * Replaces a declared container as a replacement with delete-before-replace would: removed
     * (its named volumes stay), then created again from the same declaration.
     */
    async replaceContainer(dockerName: string): Promise<string> {
        const entry = [...this.state.values()].find((r) => r.type === "docker:index/container:Container" && r.inputs.name === dockerName);
        if (!entry) throw new Error(`no declared container named ${dockerName}`);
        await this.docker.request("DELETE", `/containers/${encodeURIComponent(dockerName)}?force=true`);
        const result = await this.container(`${entry.type} ${entry.name}`, entry.inputs);
        entry.id = result.id;
        return result.id;
    }

    /** The provider's wait/waitTimeout: the container must become healthy in time. */
    private async waitHealthy(where: string, name: string, timeoutSeconds: number): Promise<void> {
        const deadline = Date.now() + timeoutSeconds * 1000;
        for (;;) {
            const c = await this.docker.inspectContainer(name);
            const status = c.State?.Health?.Status;
            if (status === undefined) throw new Error(`${where}: wait=true but ${name} has no health check`);
            if (status === "healthy") return;
            if (!c.State.Running || Date.now() > deadline) {
                const probes = (c.State.Health.Log ?? []).slice(-3).map((l: Obj) => `exit ${l.ExitCode}: ${String(l.Output).trim()}`).join("\n");
                throw new Error(`${where}: ${name} not healthy within ${timeoutSeconds} s (${c.State.Status}/${status}); last probes:\n${probes}\nlogs:\n${await this.docker.logs(name)}`);
            }
            await sleep(250);
        }
    }

    private async emulateRegistrator(where: string, image: string, name: string, hostname: string, command: string[], networks: { name: string }[], envs: string[] = []): Promise<{ id: string; outputs: Obj }> {
        if (this.registrator) throw new Error(`${where}: a second emulated Registrator is not supported`);
        const opts = parseRegistratorCommand(command, hostname);
        const env = Object.fromEntries(envs.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
        const client = await this.registratorConsul(where, name, opts.registryUri, networks);
        const engine = await this.registratorDocker(where, name, env.DOCKER_HOST, networks);
        this.registrator = new RegistratorEmulator(engine, client.origin, opts, { socketPath: client.socketPath, token: env.CONSUL_HTTP_TOKEN });
        await this.registrator.start();
        this.emulated.push(name);
        log(`${name} (${image}) emulated`);
        return { id: `emulated-${name}`, outputs: {} };
    }

    /**
     * Consul as Registrator reaches it, from this machine: consul-unix:// is the agent's socket in a
     * volume the container mounts (found at the volume's mount point on the engine's host);
     * consul:// is a declared container on its networks (reached through the port it publishes).
     * Registrator's client reads its token from CONSUL_HTTP_TOKEN (the caller passes it on).
     */
    private async registratorConsul(where: string, name: string, uri: string, networks: { name: string }[]): Promise<{ origin: string; socketPath?: string }> {
        if (uri.startsWith("consul-unix://")) {
            const socket = uri.slice("consul-unix://".length);
            const mount = (this.containers.get(name)?.volumes ?? []).find((v: Obj) => v.volumeName !== undefined && socket.startsWith(`${String(v.containerPath).replace(/\/$/, "")}/`));
            if (!mount) throw new Error(`${where}: ${uri}, but no volume is mounted where the socket is`);
            const volume = await this.docker.request("GET", `/volumes/${encodeURIComponent(mount.volumeName)}`);
            const socketPath = path.join(volume.Mountpoint, socket.slice(String(mount.containerPath).replace(/\/$/, "").length + 1));
            // Registrator pings the agent (status/leader, no ACL needed) before it registers anything.
            await waitForHttp("http://consul/v1/status/leader", 60_000, { socketPath });
            return { origin: "http://consul", socketPath };
        }
        const [host, port] = uri.slice("consul://".length).split(":");
        const onNetwork = new Set(networks.map((n) => n.name));
        const target = [...this.containers.values()].find((c) =>
            (c.name === host || c.hostname === host || c.networks.some((n: Obj) => onNetwork.has(n.name) && n.aliases.includes(host))) && c.networks.some((n: Obj) => onNetwork.has(n.name)));
        if (!target) throw new Error(`${where}: no declared container answers to ${host} on ${[...onNetwork].join(", ")} for the emulated Registrator`);
        const inspect = await this.docker.inspectContainer(target.name);
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
    private async registratorDocker(where: string, name: string, dockerHost: string | undefined, networks: { name: string }[]): Promise<Docker> {
        const host = dockerHost ?? "unix:///tmp/docker.sock";
        if (host.startsWith("unix://")) {
            const inContainer = host.slice("unix://".length);
            const mount = (this.containers.get(name)?.volumes ?? []).find((v: Obj) => v.containerPath === inContainer && v.hostPath !== undefined);
            if (!mount) throw new Error(`${where}: DOCKER_HOST ${host}, but no socket is mounted at ${inContainer}`);
            this.registratorEngine = { dockerHost: host, endpoint: this.docker.host };
            return this.docker; // mounted sockets are the test engine's (see container())
        }
        const m = /^tcp:\/\/([^:/]+):([0-9]+)$/.exec(host);
        if (!m) throw new Error(`${where}: DOCKER_HOST ${JSON.stringify(host)} is not emulated (unix:// or tcp://host:port)`);
        const [, target, port] = m;
        const onNetwork = new Set(networks.map((n) => n.name));
        let via: { container: string; network: string } | undefined;
        for (const c of this.containers.values()) {
            if (c.name === name) continue;
            const shared = (c.networks as { name: string; aliases: string[] }[]).find((n) => onNetwork.has(n.name) && (c.name === target || n.aliases.includes(target)));
            if (shared) via = { container: c.name, network: shared.name };
        }
        if (!via) throw new Error(`${where}: DOCKER_HOST ${host}: no declared container answers to ${target} on ${[...onNetwork].join(", ")}`);
        const ip = (await this.docker.inspectContainer(via.container)).NetworkSettings?.Networks?.[via.network]?.IPAddress;
        if (!ip) throw new Error(`${where}: ${via.container} has no address on ${via.network}`);
        const engine = new Docker(`tcp://${ip}:${port}`);
        if (!(await engine.ping(5000))) throw new Error(`${where}: DOCKER_HOST ${host} (${via.container} at ${ip} on ${via.network}) does not answer /_ping`);
        this.registratorEngine = { dockerHost: host, container: via.container, endpoint: engine.host };
        log(`${name}: reading the engine at ${host} (${via.container}, ${ip} on ${via.network}), as Registrator does`);
        return engine;
    }

    // --- Consul KV -----------------------------------------------------------------------------

    private async keys(where: string, inputs: Obj, provider: Obj, previous?: Applied): Promise<{ id: string; outputs: Obj }> {
        const p = allow(where, inputs, ["keys"]);
        const keys = list(`${where}.keys`, p.keys).map((x, i) => allow(`${where}.keys[${i}]`, x, ["path"], ["value", "delete"]));
        const dc = provider.datacenter ? `?dc=${encodeURIComponent(provider.datacenter)}` : "";
        // Consul answers a write without a leader with 500 "No cluster leader" (after holding it
        // ~7 s), and the provider does not retry. The program waits only for the container's
        // health check; when that passes before a leader exists, record it (a scenario reports
        // it) and wait for the leader, so the rest of the stack can still be exercised.
        if (!previous) {
            const leader = (await kvRequest(provider, "GET", "/v1/status/leader")).replace(/"/g, "").trim();
            if (leader === "") {
                const message = `${where}: Consul at ${provider.address} had no leader when its provider became usable (the container was already healthy); \`pulumi up\` would fail here with "No cluster leader" about half the time`;
                this.findings.push(message);
                log(`${message}; waiting for a leader`);
                await waitForHttp(`${secure.consulOrigin(provider as secure.ConsulProviderInputs)}/v1/status/leader`, 60_000, { caPem: provider.caPem });
            }
        }
        const before = new Map<string, Obj>((previous ? previous.inputs.keys as Obj[] : []).map((k) => [k.path, k]));
        for (const k of keys) {
            const old = before.get(k.path);
            if (old && old.value === k.value) continue;
            const answer = await kvRequest(provider, "PUT", `/v1/kv/${k.path}${dc}`, String(k.value ?? ""));
            if (answer.trim() !== "true") throw new Error(`${where}: PUT ${k.path} answered ${answer}`);
        }
        const now = new Set(keys.map((k) => k.path));
        for (const [p_, old] of before) {
            // consul_keys: a key dropped from the list is deleted only when it was `delete: true`.
            if (!now.has(p_) && old.delete === true) await kvRequest(provider, "DELETE", `/v1/kv/${p_}${dc}`);
        }
        return { id: "consul", outputs: { datacenter: provider.datacenter ?? "" } };
    }
}

function kvRequest(provider: Obj, method: string, pathAndQuery: string, body?: string): Promise<string> {
    return secure.consulRequest(provider as secure.ConsulProviderInputs, method, pathAndQuery, body);
}

/** Waits until a URL answers 200 with a non-empty body (e.g. a Consul leader). */
/** Waits until Consul answers a URL (over `socketPath` when given) with a non-empty body, e.g. a leader. */
async function waitForHttp(url: string, timeoutMs: number, via: { caPem?: string; socketPath?: string } = {}): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
        try {
            const text = await secure.consulRequest({ address: new URL(url).origin, ...via }, "GET", new URL(url).pathname);
            if (text.replace(/"/g, "").trim() !== "") return;
            last = "empty answer";
        } catch (e) {
            last = (e as Error).message;
        }
        await sleep(250);
    }
    throw new Error(`${url} did not answer within ${timeoutMs} ms: ${last}`);
}
