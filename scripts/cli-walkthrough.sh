#!/usr/bin/env bash
# Runs the walkthrough of docs/nats-cli.md with the real nats CLI against a
# real worker (with an embedded nats-server on a free port, over a schema of
# its own), and fails on any unexpected answer. `make cli-walkthrough` and CI
# run it; it needs PostgreSQL (make services) and Go.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_CLI_VERSION=v0.5.0
export PATH="$PATH:$(go env GOPATH)/bin"
if ! nats --version 2>/dev/null | grep -q "${NATS_CLI_VERSION#v}"; then
  echo "cli-walkthrough: installing the nats CLI $NATS_CLI_VERSION" >&2
  go install "github.com/nats-io/natscli/nats@$NATS_CLI_VERSION"
fi
go build -o bin/ ./cmd/worker ./cmd/publisher

pg=${POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
schema="walk_$$"
port=""
for p in $(seq 14222 14322); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "cli-walkthrough: no free port" >&2; exit 1; }
export NATS_URL="nats://127.0.0.1:$port"
tmp=$(mktemp -d)
worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  psql -q "$pg" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

psql -q "$pg" -c "CREATE SCHEMA $schema" >/dev/null
sep='?'; case "$pg" in *\?*) sep='&';; esac
POSTGRES_URL="$pg${sep}search_path=$schema,public" NATS_EMBEDDED=true NATS_EMBEDDED_STORE_DIR="$tmp/js" \
  MAINT_SCHEMAS="$schema" LOG_LEVEL=warn ./bin/worker >"$tmp/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 100); do
  nats req db.health '' >/dev/null 2>&1 && break
  sleep 0.2
done

failures=0
passes=0
# expect DESCRIPTION PATTERN COMMAND...: runs COMMAND, checks its output holds PATTERN.
# Discovery commands (nats micro, nats stream ls) collect answers for a short
# window; on a loaded machine a first try can come back empty, so those get
# three tries. Every other command runs once: a retry could hide a wrong answer.
expect() {
  local what=$1 pattern=$2; shift 2
  local out tries=1
  case "$1 $2" in "nats micro"|"nats stream") tries=3;; esac
  for _ in $(seq 1 "$tries"); do
    out=$("$@" 2>&1) || true
    grep -qF -- "$pattern" <<<"$out" && break
    sleep 1
  done
  if grep -qF -- "$pattern" <<<"$out"; then
    printf 'ok    %s\n' "$what"
    passes=$((passes + 1))
  else
    printf 'FAIL  %s\n      wanted: %s\n      got:    %s\n' "$what" "$pattern" "$(head -c 600 <<<"$out")"
    failures=$((failures + 1))
  fi
}

expect "micro ls lists the service"        'dbworker'                    nats micro ls
expect "micro info shows db.execute"       'db.execute'                  nats micro info dbworker
expect "micro ls --json shows the prefix"  '"subject_prefix"'            nats micro ls dbworker --json
instance=$(nats micro ls dbworker --json 2>/dev/null | sed -n 's/^    "id": *"\([^"]*\)".*/\1/p' | head -n 1 || true)
expect "micro info <id> shows its metadata" 'subject_prefix'             nats micro info dbworker "$instance"
expect "db.execute select 1"               '"rows":[{"x":1}]'            nats req db.execute '{"sql":"select 1 as x"}'
expect "db.execute script"                 '"commands":["CREATE TABLE","INSERT 0 3"]' \
  nats req db.execute '{"op":"script","sql":"CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE); INSERT INTO users (email) VALUES ($$a@x$$), ($$b@x$$), ($$c@x$$)"}'
