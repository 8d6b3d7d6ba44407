#!/usr/bin/env bash
# Docker socket proxy entrypoint: HAProxy with haproxy.cfg in front of the engine's socket, run
# as an unprivileged user whenever the socket lets one in.
#   - socket group-writable (the usual root:docker 0660, or a rootless engine's): user nobody
#     (65534) with the socket's group as its only group;
#   - else, socket writable by a non-root owner only: that owner;
#   - else (root-only socket): root, stated in the log, still without any capability.
# The container starts as root only for this, with CAP_SETUID/CAP_SETGID to switch and
# CAP_SETPCAP to empty the bounding set: HAProxy runs with no capability and no_new_privs. Which group
# owns the socket differs from host to host, so it is read here rather than fixed in the image.
# Everything is set by environment so the same script runs in the image and in the test suite.
set -euo pipefail

: "${DOCKER_SOCKET:=/var/run/docker.sock}"
: "${SOCKET_PROXY_BIND:=*}"
: "${SOCKET_PROXY_PORT:=2375}"
: "${SOCKET_PROXY_CONF:=/etc/socket-proxy/haproxy.cfg}"
: "${SOCKET_PROXY_USER:=65534}"
: "${HAPROXY_BIN:=haproxy}"
export DOCKER_SOCKET SOCKET_PROXY_BIND SOCKET_PROXY_PORT

if [ ! -S "$DOCKER_SOCKET" ]; then
    echo "socket-proxy: $DOCKER_SOCKET is not a socket: mount the Docker engine's socket there" >&2
    exit 66
fi
"$HAPROXY_BIN" -c -q -f "$SOCKET_PROXY_CONF"

owner="$(stat -c %u "$DOCKER_SOCKET")"
group="$(stat -c %g "$DOCKER_SOCKET")"
mode="$(stat -c %a "$DOCKER_SOCKET")"
if (( (8#$mode & 8#060) == 8#060 )); then
    run_uid="$SOCKET_PROXY_USER" run_gid="$group"
elif (( (8#$mode & 8#600) == 8#600 )) && [ "$owner" != 0 ]; then
    run_uid="$owner" run_gid="$group"
else
    run_uid=0 run_gid=0
    echo "socket-proxy: $DOCKER_SOCKET (mode $mode, owner $owner:$group) is writable by root only: running HAProxy as root, without capabilities" >&2
fi

if [ "$(id -u)" != 0 ]; then
    # Started unprivileged already (docker run --user): it cannot switch, and needs not.
    echo "socket-proxy: forwarding to $DOCKER_SOCKET as uid $(id -u) gid $(id -g) (as started)" >&2
    exec "$HAPROXY_BIN" -db -f "$SOCKET_PROXY_CONF"
fi
echo "socket-proxy: forwarding to $DOCKER_SOCKET (mode $mode, owner $owner:$group) as uid $run_uid gid $run_gid" >&2
exec setpriv --reuid="$run_uid" --regid="$run_gid" --clear-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs \
    -- "$HAPROXY_BIN" -db -f "$SOCKET_PROXY_CONF"
