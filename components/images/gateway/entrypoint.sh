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

# The largest maxconn HAProxy can run with here (two file descriptors per connection, some
# spare): HAProxy refuses to start with more, so the template falls back to the default above it.
if [ -z "${GATEWAY_MAXCONN_LIMIT:-}" ]; then
    nofile="$(ulimit -Hn)"
    if [ "$nofile" = unlimited ] || [ "$nofile" -gt 2001024 ]; then
        GATEWAY_MAXCONN_LIMIT=1000000
    else
        GATEWAY_MAXCONN_LIMIT=$(( nofile > 3072 ? (nofile - 1024) / 2 : 1024 ))
    fi
fi
export GATEWAY_MAXCONN_LIMIT

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
"$HAPROXY_BIN" -c -q -f "$live"

# -W master-worker: the master re-executes itself on SIGUSR2 and hands the listening sockets to
# the new worker, so reloads lose no connection. -db keeps it in the foreground.
"$HAPROXY_BIN" -W -db -f "$live" -p "$GATEWAY_RUN_DIR/haproxy.pid" -S "$GATEWAY_RUN_DIR/master.sock" &
haproxy_pid=$!

"$CONSUL_TEMPLATE_BIN" \
    -config "$GATEWAY_CONF_DIR/consul-template.hcl" \
    -consul-addr "$CONSUL_HTTP_ADDR" \
    -template "$GATEWAY_CONF_DIR/haproxy.ctmpl:$GATEWAY_RUN_DIR/haproxy.cfg.new:$GATEWAY_RELOAD_BIN" &
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
