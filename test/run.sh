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

tools_t0=$SECONDS
setsid bash test/tools/install.sh &
tools_pid=$!

phase "types" npm run -s typecheck
phase "format" npm run -s format:check
phase "workflows" npm run -s lint:workflows
phase "unit and graph" npm run -s test:unit

echo "[test] waiting for the tools (test/tools/install.sh)"
wait_t0=$SECONDS
status=0
wait "$tools_pid" || status=$?
tools_pid=""
record "tools (background)" $((SECONDS - tools_t0))
record "  of which waited for" $((SECONDS - wait_t0))
[ "$status" -eq 0 ] || { echo "[test] test/tools/install.sh failed (exit $status)" >&2; exit "$status"; }

phase "control plane" node --import tsx --test --test-concurrency=1 test/controlplane/*.test.ts
phase "docker" node --import tsx --test --test-concurrency=1 test/e2e/*.test.ts
