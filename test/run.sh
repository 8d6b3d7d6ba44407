#!/usr/bin/env bash
# `npm test`: every layer of test/README.md, in order, then the time each phase took. The tools
# the control-plane and Docker layers need (test/tools/install.sh: on a first run a Go build of
# Consul, minutes) are built in the background while the type check and the unit tests run,
# which need none of them; their progress lines ("[tools] …") appear among the tests' output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
timings=()
lane_pids=()
kill_tree() { # pid: TERM to it and everything under it, children first
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
    kill -TERM "$1" 2>/dev/null || true
}
summary() {
    local status=$?
    # The tools build is its own process group (setsid): a failed phase stops it and its go processes.
    [ -z "${tools_pid:-}" ] || kill -- -"$tools_pid" 2>/dev/null || true
    [ -z "${rootfs_pid:-}" ] || kill -- -"$rootfs_pid" 2>/dev/null || true
    # Lanes still running (an interrupt): every process under them is stopped, the test processes
    # included; the harnesses' watchdogs then stop the engines and clusters those had started.
    for p in "${lane_pids[@]}"; do kill_tree "$p"; done
    [ -z "${SD_EVAL_CACHE:-}" ] || rm -rf "$SD_EVAL_CACHE"
    echo "[test] phases:"
    for t in "${timings[@]}"; do echo "[test]   $t"; done
    echo "[test] $([ "$status" -eq 0 ] && echo passed || echo "FAILED (exit $status)") in $((SECONDS - started)) s"
}
trap summary EXIT
# Interrupted: the summary says so (and stops the lanes) instead of reporting the last status.
trap 'exit 130' INT
trap 'exit 143' TERM

record() { # name, seconds
    timings+=("$(printf '%-28s %5s s' "$1" "$2")")
}

phase() { # name, command...
    local name="$1" t0=$SECONDS
    shift
    echo "[test] $name: $*"
    "$@"
    record "$name" $((SECONDS - t0))
}

# The test files that evaluate the same stack config under mocks share one evaluation for the
# run (test/support/program.ts, evaluationCacheFile); removed at the end.
SD_EVAL_CACHE="$(mktemp -d)"
export SD_EVAL_CACHE

tools_t0=$(date +%s)
# The tools' own end, written when they are done: how long they took, even when nothing waited for them.
tools_done="$SD_EVAL_CACHE/tools-done"
# shellcheck disable=SC2016 # expanded by the inner bash
setsid bash -c 'bash test/tools/install.sh; s=$?; date +%s >"$1"; exit "$s"' _ "$tools_done" &
tools_pid=$!
# The Docker and cluster layers' Debian root file system (debootstrap: mostly downloads, a minute
# on a first run, cached afterwards), made meanwhile too when this machine can (root, debootstrap);
# otherwise, or when it fails, those layers make it themselves and say why they cannot.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
    setsid node --import tsx test/e2e/harness/images.ts rootfs &
    rootfs_pid=$!
fi

