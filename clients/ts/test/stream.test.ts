// Streamed results: an answer larger than one message arrives in order,
// whole, with exact values; a small one is one message; leaving early
// cancels; streams work inside a transaction.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { DbworkerError, type DbworkerClient } from "../src/index.js";
import { setup } from "./helpers.js";

let db: DbworkerClient;
let done: () => Promise<void>;

before(async () => {
  ({ db, done } = await setup());
});
after(async () => done());

// About 2.5 MB of JSON: past the embedded server's 1 MB max payload.
const big = `SELECT g AS id, g::int8 * 461168601842738 AS big, (g || '.10')::numeric AS n, repeat('x', 80) AS pad
  FROM generate_series(1, 20000) g`;

test("a large result streams whole, in order, with exact values", async () => {
  const s = await db.stream<{ id: number; big: bigint; n: string; pad: string }>(big);
  assert.deepEqual(
    s.columns.map((c) => c.type),
    ["int4", "int8", "numeric", "text"],
  );
  let i = 0;
  for await (const r of s) {
    i++;
    assert.equal(r.id, i);
    assert.equal(r.big, BigInt(i) * 461168601842738n);
    assert.equal(r.n, `${i}.10`);
  }
  assert.equal(i, 20000);
  assert.deepEqual(s.totals, { rowCount: 20000, rowsAffected: 20000, command: "SELECT 20000", truncated: false });
});

test("max_rows caps a stream and says so", async () => {
  const s = await db.stream(big, undefined, { maxRows: 15000 });
  assert.equal((await s.toArray()).length, 15000);
  assert.equal(s.totals?.truncated, true);
});

test("a small result is one message, read the same way", async () => {
  const s = await db.stream<{ v: bigint }>("SELECT 9223372036854775807::int8 AS v");
  assert.deepEqual(await s.toArray(), [{ v: 9223372036854775807n }]);
  assert.deepEqual(s.totals, { rowCount: 1, rowsAffected: 1, command: "SELECT 1", truncated: false });
});

test("leaving a stream early cancels it; the next request is served", async () => {
  const s = await db.stream<{ id: number }>(big);
  let n = 0;
  for await (const r of s) {
    n++;
    if (r.id === 100) break;
  }
  assert.equal(n, 100);
  assert.equal(s.totals, undefined);
  assert.deepEqual(await db.queryOne("SELECT 1 AS x"), { x: 1 });
});

test("an error after rows ends the loop with it", async () => {
  const s = await db.stream(`SELECT g, repeat('x', 200) AS pad, 1 / (15000 - g) AS boom FROM generate_series(1, 20000) g`);
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of s) n++;
    })(),
    (e: unknown) => e instanceof DbworkerError && e.sqlstate === "22012",
  );
  assert.ok(n < 15000);
});

test("a stream inside an interactive transaction sees its writes", async () => {
  const tx = await db.beginTx();
  try {
    await tx.exec("CREATE TEMP TABLE t AS SELECT g AS id, repeat('y', 100) AS pad FROM generate_series(1, 15000) g");
    const s = await tx.stream<{ id: number }>("SELECT id, pad FROM t ORDER BY id");
    let sum = 0;
    for await (const r of s) sum += r.id;
    assert.equal(sum, (15000 * 15001) / 2);
    assert.ok((s.totals?.rowCount ?? 0) === 15000);
  } finally {
    await tx.rollback();
  }
});
