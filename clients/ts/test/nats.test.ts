// A plain nats.js request, without the client: safe_numbers gives exact
// strings where JSON.parse would change the numbers.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";

import { natsURL, prefix, setup } from "./helpers.js";

let nc: NatsConnection;
let done: () => Promise<void>;

before(async () => {
  ({ done } = await setup()); // waits for the worker
  nc = await connect({ servers: natsURL });
});
after(async () => {
  await nc.close();
  await done();
});

const sql = "select 9007199254740993::int8 as big, 9223372036854775807::int8 as max, 1.10::numeric as n, 1234567890123456789012345678901234567890::numeric as n40, 5::int8 as small";

test("with safe_numbers, JSON.parse gets the exact digits as strings", async () => {
  const m = await nc.request(`${prefix}db.execute`, JSON.stringify({ sql, safe_numbers: true }), { timeout: 10_000 });
  const body = JSON.parse(new TextDecoder().decode(m.data));
  assert.deepEqual(body.rows, [{ big: "9007199254740993", max: "9223372036854775807", n: "1.10", n40: "1234567890123456789012345678901234567890", small: 5 }]);
});

test("without it, the answer is unchanged (and JSON.parse loses digits)", async () => {
  const m = await nc.request(`${prefix}db.execute`, JSON.stringify({ sql }), { timeout: 10_000 });
  const raw = new TextDecoder().decode(m.data);
  assert.match(raw, /"big":9007199254740993,"max":9223372036854775807,"n":1.10,/);
  const body = JSON.parse(raw);
  assert.equal(body.rows[0].big, 9007199254740992, "the precision loss safe_numbers exists for");
  assert.equal(body.rows[0].n, 1.1);
});