# The three static checks at once (each is one process on one core), each one's output shown
# whole when it ends; the first that failed fails the phase, after all three have ended.
static_checks() {
    local dir names=(types format workflows) cmds=(typecheck format:check lint:workflows) pids=() i status=0 s
    dir="$(mktemp -d)"
    for i in "${!names[@]}"; do
        (
            t0=$SECONDS
            s=0
            npm run -s "${cmds[$i]}" >"$dir/$i.out" 2>&1 || s=$?
            echo "$((SECONDS - t0))" >"$dir/$i.time"
            exit "$s"
        ) &
        pids+=($!)
    done
    for i in "${!names[@]}"; do
        s=0
        wait "${pids[$i]}" || s=$?
        echo "[test] ${names[$i]} (npm run ${cmds[$i]}): $([ "$s" -eq 0 ] && echo passed || echo "FAILED (exit $s)")"
        sed 's/^/    /' "$dir/$i.out"
        static_times+=("  ${names[$i]}" "$(cat "$dir/$i.time")")
        [ "$status" -ne 0 ] || status=$s
    done
    rm -rf "$dir"
    return "$status"
}
static_times=()
phase "types, format, workflows" static_checks
for ((i = 0; i < ${#static_times[@]}; i += 2)); do record "${static_times[$i]}" "${static_times[$((i + 1))]}"; done
phase "unit and graph" npm run -s test:unit

echo "[test] waiting for the tools (test/tools/install.sh)"
wait_t0=$SECONDS
status=0
wait "$tools_pid" || status=$?
tools_pid=""
record "tools (background)" $(($(cat "$tools_done" 2>/dev/null || date +%s) - tools_t0))
record "  of which waited for" $((SECONDS - wait_t0))
[ "$status" -eq 0 ] || { echo "[test] test/tools/install.sh failed (exit $status)" >&2; exit "$status"; }

# The control-plane, Docker and cluster layers run at once: most of their time is waiting on
# Consul, engines and timeouts (alone on this project's 2-core reference machine they keep the CPU
# busy 66 %, 23 % and 34 % of their time). Each lane prefixes its lines with its name; the
# control-plane files run in several workers (test/run-controlplane.sh says how). Files that put
# load on a gateway and count its answers take one lock (SD_LOAD_LOCK), so that no two of them run
# at once; the cluster's fault scenarios do not (they would hold it for minutes): their bounds are
# loose. Each lane takes its own slice of the test ports (SD_TEST_PORT_SLICE of 5: the three
# control-plane workers 0-2, Docker 3, cluster 4).
SD_LOAD_LOCK="$SD_EVAL_CACHE/load.lock"
export SD_LOAD_LOCK
is_load() { grep -qE 'wrk|Flood|control-plane stream "load"' "$1"; }

# The Docker layer: the e2e files one after another, the load files last (by then the
# control plane's have run) and under the load lock.
docker_layer() {
    local f s failed=() files=() load=()
    for f in test/e2e/*.test.ts; do
        if is_load "$f"; then load+=("$f"); else files+=("$f"); fi
    done
    for f in "${files[@]}" "${load[@]}"; do
        s=0
        if is_load "$f"; then
            SD_TEST_PORT_SLICE=3/5 flock "$SD_LOAD_LOCK" node --import tsx --test "$f" || s=$?
        else
            SD_TEST_PORT_SLICE=3/5 node --import tsx --test "$f" || s=$?
        fi
        [ "$s" -eq 0 ] || failed+=("$f (exit $s)")
    done
    [ ${#failed[@]} -eq 0 ] || { echo "FAILED: ${failed[*]}"; return 1; }
}

lanes_dir="$(mktemp -d)"
lane_names=() lane_pids=()
lane() { # name, line prefix, command...
    local name="$1" prefix="$2"
    shift 2
    (
        t0=$SECONDS
        s=0
        (set -o pipefail; "$@" 2>&1 | sed -u "s|^|$prefix|") || s=$?
        echo "$((SECONDS - t0)) $s" >"$lanes_dir/$name"
    ) &
    lane_names+=("$name")
    lane_pids+=($!)
}
layers_t0=$SECONDS
echo "[test] control plane, docker and cluster at once"
lane "control plane" "" env SD_CP_PORT_SLICES=5 bash test/run-controlplane.sh
lane docker "[docker] " docker_layer
lane cluster "[cluster] " env SD_TEST_PORT_SLICE=4/5 node --import tsx --test test/cluster/three-nodes.test.ts
for p in "${lane_pids[@]}"; do wait "$p" || true; done
lane_pids=()
record "layers at once" $((SECONDS - layers_t0))
layers_failed=()
for name in "${lane_names[@]}"; do
    read -r secs s <"$lanes_dir/$name" || { secs="?" s=1; }
    record "  $name" "$secs"
    [ "$s" -eq 0 ] || layers_failed+=("$name (exit $s)")
done
rm -rf "$lanes_dir"
if [ ${#layers_failed[@]} -gt 0 ]; then
    echo "[test] FAILED: ${layers_failed[*]}" >&2
    exit 1
fi
