// The client under a careless caller and a hostile server: values at the
// edges and given back as parameters, dates outside 1..9999, a stream left
// early (the worker frees the statement), a server ignoring credit or
// sending an error body without its headers, and transactions that fail for
// real (two serializable ones, a throwing callback, use after commit).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { headers, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";

import { DbworkerClient, DbworkerError, NoWorkerError, StreamBrokenError, TxGoneError } from "../src/index.js";
import { setup, unique } from "./helpers.js";

let db: DbworkerClient;
let nc: NatsConnection;
let done: () => Promise<void>;

before(async () => {
  ({ db, nc, done } = await setup());
});
after(async () => done());

test("int8 at ±(2^53±1) and the int64 bounds, numeric edges, and arrays of them", async () => {
  const row = await db.queryOne(
    `SELECT 9007199254740991::int8 AS a, -9007199254740991::int8 AS b, 9007199254740992::int8 AS c,
            -9007199254740993::int8 AS d, (-9223372036854775807-1)::int8 AS min8,
            '-Infinity'::numeric AS ninf, '-0'::numeric AS nz, 0.000000000000000000001::numeric AS tiny,
            ARRAY[NULL, '-9223372036854775808', 9007199254740993]::int8[] AS arr,
            ARRAY['NaN', NULL, '-1234567890123456789012345678901234567890']::numeric[] AS narr, NULL::int8 AS nil`,
  );
  assert.deepEqual(row, {
    a: 9007199254740991n,
    b: -9007199254740991n,
    c: 9007199254740992n,
    d: -9007199254740993n,
    min8: -9223372036854775808n,
    ninf: "-Infinity",
    nz: "0",
    tiny: "0.000000000000000000001",
    arr: [null, -9223372036854775808n, 9007199254740993n],
    narr: ["NaN", null, "-1234567890123456789012345678901234567890"],
    nil: null,
  });
});

test("values the client gives are taken back as parameters: bigint exact, bytea, typed arrays", async () => {
  const row = await db.queryOne<Record<string, unknown>>(
    "SELECT $1::int8 AS max8, $2::int8 AS min8, $3::numeric AS n, $4::bytea AS b, $5::int8[] AS arr, $6::float4[] AS f",
    [9223372036854775807n, -9223372036854775808n, 9007199254740993n, new Uint8Array([0, 255, 16]), [1n, null, 2n ** 62n], Float32Array.from([0.5, -2])],
  );
  assert.deepEqual(row, {
    max8: 9223372036854775807n,
    min8: -9223372036854775808n,
    n: "9007199254740993",
    b: new Uint8Array([0, 255, 16]),
    arr: [1n, null, 4611686018427387904n],
    f: [0.5, -2],
  });
  // A bytea read comes back as a parameter unchanged (a Buffer too).
  const back = await db.queryOne<{ same: boolean }>("SELECT $1::bytea = '\\x00ff10'::bytea AS same", [Buffer.from(row!.b as Uint8Array)]);
  assert.deepEqual(back, { same: true });
  // A bigint inside a kv value, and an incr by more than 2^53, keep every digit.
  const key = unique("kvbig");
  assert.equal(await db.kv.incr(key, 9007199254740993n), 9007199254740993n);
  assert.equal(await db.kv.incr(key, -9007199254740993n), 0n);
  await db.kv.set(key, { n: 9007199254740993n });
  const got = await db.kv.get<{ n: number }>(key);
  assert.equal(got.found, true);
  // get parses with JSON.parse (the value is the caller's JSON), which rounds
  // it: the stored text is what keeps the digits.
  assert.match(await db.sendText("state.kv", { op: "get", key }), /"n":\s*9007199254740993\b/, "stored with every digit");
  await db.kv.delete(key);
});

