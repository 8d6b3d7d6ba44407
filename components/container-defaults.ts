// Settings every container the program declares shares, spread into its docker.Container args
// (`...LOG_LIMITS`). The graph tests and the policy pack fail on any container without them.
//
// Log rotation: Docker keeps a container's stdout/stderr on the node's disk, by default in one
// json-file that grows without limit, on the same disk as Consul's raft data. We keep the
// json-file driver and bound it (at most 3 files of 10 MB per container, ~30 MB) rather than
// switch to the `local` driver: `docker logs` works the same with both, but json-file is the
// format log shippers already read from /var/lib/docker/containers, and explicit limits show in
// `docker inspect` (HostConfig.LogConfig) whatever the daemon's defaults are.
// Changing these values replaces the containers on the next `pulumi up` (Docker cannot change a
// running container's log settings).

/** Log driver and its size limits, for `docker.ContainerArgs`. */
export const LOG_LIMITS = Object.freeze({
    logDriver: "json-file",
    logOpts: Object.freeze({ "max-size": "10m", "max-file": "3" }),
});
