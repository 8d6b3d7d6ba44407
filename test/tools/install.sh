#!/usr/bin/env bash
# Installs the real programs the tests run, pinned to the versions the stack ships:
#   consul           built from its Go module (test/tools/consul/go.mod, go.sum pin every dependency)
#   pebble           Let's Encrypt's ACME test server, built from its Go module (test/tools/pebble/go.mod):
#                    the gateway's certificates are ordered from it in the control-plane tests
#   consul-template  built from its Go module (test/tools/consul-template/go.mod), with --bench only:
#                    the benchmark runs the previous design of the gateway beside the controller
#   actionlint       built from its Go module by test/tools/actionlint.sh (npm test's workflow check)
#   haproxy, wrk     distribution packages (on Debian bookworm HAProxy 2.6 LTS, the package the gateway image installs)
#   postgresql       distribution packages (server and psql: the TCP service of the traffic tests)
# Binaries are cached under ${XDG_CACHE_HOME:-~/.cache}/service-discovery/<tool>-<version>/ and
# rebuilt only when the pinned version changes. Prints nothing but progress on stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/service-discovery"
mkdir -p "$cache"

log() { printf '[tools] %s\n' "$*" >&2; }

# Minutes and seconds since a $SECONDS value: "45s", "3m07s".
since() { local s=$((SECONDS - $1)); if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }

# Progress of a long Go command: reads its output on stdin and counts the lines that match
# <counted> (an extended regex), reporting "<what>: <n>/<total> <unit> (<time>)" on stderr at most
# every $progress_seconds, also while no line comes (a long package, the link). Lines that do not
# match (errors) go through to stderr; the last line says how many there were in how long.
progress_seconds=10
progress() { # what, unit, total (empty when unknown), counted
    local what="$1" unit="$2" total="$3" counted="$4" n=0 start=$SECONDS last=$SECONDS line pending="" rc note
    while :; do
        rc=0
        IFS= read -r -t "$progress_seconds" line || rc=$?
        if [ "$rc" -gt 128 ]; then
            # Nothing for $progress_seconds (a partial line waits for its end).
            pending+="$line"
        else
            line="$pending$line" pending=""
            [ "$rc" -eq 0 ] || [ -n "$line" ] || break
            if [[ "$line" =~ $counted ]]; then n=$((n + 1)); else printf '%s\n' "$line" >&2; fi
        fi
        if [ $((SECONDS - last)) -ge "$progress_seconds" ]; then
            note=""
            [ -z "$total" ] || [ "$n" -lt "$total" ] || note=", linking"
            log "$what: $n${total:+/$total} $unit$note ($(since "$start"))"
            last=$SECONDS
        fi
        [ "$rc" -eq 0 ] || [ "$rc" -gt 128 ] || break
    done
    log "$what: $n $unit in $(since "$start")"
}

# --bench: also consul-template (the benchmark's previous design). --go-only: only the Go builds
# (no Debian packages, no tools.env): .ci/run starts them before it installs anything else.
bench="" go_only=""
case "${1:-}" in
    --bench) bench=1 ;;
    --go-only) go_only=1 ;;
    "") ;;
    *) echo "test/tools/install.sh: unknown option ${1} (allowed: --bench, --go-only)" >&2; exit 2 ;;
esac
# The single sources of truth: the config module, and the benchmark's previous design for consul-template.
pebble_version="$(sed -n 's/^\tgithub.com\/letsencrypt\/pebble\/v2 v\([0-9.]*\).*/\1/p' "$root/test/tools/pebble/go.mod" | head -1)"
ct_version="$(sed -n 's/^\tgithub.com\/hashicorp\/consul-template v\([0-9.]*\).*/\1/p' "$root/test/tools/consul-template/go.mod" | head -1)"
consul_version="$(sed -n 's/^export const CONSUL_VERSION = "\(.*\)";$/\1/p' "$root/components/config/schema.ts")"
if [ -z "$ct_version" ] || [ -z "$consul_version" ] || [ -z "$pebble_version" ]; then echo "cannot read pinned versions" >&2; exit 1; fi

check_pin() { # module file, module path, version
    if ! grep -q "$2 v$3\b" "$1"; then
        echo "test/tools: $1 does not pin $2 v$3 (the version the stack ships); run: (cd $(dirname "$1") && go get -tool $2@v$3)" >&2
        exit 1
    fi
}
check_pin "$root/test/tools/consul/go.mod" github.com/hashicorp/consul "$consul_version"