test("dates before year 1 and past 9999 become Dates; microseconds are dropped", async () => {
  const sql = `SELECT '10000-01-01'::date AS big, '0044-03-15 BC'::date AS bc, '10000-01-01 00:00:00'::timestamp AS bigts,
    '0044-03-15 12:00+00 BC'::timestamptz AS bctz, '2024-02-29 12:34:56.123456+00'::timestamptz AS micro,
    '5874897-12-31'::date AS far`;
  const raw = await db.queryOne<Record<string, string>>(sql);
  assert.deepEqual(raw, {
    big: "10000-01-01",
    bc: "-0043-03-15",
    bigts: "10000-01-01T00:00:00",
    bctz: "-0043-03-15T12:00:00Z",
    micro: "2024-02-29T12:34:56.123456Z",
    far: "5874897-12-31",
  });
  const d = await db.queryOne<Record<string, Date | string>>(sql, undefined, { dates: true });
  assert.ok(d);
  assert.equal((d.big as Date).toISOString(), "+010000-01-01T00:00:00.000Z");
  assert.equal((d.bc as Date).toISOString(), "-000043-03-15T00:00:00.000Z");
  assert.equal((d.bigts as Date).toISOString(), "+010000-01-01T00:00:00.000Z");
  assert.equal((d.bctz as Date).getUTCFullYear(), -43);
  assert.equal((d.micro as Date).toISOString(), "2024-02-29T12:34:56.123Z");
  assert.equal(d.far, "5874897-12-31", "past Date's range the string stays");
});

test("TOO_LARGE and TIMEOUT answers, and a request over the server's max payload", async () => {
  await assert.rejects(db.query("SELECT repeat('x', 1500000) AS x"), (e: unknown) => e instanceof DbworkerError && e.code === "TOO_LARGE" && e.status === 413);
  await assert.rejects(
    db.query("SELECT pg_sleep(5)", undefined, { statementTimeoutMs: 200 }),
    (e: unknown) => e instanceof DbworkerError && e.code === "TIMEOUT" && e.status === 408,
  );
  await assert.rejects(db.query("SELECT $1::text", ["x".repeat(1_100_000)]), /max_payload/);
});

test("leaving a stream early cancels its statement in PostgreSQL", async () => {
  const mark = unique("cancelme");
  const active = async () =>
    (await db.queryOne<{ n: number }>(
      "SELECT count(*)::int4 AS n FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE :m",
      { m: `%${mark}%` },
    ))!.n;
  const s = await db.stream<{ g: number }>(`SELECT g, repeat('x', 200) AS pad /* ${mark} */ FROM generate_series(1, 300000) g`);
  let n = 0;
  for await (const _ of s) {
    if (++n === 10) {
      assert.equal(await active(), 1, "the statement runs while the stream is read");
      break;
    }
  }
  let left = 1;
  for (let i = 0; i < 40 && left > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    left = await active();
  }
  assert.equal(left, 0, "the worker cancelled the statement");
});

// A server of its own on the test's NATS, answering as it likes.
async function fakeServer(subject: string, answer: (reply: string) => void): Promise<() => void> {
  const sub = nc.subscribe(subject, { callback: (_err, m) => {
      if (m.reply) answer(m.reply);
    },
  });
  await nc.flush();
  return () => sub.unsubscribe();
}

test("a server that ignores credit breaks the stream at once, not after a timeout", async () => {
  const prefix = unique("hostile");
  const stop = await fakeServer(`${prefix}.db.execute`, (reply) => {
    for (let seq = 1; seq <= 30; seq++) {
      const h = headers();
      h.set("Stream-Id", "AAAAAAAAAAAAAAAAAAAAAAAAAA");
      h.set("Stream-Seq", String(seq));
      if (seq === 1) h.set("Stream-Credit", `${prefix}.db.stream.x`);
      nc.publish(reply, JSON.stringify(seq === 1 ? { columns: [{ name: "g", type: "int4" }], rows: [seq] } : { rows: [seq] }), { headers: h });
    }
  });
  const hostile = new DbworkerClient(nc, { prefix, timeoutMs: 10_000 });
  try {
    const started = Date.now();
    const s = await hostile.stream("SELECT g");
    await assert.rejects(s.toArray(), StreamBrokenError);
    assert.ok(Date.now() - started < 5000, "broken before the timeout");
  } finally {
    hostile.close();
    stop();
  }
});

test("an error body without the error headers is still an error", async () => {
  const prefix = unique("noheaders");
  const body = { error: { code: "SQL_ERROR", status: 409, message: "duplicate key", sqlstate: "23505" } };
  const stop = await fakeServer(`${prefix}.db.execute`, (reply) => nc.publish(reply, JSON.stringify(body)));
  const odd = new DbworkerClient(nc, { prefix, timeoutMs: 5000 });
  try {
    await assert.rejects(odd.query("SELECT 1"), (e: unknown) => e instanceof DbworkerError && e.code === "SQL_ERROR" && e.sqlstate === "23505" && e.status === 409);
  } finally {
    odd.close();
    stop();
  }
});

