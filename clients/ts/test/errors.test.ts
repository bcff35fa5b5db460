// Errors: every field of DbworkerError from a real worker's answers, the
// headers-only form, no worker, and an inbox the worker does not trust.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { headers, type Msg } from "@nats-io/nats-core";

import { DbworkerClient, DbworkerError, NoWorkerError, RequestTimeoutError, isDbworkerError } from "../src/index.js";
import { answerError, text } from "../src/transport.js";
import { prefix, setup, unique } from "./helpers.js";

let db: DbworkerClient;
let done: () => Promise<void>;
let nc: Awaited<ReturnType<typeof setup>>["nc"];
const table = unique("errs");

before(async () => {
  ({ db, done, nc } = await setup());
  await db.script(`CREATE TABLE ${table} (id int PRIMARY KEY, email text UNIQUE)`);
  await db.exec(`INSERT INTO ${table} VALUES (1, 'a@x')`);
});
after(async () => done());

async function rejects(p: Promise<unknown>): Promise<DbworkerError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DbworkerError, `a DbworkerError, got ${e}`);
    return e;
  }
  assert.fail("the call succeeded");
}

test("code, status, sqlstate, detail from a unique violation", async () => {
  const e = await rejects(db.insert(table, { id: 2, email: "a@x" }));
  assert.equal(e.code, "SQL_ERROR");
  assert.equal(e.status, 409);
  assert.equal(e.sqlstate, "23505");
  assert.match(e.detail ?? "", /already exists/);
  assert.match(e.workerMessage, /duplicate key/);
  assert.equal(e.failed_index, undefined);
  assert.ok(isDbworkerError(e, "SQL_ERROR"));
  assert.ok(!isDbworkerError(e, "CONFLICT"));
});

test("param of a BAD_REQUEST", async () => {
  const e = await rejects(db.query(`SELECT * FROM ${table} WHERE id = :id`, {}));
  assert.equal(e.code, "BAD_REQUEST");
  assert.equal(e.status, 400);
  assert.equal(e.param, "id");
  const f = await rejects(db.query("SELECT 1", undefined, { rowFormat: "table" as "array" }));
  assert.equal(f.param, "row_format");
});

test("failed_index of a tx batch and of many, position and hint", async () => {
  const e = await rejects(
    db.tx([
      { sql: `INSERT INTO ${table} VALUES (5, 'e@x')` },
      { sql: `INSERT INTO ${table} VALUES (1, 'dup')` },
    ]),
  );
  assert.equal(e.failed_index, 1);
  assert.equal(e.failedIndex, 1);
  assert.equal(e.sqlstate, "23505");
  assert.equal(await db.queryOne(`SELECT 1 FROM ${table} WHERE id = 5`), null, "the tx rolled back");
  const m = await rejects(db.many(`INSERT INTO ${table} VALUES ($1, $2)`, [[6, "f@x"], [7, "a@x"]]));
  assert.equal(m.failed_index, 1);
  const p = await rejects(db.query("SELECT 1 FROM nowhere_at_all"));
  assert.equal(p.code, "NOT_FOUND");
  assert.equal(p.status, 404);
  assert.equal(p.sqlstate, "42P01");
  assert.equal(p.position, 15);
  const h = await rejects(db.query("SELECT no_such_function_here(1)"));
  assert.equal(h.sqlstate, "42883");
  assert.match(h.hint ?? "", /function/i);
});

test("an error carried by the headers alone", () => {
  const h = headers();
  h.set("Nats-Service-Error-Code", "503");
  h.set("Nats-Service-Error", "the worker is busy");
  const m = { subject: "x", data: new TextEncoder().encode("not json"), headers: h } as unknown as Msg;
  const e = answerError(m, "db.execute");
  assert.ok(e instanceof DbworkerError);
  assert.equal(e.status, 503);
  assert.equal(e.code, "INTERNAL");
  assert.equal(e.workerMessage, "the worker is busy");
});

test("no worker on the subject is NoWorkerError", async () => {
  const other = new DbworkerClient(nc, { prefix: "nobody_serves_this", timeoutMs: 5000 });
  await assert.rejects(other.health(), NoWorkerError);
  other.close();
});

test("an inbox prefix the worker does not trust gets no answer; a trusted per-user one does", async () => {
  const untrusted = new DbworkerClient(nc, { prefix, inboxPrefix: "replies", timeoutMs: 500 });
  await assert.rejects(untrusted.health(), RequestTimeoutError);
  untrusted.close();
  const own = new DbworkerClient(nc, { prefix, inboxPrefix: "_INBOX_tsclient" });
  assert.deepEqual(await own.queryOne("SELECT 1 AS x"), { x: 1 });
  own.close();
});

test("the Request-Id is sent and answered back", async () => {
  const call = db.transport.open(`${prefix}db.execute`, { sql: "SELECT 1" }, { timeoutMs: 5000, requestId: "ts-req-42" });
  try {
    const m = await call.next(5000);
    assert.equal(m.headers?.get("Request-Id"), "ts-req-42");
    assert.match(text(m), /"rows":\[\{"\?column\?":1\}\]/);
  } finally {
    call.close();
  }
});

test("a bad prefix or timeout is refused at construction", () => {
  assert.throws(() => new DbworkerClient(nc, { prefix: "a b" }), RangeError);
  assert.throws(() => new DbworkerClient(nc, { prefix: "prod.*" }), RangeError);
  assert.throws(() => new DbworkerClient(nc, { timeoutMs: 0 }), RangeError);
});
