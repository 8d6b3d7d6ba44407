// A `dev` stack of `npm run up` on the same engine, as far as the engine can tell by names:
// containers named like that stack's (dev-consul, dev-gateway, dev-hello-v1-1-<generation>, ...), carrying
// the SERVICE_* settings its replicas carry, on its network, with its Consul volume and its
// built gateway image tag. The suite runs next to them and must leave every one as it found it.
// What already exists under such a name (a real dev stack) is used as it is and never removed;
// what this file creates carries LOOKALIKE_LABEL, is removed at the end, and a later run
// removes it if a crashed run left it behind.
import { Docker, DockerError } from "./docker";
import { log } from "./engine";
import { BASE_IMAGE } from "./images";

export const LOOKALIKE_LABEL = "io.service-discovery.e2e-lookalike";

const NETWORK = "service-discovery-dev";
const VOLUME = "dev-consul-data";
const IMAGE = { repo: "service-discovery/gateway", tag: "dev" };
const HELLO = (consulName: string): string[] => [`SERVICE_NAME=${consulName}`, "SERVICE_TAGS=rest,check=/health", "SERVICE_CHECK_HTTP=/health", "PORT=8080"];
/**
 * `replica`: a service replica, whose container is named `<name>-<generation>` (8 hex, from its
 * inputs: components/service.ts) with hostname `<name>`; a dev stack's own is found by pattern,
 * else one is made under GENERATION.
 */
const CONTAINERS: { name: string; env: string[]; expose: number[]; replica?: true }[] = [
    { name: "dev-consul", env: ["SERVICE_IGNORE=true"], expose: [8500] },
    { name: "dev-node-1-registrator", env: [], expose: [] },
    { name: "dev-gateway", env: ["SERVICE_80_NAME=gateway", "SERVICE_1936_NAME=gateway-stats"], expose: [80, 1936] },
    { name: "dev-hello-v1-1", env: HELLO("hello-v1"), expose: [8080], replica: true },
    { name: "dev-hello-v1-2", env: HELLO("hello-v1"), expose: [8080], replica: true },
    { name: "dev-hello-v2-1", env: HELLO("hello-v2"), expose: [8080], replica: true },
];
const GENERATION = "0d15ea5e";

/** What one object looked like when the suite started. */
interface Seen {
    kind: "container" | "network" | "volume" | "image";
    name: string;
    /** Identity and state that must not change: id, and for containers their start time. */
    fingerprint: string;
    created: boolean;
}

async function absent<T>(probe: () => Promise<T>): Promise<boolean> {
    try {
        await probe();
        return false;
    } catch (e) {
        if (e instanceof DockerError && e.status === 404) return true;
        throw e;
    }
}

export class DevLookalikes {
    private readonly seen: Seen[] = [];

    private constructor(private readonly docker: Docker) {}

    /** The container names a dev stack uses (for a replica: the name before its generation). */
    static readonly containerNames = CONTAINERS.map((c) => c.name);

