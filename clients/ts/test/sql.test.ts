// db.execute from the client: every SQL method, and values exact in
// JavaScript (int8 as bigint, numeric as string, bytea as bytes, dates).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import type { DbworkerClient } from "../src/index.js";
import { setup, unique } from "./helpers.js";

let db: DbworkerClient;
let done: () => Promise<void>;

before(async () => {
  ({ db, done } = await setup());
});
after(async () => done());

describe("values", () => {
  test("int8 and numeric are exact", async () => {
    const row = await db.queryOne(
      `SELECT 9223372036854775807::int8 AS max8, (-9223372036854775807-1)::int8 AS min8,
              9007199254740993::int8 AS p53, 7::int8 AS small, 1.10::numeric AS n110,
              1234567890123456789012345678901234567890::numeric AS n40,
              -12345678901234567890.123456789012345678901::numeric AS frac,
              'NaN'::numeric AS nan, 'Infinity'::numeric AS inf,
              ARRAY[9223372036854775807, NULL, 1]::int8[] AS i8arr, ARRAY[[1.10, 2.5]]::numeric[] AS narr,
              42::int4 AS i4, 0.1::float8 AS f8`,
    );
    assert.deepEqual(row, {
      max8: 9223372036854775807n,
      min8: -9223372036854775808n,
      p53: 9007199254740993n,
      small: 7n,
      n110: "1.10",
      n40: "1234567890123456789012345678901234567890",
      frac: "-12345678901234567890.123456789012345678901",
      nan: "NaN",
      inf: "Infinity",
      i8arr: [9223372036854775807n, null, 1n],
      narr: [["1.10", "2.5"]],
      i4: 42,
      f8: 0.1,
    });
  });

  test("a numeric parser the caller supplies", async () => {
    const calls: string[] = [];
    const row = await db.queryOne<{ n: { digits: string } }>("SELECT 1.10::numeric AS n", undefined, {
      numeric: (s) => {
        calls.push(s);
        return { digits: s };
      },
    });
    assert.deepEqual(row, { n: { digits: "1.10" } });
    assert.deepEqual(calls, ["1.10"]);
  });

  test("bytea is a Uint8Array, timestamps strings unless Date is asked for", async () => {
    const sql = `SELECT '\\x00ff10'::bytea AS b, ARRAY['\\x01'::bytea] AS barr,
      '2024-02-29 12:34:56.5+00'::timestamptz AS tz, '2024-02-29 12:34:56'::timestamp AS ts,
      '2024-02-29'::date AS d, 'infinity'::timestamptz AS inf, '{"n": 1.10}'::jsonb AS j`;
    const row = await db.queryOne<Record<string, unknown>>(sql);
    assert.ok(row);
    assert.ok(row.b instanceof Uint8Array);
    assert.deepEqual(Array.from(row.b as Uint8Array), [0, 255, 16]);
    assert.deepEqual(Array.from((row.barr as Uint8Array[])[0]), [1]);
    assert.equal(row.tz, "2024-02-29T12:34:56.5Z");
    assert.equal(row.ts, "2024-02-29T12:34:56");
    assert.equal(row.d, "2024-02-29");
    assert.deepEqual(row.j, { n: 1.1 }, "json stays the caller's JSON");
    const dated = await db.queryOne<Record<string, unknown>>(sql, undefined, { dates: true });
    assert.ok(dated);
    assert.ok(dated.tz instanceof Date);
    assert.equal((dated.tz as Date).toISOString(), "2024-02-29T12:34:56.500Z");
    assert.equal((dated.ts as Date).toISOString(), "2024-02-29T12:34:56.000Z");
    assert.equal((dated.d as Date).toISOString(), "2024-02-29T00:00:00.000Z");
    assert.equal(dated.inf, "infinity");
  });

  test("row_format array decodes by position", async () => {
    const r = await db.query("SELECT 9223372036854775807::int8 AS a, 2.50::numeric AS b", undefined, { rowFormat: "array" });
    assert.deepEqual(r.rows, [[9223372036854775807n, "2.50"]]);
    assert.deepEqual(r.columns, [
      { name: "a", type: "int8" },
      { name: "b", type: "numeric" },
    ]);
  });

  test("bigint parameters keep every digit", async () => {
    const row = await db.queryOne<{ v: bigint }>("SELECT $1::int8 AS v", ["9223372036854775807"]);
    assert.equal(row?.v, 9223372036854775807n);
  });
});

describe("methods", () => {
  const table = unique("people");

  before(async () => {
    const r = await db.script(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, email text UNIQUE, balance numeric(30,2) NOT NULL DEFAULT 0);
      INSERT INTO ${table} (email) VALUES ('a@x'), ('b@x')`);
    assert.deepEqual(r.commands, ["CREATE TABLE", "INSERT 0 2"]);
    assert.equal(r.rowsAffected, 2);
  });

  test("query, with named and positional params, max_rows and truncated", async () => {
    const r = await db.query<{ id: bigint; email: string }>(`SELECT id, email FROM ${table} WHERE email = :email`, { email: "b@x" });
    assert.equal(r.rows.length, 1);
    assert.equal(r.rows[0].email, "b@x");
    assert.equal(typeof r.rows[0].id, "bigint");
    assert.equal(r.command, "SELECT 1");
    const cut = await db.query(`SELECT id FROM ${table} ORDER BY id`, undefined, { maxRows: 1 });
    assert.equal(cut.rows.length, 1);
    assert.equal(cut.truncated, true);
    const q = await db.query(`SELECT email FROM ${table} WHERE id = ?`, [1]);
    assert.deepEqual(q.rows, [{ email: "a@x" }]);
  });

  test("queryOne gives null when there is no row", async () => {
    assert.equal(await db.queryOne(`SELECT 1 FROM ${table} WHERE false`), null);
  });

  test("exec, insert, update and many", async () => {
    const tag = await db.exec(`UPDATE ${table} SET balance = balance + 1`);
    assert.deepEqual(tag, { rowsAffected: 2, command: "UPDATE 2" });
    const ins = await db.insert<{ id: bigint; balance: string }>(table, { email: "c@x", balance: "12345678901234567890123456.78" }, { returning: ["id", "balance"] });
    assert.equal(ins?.balance, "12345678901234567890123456.78");
    assert.equal(typeof ins?.id, "bigint");
    const up = await db.update(table, { balance: "0.10" }, "email = :e", { e: "c@x" });
    assert.equal(up.rowsAffected, 1);
    const m = await db.many<{ email: string; balance: string }>(`SELECT email, balance FROM ${table} WHERE email = $1`, [["a@x"], ["c@x"]]);
    assert.equal(m.results.length, 2);
    assert.deepEqual(m.results[1].rows, [{ email: "c@x", balance: "0.10" }]);
    assert.equal(m.rowsAffected, 0);
  });

  test("execute sends any body", async () => {
    const r = await db.execute({ op: "one", sql: "SELECT 9223372036854775807::int8 AS v" });
    assert.deepEqual(r.row, { v: 9223372036854775807n });
  });

  test("request ids and timeouts are options", async () => {
    const r = await db.queryOne("SELECT 1 AS x", undefined, { requestId: "ts-test-id", timeoutMs: 5000 });
    assert.deepEqual(r, { x: 1 });
  });
});
