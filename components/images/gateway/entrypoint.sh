#!/usr/bin/env bash
# Gateway entrypoint: HAProxy in master-worker mode plus consul-template, supervised together.
# HAProxy starts at once on a bootstrap config (every route answers 503 until Consul is read),
# so the gateway listens even while Consul is down; consul-template then renders the real
# config, and reload.sh validates it and reloads HAProxy without dropping connections.
# Everything is set by environment so the same script runs in the image and in the test suite.
set -euo pipefail

: "${GATEWAY_CONF_DIR:=/etc/gateway}"          # haproxy.ctmpl, consul-template.hcl, bootstrap.cfg
: "${GATEWAY_RUN_DIR:=/run/gateway}"           # rendered config, pid file, sockets
: "${GATEWAY_HTTP_PORT:=80}"
: "${GATEWAY_STATS_PORT:=1936}"
: "${GATEWAY_BIND:=*}"
: "${CONSUL_HTTP_ADDR:=consul:8500}"
: "${HAPROXY_BIN:=haproxy}"
: "${CONSUL_TEMPLATE_BIN:=consul-template}"
: "${GATEWAY_RELOAD_BIN:=$(dirname "$(readlink -f "$0")")/reload.sh}"
export GATEWAY_CONF_DIR GATEWAY_RUN_DIR GATEWAY_HTTP_PORT GATEWAY_STATS_PORT GATEWAY_BIND HAPROXY_BIN

# The file descriptors HAProxy may use (it raises its soft limit up to this): the template sizes
# maxconn so that connections, health checks and listeners fit (haproxy.ctmpl, "File descriptors").
# GATEWAY_MAXCONN_LIMIT, when set, caps maxconn further.
if [ -z "${GATEWAY_FD_LIMIT:-}" ]; then
    GATEWAY_FD_LIMIT="$(ulimit -Hn)"
    if [ "$GATEWAY_FD_LIMIT" = unlimited ] || [ "$GATEWAY_FD_LIMIT" -gt 4194304 ]; then GATEWAY_FD_LIMIT=4194304; fi
fi
export GATEWAY_FD_LIMIT GATEWAY_MAXCONN_LIMIT="${GATEWAY_MAXCONN_LIMIT:-}"
command -v socat >/dev/null || { echo "gateway: socat is required (runtime API: instance changes without reloads)" >&2; exit 69; }

# Trust rules (haproxy.ctmpl): the networks servers may lie in, the node addresses and ports no
# server may use, the proxies whose forwarding headers are believed: set by the stack
# (components/gateway.ts). The gateway's own addresses (no server may point back at it) are
# read from the kernel's table of local addresses, unless given.
if [ -z "${GATEWAY_OWN_ADDRESSES:-}" ]; then
    own=""
    if [ -r /proc/net/fib_trie ]; then
        # "|-- 172.28.0.3" followed by "/32 host LOCAL": an address of this network namespace.
        prev=""
        while read -r a b c _; do
            [ "$a $b $c" = "/32 host LOCAL" ] && [[ " $own " != *" $prev "* ]] && own="$own $prev"
            prev="$b"
        done < /proc/net/fib_trie
    fi
    GATEWAY_OWN_ADDRESSES="${own# }"
    [ -n "$GATEWAY_OWN_ADDRESSES" ] || echo "gateway: cannot read this container's addresses (/proc/net/fib_trie); set GATEWAY_OWN_ADDRESSES" >&2
fi
export GATEWAY_OWN_ADDRESSES GATEWAY_BACKEND_NETWORKS="${GATEWAY_BACKEND_NETWORKS:-}" GATEWAY_NODE_NETWORKS="${GATEWAY_NODE_NETWORKS:-}" \
    GATEWAY_NODE_PORTS="${GATEWAY_NODE_PORTS:-}" GATEWAY_TRUSTED_PROXIES="${GATEWAY_TRUSTED_PROXIES:-}"
[ -n "$GATEWAY_BACKEND_NETWORKS" ] || echo "gateway: GATEWAY_BACKEND_NETWORKS is empty: no instance will be routed" >&2

# No default credentials: the stats page and metrics need a user and a password from outside.
if [ -z "${STATS_USER:-}" ] || [ -z "${STATS_PASSWORD:-}" ]; then
    echo "gateway: STATS_USER and STATS_PASSWORD must be set (the stats page has no default password)" >&2
    exit 64
