#!/usr/bin/env bash
# Runs the TypeScript client's tests (node --test) against a real worker:
# builds ./cmd/worker into a temporary folder, starts it with an embedded
# nats-server on a free port, a subject prefix, a PostgreSQL schema and a
# Redis key prefix of its own, runs the compiled tests, and stops it.
# `make test-ts` runs it (after npm ci and tsc); it needs PostgreSQL with
# pgvector and Redis (make services), Go and Node 20.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(cd ../.. && pwd)

tmp=$(mktemp -d)
pg=${POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
schema="ts_$$_$RANDOM"
prefix="tsc$$."
port=""
for p in $(seq 14422 14522); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "test-ts: no free port" >&2; exit 1; }
worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  psql -q "$pg" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$redis" --scan --pattern "$schema:*" 2>/dev/null | xargs -r redis-cli -u "$redis" DEL >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$root" && go build -o "$tmp/worker" ./cmd/worker)
psql -q "$pg" -c "CREATE SCHEMA $schema" >/dev/null
sep='?'; case "$pg" in *\?*) sep='&';; esac
env POSTGRES_URL="$pg${sep}search_path=$schema,public" POSTGRES_POOL_SIZE=4 POSTGRES_MAX_OVERFLOW=4 \
  NATS_URL="nats://127.0.0.1:$port" NATS_EMBEDDED=true NATS_EMBEDDED_STORE_DIR="$tmp/js" \
  SUBJECT_PREFIX="$prefix" SERVICE_NAME="dbworker_ts" \
  DEPLOYMENT_MODE=distributed REDIS_URL="$redis" STATE_KEY_PREFIX="$schema:" \
  VECTOR_SCHEMA="$schema" MAINT_SCHEMAS="$schema" PGVECTOR_DIMENSION=3 \
  LOG_LEVEL=warn "$tmp/worker" >"$tmp/worker.log" 2>&1 &
worker_pid=$!

export DBWORKER_TEST_NATS_URL="nats://127.0.0.1:$port"
export DBWORKER_TEST_PREFIX="$prefix"
export DBWORKER_TEST_SCHEMA="$schema"
status=0
node --test --test-concurrency=1 dist/test/*.test.js || status=$?
# The README's example runs too, against the same worker.
if [ "$status" -eq 0 ]; then
  NATS_URL="$DBWORKER_TEST_NATS_URL" SUBJECT_PREFIX="$prefix" node dist/examples/quickstart.js >"$tmp/example.log" 2>&1 || status=$?
  # The lines whose numbers must be exact, and the stream's count.
  if [ "$status" -ne 0 ] || ! grep -q "streamed rows: 50000" "$tmp/example.log" ||
    ! grep -q "^big: 9007199254740993n price: 1.10$" "$tmp/example.log" ||
    ! grep -q "^counter: 9007199254740993n$" "$tmp/example.log"; then
    echo "test-ts: examples/quickstart.js failed:" >&2; cat "$tmp/example.log" >&2; status=1
  else
    echo "ok - examples/quickstart.js"; cat "$tmp/example.log"
  fi
fi
if [ "$status" -ne 0 ]; then
  echo "test-ts: the worker's log:" >&2
  tail -n 50 "$tmp/worker.log" >&2
fi
exit "$status"
