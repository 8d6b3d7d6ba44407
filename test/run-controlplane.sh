#!/usr/bin/env bash
# The control-plane layer (`npm run test:controlplane`, and npm test's phase of it) as streams
# that run at once. Most of a file's time is waiting on Consul, HAProxy and the gateway, so several
# files share the two cores well; but a file that puts load on the gateway or counts answers under
# it (wrk, floods) must not share the machine with another such file. Those run one after another
# in the stream "load" (so does a file that says `control-plane stream "load"`); every other
# file goes to one of the streams "rest-1" ... (round robin, in name order). SD_CP_STREAMS sets
# the number of streams in all (default 3, at least 2). Each stream takes its own slice of the test
# ports (SD_TEST_PORT_SLICE, test/support/ports.ts) and prefixes its lines with its name.
# With file arguments: those files, one after another, in one stream.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() { node --import tsx --test --test-concurrency=1 "$@"; }
if [ $# -gt 0 ]; then run "$@"; exit; fi

streams="${SD_CP_STREAMS:-3}"
if ! [[ "$streams" =~ ^[0-9]+$ ]] || [ "$streams" -lt 2 ] || [ "$streams" -gt 8 ]; then
    echo "SD_CP_STREAMS=$streams is not allowed; expected a number of streams from 2 to 8" >&2
    exit 2
fi
declare -a files
files[0]=""
rest=0
for f in test/controlplane/*.test.ts; do
    if grep -qE 'wrk|Flood|control-plane stream "load"' "$f"; then
        files[0]+=" $f"
    else
        i=$((1 + rest % (streams - 1)))
        files[i]+=" $f"
        rest=$((rest + 1))
    fi
done
pids=()
for ((i = 0; i < streams; i++)); do
    name=$([ "$i" -eq 0 ] && echo load || echo "rest-$i")
    read -r -a list <<<"${files[i]:-}"
    [ ${#list[@]} -gt 0 ] || continue
    echo "[cp] stream $name: ${list[*]}"
    (set -o pipefail; SD_TEST_PORT_SLICE="$i/$streams" run "${list[@]}" 2>&1 | sed -u "s/^/[cp $name] /") &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
exit "$status"