fi
export STATS_USER STATS_PASSWORD

mkdir -p "$GATEWAY_RUN_DIR"
live="$GATEWAY_RUN_DIR/haproxy.cfg"
cp "$GATEWAY_CONF_DIR/bootstrap.cfg" "$live"
# A render left from before a restart would make consul-template see "no change" and never
# run reload.sh: HAProxy would stay on the bootstrap config.
rm -f "$GATEWAY_RUN_DIR/haproxy.cfg.new"
# Skipped instances are logged once per start (reload.sh keeps the list it logged here); the
# runtime API's and the last reload's bookkeeping belong to the HAProxy that ran before.
rm -f "$GATEWAY_RUN_DIR/notices" "$GATEWAY_RUN_DIR/runtime-pending" "$GATEWAY_RUN_DIR/latest-render-not-running" \
    "$GATEWAY_RUN_DIR/server-state"
"$HAPROXY_BIN" -c -q -f "$live"

# -W master-worker: the master re-executes itself on SIGUSR2 and hands the listening sockets to
# the new worker, so reloads lose no connection. -db keeps it in the foreground.
"$HAPROXY_BIN" -W -db -f "$live" -p "$GATEWAY_RUN_DIR/haproxy.pid" -S "$GATEWAY_RUN_DIR/master.sock" &
haproxy_pid=$!

# Consul: HTTPS verified against the cluster's CA, with the gateway's ACL token. consul-template
# reads the token from CONSUL_HTTP_TOKEN itself (never a command-line flag); its TLS settings are
# flags, built here from the variables Consul's own clients read.
consul_tls=()
case "${CONSUL_HTTP_SSL:-false}" in
    true|1)
        [ -r "${CONSUL_CACERT:-}" ] || { echo "gateway: CONSUL_HTTP_SSL is on but CONSUL_CACERT (${CONSUL_CACERT:-unset}) is not a readable CA file" >&2; exit 64; }
        consul_tls=(-consul-ssl -consul-ssl-verify -consul-ssl-ca-cert "$CONSUL_CACERT")
        [ -z "${CONSUL_TLS_SERVER_NAME:-}" ] || consul_tls+=(-consul-ssl-server-name "$CONSUL_TLS_SERVER_NAME")
        ;;
    false|0) ;;
    *) echo "gateway: CONSUL_HTTP_SSL=${CONSUL_HTTP_SSL} is not understood; use true or false" >&2; exit 64 ;;
esac
if [ -z "${CONSUL_HTTP_TOKEN:-}" ] && [ -z "${CONSUL_HTTP_TOKEN_FILE:-}" ]; then
    echo "gateway: no Consul ACL token (CONSUL_HTTP_TOKEN): with ACLs on, Consul answers with an empty catalog and every route 404s" >&2
fi

# The template, its output and its command, with a command timeout (-template has none: the
# default 30 s, after which consul-template stops, would take the gateway down with a slow reload
# of thousands of services; reload.sh bounds its own waits well below this).
cat > "$GATEWAY_RUN_DIR/templates.hcl" <<EOF
template {
  source          = "$GATEWAY_CONF_DIR/haproxy.ctmpl"
  destination     = "$GATEWAY_RUN_DIR/haproxy.cfg.new"
  command         = ["$GATEWAY_RELOAD_BIN"]
  command_timeout = "5m"
}
EOF
"$CONSUL_TEMPLATE_BIN" \
    -config "$GATEWAY_CONF_DIR/consul-template.hcl" \
    -config "$GATEWAY_RUN_DIR/templates.hcl" \
    -consul-addr "$CONSUL_HTTP_ADDR" \
    "${consul_tls[@]}" &
template_pid=$!

stop() {
    kill -TERM "$template_pid" 2>/dev/null || true
    kill -USR1 "$haproxy_pid" 2>/dev/null || true   # soft stop: finish in-flight requests
    wait "$haproxy_pid" 2>/dev/null || true
    exit 0
}
trap stop TERM INT

# If either process dies, stop the other and exit non-zero so the container restarts.
set +e
wait -n "$haproxy_pid" "$template_pid"
status=$?
echo "gateway: a supervised process exited (status $status); stopping" >&2
kill -TERM "$template_pid" "$haproxy_pid" 2>/dev/null
wait
exit $((status == 0 ? 1 : status))
