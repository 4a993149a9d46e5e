#!/usr/bin/env bash
# Installs PostgreSQL 15 from Debian and builds pgvector from Debian's source
# package (bookworm ships no binary pgvector). Idempotent: it does nothing when
# both are already installed. Needs root (or sudo) on a Debian machine.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
EXT_DIR=/usr/share/postgresql/${PG_MAJOR}/extension

have_pgvector() { [ -f "${EXT_DIR}/vector.control" ] && [ -x "${PG_BIN}/postgres" ]; }

if have_pgvector; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "provision-postgres: need root (or sudo) to install PostgreSQL ${PG_MAJOR} and pgvector" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive

echo "provision-postgres: installing PostgreSQL ${PG_MAJOR} and build tools" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" \
  build-essential dpkg-dev >/dev/null

if [ ! -f "${EXT_DIR}/vector.control" ]; then
  echo "provision-postgres: building pgvector from Debian's source package" >&2
  # A private source list so the machine's own apt configuration is untouched.
  work=$(mktemp -d)
  chmod 755 "$work" # apt drops to the _apt user to download
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists" "$work/sources.list.d"
  echo "deb-src http://deb.debian.org/debian trixie main" >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/sources.list.d"
    -o "Dir::State::Lists=$work/lists")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" source -qq --download-only pgvector >/dev/null)
  (cd "$work" && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  make -s -C "$work/src" PG_CONFIG="${PG_BIN}/pg_config" >/dev/null
  $SUDO make -s -C "$work/src" PG_CONFIG="${PG_BIN}/pg_config" install >/dev/null
fi

have_pgvector || { echo "provision-postgres: pgvector did not install" >&2; exit 1; }
echo "provision-postgres: PostgreSQL ${PG_MAJOR} with pgvector is ready" >&2
