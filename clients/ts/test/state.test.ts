// state.ratelimit, state.lock (with the lease, and a refreshing Locker) and
// state.kv, on the worker's Redis.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { DbworkerError, LockNotAcquiredError, type DbworkerClient } from "../src/index.js";
import { setup, unique } from "./helpers.js";

let db: DbworkerClient;
let done: () => Promise<void>;

before(async () => {
  ({ db, done } = await setup());
});
after(async () => done());

test("rateLimit admits limit calls per window, then denies", async () => {
  const key = unique("rl");
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push(await db.rateLimit(key, 3, 60_000));
  assert.deepEqual(
    seen.map((r) => [r.allowed, r.remaining]),
    [
      [true, 2],
      [true, 1],
      [true, 0],
      [false, 0],
    ],
  );
  assert.ok(seen[3].retry_after_ms > 0);
  const never = await db.rateLimit(key, 3, 60_000, { cost: 5 });
  assert.equal(never.retry_after_ms, -1);
});

test("lock and release with the lease; status never shows it", async () => {
  const key = unique("lock");
  const got = await db.lock(key, { ttlMs: 10_000, owner: "ts-a" });
  assert.equal(got.acquired, true);
  assert.equal(got.owner, "ts-a");
  assert.match(got.lease ?? "", /^[A-Z2-7]{26}$/);
  assert.ok((got.token ?? 0) > 0);
  const held = await db.lock(key, { owner: "ts-b" });
  assert.equal(held.acquired, false);
  assert.equal(held.owner, "ts-a");
  assert.equal(held.token, got.token);
  assert.equal(held.lease, undefined);
  const st = await db.locks.status(key);
  assert.deepEqual([st.held, st.owner, st.token, "lease" in st], [true, "ts-a", got.token, false]);
  assert.deepEqual(await db.release(key, "WRONGLEASEWRONGLEASEWRONGL"), { released: false, reason: "not_owner" });
  const ref = await db.locks.refresh(key, got.lease!, { ttlMs: 20_000 });
  assert.equal(ref.refreshed, true);
  assert.deepEqual(await db.release(key, got.lease!), { released: true });
  assert.deepEqual(await db.release(key, got.lease!), { released: false, reason: "not_held" });
  await assert.rejects(db.release(key, ""), (e: unknown) => e instanceof DbworkerError && e.param === "lease");
});

test("a Locker keeps its lock past the TTL until unlock, and reports a loss", async () => {
  const key = unique("locker");
  const lk = await db.locker(key, 300, { owner: "ts-locker" });
  await new Promise((r) => setTimeout(r, 1000));
  const st = await db.locks.status(key);
  assert.equal(st.held, true, "refreshed past three TTLs");
  assert.equal(st.token, lk.token);
  await assert.rejects(db.locker(key, 300), LockNotAcquiredError);
  await lk.unlock();
  assert.equal((await db.locks.status(key)).held, false);
  assert.equal(lk.err, undefined);

  // Released behind its back: the next refresh fails and lost settles.
  const lost = await db.locker(key, 300);
  await db.release(key, lost.lease);
  const why = await lost.lost;
  assert.match(why.message, /refresh refused: not_held/);
  assert.equal(lost.err, why);
  await lost.unlock(); // nothing to release
});

test("kv get, set with a TTL, delete, and incr exact past 2^53", async () => {
  const key = unique("kv");
  assert.deepEqual(await db.kv.get(key), { found: false, value: null });
  await db.kv.set(key, { a: [1, "two", null], b: true });
  assert.deepEqual(await db.kv.get(key), { found: true, value: { a: [1, "two", null], b: true } });
  await db.kv.set(key, "short", { ttlMs: 100 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await db.kv.get(key)).found, false);
  assert.equal(await db.kv.delete(key), false);
  await db.kv.set(key, 1);
  assert.equal(await db.kv.delete(key), true);

  const ctr = unique("ctr");
  assert.equal(await db.kv.incr(ctr), 1n);
  assert.equal(await db.kv.incr(ctr, 9007199254740992n), 9007199254740993n);
  assert.equal(await db.kv.incr(ctr, -3), 9007199254740990n);
});
