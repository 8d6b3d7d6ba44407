#!/usr/bin/env bash
# Run by consul-template after each render. A bad render never replaces a good config:
# the new file is checked with `haproxy -c` first, and only then swapped in and the
# master told to reload (SIGUSR2: master-worker reload, listeners handed over).
# It always exits 0: consul-template stops (and with it the gateway) when a command fails,
# and a rejected render must leave the gateway serving its running config.
set -uo pipefail
: "${GATEWAY_RUN_DIR:=/run/gateway}"
: "${HAPROXY_BIN:=haproxy}"
new="$GATEWAY_RUN_DIR/haproxy.cfg.new"
live="$GATEWAY_RUN_DIR/haproxy.cfg"

# Trust rules: the template lists what it skipped or rejected as "# skipped: ..." and
# "# rejected: ..." lines. Each is logged once, when it first appears, not on every render.
notices="$GATEWAY_RUN_DIR/notices"
notice_lines() { LC_ALL=C grep -E '^# (skipped|rejected): ' "$1" | LC_ALL=C sort -u; }
notice_lines "$new" > "$notices.new"
[ -f "$notices" ] || : > "$notices"
LC_ALL=C comm -13 "$notices" "$notices.new" | while IFS= read -r line; do
    echo "gateway: ${line#\# }" >&2
done
mv -f "$notices.new" "$notices"

if cmp -s "$new" "$live"; then
    exit 0
fi
# Only comments changed (the list: an instance skipped, or back): the running config stays.
if cmp -s <(LC_ALL=C grep -vE '^[[:space:]]*(#|$)' "$new") <(LC_ALL=C grep -vE '^[[:space:]]*(#|$)' "$live"); then
    cp -f "$new" "$live.tmp" && mv -f "$live.tmp" "$live"
    exit 0
fi
if ! out="$("$HAPROXY_BIN" -c -q -f "$new" 2>&1)"; then
    cp -f "$new" "$GATEWAY_RUN_DIR/haproxy.cfg.rejected"
    echo "gateway: rendered config rejected by haproxy -c, keeping the running one: ${out//$'\n'/ }" >&2
    exit 0
fi
cp -f "$new" "$live.tmp" && mv -f "$live.tmp" "$live"

# The master ignores SIGUSR2 while it starts and while it re-executes itself for a reload: a
# signal sent then is lost (measured with 2.6: at start-up, or ~30 ms after another reload) and
# the new config never runs. So signal only once the master catches SIGUSR2, and return only
# once the new worker runs: consul-template runs this script one at a time, so the next reload
# never falls into that window. Linux /proc; each wait gives up after ~10 s.
pid=""
master_ready() { # the pid file exists and SigCgt has bit 11 (signal 12, SIGUSR2)
    local mask
    pid="$(cat "$GATEWAY_RUN_DIR/haproxy.pid" 2>/dev/null)" && [ -n "$pid" ] || return 1
    mask="$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)"
    [ -n "$mask" ] && (( (16#$mask >> 11) & 1 ))
}
workers() { cat "/proc/$pid/task/$pid/children" 2>/dev/null; }
new_worker() {
    local w
    for w in $(workers); do [[ " $before " == *" $w "* ]] || return 0; done
    return 1
}
wait_until() {
    local i
    for ((i = 0; i < 1000; i++)); do "$@" && return 0; sleep 0.01; done
    return 1
}
wait_until master_ready || echo "gateway: haproxy master $pid does not catch SIGUSR2 yet; signalling anyway" >&2
before="$(workers)"
kill -USR2 "$pid"
if ! wait_until new_worker || ! wait_until master_ready; then
    echo "gateway: reload of haproxy master $pid not confirmed (see its log)" >&2
    exit 0
fi
echo "gateway: config reloaded" >&2
