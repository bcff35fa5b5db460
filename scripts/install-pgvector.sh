#!/usr/bin/env bash
# Builds and installs pgvector for the local PostgreSQL cluster from Debian's own
# source package (pgvector is not in Debian 12's archive, but trixie carries it).
# Skips when the extension is already available. Needs root.
#
#   PG_CONFIG   pg_config of the target cluster (default: newest under /usr/lib/postgresql)
set -euo pipefail

log() { printf 'install-pgvector: %s\n' "$*" >&2; }

if [ -z "${PG_CONFIG:-}" ]; then
  PG_CONFIG=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n1 || true)
fi
[ -x "${PG_CONFIG:-}" ] || { log "no pg_config found (is PostgreSQL installed?)"; exit 1; }
sharedir=$("$PG_CONFIG" --sharedir)
if [ -f "$sharedir/extension/vector.control" ]; then
  log "already installed in $sharedir"
  exit 0
fi
pgmajor=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

export DEBIAN_FRONTEND=noninteractive
need=()
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] || need+=("postgresql-server-dev-$pgmajor")
if [ ${#need[@]} -gt 0 ]; then
  log "installing build dependencies: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A private apt configuration, so the machine's own sources stay untouched.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
chmod 755 "$work"  # apt drops to _apt for downloads
cat >"$work/sources.list" <<SRC
deb-src http://deb.debian.org/debian trixie main
SRC
aptopts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::Archives=$work/archives"
  -o "APT::Get::Only-Source=true"
)
log "fetching the pgvector source package from trixie"
apt-get "${aptopts[@]}" update -qq
(cd "$work" && apt-get "${aptopts[@]}" source -qq pgvector >/dev/null)
src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
[ -n "$src" ] || { log "apt-get source produced no pgvector directory"; exit 1; }

log "building $(basename "$src") for PostgreSQL $pgmajor"
# OPTFLAGS= keeps the build portable (no -march=native).
make -s -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
make -s -C "$src" PG_CONFIG="$PG_CONFIG" install >/dev/null
log "installed into $sharedir/extension"
