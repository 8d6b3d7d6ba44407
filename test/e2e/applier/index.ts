// Why this exists: the Pulumi engine, its providers and the clouds are not available to the test
// suite, so no `pulumi up` can run in it. This applier stands in for them: it creates on a real
// Docker engine exactly the resources the program declares, as Pulumi's mocks see them (the same
// index.ts and components, nothing described again for the tests), and refuses any input outside
// its per-type allow-list. It proves the program's declarations work together on a real engine;
// how the real providers diff, update and replace resources stays outside what it can show.
//
// Applies the resources the program declares, for real, on the test engine: what the mock's
// newResource hands over (see child.ts) is created here and answered with real ids and
// outputs. Each resource type has an allow-list of input keys; an input this applier does not
// apply fails the run loudly, so nothing the program sets is silently dropped.
// A second evaluation works like a second `pulumi up`: unchanged resources are kept as they
// are, changed consul.Keys are updated in place, a container whose inputs changed is replaced
// as the engine replaces it (see replaceDeclared) or updated in place when only inputs the
// provider updates changed, a pulled image whose name changed is pulled again, a local command
// whose inputs changed is run again (see rerunCommand); any other change fails loudly. A resource
// no longer declared is deleted when the evaluation ends (deleteDeclared), dependents first.
// The order is the engine's: the program registers a resource once everything it depends on
// (inputs and dependsOn) is done, so the applier sees it then, and replaces it right away, as the
// engine's step executor does (https://www.pulumi.com/docs/iac/concepts/options/deletebeforereplace/:
// delete-before-replace deletes the old resource first, otherwise the new one is created first
// and the old one deleted at the end of the update). A delete-before-replace also deletes first
// the dependents whose inputs come from the resource (they are replaced with it), but not those
// that only name it in dependsOn (pulumi/pulumi tests/integration/delete_before_create: a
// dependsOn-only dependent is updated, not replaced); here such dependents are local commands
// without a delete command, so deleting them first does nothing to record.
// This file keeps the state and hands each resource type to its module (applier-*.ts beside it).
import { randomUUID } from "node:crypto";
import { ROOT } from "../../support/program";
import { container, deleteContainer, replaceContainer } from "./container";
import { consulKeys } from "./consul";
import { build, network, remoteImage, volume } from "./docker-resources";
import { allow, canonical, unwrapSecrets } from "./inputs";
import { randomId, randomPassword } from "./random";
import { type Applied, type ApplierOptions, type ApplierScope, type Obj } from "./scope";
import { type Docker } from "../harness/docker";
import { type RegistratorEmulator } from "../harness/registrator";
import * as secure from "./secure-resources";

export { durationNs, unwrapSecrets } from "./inputs";
export type { Applied, ApplierOptions } from "./scope";

const CONTAINER = "docker:index/container:Container";
/**
 * Types whose provider asks the engine for delete-before-replace when the program's resource
 * options do not say: pulumi-docker declares it for docker_container (its resources.go). A
 * `deleteBeforeReplace` option, true or false, overrides it, as in the engine's step generator.
 */
const PROVIDER_DELETE_BEFORE_REPLACE: ReadonlySet<string> = new Set([CONTAINER]);

/** How the engine replaces a resource of `type` given its deleteBeforeReplace option (undefined: unset). */
export function replacementMode(type: string, deleteBeforeReplace: boolean | undefined): Replacement["mode"] {
    return (deleteBeforeReplace ?? PROVIDER_DELETE_BEFORE_REPLACE.has(type)) ? "delete-before-replace" : "create-before-delete";
}
/**
 * Container inputs the provider updates in place (not ForceNew in its schema: restart through
 * the engine's update, wait, waitTimeout, destroyGraceSeconds, start and mustRun only in its
 * state); any other
 * change replaces.
 */
const CONTAINER_UPDATED_IN_PLACE: ReadonlySet<string> = new Set(["restart", "destroyGraceSeconds", "wait", "waitTimeout", "start", "mustRun"]);
const COMMAND = "command:local:Command";

/** A container the applier replaced, and when each step ran (ms since the epoch). */
export interface Replacement {
    /** type::name of the declared resource. */
    resource: string;
    mode: "create-before-delete" | "delete-before-replace";
    evaluation: number;
    /** Docker names of the old container and its replacement. */
    old: string;
    new: string;
    created?: number;
    deleteStarted?: number;
    deleted?: number;
}

