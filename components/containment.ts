// How a service replica is contained (docs/services.md, "What a replica may do"; docs/security.md,
// "Contained replicas"): every replica runs with no capability, no-new-privileges, a read-only
// root filesystem with small in-memory folders where it writes, and memory and CPU limits. Each
// default but no-new-privileges has a key in its services[i] that relaxes it for that service; the
// policy pack (policy/policies.ts, service-replicas-contained) refuses the relaxations on every
// stack but the ones it names (default dev).
//
// A replica's network, its service's own (sharedNetwork relaxes it), is components/service-networks.ts.
// Not here, and why (docs/security.md, "Contained replicas"): a process limit (the Docker
// provider has no input for the engine's PidsLimit, and an nproc ulimit counts every process of
// a user ID on the node, not the container's).

/**
 * The Linux capabilities by name (capabilities(7), Linux 5.9 and later), as Docker names them:
 * without the CAP_ prefix.
 */
export const LINUX_CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
] as const;

/** The defaults of a replica's limits (services[i].memoryMb, .cpus, .tmpfs, .tmpfsMb). */
export const REPLICA_DEFAULTS = Object.freeze({
    memoryMb: 256,
    cpus: 1,
    tmpfs: Object.freeze(["/tmp"]) as readonly string[],
    tmpfsMb: 64,
});

/** The containment keys of one service, as its settings hold them after validation. */
export interface ContainmentSettings {
    readonly capAdd: readonly string[];
    readonly readOnlyRootFilesystem: boolean;
    readonly tmpfs: readonly string[];
    readonly tmpfsMb: number;
    readonly memoryMb: number;
    readonly cpus: number;
}

/**
 * A tmpfs mount's options: nothing in it runs (noexec), no setuid file or device node counts, its
 * size bounded. Its root is owned by root with the mode of the image's folder it covers (runc
 * copies it; 1777 where the image has none): an image that runs as its own user makes the
 * folders it writes writable in its Dockerfile (components/images/postgres: mode 1777, as /tmp).
 */
export function tmpfsOptions(sizeMb: number): string {
    return `rw,noexec,nosuid,nodev,size=${sizeMb}m`;
}

/** The inputs of a replica's container that contain it, for `docker.ContainerArgs`. */
export interface ContainmentInputs {
    readonly capabilities: { readonly drops: string[]; readonly adds?: string[] };
    readonly securityOpts: string[];
    readonly readOnly: boolean;
    readonly tmpfs?: Record<string, string>;
    /** MB, as the provider takes it. */
    readonly memory: number;
    /** Memory plus swap, MB: the same as `memory`, so the replica gets no swap. */
    readonly memorySwap: number;
    /** CPUs, as the provider takes them (a string, such as "1" or "0.5"). */
    readonly cpus: string;
}

/**
 * A replica's containment inputs (the provider's names): every capability dropped and the
 * service's capAdd given back, no-new-privileges, the root filesystem read-only unless the
 * service says readOnlyRootFilesystem false, each tmpfs folder mounted with tmpfsMb, and the
 * memory (no swap) and CPU limits.
 */
export function containmentInputs(s: ContainmentSettings): ContainmentInputs {
    return {
        // Sorted: the provider keeps them as a set, so their order in the stack file changes nothing.
        capabilities: { drops: ["ALL"], ...(s.capAdd.length > 0 ? { adds: [...s.capAdd].sort() } : {}) },
        // A setuid or file-capability binary gains nothing: the image's `su`, `mount` or `ping`
        // run with the caller's privileges. No key relaxes it (docs/services.md).
        securityOpts: ["no-new-privileges:true"],
        readOnly: s.readOnlyRootFilesystem,
        ...(s.tmpfs.length > 0 ? { tmpfs: Object.fromEntries(s.tmpfs.map((path) => [path, tmpfsOptions(s.tmpfsMb)])) } : {}),
        memory: s.memoryMb,
        memorySwap: s.memoryMb,
        cpus: String(s.cpus),
    };
}
