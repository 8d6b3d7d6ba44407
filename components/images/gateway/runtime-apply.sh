#!/usr/bin/env bash
# runtime-apply.sh <running config> <new render>
# Applies a render through HAProxy's runtime API when it differs from the running config only in
# its server lines (instances came, went or moved): no reload, no new worker, no connection cut.
# Exit 0: applied, the caller installs the render as the live file. Exit 1: the render changes
# more than servers (routes, KV settings) or HAProxy did not accept a command: the caller reloads,
# which makes the file authoritative again (whatever was applied up to there included).
#
# Servers are named <address>:<port> (haproxy.ctmpl), so a server line changes only when its
# settings do: when only its weight changed (a version's weight, maintenance), that is
# `set server ... weight N`; any other setting is a reload.
# A removed server is put in maintenance (no new request) and
# deleted; one that still has connections stays in maintenance, listed in runtime-pending, and its
# deletion is retried on every later run (a reload drops it anyway).
set -uo pipefail
: "${GATEWAY_RUN_DIR:=/run/gateway}"
started_ns="$(date +%s%N)"
running="$1"
new="$2"
sock="$GATEWAY_RUN_DIR/admin.sock"
pending="$GATEWAY_RUN_DIR/runtime-pending"

# Shortcut to a reload without parsing both files (3 MB each at 2000 services): the first line
# where they differ is a setting, a route..., neither a server line, a comment nor blank.
first="$(LC_ALL=C cmp "$running" "$new" 2>/dev/null | sed -n 's/.*, line \([0-9]*\)$/\1/p')"
if [ -n "$first" ]; then
    for f in "$running" "$new"; do
        case "$(sed -n "${first}{p;q}" "$f")" in
            "    server "* | "#"* | "    #"* | "") ;;
            *) exit 1 ;;
        esac
    done
fi

# The plan: "reload <why>" or, per server, "del <backend>/<server>" and
# "add <backend>/<server> <address:port> <settings>". Comments and blank lines are ignored;
# every other line outside server lines must be identical, in the same order.
plan="$(LC_ALL=C awk '
    FNR == 1 { f++ }
    /^[ \t]*(#|$)/ { next }
    /^[^ \t]/ { section = $1 " " $2 }
    # The health-check path of each backend of the new render (for the probe of new servers);
    # "-" for a TCP backend: its probe only connects.
    f == 2 && section ~ /^backend / && $1 == "http-check" && $2 == "send" && $5 == "uri" { uri[substr(section, 9)] = $6 }
    f == 2 && /^backend / && $4 == "tcp_services" { uri[$2] = "-" }
    section ~ /^backend / && $1 == "server" {
        key = substr(section, 9) "/" $2
        rest = $0
        sub(/^[ \t]*server[ \t]+[^ \t]+[ \t]+/, "", rest)
        srv[f, key] = rest
        order[f, ++n[f]] = key
        next
    }
    # Other lines: compared one by one (building one string per file would be quadratic).
    f == 1 { body[++m] = $0; next }
    # The first difference settles it: stop reading (a KV change is near the top of 3 MB files).
    f == 2 { if (++m2 > m || body[m2] != $0) { print "reload: more than servers changed"; done = 1; exit } }
    END {
        if (done) exit
        if (f != 2) { print "reload: cannot read both files"; exit }
        if (m2 != m) { print "reload: more than servers changed"; exit }
        out = ""
        for (i = 1; i <= n[1]; i++) { k = order[1, i]; if (!((2, k) in srv)) out = out "del " k "\n" }
        for (i = 1; i <= n[2]; i++) {
            k = order[2, i]
            if (!((1, k) in srv)) {
                b = k; sub(/\/.*/, "", b)
                out = out "add " k " " (b in uri ? uri[b] : "/") " " srv[2, k] "\n"
            }
            else if (srv[1, k] != srv[2, k]) {
                # Only the weight differs (absent is 1, HAProxy'"'"'s default): set at runtime.
                a = srv[1, k]; b = srv[2, k]; w = 1
                if (match(b, / weight [0-9]+/)) w = substr(b, RSTART + 8, RLENGTH - 8)
                gsub(/ weight [0-9]+/, "", a); gsub(/ weight [0-9]+/, "", b)
                if (a != b) { print "reload: settings of server " k " changed"; exit }
                out = out "weight " k " " w "\n"
            }
        }
        printf "%s", out
    }' "$running" "$new")" || exit 1
case "$plan" in reload*) exit 1 ;; esac

# Runs the commands over one connection in the CLI's interactive mode, where each answer ends with
# the "> " prompt; prints one line per command: HAProxy's answer (newlines as spaces), empty when
# there is none.
run() {
    { printf 'prompt\n'; printf '%s\n' "$@"; printf 'quit\n'; } |
        socat -t 10 - "UNIX-CONNECT:$sock" 2>/dev/null |
        awk -v n="$#" 'BEGIN { RS = "\n> " } NR > 1 && NR <= n + 1 { gsub(/\n+/, " "); sub(/ +$/, ""); print }'
}

