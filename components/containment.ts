// How a service replica is contained (docs/services.md, "What a replica may do"; docs/security.md,
// "Contained replicas"): every replica runs with no capability, no-new-privileges, a read-only
// root filesystem with small in-memory folders where it writes, memory and CPU limits, and a
// limit on its processes. Each default but no-new-privileges has a key in its services[i] that
// relaxes it for that service; the policy pack (policy/policies.ts, service-replicas-contained and
// service-replicas-pids-limited) refuses the relaxations on every stack but the ones it names
// (default dev).
//
// The process limit is the engine's PidsLimit (the pids cgroup: processes and threads). The Docker
// provider has no input for it, and an nproc ulimit would not do (it does not bind root, and it
// counts every process of a user ID on the node, not the container's), so each replica is created
// without being started, and a command beside it sets the limit with `docker update`, reads it
// back and only then starts it (pidsLimitScript below; docs/security.md, "Contained replicas").
//
// A replica's network, its service's own (sharedNetwork relaxes it), is components/service-networks.ts.
import type * as pulumi from "@pulumi/pulumi";
import { PINNED_SSH_OPTS } from "./host-keys";
import type { EngineEndpoint } from "./nodes";

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

/** The defaults of a replica's limits (services[i].memoryMb, .cpus, .pidsLimit, .tmpfs, .tmpfsMb). */
export const REPLICA_DEFAULTS = Object.freeze({
    memoryMb: 256,
    cpus: 1,
    pidsLimit: 512,
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
    readonly pidsLimit: number;
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

/** The environment variables pidsLimitScript reads. */
export const PIDS_LIMIT_ENV = Object.freeze({ replica: "SD_REPLICA", limit: "SD_PIDS_LIMIT", node: "SD_NODE" });

/**
 * The shell script that gives a replica's container its process limit (`docker update
 * --pids-limit`), reads it back from the engine (`docker inspect`) and then starts the container
 * if it was never started (the program creates replicas with `start: false`, so none runs without
 * its limit); it fails, saying why, when the update fails, when the engine answers anything but the
 * container's name (dockerd says so when it discards the limit: no pids cgroup), or when the engine
 * then reports another limit, and the replica is then never started. It reads
 * SD_REPLICA (the container's name), SD_PIDS_LIMIT and, over SSH, SD_NODE (the ssh:// URL, which
 * OpenSSH takes as a destination); with `ssh` it runs the node's Docker CLI through the system's
 * `ssh` with the pinned host key only (components/host-keys.ts), otherwise the CLI of the machine
 * running Pulumi with the DOCKER_* variables the command declares.
 */
export function pidsLimitScript(ssh: boolean): string {
    const { replica: R, limit: L, node: N } = PIDS_LIMIT_ENV;
    const docker = ssh
        ? `docker_() { ssh ${PINNED_SSH_OPTS.join(" ")} -o ConnectTimeout=60 "$${N}" docker "$@"; }`
        : [
              // The local engine: the provider's (DOCKER_HOST, else DOCKER_CONTEXT, else the default
              // socket), not whatever context the CLI would follow by itself.
              '[ -n "${DOCKER_HOST-}" ] || [ -n "${DOCKER_CONTEXT-}" ] || export DOCKER_HOST=unix:///var/run/docker.sock',
              // The provider reads a certificate folder under ~ as the user's; the CLI would not.
              `case "\${DOCKER_CERT_PATH-}" in "~/"*) DOCKER_CERT_PATH="$HOME/\${DOCKER_CERT_PATH#"~/"}";; esac`,
              'docker_() { docker "$@"; }',
          ].join("\n");
    return [
        "set -u",
        docker,
        `fail() { echo "replica $${R}: $*" >&2; exit 1; }`,
        // Only the program's own names and a number go on to the engine (a remote shell reads them over SSH).
        `case "$${R}" in "" | *[!a-z0-9_.-]*) fail "not a container name the program makes";; esac`,
        `case "$${L}" in "" | *[!0-9]*) fail "process limit '$${L}' is not a number";; esac`,
        `out=$(docker_ update --pids-limit "$${L}" "$${R}" 2>&1) || fail "docker update --pids-limit $${L} failed: $out"`,
        `[ "$out" = "$${R}" ] || fail "the engine did not take the process limit $${L}: $out"`,
        // One word (no space): over SSH the remote shell splits the command line again.
        `got=$(docker_ inspect --format '{{.HostConfig.PidsLimit}}/{{.State.Status}}' "$${R}" 2>&1) || fail "docker inspect failed: $got"`,
        `[ "\${got%%/*}" = "$${L}" ] || fail "the engine reports a process limit of \${got%%/*}, not $${L}"`,
        // Created, never started (the program creates replicas with start false): started now,
        // with its limit. A replica that has run is left as it is (its limit changed in place).
        `if [ "\${got#*/}" = created ]; then`,
        `    out=$(docker_ start "$${R}" 2>&1) || fail "docker start failed: $out"`,
        `    echo "replica $${R}: at most $${L} processes, started"`,
        "else",
        `    echo "replica $${R}: at most $${L} processes (\${got#*/})"`,
        "fi",
    ].join("\n");
}

/**
 * The environment of a replica's process-limit command: which container, the limit, and how to
 * reach the node's engine (the DOCKER_* variables of a tcp:// host, or SD_NODE over SSH; nothing
 * for the local engine, whose CLI reads the user's DOCKER_HOST as the provider does).
 */
export function pidsLimitEnvironment(engine: EngineEndpoint, container: pulumi.Input<string>, pidsLimit: number): Record<string, pulumi.Input<string>> {
    const env: Record<string, pulumi.Input<string>> = { [PIDS_LIMIT_ENV.replica]: container, [PIDS_LIMIT_ENV.limit]: String(pidsLimit) };
    if (engine.host === undefined) return env;
    if (engine.ssh) return { ...env, [PIDS_LIMIT_ENV.node]: engine.host };
    return {
        ...env,
        DOCKER_HOST: engine.host,
        ...(engine.certPath === undefined ? {} : { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: engine.certPath }),
    };
}