export class Applier implements ApplierScope {
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
    /** Every container replacement, in the order they began. */
    readonly replacements: Replacement[] = [];
    /** Every run of a local command, in the order they began (ms since the epoch). */
    readonly commandRuns: { resource: string; evaluation: number; started: number; finished?: number }[] = [];
    /** Keys of the resources deleted because an evaluation no longer declared them, in the order they went. */
    readonly deleted: { resource: string; evaluation: number; at: number }[] = [];
    /** Deletions remove containers with force at once, as if destroyGraceSeconds were not declared (a control for the drain). */
    ignoreDestroyGrace = false;
    /** Old containers of create-before-delete replacements: deleted once the evaluation is done. */
    private pendingDeletes: { inputs: Obj; replacement: Replacement }[] = [];
    private readonly providers = new Map<string, { type: string; inputs: Obj }>();
    private seen = new Set<string>();
    private evaluation = 0;

    constructor(
        readonly docker: Docker,
        readonly options: ApplierOptions,
    ) {}

    beginEvaluation(): void {
        this.seen = new Set();
        this.evaluation++;
    }

    /**
     * After an evaluation, as the engine ends an update: the containers replaced
     * create-before-delete are deleted (its DeleteReplaced steps, all at once, each stopped with
     * its destroy grace). A resource the program no longer declares would be deleted too.
     */
    async endEvaluation(): Promise<void> {
        const pending = this.pendingDeletes.splice(0);
        const results = await Promise.allSettled(
            pending.map(async ({ inputs, replacement }) => {
                replacement.deleteStarted = Date.now();
                await deleteContainer(this, inputs, { ignoreGrace: this.ignoreDestroyGrace });
                replacement.deleted = Date.now();
            }),
        );
        const failed = results.flatMap((r, i) => (r.status === "rejected" ? [`${pending[i].replacement.old}: ${(r.reason as Error).message}`] : []));
        if (failed.length > 0) throw new Error(`deleting replaced containers failed: ${failed.join("; ")}`);
        // What the program no longer declares (a node removed from `hosts`), deleted as the engine ends
        // an update: dependents first. The state holds resources in the order they were done, each
        // after what it depends on, so the reverse order deletes dependents first.
        const gone = [...this.state.keys()].filter((k) => !this.seen.has(k)).reverse();
        for (const key of gone) await this.deleteDeclared(key);
    }

    /**
     * A resource the program no longer declares, deleted as its provider deletes it: a container
     * stopped with its destroy grace and removed (an emulated Registrator stopped), a network or
     * volume removed, an ACL token deleted in Consul; an image pulled with keepLocally stays; what
     * lives only in the state (providers, keys, certificates, random values, local commands without
     * a delete command, components) is forgotten. Any other type fails loudly.
     */
    private async deleteDeclared(key: string): Promise<void> {
        const r = this.state.get(key)!;
        const where = `${r.type} ${r.name}`;
        switch (r.type) {
            case CONTAINER: {
                const i = this.emulated.indexOf(r.inputs.name);
                if (i >= 0) {
                    // What it saw before it goes (the engine's events of the containers deleted before it) is handled first.
                    await this.registrator?.settle();
                    await this.registrator?.stop();
                    this.registrator = undefined;
                    this.registratorEngine = undefined;
                    this.emulated.splice(i, 1);
                    this.containers.delete(r.inputs.name);
                } else {
                    await deleteContainer(this, r.inputs, { ignoreGrace: this.ignoreDestroyGrace });
                }
                break;
            }
            case "docker:index/network:Network":
            case "docker:index/volume:Volume": {
                const kind = r.type === "docker:index/network:Network" ? "network" : "volume";
                await this.docker.request("DELETE", `/${kind}s/${encodeURIComponent(r.inputs.name)}`);
                const i = this.created.findIndex((c) => c.kind === kind && c.name === r.inputs.name);
                if (i >= 0) this.created.splice(i, 1);
                break;
            }
            case "docker:index/remoteImage:RemoteImage":
                if (r.inputs.keepLocally !== true)
                    throw new Error(`${where}: deleting a pulled image without keepLocally is not implemented by the e2e applier`);
                break;
            case "consul:index/aclToken:AclToken":
                await secure.deleteAclToken(this.consulProvider(where, r.provider ?? ""), r.id);
                break;
            case COMMAND:
                if (r.inputs.delete !== undefined) throw new Error(`${where}: a delete command is not run by the e2e applier`);
                break;
            default:
                if (!/^(pulumi:providers:|service-discovery:|tls:|random:|docker-build:)/.test(r.type))
                    throw new Error(`${where}: no longer declared; deleting a ${r.type} is not implemented by the e2e applier`);
                if (r.type.startsWith("pulumi:providers:")) this.providers.delete(r.id);
        }
        this.state.delete(key);
        this.deleted.push({ resource: key, evaluation: this.evaluation, at: Date.now() });
    }