build_go_tool() { # name, version, module dir, package
    local name="$1" version="$2" dir="$3" pkg="$4" out="$cache/$1-$2" start=$SECONDS todo status=0
    if [ -x "$out/$name" ]; then return; fi
    command -v go >/dev/null || { echo "go is required to build $name (install Go >= 1.26)" >&2; exit 1; }
    log "building $name $version from its Go module (first run only; Consul takes ~3-4 min on 2 cores)"
    mkdir -p "$out.tmp"
    # Three modules Consul needs are served by the module proxy but unknown to the checksum
    # database; go.sum (committed) pins their hashes, so the build stays verified.
    local goenv=(GOFLAGS=-mod=readonly
        "GONOSUMDB=github.com/hashicorp/consul/envoyextensions,github.com/hashicorp/consul/troubleshoot,github.com/hashicorp/hcp-sdk-go")
    # No debug information (DWARF, symbol table): the tests never debug these binaries, and leaving
    # it out makes the compile and above all the single-threaded link of Consul shorter.
    local goflags=(-trimpath "-gcflags=all=-dwarf=false" "-ldflags=-s -w")
    # First the packages left to compile (Go's build cache holds the others): listing them
    # downloads the modules missing from the module cache, each announced "go: downloading ...".
    log "$name: downloading the modules it needs (if any) and listing its packages"
    (cd "$dir" && env "${goenv[@]}" go list "${goflags[@]}" -deps -f '{{.Stale}}' "$pkg" >"$out.tmp/stale") 2>&1 |
        progress "$name" "modules downloaded" "" '^go: downloading ' || status=$?
    [ "$status" -eq 0 ] || { log "$name: listing its packages failed (exit $status)"; exit "$status"; }
    todo="$(grep -c '^true$' "$out.tmp/stale" || true)"
    # `go build -v` names each package as it compiles it (a bare import path on stderr).
    log "$name: compiling $todo packages"
    (cd "$dir" && env "${goenv[@]}" go build -v "${goflags[@]}" -o "$out.tmp/$name" "$pkg") 2>&1 |
        progress "$name" "packages compiled" "$todo" '^[^[:space:]:#]+$' || status=$?
    [ "$status" -eq 0 ] || { log "$name: go build failed (exit $status)"; exit "$status"; }
    rm -f "$out.tmp/stale"
    rm -rf "$out" && mv "$out.tmp" "$out"
    log "built $name $version in $(since "$start")"
}
# actionlint first (seconds; its own lock: npm test's workflow check waits for this build instead
# of making a second), then Consul (minutes).
bash "$root/test/tools/actionlint.sh" --build-only
# One build at a time: a second install.sh (npm test after .ci/run's early --go-only start) waits
# here for the first, then finds the binaries built.
exec 9>"$cache/.go-build.lock"
if ! flock -n 9; then
    log "waiting for another test/tools/install.sh to finish its Go builds"
    flock 9
fi
build_go_tool consul "$consul_version" "$root/test/tools/consul" github.com/hashicorp/consul
build_go_tool pebble "$pebble_version" "$root/test/tools/pebble" github.com/letsencrypt/pebble/v2/cmd/pebble
[ -z "$bench" ] || build_go_tool consul-template "$ct_version" "$root/test/tools/consul-template" github.com/hashicorp/consul-template
exec 9>&-
[ -z "$go_only" ] || exit 0

need_apt=()
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v python3 >/dev/null || need_apt+=(python3)
# PostgreSQL, the TCP service of the traffic tests: its server (initdb, postgres under
# /usr/lib/postgresql/<major>/bin) and psql.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/psql" >/dev/null ||
    need_apt+=(postgresql postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The control-plane tests' node network (test/controlplane/harness/network.ts): the gateway never routes
# to loopback, so test backends listen on addresses of the benchmarking range 198.18.0.0/15,
# put on the loopback interface (reachable from this machine only).
# (The list is read whole, not piped into `grep -q`: under pipefail, grep leaving early can kill
# `ip` with SIGPIPE and make a present address look absent.)
on_lo() { local addrs; addrs="$(ip -4 -o addr show dev lo)"; [[ "$addrs" == *" $1/"* ]]; }
for address in 198.18.0.1 198.18.0.2 198.18.1.1; do
    if ! on_lo "$address"; then
        if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
        log "adding $address/32 to the loopback interface (control-plane tests)"
        # Another run may add it at the same time: only its absence afterwards is an error.
        $sudo ip addr add "$address/32" dev lo 2>/dev/null || on_lo "$address" ||
            { echo "cannot add $address/32 to the loopback interface (needs root: sudo ip addr add $address/32 dev lo)" >&2; exit 1; }
    fi
done

# The harness reads this file to find the binaries.
cat > "$cache/tools.env" <<EOF
CONSUL_BIN=$cache/consul-$consul_version/consul
PEBBLE_BIN=$cache/pebble-$pebble_version/pebble
$([ -z "$bench" ] && [ ! -x "$cache/consul-template-$ct_version/consul-template" ] || echo "CONSUL_TEMPLATE_BIN=$cache/consul-template-$ct_version/consul-template")
HAPROXY_BIN=$(command -v haproxy)
WRK_BIN=$(command -v wrk)
EOF
log "ready: consul $consul_version${bench:+, consul-template $ct_version (benchmark)}, $(haproxy -v | head -1 | cut -d' ' -f1-3)"
