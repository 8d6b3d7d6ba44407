#!/usr/bin/env bash
# The control-plane layer (`npm run test:controlplane`, and npm test's phase of it) in several
# workers at once. Most of a file's time is waiting on Consul, HAProxy and the gateway, so several
# files share the two cores well; but a file that puts load on the gateway or counts answers under
# it (wrk, floods; or a file that says `control-plane stream "load"`) must never share the machine
# with another such file. Those run one after another in the worker "load"; every other file is
# taken from one queue by whichever worker is free (the load worker too, once its own files are
# done), the long ones first. SD_CP_WORKERS sets the number of workers (default 3, 2 to 8). Each
# worker takes its own slice of the test ports (SD_TEST_PORT_SLICE, test/support/ports.ts: slice i
# of SD_CP_PORT_SLICES, default the number of workers, so that npm test keeps slices for the layers
# it runs beside this one) and prefixes its lines with its name; the files that failed are listed
# at the end. With SD_LOAD_LOCK (a file), each load file holds that lock while it runs: npm test's
# other layers take it for their own load files, so that no two ever run at once.
# With file arguments: those files, one after another, in one process.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ $# -gt 0 ]; then exec node --import tsx --test --test-concurrency=1 "$@"; fi

workers="${SD_CP_WORKERS:-3}"
if ! [[ "$workers" =~ ^[0-9]+$ ]] || [ "$workers" -lt 2 ] || [ "$workers" -gt 8 ]; then
    echo "SD_CP_WORKERS=$workers is not allowed; expected a number of workers from 2 to 8" >&2
    exit 2
fi
slices="${SD_CP_PORT_SLICES:-$workers}"
if ! [[ "$slices" =~ ^[0-9]+$ ]] || [ "$slices" -lt "$workers" ] || [ "$slices" -gt 16 ]; then
    echo "SD_CP_PORT_SLICES=$slices is not allowed; expected a number of port slices from the number of workers ($workers) to 16" >&2
    exit 2
fi
# Known to take 30 s or more: queued first, so that no long file starts last (a hint only: any
# other file is queued after them, in name order).
long=(hostile traffic-tcp trust-rules gateway-watch cluster-tls runtime)
load=() queued=()
for f in test/controlplane/*.test.ts; do
    if grep -qE 'wrk|Flood|control-plane stream "load"' "$f"; then load+=("$f"); fi
done
for n in "${long[@]}"; do
    f="test/controlplane/$n.test.ts"
    [ -f "$f" ] && [[ " ${load[*]} " != *" $f "* ]] && queued+=("$f")
done
for f in test/controlplane/*.test.ts; do
    [[ " ${load[*]} ${queued[*]} " == *" $f "* ]] || queued+=("$f")
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s\n' "${queued[@]}" >"$work/queue"
: >"$work/failed"
# The next file of the queue, or nothing once it is empty (one worker at a time; the lock is a
# file of its own: sed -i replaces the queue's file).
# shellcheck disable=SC2016 # expanded by the inner bash
next() { flock "$work/lock" bash -c 'head -n 1 "$1"; sed -i 1d "$1"' _ "$work/queue"; }
run_one() { # worker name, port slice, file[, lock file]
    local s=0 lock=()
    [ -z "${4:-}" ] || lock=(flock "$4")
    (set -o pipefail; SD_TEST_PORT_SLICE="$2" "${lock[@]}" node --import tsx --test "$3" 2>&1 | sed -u "s|^|[cp $1] |") || s=$?
    [ "$s" -eq 0 ] || echo "$3 (exit $s)" >>"$work/failed"
}
worker() { # name, port slice, files of its own...
    local name="$1" slice="$2" f
    shift 2
    for f in "$@"; do run_one "$name" "$slice" "$f" "${SD_LOAD_LOCK:-}"; done
    while f="$(next)" && [ -n "$f" ]; do run_one "$name" "$slice" "$f"; done
}
echo "[cp] worker load: ${load[*]}; then the queue: ${queued[*]}"
pids=()
worker load "0/$slices" "${load[@]}" &
pids+=($!)
for ((i = 1; i < workers; i++)); do
    worker "rest-$i" "$i/$slices" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
if [ -s "$work/failed" ]; then
    echo "[cp] FAILED: $(wc -l <"$work/failed") of $((${#load[@]} + ${#queued[@]})) files:"
    sed 's/^/[cp]   /' "$work/failed"
    exit 1
fi
echo "[cp] passed: $((${#load[@]} + ${#queued[@]})) files"