    async apply(
        type: string,
        name: string,
        rawInputs: Obj,
        providerRef: string,
        options: { deleteBeforeReplace?: boolean } = {},
    ): Promise<{ id: string; outputs: Obj }> {
        const key = `${type}::${name}`;
        if (this.seen.has(key)) throw new Error(`${key} declared twice`);
        this.seen.add(key);
        const inputs = unwrapSecrets(rawInputs) as Obj;
        const inputsKey = canonical(inputs);
        const previous = this.state.get(key);
        const where = `${type} ${name}`;
        let result: { id: string; outputs: Obj };
        if (previous) {
            if (previous.inputsKey === inputsKey) return { id: previous.id, outputs: previous.outputs };
            const changed = [...new Set([...Object.keys(previous.inputs), ...Object.keys(inputs)])].filter(
                (k) => canonical(previous.inputs[k]) !== canonical(inputs[k]),
            );
            if (type === CONTAINER && changed.some((k) => !CONTAINER_UPDATED_IN_PLACE.has(k))) {
                result = await this.replaceDeclared(key, where, inputs, providerRef, previous, options.deleteBeforeReplace);
            } else if (type === CONTAINER) {
                result = await this.updateContainer(where, inputs, previous, changed);
            } else if (type === COMMAND) {
                result = await this.create(type, name, where, inputs, providerRef);
            } else if (type === "docker:index/remoteImage:RemoteImage" && changed.every((k) => k === "name") && inputs.keepLocally === true) {
                // name is ForceNew: a new image resource; the old one's deletion keeps the image (keepLocally).
                result = await this.create(type, name, where, inputs, providerRef);
            } else if (type === "consul:index/keys:Keys") {
                result = await this.create(type, name, where, inputs, providerRef, previous);
            } else {
                throw new Error(
                    `${key}: inputs ${changed.join(", ")} changed between evaluations; the e2e applier updates only consul.Keys in place, replaces containers and pulls images again under a new name`,
                );
            }
        } else {
            result = await this.create(type, name, where, inputs, providerRef);
        }
        this.state.set(key, { type, name, id: result.id, inputsKey, inputs, outputs: result.outputs, provider: providerRef });
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

    private async create(
        type: string,
        name: string,
        where: string,
        inputs: Obj,
        providerRef: string,
        previous?: Applied,
    ): Promise<{ id: string; outputs: Obj }> {
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
            case "random:index/randomPassword:RandomPassword":
                return randomPassword(where, inputs);
            case "random:index/randomId:RandomId":
                return randomId(where, inputs);
            case "random:index/randomUuid:RandomUuid":
                allow(where, inputs, []);
                return { id: "uuid", outputs: { result: randomUUID() } };
            case "tls:index/privateKey:PrivateKey":
                return secure.privateKey(allow(where, inputs, ["algorithm"], ["ecdsaCurve", "rsaBits"]));
            case "tls:index/selfSignedCert:SelfSignedCert":
                return secure.selfSignedCert(allow(where, inputs, ["privateKeyPem", "validityPeriodHours", "allowedUses"], ["subject", "isCaCertificate"]));
            case "tls:index/certRequest:CertRequest":
                return secure.certRequest(allow(where, inputs, ["privateKeyPem"], ["subject", "dnsNames", "ipAddresses"]));
            case "tls:index/locallySignedCert:LocallySignedCert":
                return secure.locallySignedCert(
                    allow(where, inputs, ["certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours", "allowedUses"], ["earlyRenewalHours"]),
                );
            case "consul:index/aclPolicy:AclPolicy":
                return secure.aclPolicy(this.consulProvider(where, providerRef), allow(where, inputs, ["name", "rules"], ["description", "datacenters"]));
            case "consul:index/aclToken:AclToken":
                return secure.aclToken(
                    this.consulProvider(where, providerRef),
                    allow(where, inputs, [], ["description", "policies", "nodeIdentities", "local"]),
                );
            case "consul:index/aclTokenPolicyAttachment:AclTokenPolicyAttachment":
                return secure.aclTokenPolicyAttachment(this.consulProvider(where, providerRef), allow(where, inputs, ["tokenId", "policy"]));
            case COMMAND: {
                // Created, replaced (new triggers) or updated (no `update` command: `create` again), it runs `create`.
                const run: Applier["commandRuns"][number] = { resource: `${type}::${name}`, evaluation: this.evaluation, started: Date.now() };
                this.commandRuns.push(run);
                const declared = allow(where, inputs, ["create"], ["environment", "triggers"]);
                // Run as `pulumi up` runs it: in the environment the program's evaluation has, where
                // DOCKER_HOST is the test engine (the default Docker provider's, and the Docker CLI's).
                const environment = { DOCKER_HOST: this.docker.host, ...((declared.environment ?? {}) as Record<string, string>) };
                const result = await secure.localCommand(where, { ...declared, environment }, ROOT);
                run.finished = Date.now();
                return result;
            }
            case "docker:index/network:Network":
                this.provider(where, providerRef, "docker");
                return network(this, where, inputs);
            case "docker:index/volume:Volume":
                this.provider(where, providerRef, "docker");
                return volume(this, where, inputs);
            case "docker:index/remoteImage:RemoteImage":
                this.provider(where, providerRef, "docker");
                return remoteImage(this, where, inputs);
            case "docker-build:index:Image":
                return build(this, where, inputs);
            case "docker:index/container:Container":
                this.provider(where, providerRef, "docker");
                return container(this, where, inputs);
            case "consul:index/keys:Keys":
                return consulKeys(this, where, inputs, this.provider(where, providerRef, "consul")!, previous);
            default:
                throw new Error(`${where}: resource type ${type} is not applied by the e2e applier (test/e2e/applier/index.ts)`);
        }
    }