    /** Makes (or finds) the dev stack's objects on the engine and records how they are. */
    static async create(docker: Docker): Promise<DevLookalikes> {
        const self = new DevLookalikes(docker);
        await self.removeLeftovers();
        const labels = { [LOOKALIKE_LABEL]: "true" };

        let networkCreated = false;
        if (await absent(() => docker.request("GET", `/networks/${NETWORK}`))) {
            // The dev stack's own subnet when it is free, else whatever the engine picks.
            const body = (ipam?: object) => ({ Name: NETWORK, Driver: "bridge", CheckDuplicate: true, Labels: labels, ...(ipam ? { IPAM: ipam } : {}) });
            try {
                await docker.request("POST", "/networks/create", body({ Driver: "default", Config: [{ Subnet: "172.28.0.0/24", Gateway: "172.28.0.1" }] }));
            } catch {
                await docker.request("POST", "/networks/create", body());
            }
            networkCreated = true;
        }
        await self.record("network", NETWORK, networkCreated);

        let volumeCreated = false;
        if (await absent(() => docker.request("GET", `/volumes/${VOLUME}`))) {
            await docker.request("POST", "/volumes/create", { Name: VOLUME, Labels: labels });
            volumeCreated = true;
        }
        await self.record("volume", VOLUME, volumeCreated);

        const imageRef = `${IMAGE.repo}:${IMAGE.tag}`;
        let imageCreated = false;
        const existing = await docker.imageExists(imageRef);
        // The base image under the dev tag is this file's own (a crashed run's): take it back.
        if (existing && existing.Id === (await docker.imageExists(BASE_IMAGE))?.Id) {
            imageCreated = true;
        } else if (!existing) {
            await docker.request("POST", `/images/${encodeURIComponent(BASE_IMAGE)}/tag?repo=${encodeURIComponent(IMAGE.repo)}&tag=${IMAGE.tag}`);
            imageCreated = true;
        }
        await self.record("image", imageRef, imageCreated);

        for (const c of CONTAINERS) {
            let created = false;
            let name = c.name;
            if (c.replica) {
                const filters = encodeURIComponent(JSON.stringify({ name: [`^/${c.name}-[0-9a-f]{8}$`] }));
                const existing: { Names: string[] }[] = await docker.request("GET", `/containers/json?all=true&filters=${filters}`);
                name = existing[0]?.Names[0]?.slice(1) ?? `${c.name}-${GENERATION}`;
            }
            if (await absent(() => docker.inspectContainer(name))) {
                const made: { Id: string } = await docker.request("POST", `/containers/create?name=${encodeURIComponent(name)}`, {
                    Hostname: c.name,
                    Image: BASE_IMAGE,
                    Cmd: ["sleep", "infinity"],
                    Env: c.env,
                    Labels: labels,
                    ExposedPorts: Object.fromEntries(c.expose.map((p) => [`${p}/tcp`, {}])),
                    HostConfig: { NetworkMode: NETWORK },
                });
                await docker.request("POST", `/containers/${made.Id}/start`);
                created = true;
            }
            await self.record("container", name, created);
        }
        const made = self.seen.filter((s) => s.created).map((s) => s.name);
        log(
            `a dev stack's objects on the engine: ${self.seen.map((s) => s.name).join(", ")} (made for the test: ${made.length > 0 ? made.join(", ") : "none, they exist"})`,
        );
        return self;
    }

    private async fingerprint(kind: Seen["kind"], name: string): Promise<string> {
        switch (kind) {
            case "container": {
                const c = await this.docker.inspectContainer(name);
                return `${c.Id} ${c.State.StartedAt} running=${c.State.Running} restarts=${c.RestartCount}`;
            }
            case "network":
                return (await this.docker.request("GET", `/networks/${name}`)).Id;
            case "volume":
                return (await this.docker.request("GET", `/volumes/${name}`)).CreatedAt;
            case "image":
                return (await this.docker.imageExists(name)).Id;
        }
    }

    private async record(kind: Seen["kind"], name: string, created: boolean): Promise<void> {
        this.seen.push({ kind, name, created, fingerprint: await this.fingerprint(kind, name) });
    }

    /** Every object that is gone or no longer what it was, described; empty when all are intact. */
    async changes(): Promise<string[]> {
        const out: string[] = [];
        for (const s of this.seen) {
            let now: string;
            try {
                now = await this.fingerprint(s.kind, s.name);
            } catch (e) {
                out.push(`${s.kind} ${s.name}: ${(e as Error).message}`);
                continue;
            }
            if (now !== s.fingerprint) out.push(`${s.kind} ${s.name}: was ${s.fingerprint}, now ${now}`);
        }
        return out;
    }

    /** Removes what create() made (never what already existed). */
    async remove(): Promise<void> {
        for (const s of [...this.seen].reverse().filter((x) => x.created)) {
            try {
                if (s.kind === "container") await this.docker.request("DELETE", `/containers/${encodeURIComponent(s.name)}?force=true`);
                else if (s.kind === "network") await this.docker.request("DELETE", `/networks/${encodeURIComponent(s.name)}`);
                else if (s.kind === "volume") await this.docker.request("DELETE", `/volumes/${encodeURIComponent(s.name)}`);
                else await this.docker.request("DELETE", `/images/${encodeURIComponent(s.name)}?noprune=true`);
            } catch (e) {
                if (!(e instanceof DockerError && e.status === 404)) throw e;
            }
        }
    }

    /** Objects a crashed earlier run made (they carry LOOKALIKE_LABEL; an image tag cannot). */
    private async removeLeftovers(): Promise<void> {
        const filters = encodeURIComponent(JSON.stringify({ label: [LOOKALIKE_LABEL] }));
        for (const c of await this.docker.request("GET", `/containers/json?all=true&filters=${filters}`)) {
            await this.docker.request("DELETE", `/containers/${c.Id}?force=true`);
        }
        for (const n of await this.docker.request("GET", `/networks?filters=${filters}`)) await this.docker.request("DELETE", `/networks/${n.Id}`);
        for (const v of (await this.docker.request("GET", `/volumes?filters=${filters}`)).Volumes ?? []) {
            await this.docker.request("DELETE", `/volumes/${encodeURIComponent(v.Name)}`);
        }
    }
}
