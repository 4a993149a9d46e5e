#!/usr/bin/env bash
# Runs a private PostgreSQL cluster in a directory of our own, on its own port,
# as the postgres user when called as root (PostgreSQL refuses to run as root).
#
#   pg-cluster.sh start DIR PORT   initdb if DIR is empty, start, create the pgvector extension in template1
#   pg-cluster.sh stop DIR         fast shutdown
#   pg-cluster.sh url PORT [DB]    print the connection URL
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
PG_USER=${PG_SUPERUSER:-postgres}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    # runuser keeps our environment minimal and needs no password.
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}
case "$cmd" in
start)
  dir=$2 port=$3
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$PG_BIN/initdb" -D "$dir" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
maintenance_work_mem = 256MB
logging_collector = off
CONF
  fi
  if ! as_owner "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_owner "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null
  fi
  as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d template1 -qAt \
    -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
  ;;
stop)
  dir=$2
  if [ -f "$dir/postmaster.pid" ]; then
    as_owner "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null
  fi
  ;;
url)
  port=$2 db=${3:-postgres}
  echo "postgres://${PG_USER}@127.0.0.1:${port}/${db}?sslmode=disable"
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR | url PORT [DB]" >&2
  exit 2
  ;;
esac