    /**
     * A declared container whose inputs changed, replaced as the engine replaces it: with
     * delete-before-replace (the resource option, else the provider's default) the old one is
     * deleted first, then the new one created; otherwise the new one is created first and the old
     * one deleted when the evaluation ends (endEvaluation). Either deletion stops the container
     * with its destroyGraceSeconds before removing it.
     */
    private async replaceDeclared(
        key: string,
        where: string,
        inputs: Obj,
        providerRef: string,
        previous: Applied,
        deleteBeforeReplace: boolean | undefined,
    ): Promise<{ id: string; outputs: Obj }> {
        const mode = replacementMode(previous.type, deleteBeforeReplace);
        const deleteFirst = mode === "delete-before-replace";
        const replacement: Replacement = {
            resource: key,
            mode,
            evaluation: this.evaluation,
            old: previous.inputs.name,
            new: inputs.name,
        };
        this.replacements.push(replacement);
        if (deleteFirst) {
            replacement.deleteStarted = Date.now();
            await deleteContainer(this, previous.inputs, { ignoreGrace: this.ignoreDestroyGrace });
            replacement.deleted = Date.now();
        } else if (inputs.name === previous.inputs.name) {
            throw new Error(
                `${where}: replaced create-before-delete, but the new container has the old one's name ${inputs.name}: Docker refuses a second container of that name (so does the provider); give it a new name or set deleteBeforeReplace`,
            );
        }
        const result = await this.create(previous.type, previous.name, where, inputs, providerRef);
        replacement.created = Date.now();
        if (!deleteFirst) this.pendingDeletes.push({ inputs: previous.inputs, replacement });
        return result;
    }

    /**
     * A container whose changed inputs the provider updates in place: the same container; a new
     * restart policy through the engine's update, as the provider's update does.
     */
    private async updateContainer(where: string, inputs: Obj, previous: Applied, changed: string[]): Promise<{ id: string; outputs: Obj }> {
        if (changed.includes("restart")) {
            if (!["no", "on-failure", "always", "unless-stopped"].includes(inputs.restart ?? "no")) throw new Error(`${where}: restart ${inputs.restart}`);
            await this.docker.request("POST", `/containers/${previous.id}/update`, { RestartPolicy: { Name: inputs.restart ?? "no" } });
        }
        this.containers.set(inputs.name, { ...(this.containers.get(inputs.name) ?? {}), ...Object.fromEntries(changed.map((k) => [k, inputs[k]])) });
        return { id: previous.id, outputs: previous.outputs };
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
                throw new Error(`${where}: not implemented by the e2e applier (test/e2e/applier/index.ts)`);
        }
    }

    /**
     * Replaces a declared container as a replacement with delete-before-replace would: removed
     * (its named volumes stay), then created again from the same declaration. As the provider
     * deletes: stopped first with `destroyGraceSeconds` as the timeout when declared, else
     * removed with force (SIGKILL) at once. `ignoreGrace`: as if it were not declared.
     */
    replaceContainer(dockerName: string, options: { ignoreGrace?: boolean } = {}): Promise<string> {
        return replaceContainer(this, dockerName, options);
    }
}
