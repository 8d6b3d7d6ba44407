#!/usr/bin/env bash
# Removes what the cluster harness (test/cluster/harness/engines.ts) made on this machine, in
# whatever state a run left it: after a normal run, from the watchdog when the test process
# died, or at the start of the next run. Idempotent; every step is best effort.
# Usage: teardown.sh <run dir>...     DOCKER_CLI: the docker CLI (default: docker)
set -u
prefix=sd-cl
cli="${DOCKER_CLI:-docker}"

namespaces() {
    local ns
    for ns in /run/netns/"$prefix"-*; do [ -e "$ns" ] && echo "${ns##*/}"; done
    return 0
}
pids_in_namespaces() { for ns in $(namespaces); do ip netns pids "$ns" 2>/dev/null; done; }

# 1. Containers, through each engine that still answers on its socket: removed with force, at
#    once (an engine stopping them would wait each one's stop timeout).
for dir in "$@"; do
    for sock in "$dir"/node-*/docker.sock; do
        [ -S "$sock" ] || continue
        mapfile -t ids < <(timeout 20 "$cli" -H "unix://$sock" ps -aq 2>/dev/null)
        [ ${#ids[@]} -eq 0 ] || timeout 60 "$cli" -H "unix://$sock" rm -f -v "${ids[@]}" >/dev/null 2>&1
    done
done

# 2. The processes in our namespaces: dockerd, containerd, its shims, docker-proxy, relays.
mapfile -t p < <(pids_in_namespaces)
[ ${#p[@]} -eq 0 ] || kill -TERM "${p[@]}" 2>/dev/null
for _ in $(seq 75); do
    [ -z "$(pids_in_namespaces)" ] && break
    sleep 0.2
done
mapfile -t p < <(pids_in_namespaces)
[ ${#p[@]} -eq 0 ] || kill -KILL "${p[@]}" 2>/dev/null

# 3. Container processes an engine could not remove (it died first): the engines' cgroups.
for procs in /sys/fs/cgroup/*/"$prefix"-*/cgroup.procs /sys/fs/cgroup/*/"$prefix"-*/*/cgroup.procs; do
    [ -f "$procs" ] && xargs -r kill -KILL <"$procs" 2>/dev/null
done
sleep 0.5
for d in /sys/fs/cgroup/*/"$prefix"-*/*/ /sys/fs/cgroup/*/"$prefix"-*/; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
done

# 4. Mounts under the run dirs (overlay layers, shm, network namespace files, tmpfs volumes), deepest first.
for dir in "$@"; do
    [ -n "$dir" ] || continue
    awk -v d="${dir%/}/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
done

# 5. The network: the namespaces (their ends of the veth pairs go with them), the host ends, the bridge.
for ns in $(namespaces); do ip netns del "$ns" 2>/dev/null; done
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep "^$prefix-"); do
    ip link del "$l" 2>/dev/null
done

# 6. The run dirs (data roots, exec roots, certificates, logs).
for dir in "$@"; do
    [ -n "$dir" ] && rm -rf "$dir"
done
exit 0
