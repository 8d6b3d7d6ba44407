#!/bin/sh
# Test-only stand-in for the official image's docker-entrypoint.sh, doing what the program relies
# on: `agent` gets -data-dir=/consul/data and -config-dir=/consul/config (where the program
# uploads agent.json), and Consul runs as the unprivileged `consul` user (CONSUL_UID/CONSUL_GID).
set -e
CONSUL_DATA_DIR="${CONSUL_DATA_DIR:-/consul/data}"
CONSUL_CONFIG_DIR="${CONSUL_CONFIG_DIR:-/consul/config}"
case "$1" in
    agent) shift; set -- consul agent -data-dir="$CONSUL_DATA_DIR" -config-dir="$CONSUL_CONFIG_DIR" "$@" ;;
    -*) set -- consul "$@" ;;
esac
if [ "$1" = consul ] && [ "$(id -u)" = 0 ]; then
    uid="${CONSUL_UID:-$(id -u consul)}"
    gid="${CONSUL_GID:-$(id -g consul)}"
    [ "$(stat -c %u "$CONSUL_DATA_DIR")" = "$uid" ] || chown "$uid:$gid" "$CONSUL_DATA_DIR"
    [ "$(stat -c %u "$CONSUL_CONFIG_DIR")" = "$uid" ] || chown "$uid:$gid" "$CONSUL_CONFIG_DIR"
    exec setpriv --reuid "$uid" --regid "$gid" --clear-groups "$@"
fi
exec "$@"
