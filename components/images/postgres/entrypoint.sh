#!/usr/bin/env bash
# Example TCP service: PostgreSQL that says which container answered.
#   psql "host=<gateway> port=<listenPort> user=demo dbname=demo" -c 'select hostname from instance'
# First start of a container (empty $PGDATA): a cluster of its own, database `demo`, table
# `instance` with this container's hostname, and role `demo`, which may log in without a password
# from any address but can only read that table:
#   - the stack has no per-service secret to hand a password to the container, and the image must
#     not carry one: what a client can reach is made harmless instead (docs/traffic-control.md, "TCP services");
#   - no CREATE or TEMP anywhere, SELECT on `instance` only, no large objects, at most 20 sessions,
#     statement and idle-transaction timeouts as session defaults (PostgreSQL lets every role
#     change its own defaults and password: with a password-less login that gives it nothing);
#   - every other role and database is refused from the network; the superuser `postgres` logs in
#     only over the container's own socket (`docker exec -u postgres <container> psql`).
# Then (and on every later start) PostgreSQL runs in the foreground on $PORT on all addresses.
# The stop signal (SIGINT, the image's STOPSIGNAL) is its fast shutdown.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data/cluster}"
: "${PORT:=5432}"

fail() {
    echo "postgres-demo: $*" >&2
    exit 64
}

if ! [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
    fail "PORT: '$PORT' is not allowed; expected a TCP port from 1 to 65535"
fi
port=$((10#$PORT))

# Debian installs one server version under /usr/lib/postgresql/<major>/bin.
shopt -s nullglob
bins=(/usr/lib/postgresql/*/bin)
shopt -u nullglob
if [ ${#bins[@]} -ne 1 ] || [ ! -x "${bins[0]}/postgres" ]; then
    fail "expected one PostgreSQL server under /usr/lib/postgresql, found: ${bins[*]:-none}"
fi
PATH="${bins[0]}:$PATH"

# The hostname goes into a table: a DNS name only (Docker allows nothing else; checked anyway).
host="$(cat /proc/sys/kernel/hostname)"
[[ "$host" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$ ]] || fail "hostname '$host' is not a DNS name"

marker="$PGDATA/demo-initialized"
if [ -e "$PGDATA/PG_VERSION" ] && [ ! -e "$marker" ]; then
    # A first start that died half way; data that is not ours is never touched either.
    fail "$PGDATA holds a cluster without $marker (a first start that did not finish, or data not made by this image): remove the container and start a new one"
fi

if [ ! -e "$PGDATA/PG_VERSION" ]; then
    echo "postgres-demo: first start of $host: creating the cluster, database demo and role demo (read-only)" >&2
    initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=reject \
        --encoding=UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
    cat >"$PGDATA/pg_hba.conf" <<'HBA'
# Written by the image's entrypoint on the first start.
# TYPE  DATABASE  USER      ADDRESS     METHOD
local   all       postgres              peer
host    demo      demo      0.0.0.0/0   trust
host    demo      demo      ::/0        trust
host    all       all       0.0.0.0/0   reject
host    all       all       ::/0        reject
HBA
    cat >>"$PGDATA/postgresql.conf" <<'CONF'

# Written by the image's entrypoint on the first start.
listen_addresses = '*'
CONF
    # Set up over the socket only: nothing answers on the network until it is done.
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses='' -p $port" --wait --silent start
    psql --no-psqlrc --quiet --port="$port" --username=postgres --dbname=postgres \
        --set=ON_ERROR_STOP=1 --set=host="$host" >/dev/null <<'SQL'
CREATE ROLE demo LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20;
ALTER ROLE demo SET default_transaction_read_only = on;
ALTER ROLE demo SET statement_timeout = '10s';
ALTER ROLE demo SET idle_in_transaction_session_timeout = '60s';
CREATE DATABASE demo;
-- PUBLIC may connect to and create temporary tables in every database by default.
REVOKE ALL ON DATABASE demo, postgres, template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE demo TO demo;
\connect demo
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO demo;
-- Any role may create large objects; this one may not.
REVOKE EXECUTE ON FUNCTION lo_creat(integer), lo_create(oid), lo_from_bytea(oid, bytea), lo_import(text), lo_import(text, oid) FROM PUBLIC;
CREATE TABLE public.instance (hostname text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO public.instance (hostname) VALUES (:'host');
GRANT SELECT ON public.instance TO demo;
SQL
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
    touch "$marker"
fi

echo "postgres-demo: $host serving database demo on port $port" >&2
exec postgres -D "$PGDATA" -p "$port"
