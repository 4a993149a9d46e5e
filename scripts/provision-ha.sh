#!/usr/bin/env bash
# Installs what a throwaway high-availability PostgreSQL needs
# (internal/tstest/patroni): PostgreSQL 15 with pgvector (scripts/provision-postgres.sh),
# and Debian's patroni and etcd-server. Idempotent: it does nothing when all
# are installed. The packages' own services (a system-wide etcd, a patroni
# reading /etc/patroni) are neither left running nor enabled: the clusters
# this project starts are private, in a temporary directory, on free ports.
# Needs root (or sudo) on a Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision-postgres.sh

have_ha() { command -v patroni >/dev/null && command -v etcd >/dev/null; }

if have_ha; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "provision-ha: need root (or sudo) to install patroni and etcd-server" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive

# A policy-rc.d that refuses every start while the packages install, so that
# their maintainer scripts start no system-wide etcd (on machines without one
# of their own; Debian's docker images already have one that does the same).
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

echo "provision-ha: installing patroni and etcd-server" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq patroni etcd-server >/dev/null

# Neither enabled nor running system-wide.
for svc in etcd patroni; do
  if command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
  $SUDO rm -f "/etc/systemd/system/multi-user.target.wants/$svc.service"
  if [ -x "/etc/init.d/$svc" ]; then
    $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null; then $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
  fi
done

have_ha || { echo "provision-ha: patroni or etcd did not install" >&2; exit 1; }
echo "provision-ha: patroni $(patroni --version 2>/dev/null | awk '{print $2}') and etcd are ready" >&2