# A new server starts UP when added. One that does not answer its health path yet (a container
# registered when it starts, before its process listens) must not get requests: probe it once, as
# HAProxy's check would (GET, 2xx or 3xx within 1 s); if it fails, it starts DOWN and enters on its
# first passing check. Probed only in small batches (a bulk registration relies on the checks).
# shellcheck disable=SC2016 # the inner script expands its own arguments
probe() { # address:port path
    local answer
    if [ "$2" = "-" ]; then # a TCP service: it accepts connections
        timeout 1 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}"' "$1" 2>/dev/null
        return
    fi
    answer="$(timeout 1 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}" && printf "GET %s HTTP/1.0\r\nConnection: close\r\n\r\n" "$1" >&3 && head -c 12 <&3' "$1" "$2" 2>/dev/null)"
    [[ "$answer" =~ ^HTTP/1\.[01]\ [23] ]]
}
probe_limit=50

cmds=()
declare -A want=()
adds=0
dels=0
weights=0
not_ready=0
n_adds="$(grep -c '^add ' <<< "$plan")"
# Deletions that waited for connections to end: try again (gone already is fine).
if [ -s "$pending" ]; then
    while read -r s; do [ -n "$s" ] && cmds+=("del server $s") && want[${#cmds[@]}]="pending $s"; done < "$pending"
fi
: > "$pending.new"
while read -r op key rest; do
    case "$op" in
        del)
            cmds+=("set server $key state maint") && want[${#cmds[@]}]="empty"
            cmds+=("del server $key") && want[${#cmds[@]}]="deleted $key"
            dels=$((dels + 1))
            ;;
        add)
            path="${rest%% *}"
            rest="${rest#* }"
            cmds+=("add server $key $rest") && want[${#cmds[@]}]="added $key"
            down=""
            if [[ " $rest " == *" check "* ]]; then
                cmds+=("enable health $key") && want[${#cmds[@]}]="empty"
                if [ "$n_adds" -le "$probe_limit" ] && ! probe "${rest%% *}" "$path"; then down=1; fi
            fi
            cmds+=("enable server $key") && want[${#cmds[@]}]="empty"
            # After "enable server" (leaving maintenance resets the health to UP): DOWN until its
            # first passing check, ~2 s (inter) later.
            if [ -n "$down" ]; then
                cmds+=("set server $key health down") && want[${#cmds[@]}]="empty"
                not_ready=$((not_ready + 1))
            fi
            adds=$((adds + 1))
            ;;
        weight)
            cmds+=("set server $key weight $rest") && want[${#cmds[@]}]="empty"
            weights=$((weights + 1))
            ;;
        "") ;;
        *) exit 1 ;;
    esac
done <<< "$plan"
[ ${#cmds[@]} -gt 0 ] || exit 0
[ -S "$sock" ] || exit 1

i=0
failed=""
declare -A readded=()
while IFS= read -r answer; do
    i=$((i + 1))
    w="${want[$i]:-}"
    case "$w" in
        empty) [ -z "$answer" ] || failed="${cmds[i-1]}: $answer" ;;
        added\ *)
            case "$answer" in
                "New server registered.") ;;
                # Still there, in maintenance, waiting for its connections: the enable commands
                # that follow bring it back into rotation.
                *"Already exists"*) readded[${w#added }]=1 ;;
                *) failed="${cmds[i-1]}: $answer" ;;
            esac ;;
        deleted\ * | pending\ *)
            case "$answer" in
                "Server deleted." | "No such server.") ;;
                *"connections"* | *"still"*) echo "${w#* }" >> "$pending.new" ;;
                *) failed="${cmds[i-1]}: $answer" ;;
            esac ;;
    esac
    [ -z "$failed" ] || break
done < <(run "${cmds[@]}")
if [ -z "$failed" ] && [ "$i" -ne "${#cmds[@]}" ]; then failed="HAProxy answered $i of ${#cmds[@]} commands"; fi
if [ -n "$failed" ]; then
    echo "gateway: runtime API did not apply the render (${failed}); reloading instead" >&2
    exit 1
fi
# A server added back is no longer pending deletion.
LC_ALL=C sort -u "$pending.new" | while read -r s; do [ -n "${readded[$s]:-}" ] || echo "$s"; done > "$pending"
rm -f "$pending.new"
echo "gateway: runtime API: $adds server(s) added ($not_ready not answering their health path yet: in on their first passing check), $dels removed, $weights weight(s) set, no reload ($(( ($(date +%s%N) - started_ns) / 1000000 )) ms)" >&2
exit 0
