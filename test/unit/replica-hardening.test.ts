// Contained replicas (components/containment.ts; docs/services.md, "What a replica may do"): the
// keys of services[i] that relax each default, valid and invalid (each refusal's whole message),
// and what every shipped stack file declares for its replicas' containers, with the defaults and
// with each relaxation. The policy pack's side is in policy.test.ts, the engine's in
// test/e2e/shared/replica-hardening.ts.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { parseSettings } from "../../components/config";
import { LINUX_CAPABILITIES, REPLICA_DEFAULTS, tmpfsOptions } from "../../components/containment";
import { type Declared } from "../support/mocks";
import { devWith, evaluate, shippedAws, Program, stackConfig } from "../support/program";
import { dev, rejects } from "./config-support";

const P = "service-discovery";
const hello = { name: "hello", version: "v1", build: "components/images/hello" };
/** The dev stack with one service: hello v1 with `keys`. */
const withHello = (keys: Record<string, unknown>) => dev({ services: [{ ...hello, ...keys }] });
const settingsOf = (keys: Record<string, unknown>) => parseSettings(withHello(keys), "dev").services[0];

/** The containers of VersionedService components: the service replicas. */
function replicas(p: Program): Declared[] {
    return p.containers().filter((c) => c.parent.includes("::service-discovery:service:VersionedService::"));
}

/** What a replica declares for its containment, the default way. */
function contained(tmpfs: Record<string, string> | undefined, memory = 256, cpus = "1"): Record<string, unknown> {
    return {
        capabilities: { drops: ["ALL"] },
        securityOpts: ["no-new-privileges:true"],
        readOnly: true,
        tmpfs,
        memory,
        memorySwap: memory,
        cpus,
    };
}
const containmentOf = (c: Declared) =>
    Object.fromEntries(["capabilities", "securityOpts", "readOnly", "tmpfs", "memory", "memorySwap", "cpus"].map((k) => [k, c.inputs[k]]));

