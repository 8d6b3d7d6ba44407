#!/usr/bin/env bash
# Installs the real programs the tests run, pinned to the versions the stack ships:
#   consul           built from its Go module (test/tools/consul/go.mod, go.sum pin every dependency)
#   consul-template  built from its Go module (test/tools/consul-template/go.mod), with --bench only:
#                    the benchmark runs the previous design of the gateway beside the controller
#   haproxy, wrk     distribution packages (on Debian bookworm HAProxy 2.6 LTS, the package the gateway image installs)
#   postgresql       distribution packages (server and psql: the TCP service of the traffic tests)
# Binaries are cached under ${XDG_CACHE_HOME:-~/.cache}/service-discovery/<tool>-<version>/ and
# rebuilt only when the pinned version changes. Prints nothing but progress on stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/service-discovery"
mkdir -p "$cache"

log() { printf '[tools] %s\n' "$*" >&2; }

bench=""
[ "${1:-}" = "--bench" ] && bench=1
# The single sources of truth: the config module, and the benchmark's previous design for consul-template.
ct_version="$(sed -n 's/^\tgithub.com\/hashicorp\/consul-template v\([0-9.]*\).*/\1/p' "$root/test/tools/consul-template/go.mod" | head -1)"
consul_version="$(sed -n 's/^export const CONSUL_VERSION = "\(.*\)";$/\1/p' "$root/components/config/schema.ts")"
[ -n "$ct_version" ] && [ -n "$consul_version" ] || { echo "cannot read pinned versions" >&2; exit 1; }

check_pin() { # module file, module path, version
    if ! grep -q "$2 v$3\b" "$1"; then
        echo "test/tools: $1 does not pin $2 v$3 (the version the stack ships); run: (cd $(dirname "$1") && go get -tool $2@v$3)" >&2
        exit 1
    fi
}
check_pin "$root/test/tools/consul/go.mod" github.com/hashicorp/consul "$consul_version"

build_go_tool() { # name, version, module dir, package
    local name="$1" version="$2" dir="$3" pkg="$4" out="$cache/$1-$2"
    if [ -x "$out/$name" ]; then return; fi
    command -v go >/dev/null || { echo "go is required to build $name (install Go >= 1.26)" >&2; exit 1; }
    log "building $name $version from its Go module (first run only; Consul takes ~3-4 min on 2 cores)"
    mkdir -p "$out.tmp"
    # Three modules Consul needs are served by the module proxy but unknown to the checksum
    # database; go.sum (committed) pins their hashes, so the build stays verified.
    (cd "$dir" && GOFLAGS=-mod=readonly \
        GONOSUMDB=github.com/hashicorp/consul/envoyextensions,github.com/hashicorp/consul/troubleshoot,github.com/hashicorp/hcp-sdk-go \
        go build -trimpath -o "$out.tmp/$name" "$pkg")
    rm -rf "$out" && mv "$out.tmp" "$out"
}
build_go_tool consul "$consul_version" "$root/test/tools/consul" github.com/hashicorp/consul
[ -z "$bench" ] || build_go_tool consul-template "$ct_version" "$root/test/tools/consul-template" github.com/hashicorp/consul-template

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

# The control-plane tests' node network (test/controlplane/harness.ts): the gateway never routes
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
$([ -z "$bench" ] && [ ! -x "$cache/consul-template-$ct_version/consul-template" ] || echo "CONSUL_TEMPLATE_BIN=$cache/consul-template-$ct_version/consul-template")
HAPROXY_BIN=$(command -v haproxy)
WRK_BIN=$(command -v wrk)
EOF
log "ready: consul $consul_version${bench:+, consul-template $ct_version (benchmark)}, $(haproxy -v | head -1 | cut -d' ' -f1-3)"
