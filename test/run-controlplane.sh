#!/usr/bin/env bash
# The control-plane layer (`npm run test:controlplane`, and npm test's phase of it) as two streams
# at once. Most of a file's time is waiting on Consul, HAProxy and the gateway, so two files share
# the two cores well; but a file that puts load on the gateway or counts answers under it (wrk,
# floods) must not share the machine with another such file. Those run one after another in the
# stream "load", with the few files that say `control-plane stream "load"` (to even the two streams
# out); every other file runs in the stream "rest". Each stream takes its own slice of the test
# ports (SD_TEST_PORT_SLICE, test/support/ports.ts) and prefixes its lines with its name.
# With file arguments: those files, one after another, in one stream.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() { node --import tsx --test --test-concurrency=1 "$@"; }
if [ $# -gt 0 ]; then run "$@"; exit; fi

load=() rest=()
for f in test/controlplane/*.test.ts; do
    if grep -qE 'wrk|Flood|control-plane stream "load"' "$f"; then load+=("$f"); else rest+=("$f"); fi
done
echo "[cp] stream load: ${load[*]}"
echo "[cp] stream rest: ${rest[*]}"
pids=()
(set -o pipefail; SD_TEST_PORT_SLICE=0/2 run "${load[@]}" 2>&1 | sed -u 's/^/[cp load] /') &
pids+=($!)
(set -o pipefail; SD_TEST_PORT_SLICE=1/2 run "${rest[@]}" 2>&1 | sed -u 's/^/[cp rest] /') &
pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
exit "$status"