describe("replica containment: config", () => {
    it("defaults every service to no capability, a read-only root with /tmp on a 64 MiB tmpfs, 256 MiB, 1 CPU and 512 processes", () => {
        const s = parseSettings(dev(), "dev");
        assert.ok(s.services.length >= 2);
        for (const service of s.services) {
            assert.deepEqual(
                {
                    capAdd: service.capAdd,
                    readOnlyRootFilesystem: service.readOnlyRootFilesystem,
                    tmpfs: service.tmpfs,
                    tmpfsMb: service.tmpfsMb,
                    memoryMb: service.memoryMb,
                    cpus: service.cpus,
                    pidsLimit: service.pidsLimit,
                },
                { capAdd: [], readOnlyRootFilesystem: true, tmpfs: ["/tmp"], tmpfsMb: 64, memoryMb: 256, cpus: 1, pidsLimit: 512 },
                service.consulName,
            );
        }
        assert.deepEqual(REPLICA_DEFAULTS, { memoryMb: 256, cpus: 1, pidsLimit: 512, tmpfs: ["/tmp"], tmpfsMb: 64 });
    });

    it("accepts each relaxation and the bounds", () => {
        assert.deepEqual(settingsOf({ capAdd: ["NET_BIND_SERVICE", "CHOWN"] }).capAdd, ["NET_BIND_SERVICE", "CHOWN"]);
        assert.deepEqual(settingsOf({ capAdd: [...LINUX_CAPABILITIES] }).capAdd.length, 41, "every Linux capability by name (the policy pack decides off dev)");
        assert.equal(settingsOf({ readOnlyRootFilesystem: false }).readOnlyRootFilesystem, false);
        assert.deepEqual(settingsOf({ tmpfs: [] }).tmpfs, []);
        assert.deepEqual(settingsOf({ tmpfs: ["/tmp", "/var/cache/app", "/run/app.d", "/home/app_1"] }).tmpfs, [
            "/tmp",
            "/var/cache/app",
            "/run/app.d",
            "/home/app_1",
        ]);
        assert.equal(settingsOf({ tmpfsMb: 1 }).tmpfsMb, 1);
        assert.equal(settingsOf({ tmpfsMb: 1024, memoryMb: 1024 }).tmpfsMb, 1024);
        assert.equal(settingsOf({ memoryMb: 16, tmpfsMb: 16 }).memoryMb, 16);
        assert.equal(settingsOf({ memoryMb: 16, tmpfs: [] }).memoryMb, 16, "no tmpfs: tmpfsMb does not matter");
        assert.equal(settingsOf({ memoryMb: 65536 }).memoryMb, 65536);
        for (const cpus of [0.01, 0.29, 0.5, 1.25, 64]) assert.equal(settingsOf({ cpus }).cpus, cpus);
        for (const pidsLimit of [16, 100, 65536]) assert.equal(settingsOf({ pidsLimit }).pidsLimit, pidsLimit);
    });

    const expected = {
        capability: "a Linux capability name in upper case without CAP_, such as NET_BIND_SERVICE or CHOWN (capabilities(7))",
        folder: "an absolute folder path such as /tmp or /var/cache/app (letters, digits, . _ -), not / and not under /proc, /sys or /dev",
        cpus: "a number of CPUs from 0.01 to 64 with at most two decimals, such as 0.5, 1 or 2",
        pids: "an integer from 16 to 65536: processes and threads the replica may run at once",
    };
    const key = `${P}:services[0]`;
    const cases: [string, Record<string, unknown>, string][] = [
        [
            "ALL",
            { capAdd: ["ALL"] },
            `${key}.capAdd[0]: "ALL" is not allowed; expected each capability by name, not ALL (it would give back every capability Docker allows): list the ones the image needs`,
        ],
        ["a CAP_ prefix", { capAdd: ["NET_BIND_SERVICE", "CAP_NET_RAW"] }, `${key}.capAdd[1]: "CAP_NET_RAW" is not allowed; expected ${expected.capability}`],
        ["lower case", { capAdd: ["net_raw"] }, `${key}.capAdd[0]: "net_raw" is not allowed; expected ${expected.capability}`],
        ["no such capability", { capAdd: ["SYS_EVERYTHING"] }, `${key}.capAdd[0]: "SYS_EVERYTHING" is not allowed; expected ${expected.capability}`],
        [
            "a capability twice",
            { capAdd: ["CHOWN", "KILL", "CHOWN"] },
            `${key}.capAdd[2]: "CHOWN" is not allowed; expected each capability once (also at capAdd[0])`,
        ],
        [
            "capAdd not a list",
            { capAdd: "NET_RAW" },
            `${key}.capAdd: "NET_RAW" is not allowed; expected a list of Linux capability names such as ["NET_BIND_SERVICE"]`,
        ],
        [
            "readOnlyRootFilesystem not a boolean",
            { readOnlyRootFilesystem: "no" },
            `${key}.readOnlyRootFilesystem: "no" is not allowed; expected true (the default: nothing in the image can be changed) or false (the replica may write its root filesystem, on the node's disk)`,
        ],
        ["tmpfs over /", { tmpfs: ["/"] }, `${key}.tmpfs[0]: "/" is not allowed; expected ${expected.folder}`],
        ["a relative tmpfs", { tmpfs: ["/tmp", "cache"] }, `${key}.tmpfs[1]: "cache" is not allowed; expected ${expected.folder}`],
        ["a tmpfs with ..", { tmpfs: ["/var/../etc"] }, `${key}.tmpfs[0]: "/var/../etc" is not allowed; expected ${expected.folder}`],
        ["a tmpfs with a trailing /", { tmpfs: ["/tmp/"] }, `${key}.tmpfs[0]: "/tmp/" is not allowed; expected ${expected.folder}`],
        ["a tmpfs under /proc", { tmpfs: ["/proc/sys"] }, `${key}.tmpfs[0]: "/proc/sys" is not allowed; expected ${expected.folder}`],
        ["a tmpfs over /dev", { tmpfs: ["/dev"] }, `${key}.tmpfs[0]: "/dev" is not allowed; expected ${expected.folder}`],
        ["a tmpfs with a space", { tmpfs: ["/var/my cache"] }, `${key}.tmpfs[0]: "/var/my cache" is not allowed; expected ${expected.folder}`],
        ["a tmpfs twice", { tmpfs: ["/tmp", "/run/app", "/tmp"] }, `${key}.tmpfs[2]: "/tmp" is not allowed; expected each folder once (also at tmpfs[0])`],
        [
            "tmpfs not a list",
            { tmpfs: "/tmp" },
            `${key}.tmpfs: "/tmp" is not allowed; expected a list of absolute folder paths such as ["/tmp", "/var/cache/app"]; [] for none`,
        ],
        [
            "more than 10 tmpfs folders",
            { tmpfs: Array.from({ length: 11 }, (_, i) => `/t${i}`) },
            `${key}.tmpfs: ["/t0","/t1","/t2","/t3","/t4","/t5","/t6","/t7","/t8","/t9","/t10"] is not allowed; expected at most 10 folders`,
        ],
        ["tmpfsMb 0", { tmpfsMb: 0 }, `${key}.tmpfsMb: 0 is not allowed; expected an integer from 1 to 1024: MiB each tmpfs folder may hold`],
        [
            "tmpfsMb beyond 1024",
            { tmpfsMb: 2048, memoryMb: 4096 },
            `${key}.tmpfsMb: 2048 is not allowed; expected an integer from 1 to 1024: MiB each tmpfs folder may hold`,
        ],
        [
            "tmpfsMb beyond the memory limit",
            { tmpfsMb: 300 },
            `${key}.tmpfsMb: 300 is not allowed; expected at most memoryMb (256): a tmpfs folder's files are memory, counted in the replica's memory limit`,
        ],
        [
            "a memory limit below the default tmpfsMb",
            { memoryMb: 32 },
            `${key}.memoryMb: 32 is not allowed; expected at least tmpfsMb (64), or a smaller tmpfsMb: a tmpfs folder's files are memory, counted in the replica's memory limit`,
        ],
        [
            "memoryMb below 16",
            { memoryMb: 8, tmpfs: [] },
            `${key}.memoryMb: 8 is not allowed; expected an integer from 16 to 65536: MiB of memory, tmpfs files included (no swap)`,
        ],
        [
            "memoryMb not an integer",
            { memoryMb: 256.5 },
            `${key}.memoryMb: 256.5 is not allowed; expected an integer from 16 to 65536: MiB of memory, tmpfs files included (no swap)`,
        ],
        ["cpus 0", { cpus: 0 }, `${key}.cpus: 0 is not allowed; expected ${expected.cpus}`],
        ["cpus too precise", { cpus: 0.005 }, `${key}.cpus: 0.005 is not allowed; expected ${expected.cpus}`],
        ["cpus beyond 64", { cpus: 65 }, `${key}.cpus: 65 is not allowed; expected ${expected.cpus}`],
        ["cpus as a string", { cpus: "1" }, `${key}.cpus: "1" is not allowed; expected ${expected.cpus}`],
        ["pidsLimit below 16", { pidsLimit: 8 }, `${key}.pidsLimit: 8 is not allowed; expected ${expected.pids}`],
        ["pidsLimit 0 (no limit)", { pidsLimit: 0 }, `${key}.pidsLimit: 0 is not allowed; expected ${expected.pids}`],
        ["pidsLimit -1 (no limit)", { pidsLimit: -1 }, `${key}.pidsLimit: -1 is not allowed; expected ${expected.pids}`],
        ["pidsLimit beyond 65536", { pidsLimit: 100000 }, `${key}.pidsLimit: 100000 is not allowed; expected ${expected.pids}`],
        ["pidsLimit not an integer", { pidsLimit: 100.5 }, `${key}.pidsLimit: 100.5 is not allowed; expected ${expected.pids}`],
        ["pidsLimit as a string", { pidsLimit: "512" }, `${key}.pidsLimit: "512" is not allowed; expected ${expected.pids}`],
        [
            "a key for no-new-privileges",
            { noNewPrivileges: false },
            `${key}.noNewPrivileges: an unknown key is not allowed; expected only the keys name, version, image, build, containerPort, replicas, healthCheckPath, protocol, hosts, listenPort, allowedCidrs, drainSeconds, weight, sticky, connectionsPerInstance, requestsPerClient, idleTimeout, maintenance, capAdd, readOnlyRootFilesystem, tmpfs, tmpfsMb, memoryMb, cpus, pidsLimit, sharedNetwork`,
        ],
    ];
    for (const [title, keys, message] of cases) {
        it(`rejects ${title}`, () => rejects(withHello(keys), message));
    }
});

