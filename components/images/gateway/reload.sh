#!/usr/bin/env bash
# Run by consul-template after each render. A bad render never replaces a good config:
# - only comments changed: the file is updated, nothing else;
# - only servers changed (instances came, went, moved): runtime-apply.sh applies them through
#   HAProxy's runtime API, no reload;
# - anything else (routes, KV settings): the new file is checked with `haproxy -c`, the servers'
#   health and maintenance states are saved (server-state-file), and the master reloads
#   (SIGUSR2: master-worker reload, listeners handed over). A reload that fails is tried once
#   more; if it fails again the previous file is put back, so the live file always is the
#   running config.
# While the latest render is not running (rejected, or its reload failed), the server
# gateway_config/latest-render-running is in maintenance (stats page, /metrics) and the reason
# is logged; the next render tries again.
# It always exits 0: consul-template stops (and with it the gateway) when a command fails,
# and a rejected render must leave the gateway serving its running config.
set -uo pipefail
: "${GATEWAY_RUN_DIR:=/run/gateway}"
: "${HAPROXY_BIN:=haproxy}"
new="$GATEWAY_RUN_DIR/haproxy.cfg.new"
live="$GATEWAY_RUN_DIR/haproxy.cfg"
here="$(dirname "$(readlink -f "$0")")"
sock="$GATEWAY_RUN_DIR/admin.sock"
failed_marker="$GATEWAY_RUN_DIR/latest-render-not-running"

started_ns="$(date +%s%N)"
elapsed() { echo "$(( ($(date +%s%N) - started_ns) / 1000000 )) ms"; }
# One run at a time (consul-template runs this script serially; a manual run must wait).
exec 9> "$GATEWAY_RUN_DIR/reload.lock"
flock 9

cli() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$sock" 2>/dev/null; }
# The operator-visible state: the latest render runs (ready) or not (maint + the reason logged).
render_running() {
    if [ -e "$failed_marker" ]; then
        rm -f "$failed_marker"
        cli "set server gateway_config/latest-render-running state ready" > /dev/null
        echo "gateway: the latest render is running again" >&2
    fi
}
render_not_running() {
    echo "gateway: $1" >&2
    printf '%s\n' "$1" > "$failed_marker"
    cli "set server gateway_config/latest-render-running state maint" > /dev/null
}

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

install_live() { cp -f "$1" "$live.tmp" && mv -f "$live.tmp" "$live"; }
if cmp -s "$new" "$live"; then
    render_running
    exit 0
fi
# Only servers changed: the runtime API, no reload. (Only comments changed, e.g. the list of
# skipped instances: nothing to apply, the file is installed.)
if bash "$here/runtime-apply.sh" "$live" "$new"; then
    install_live "$new"
    render_running
    exit 0
fi
if ! out="$("$HAPROXY_BIN" -c -q -f "$new" 2>&1)"; then
    cp -f "$new" "$GATEWAY_RUN_DIR/haproxy.cfg.rejected"
    render_not_running "rendered config rejected by haproxy -c, keeping the running one: ${out//$'\n'/ }"
    exit 0
fi
cp -f "$live" "$GATEWAY_RUN_DIR/haproxy.cfg.previous"
install_live "$new"

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
# The master counts the reloads that failed to load (`show proc` on its CLI: "[failed: N]").
failed_reloads() { printf 'show proc\n' | socat -t 2 - "UNIX-CONNECT:$GATEWAY_RUN_DIR/master.sock" 2>/dev/null | sed -n 's/.*master.*\[failed: \([0-9]*\)\].*/\1/p'; }
reload_failed() { local now; now="$(failed_reloads)"; [ -n "$now" ] && [ -n "$failed_before" ] && [ "$now" -gt "$failed_before" ]; }
new_worker_or_failure() { new_worker || reload_failed; }
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
reload() {
    wait_until master_ready || echo "gateway: haproxy master $pid does not catch SIGUSR2 yet; signalling anyway" >&2
    # The servers' health and maintenance states, for the new worker (server-state-file).
    # Weights are the file's: runtime-apply.sh sets a new weight at runtime and installs it in the
    # live file, so the saved weight is made the initial one (HAProxy restores a saved weight
    # over the config's when their initial weights match, which would undo a later change).
    if cli "show servers state" | awk 'NR > 2 && NF >= 9 { $8 = $9 } { print }' > "$GATEWAY_RUN_DIR/server-state.tmp"; then
        mv -f "$GATEWAY_RUN_DIR/server-state.tmp" "$GATEWAY_RUN_DIR/server-state"
    fi
    before="$(workers)"
    failed_before="$(failed_reloads)"
    kill -USR2 "$pid"
    # The new worker is the proof. HAProxy's count of failed reloads only ends the wait early;
    # the worker still gets a second to show up.
    wait_until new_worker_or_failure
    if ! new_worker; then
        local i
        for ((i = 0; i < 100; i++)); do new_worker && break; sleep 0.01; done
        if ! new_worker; then
            why="no new worker ($(reload_failed && echo "HAProxy counts a failed reload" || echo "none within 10 s"))"
            return 1
        fi
    fi
    wait_until master_ready || { why="the master did not come back after the new worker started"; return 1; }
}
why=""
if ! reload && ! reload; then
    # The old worker still runs the previous config: the live file says so again.
    cp -f "$new" "$GATEWAY_RUN_DIR/haproxy.cfg.failed"
    install_live "$GATEWAY_RUN_DIR/haproxy.cfg.previous"
    render_not_running "reload of haproxy master $pid failed twice ($why); still running the previous config (see the master's log; the render is kept as haproxy.cfg.failed)"
    exit 0
fi
# The new worker has none of the servers that were waiting to be deleted.
: > "$GATEWAY_RUN_DIR/runtime-pending"
echo "gateway: config reloaded in $(elapsed)" >&2
# A new worker starts with every server ready; the status server keeps its saved state.
render_running
