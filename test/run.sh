#!/usr/bin/env bash
# `npm test`: every layer of test/README.md, in order, then the time each phase took. The tools
# the control-plane and Docker layers need (test/tools/install.sh: on a first run a Go build of
# Consul, minutes) are built in the background while the type check and the unit tests run,
# which need none of them; their progress lines ("[tools] …") appear among the tests' output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
timings=()
summary() {
    local status=$?
    # The tools build is its own process group (setsid): a failed phase stops it and its go processes.
    [ -z "${tools_pid:-}" ] || kill -- -"$tools_pid" 2>/dev/null || true
    [ -z "${SD_EVAL_CACHE:-}" ] || rm -rf "$SD_EVAL_CACHE"
    echo "[test] phases:"
    for t in "${timings[@]}"; do echo "[test]   $t"; done
    echo "[test] $([ "$status" -eq 0 ] && echo passed || echo "FAILED (exit $status)") in $((SECONDS - started)) s"
}
trap summary EXIT

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

# The control-plane files run in several workers at once (test/run-controlplane.sh says how).
phase "control plane" bash test/run-controlplane.sh
phase "docker" node --import tsx --test --test-concurrency=1 test/e2e/*.test.ts