describe("replica containment: the shipped stack files", () => {
    const HELLO_TMPFS = { "/tmp": "rw,noexec,nosuid,nodev,size=64m" };
    for (const [title, stack, config, pgTmpfs] of [
        ["Pulumi.dev.yaml", "dev", () => stackConfig("dev"), undefined],
        [
            "Pulumi.aws.yaml",
            "aws",
            shippedAws,
            Object.fromEntries(["/tmp", "/var/lib/postgresql/data", "/var/run/postgresql"].map((path) => [path, "rw,noexec,nosuid,nodev,size=128m"])),
        ],
    ] as const) {
        describe(title, () => {
            let p: Program;
            before(async () => {
                p = await evaluate(config(), stack);
                assert.equal(p.error, null);
            });

            it("every replica: all capabilities dropped, no-new-privileges, a read-only root, its tmpfs, 256 MiB without swap, 1 CPU", () => {
                const rs = replicas(p);
                assert.ok(rs.length >= 3, `replicas: ${rs.map((c) => c.inputs.name)}`);
                for (const c of rs) {
                    const pg = String(c.inputs.hostname).includes("-pg-");
                    assert.deepEqual(containmentOf(c), contained(pg ? pgTmpfs : HELLO_TMPFS), `${c.inputs.name}`);
                }
                assert.equal(rs.filter((c) => String(c.inputs.hostname).includes("-pg-")).length, pgTmpfs ? 2 : 0);
            });

            it("the one-per-node containers keep their own settings (the replicas' defaults are not theirs)", () => {
                const others = p.containers().filter((c) => !replicas(p).includes(c));
                assert.ok(others.length >= 4);
                for (const c of others) assert.equal(c.inputs.memory, undefined, `${c.inputs.name}: no replica limits`);
            });
        });
    }
});

