#!/usr/bin/env bash
# Makes sure the services dbworker needs are up on this machine, installing or
# starting what is missing (Debian/Ubuntu, as root):
#   PostgreSQL with pgvector on 127.0.0.1:5432
#   Redis on 127.0.0.1:6379
#   NATS with JetStream on 127.0.0.1:4222 (unless SKIP_NATS=1: the worker can embed one)
#   the pgbouncer binary (not started: the tests start their own, in transaction mode)
#   the nats-server program itself, which the fleet tests start as a cluster
#   of processes, even when something else already answers on 4222
#   Node.js and npm, for the TypeScript client's tests (clients/ts)
# Services that already answer are used as they are.
set -euo pipefail

log() { printf 'ensure-services: %s\n' "$*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  log "$2 did not come up on port $1"; return 1
}

apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then log "need root to install $*"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  log "installing $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
if ! port_open 5432; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib
    fresh_pg=1
  fi
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  [ -n "$ver" ] || { log "no PostgreSQL cluster found under /etc/postgresql"; exit 1; }
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
  wait_port 5432 PostgreSQL
  if [ -n "${fresh_pg:-}" ]; then
    # A fresh install asks for a password over TCP: give the development
    # superuser the one the README's defaults use.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
fi
bash "$here/install-pgvector.sh"

# --- PgBouncer --------------------------------------------------------------
# Installed only: tests start pgbouncer processes of their own
# (testenv.NewPgBouncer). Debian's package may start a pgbouncer of its own on
# port 6432 where a service manager runs; nothing here relies on it.
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  apt_install pgbouncer
fi

# --- Redis ------------------------------------------------------------------
if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/dbworker.log
  wait_port 6379 Redis
fi

# --- NATS -------------------------------------------------------------------
nats_bin() { command -v nats-server || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }; }
if [ -z "${SKIP_NATS:-}" ] && [ -z "$(nats_bin)" ]; then
  apt_install nats-server
fi
if [ -z "${SKIP_NATS:-}" ] && ! port_open 4222; then
  log "starting nats-server with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(nats_bin)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
fi
# --- Node.js (the TypeScript client's tests, make test-ts) -------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
log "PostgreSQL, Redis and NATS are up; pgbouncer and Node.js are installed"
