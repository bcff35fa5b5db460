// Transactions: a tx batch, interactive ones (commit, rollback, aborted,
// gone) and inTx's retry on a serialization failure.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { DbworkerError, RequestTimeoutError, TxGoneError, type DbworkerClient, type Tx } from "../src/index.js";
import { setup, unique } from "./helpers.js";

let db: DbworkerClient;
let done: () => Promise<void>;
const table = unique("accounts");

before(async () => {
  ({ db, done } = await setup());
  await db.script(`CREATE TABLE ${table} (id int PRIMARY KEY, bal numeric(40,2) NOT NULL);
    INSERT INTO ${table} VALUES (1, 100), (2, 0), (3, 9999999999999999999999999999999999999.99)`);
});
after(async () => done());

test("a tx batch moves money, each statement with safe numbers, expect_rows checked", async () => {
  const r = await db.tx<{ bal: string }>(
    [
      { sql: `UPDATE ${table} SET bal = bal - :amt WHERE id = :from AND bal >= :amt RETURNING bal`, params: { amt: "10.10", from: 1 }, op: "one", expect_rows: 1 },
      { sql: `UPDATE ${table} SET bal = bal + :amt WHERE id = :to RETURNING bal`, params: { amt: "10.10", to: 2 }, op: "one", expect_rows: 1 },
      { sql: `SELECT bal FROM ${table} WHERE id = 3` },
    ],
    { isolation: "serializable" },
  );
  assert.deepEqual(r.results[0].row, { bal: "89.90" });
  assert.deepEqual(r.results[1].row, { bal: "10.10" });
  assert.deepEqual(r.results[2].rows, [{ bal: "9999999999999999999999999999999999999.99" }]);
  assert.equal(r.rowsAffected, 2);

  await assert.rejects(
    db.tx([{ sql: `UPDATE ${table} SET bal = bal - 1000 WHERE id = 1 AND bal >= 1000`, expect_rows: 1 }]),
    (e: unknown) => e instanceof DbworkerError && e.code === "CONFLICT" && e.failed_index === 0,
  );
});

test("an interactive transaction commits, and is gone after", async () => {
  const tx = await db.beginTx({ isolation: "repeatable_read" });
  assert.equal(tx.readOnly, false);
  assert.ok(tx.subject.includes("db.tx."));
  assert.ok(tx.idleTimeoutMs > 0);
  await tx.exec(`UPDATE ${table} SET bal = bal + 1 WHERE id = 2`);
  const inside = await tx.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 2`);
  assert.equal(inside?.bal, "11.10");
  const outside = await db.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 2`);
  assert.equal(outside?.bal, "10.10", "not visible before commit");
  const many = await tx.many<{ n: bigint }>("SELECT $1::int8 AS n", [["9223372036854775807"]]);
  assert.deepEqual(many.results[0].rows, [{ n: 9223372036854775807n }]);
  const ins = await tx.insert<{ id: number }>(table, { id: 10, bal: "1" }, { returning: ["id"] });
  assert.deepEqual(ins, { id: 10 });
  assert.equal((await tx.update(table, { bal: "2" }, "id = :id", { id: 10 })).rowsAffected, 1);
  await tx.commit();
  assert.equal((await db.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 2`))?.bal, "11.10");
  await assert.rejects(tx.query("SELECT 1"), TxGoneError);
  await tx.rollback(); // harmless once ended
});

test("rollback undoes; an error aborts until rollback; concurrent calls queue", async () => {
  const tx = await db.beginTx();
  await tx.exec(`DELETE FROM ${table} WHERE id = 10`);
  const both = await Promise.all([tx.queryOne("SELECT 1 AS a"), tx.queryOne("SELECT 2 AS b"), tx.queryOne("SELECT 3 AS c")]);
  assert.deepEqual(both, [{ a: 1 }, { b: 2 }, { c: 3 }]);
  await tx.rollback();
  assert.deepEqual(await db.queryOne(`SELECT id FROM ${table} WHERE id = 10`), { id: 10 });

  const bad = await db.beginTx();
  await assert.rejects(bad.query("SELECT 1/0"), (e: unknown) => e instanceof DbworkerError && e.sqlstate === "22012");
  await assert.rejects(bad.query("SELECT 1"), (e: unknown) => e instanceof DbworkerError && e.code === "TX_ABORTED" && e.status === 409);
  await assert.rejects(bad.commit(), (e: unknown) => e instanceof DbworkerError && e.code === "TX_ABORTED");
  await assert.rejects(bad.query("SELECT 1"), TxGoneError);
});

test("a transaction past its idle timeout is gone", async () => {
  const tx = await db.beginTx({ idleTimeoutMs: 200 });
  assert.equal(tx.idleTimeoutMs, 200);
  await new Promise((r) => setTimeout(r, 600));
  await assert.rejects(tx.query("SELECT 1"), (e: unknown) => e instanceof TxGoneError && e.cause instanceof DbworkerError && e.cause.code === "TX_GONE");
});

test("inTx commits, rolls back on a throw, and retries a serialization failure", async () => {
  let attempts = 0;
  const bal = await db.inTx(
    async (tx) => {
      attempts++;
      const before = await tx.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 1`);
      if (attempts === 1) {
        // Another caller changes the row after this transaction's snapshot.
        await db.exec(`UPDATE ${table} SET bal = bal + 1 WHERE id = 1`);
      }
      await tx.exec(`UPDATE ${table} SET bal = bal - 1 WHERE id = 1`);
      return before?.bal;
    },
    { isolation: "repeatable_read" },
  );
  assert.equal(attempts, 2, "the first attempt failed with 40001 and was run again");
  assert.equal(bal, "90.90");
  assert.equal((await db.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 1`))?.bal, "89.90");

  await assert.rejects(
    db.inTx(async (tx) => {
      await tx.exec(`UPDATE ${table} SET bal = 0 WHERE id = 1`);
      throw new Error("changed my mind");
    }),
    /changed my mind/,
  );
  assert.equal((await db.queryOne<{ bal: string }>(`SELECT bal FROM ${table} WHERE id = 1`))?.bal, "89.90");

  let tries = 0;
  await assert.rejects(
    db.inTx(
      async (tx) => {
        tries++;
        await tx.queryOne(`SELECT bal FROM ${table} WHERE id = 1`);
        await db.exec(`UPDATE ${table} SET bal = bal WHERE id = 1`);
        await tx.exec(`UPDATE ${table} SET bal = bal WHERE id = 1`);
      },
      { isolation: "repeatable_read", maxRetries: 1 },
    ),
    (e: unknown) => e instanceof DbworkerError && e.sqlstate === "40001" && e.code === "CONFLICT",
  );
  assert.equal(tries, 2, "maxRetries bounds the runs");
});

test("a transaction's timeouts name it by its id's prefix, never by its subject (which holds the secret id)", async () => {
  for (const call of [
    (tx: Tx) => tx.query("SELECT pg_sleep(1)", undefined, { timeoutMs: 100 }),
    (tx: Tx) => tx.stream("SELECT pg_sleep(1)", undefined, { timeoutMs: 100 }),
  ]) {
    const tx = await db.beginTx();
    await assert.rejects(call(tx), (e: unknown) => {
      assert.ok(e instanceof RequestTimeoutError, String(e));
      assert.ok(!e.message.includes(tx.id), `the error of a live transaction holds its full id: ${e.message}`);
      assert.ok(e.message.startsWith(`tx ${tx.id.slice(0, 8)}:`), e.message);
      return true;
    });
    await tx.rollback();
  }
});