describe("replica containment: each relaxation on the declared containers", () => {
    const v2 = { name: "hello", version: "v2", build: "components/images/hello" };
    let base: Program;
    let relaxed: Program;
    let memoryOnly: Program;
    before(async () => {
        [base, relaxed, memoryOnly] = await Promise.all([
            evaluate(devWith({ services: [{ ...hello, replicas: 2 }, v2] })),
            evaluate(
                devWith({
                    services: [
                        {
                            ...hello,
                            replicas: 2,
                            capAdd: ["NET_BIND_SERVICE", "CHOWN"],
                            readOnlyRootFilesystem: false,
                            tmpfs: ["/tmp", "/var/cache/app"],
                            tmpfsMb: 16,
                            memoryMb: 512,
                            cpus: 0.5,
                        },
                        { ...v2, tmpfs: [] },
                    ],
                }),
            ),
            evaluate(
                devWith({
                    services: [
                        { ...hello, replicas: 2 },
                        { ...v2, memoryMb: 300 },
                    ],
                }),
            ),
        ]);
        for (const p of [base, relaxed, memoryOnly]) assert.equal(p.error, null);
    });

    it("capAdd (sorted: a set for the provider), readOnlyRootFilesystem false, tmpfs and tmpfsMb, memoryMb, cpus; no-new-privileges always", () => {
        for (const i of [1, 2]) {
            assert.deepEqual(containmentOf(relaxed.replica(`dev-hello-v1-${i}`)), {
                capabilities: { drops: ["ALL"], adds: ["CHOWN", "NET_BIND_SERVICE"] },
                securityOpts: ["no-new-privileges:true"],
                readOnly: false,
                tmpfs: { "/tmp": tmpfsOptions(16), "/var/cache/app": tmpfsOptions(16) },
                memory: 512,
                memorySwap: 512,
                cpus: "0.5",
            });
        }
        assert.deepEqual(containmentOf(relaxed.replica("dev-hello-v2-1")), contained(undefined), "tmpfs [] mounts none");
        assert.equal(tmpfsOptions(16), "rw,noexec,nosuid,nodev,size=16m");
    });

    it("a relaxation replaces the replicas it concerns (a new generation), and only those", () => {
        const name = (p: Program, r: string) => String(p.replica(r).inputs.name);
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2", "dev-hello-v2-1"]) assert.notEqual(name(relaxed, r), name(base, r), r);
        for (const r of ["dev-hello-v1-1", "dev-hello-v1-2"]) assert.equal(name(memoryOnly, r), name(base, r), r);
        assert.notEqual(name(memoryOnly, "dev-hello-v2-1"), name(base, "dev-hello-v2-1"), "a memory limit is hashed too: a rolling replacement");
    });
});