expect "db.execute named params"           '"rows":[{"email":"b@x"}]'    nats req db.execute '{"sql":"SELECT email FROM users WHERE id = :id","params":{"id":2}}'
expect "db.execute insert"                 '"row":{"id":4,"email":"d@x"}' nats req db.execute '{"op":"insert","table":"users","data":{"email":"d@x"}}'
expect "db.execute unique violation"       '"sqlstate":"23505"'          nats req db.execute '{"op":"insert","table":"users","data":{"email":"d@x"}}'
began=$(nats req db.tx '{"op":"begin","isolation":"repeatable_read"}' 2>&1 || true)
txsubj=$(sed -n 's/.*"subject":"\([^"]*\)".*/\1/p' <<<"$began")
expect "db.tx begin answers a subject"     '"subject":"db.tx.'          echo "$began"
expect "tx: update inside"                 '"rows_affected":1'          nats req "$txsubj" '{"sql":"UPDATE users SET email = :e WHERE id = 1","params":{"e":"z@x"}}'
expect "tx: not seen outside yet"          '"row":{"email":"a@x"}'      nats req db.execute '{"op":"one","sql":"SELECT email FROM users WHERE id = 1"}'
expect "tx: commit"                        '"committed":true'           nats req "$txsubj" '{"op":"commit"}'
expect "tx: seen after commit"             '"row":{"email":"z@x"}'      nats req db.execute '{"op":"one","sql":"SELECT email FROM users WHERE id = 1"}'
expect "tx: gone after commit"             '"code":"TX_GONE"'           nats req "$txsubj" '{"sql":"SELECT 1"}'
expect "db.health"                         '"status":"healthy"'          nats req db.health ''
big='{"sql":"SELECT g, md5(g::text) AS a, md5((-g)::text) AS b, md5((g*7)::text) AS c FROM generate_series(1, 20000) g"}'
expect "db.execute large answer: TOO_LARGE" '"code":"TOO_LARGE"'          nats req db.execute "$big"
expect "db.execute large answer streamed"  'Stream-Credit: db.stream.'   nats req db.execute "$big" -H Stream-Window:1 --replies 1
expect "ratelimit 1: allowed"              '"allowed":true,"remaining":1' nats req state.ratelimit '{"key":"u1","limit":2,"window_ms":60000}'
expect "ratelimit 2: allowed"              '"allowed":true,"remaining":0' nats req state.ratelimit '{"key":"u1","limit":2,"window_ms":60000}'
expect "ratelimit 3: denied"               '"allowed":false'             nats req state.ratelimit '{"key":"u1","limit":2,"window_ms":60000}'
acquired=$(nats req state.lock '{"op":"acquire","key":"job:1","owner":"me","ttl_ms":30000}' 2>&1 || true)
lease=$(sed -n 's/.*"lease":"\([^"]*\)".*/\1/p' <<<"$acquired")
expect "lock acquire answers a lease"      '"acquired":true'             echo "$acquired"
expect "lock held by another"              '"acquired":false,"owner":"me"' nats req state.lock '{"op":"acquire","key":"job:1","owner":"you"}'
expect "lock release by the owner's name"  '"reason":"not_owner"'        nats req state.lock '{"op":"release","key":"job:1","lease":"me"}'
expect "lock release with its lease"       '"released":true'             nats req state.lock "{\"op\":\"release\",\"key\":\"job:1\",\"lease\":\"$lease\"}"
expect "kv set"                            '"stored":true'               nats req state.kv '{"op":"set","key":"greeting","value":{"hello":"world"}}'
expect "kv get"                            '"value":{"hello":"world"}'   nats req state.kv '{"op":"get","key":"greeting"}'
expect "kv incr"                           '"value":3'                   nats req state.kv '{"op":"incr","key":"n","amount":3}'
expect "embedding set"                     '"stored":1'                  nats req cache.embedding '{"op":"set","text":"hi","model":"m","vector":[0.5,1]}'
expect "embedding get"                     '"hit":true'                  nats req cache.embedding '{"op":"get","text":"hi","model":"m"}'
expect "db.stats"                          '"row_count"'                 nats req db.stats '{"table":"users"}'
expect "db.vacuum"                         '"status":"ok"'               nats req db.vacuum '{"table":"users","verbose":true}'
expect "db.vacuum unknown table"           '"code":"NOT_FOUND"'          nats req db.vacuum '{"table":"nope"}'
expect "vector collection"                 '"dimension":3'               nats req db.vector '{"op":"create_collection","collection":"docs","dimension":3}'
expect "vector upsert"                     '"upserted":2'                nats req db.vector '{"op":"upsert","collection":"docs","items":[{"id":"a","vector":[1,0,0],"content":"apples"},{"id":"b","vector":[0,1,0],"content":"cars"}]}'
expect "vector search"                     '"id":"a"'                    nats req db.vector '{"op":"search","collection":"docs","vector":[0.9,0.1,0],"k":1}'
expect "graph add_node"                    '"node_id":"ada"'             nats req db.graph '{"op":"add_node","node_id":"ada","properties":{"born":1815}}'
expect "graph add_node"                    '"node_id":"charles"'         nats req db.graph '{"op":"add_node","node_id":"charles"}'
expect "graph add_edge"                    '"edge_type":"knows"'         nats req db.graph '{"op":"add_edge","from":"ada","to":"charles","edge_type":"knows"}'
expect "graph find_path"                   '"found":true'                nats req db.graph '{"op":"find_path","from":"ada","to":"charles"}'
expect "micro stats counts requests"       'execute'                     nats micro stats dbworker
expect "stream ls shows the streams"       'DB_VACUUM'                   nats stream ls
expect "stream get DB_VACUUM --last-for"   '"status":"ok"'               nats stream get DB_VACUUM --last-for "db.vacuum.results.$schema.users"
expect "publisher history vacuum"          'ok'                          ./bin/publisher history vacuum --table "$schema.users"
expect "consumer info DB_JOBS maintenance" 'maintenance'                 nats consumer info DB_JOBS maintenance
expect "publisher vacuum --wait"           '"status": "ok"'              ./bin/publisher vacuum --table "$schema.users" --wait --timeout 30s
expect "publisher vacuum --wait progress"  'vacuum: ok after'            ./bin/publisher vacuum --table "$schema.users" --wait --timeout 30s
expect "publisher schedules --check"       'TARGET'                      ./bin/publisher schedules --check

if [ "$failures" -gt 0 ]; then
  echo "cli-walkthrough: $failures step(s) failed; worker log:" >&2
  tail -n 30 "$tmp/worker.log" >&2
fi
echo "walkthrough: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
