// A tour of the TypeScript client against a running worker.
//
//   make run                      # a worker on nats://127.0.0.1:4222 (another terminal)
//   cd clients/ts && npm ci && npx tsc && node dist/examples/quickstart.js
//
// NATS_URL and SUBJECT_PREFIX, when set, are the worker's.

import { connect } from "@nats-io/transport-node";

import { DbworkerClient, DbworkerError } from "../src/index.js";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const db = new DbworkerClient(nc, { prefix: process.env.SUBJECT_PREFIX, timeoutMs: 10_000 });

try {
  // Exact numbers: int8 as bigint, numeric as a string.
  const row = await db.queryOne<{ big: bigint; price: string }>("SELECT 9007199254740993::int8 AS big, 1.10::numeric AS price");
  console.log("big:", row?.big, "price:", row?.price);

  // A table, rows, a transaction.
  const table = `quickstart_${process.pid}`;
  await db.script(`CREATE TABLE ${table} (id int PRIMARY KEY, bal numeric(20,2) NOT NULL)`);
  await db.many(`INSERT INTO ${table} VALUES ($1, $2)`, [
    [1, "100.00"],
    [2, "0.00"],
  ]);
  await db.inTx(
    async (tx) => {
      await tx.exec(`UPDATE ${table} SET bal = bal - :amt WHERE id = 1`, { amt: "10.10" });
      await tx.exec(`UPDATE ${table} SET bal = bal + :amt WHERE id = 2`, { amt: "10.10" });
    },
    { isolation: "serializable" },
  );
  console.log("balances:", (await db.query(`SELECT id, bal FROM ${table} ORDER BY id`)).rows);

  // Errors carry the worker's fields.
  try {
    await db.insert(table, { id: 1, bal: "1" });
  } catch (e) {
    if (e instanceof DbworkerError) console.log("refused:", e.code, e.status, e.sqlstate, e.detail);
  }

  // A large result, read as it arrives.
  let n = 0;
  for await (const _ of await db.stream("SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000) g")) n++;
  console.log("streamed rows:", n);

  // State: a rate limit, a lock kept refreshed, a counter.
  console.log("rate limit:", await db.rateLimit(`quickstart:${process.pid}`, 10, 60_000));
  const lock = await db.locker(`quickstart:${process.pid}`, 5_000);
  console.log("lock token:", lock.token);
  await lock.unlock();
  console.log("counter:", await db.kv.incr(`quickstart:${process.pid}`, 9007199254740993n));
  await db.kv.delete(`quickstart:${process.pid}`);

  await db.script(`DROP TABLE ${table}`);
  console.log("health:", (await db.health()).status);
} finally {
  db.close();
  await nc.close();
}