test("two serializable transactions in write skew: one is run again, the invariant holds", async () => {
  const table = unique("oncall");
  await db.script(`CREATE TABLE ${table} (id int PRIMARY KEY, on_call bool NOT NULL); INSERT INTO ${table} VALUES (1, true), (2, true)`);
  let bothRead!: () => void;
  const barrier = new Promise<void>((r) => (bothRead = r));
  let reads = 0;
  let runs = 0;
  const goOff = (id: number) =>
    db.inTx(
      async (tx) => {
        runs++;
        const on = (await tx.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${table} WHERE on_call`))!.n;
        if (++reads === 2) bothRead();
        await barrier;
        if (on >= 2n) await tx.exec(`UPDATE ${table} SET on_call = false WHERE id = $1`, [id]);
        return on;
      },
      { isolation: "serializable" },
    );
  const seen = await Promise.all([goOff(1), goOff(2)]);
  assert.equal(runs, 3, "the loser of the serialization failure ran again");
  assert.deepEqual([...seen].sort(), [1n, 2n], "the second run saw the first's commit");
  assert.deepEqual(await db.queryOne(`SELECT count(*) AS n FROM ${table} WHERE on_call`), { n: 1n });
});

test("a callback that throws rolls its writes back; a transaction used after commit says so", async () => {
  const table = unique("rolled");
  await db.script(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  await assert.rejects(
    db.inTx(async (tx) => {
      await tx.exec(`INSERT INTO ${table} VALUES (1)`);
      assert.deepEqual(await tx.queryOne(`SELECT id FROM ${table}`), { id: 1 });
      throw new Error("callback failed");
    }),
    /callback failed/,
  );
  assert.equal(await db.queryOne(`SELECT id FROM ${table}`), null, "the insert was rolled back");

  let kept!: import("../src/index.js").Tx;
  await db.inTx(async (tx) => {
    kept = tx;
    await tx.exec(`INSERT INTO ${table} VALUES (2)`);
  });
  await assert.rejects(kept.query("SELECT 1"), (e: unknown) => e instanceof TxGoneError && /gone: committed/.test(e.message));
  const rb = await db.beginTx();
  await rb.rollback();
  await assert.rejects(rb.exec("SELECT 1"), (e: unknown) => e instanceof TxGoneError && /gone: rolled back/.test(e.message));
  assert.deepEqual((await db.query(`SELECT id FROM ${table}`)).rows, [{ id: 2 }]);
});

test("a user that may read only its own inboxes: the wrong inboxPrefix fails at once, its own is answered", async () => {
  const bin = [process.env.TEST_NATS_SERVER ?? "", "/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(
    (p) => p !== "" && existsSync(p),
  );
  // make services installs it; a missing server is a failure, never a skip.
  assert.ok(bin, "no nats-server binary to start a server with users (make services installs it, or set TEST_NATS_SERVER)");
  const dir = mkdtempSync(join(tmpdir(), "tsnats-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "nats.conf"),
    `authorization { users = [ { user: caller, password: pw, permissions: { publish: ">", subscribe: "_INBOX_caller.>" } } ] }\n`,
  );
  const server = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-c", join(dir, "nats.conf")], { stdio: "ignore" });
  let restricted: NatsConnection | undefined;
  try {
    for (let i = 0; i < 50 && !restricted; i++) {
      restricted = await connect({ servers: `nats://127.0.0.1:${port}`, user: "caller", pass: "pw" }).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    assert.ok(restricted, "the server with users started");
    const wrong = new DbworkerClient(restricted, { prefix: "p", timeoutMs: 10_000 });
    const started = Date.now();
    await assert.rejects(wrong.health(), /answer subscription _INBOX\.> failed.*Permissions Violation/is);
    assert.ok(Date.now() - started < 5000, "failed at once, not after the timeout");
    wrong.close();
    // Its own inbox prefix subscribes: NATS's "no responders" comes back on it.
    const own = new DbworkerClient(restricted, { prefix: "p", inboxPrefix: "_INBOX_caller", timeoutMs: 10_000 });
    await assert.rejects(own.health(), NoWorkerError);
    own.close();
  } finally {
    await restricted?.close();
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
