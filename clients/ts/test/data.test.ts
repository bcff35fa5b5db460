// db.vector, db.graph, cache.embedding, db.stats, db.vacuum and db.health.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { DbworkerError, f32leDecode, f32leEncode, type DbworkerClient } from "../src/index.js";
import { schema, setup, unique } from "./helpers.js";

let db: DbworkerClient;
let bin: DbworkerClient;
let done: () => Promise<void>;
let doneBin: () => Promise<void>;

before(async () => {
  ({ db, done } = await setup({ vectorEncoding: "json" }));
  ({ db: bin, done: doneBin } = await setup({ vectorEncoding: "f32le" }));
});
after(async () => {
  await done();
  await doneBin();
});

const v = (...xs: number[]) => Float32Array.from(xs);

test("f32le encodes float32 little-endian, bit for bit", () => {
  const x = v(1, -0.5, 3.4028234663852886e38, 1e-45);
  const b64 = f32leEncode(x);
  assert.equal(Buffer.from(b64, "base64").toString("hex"), "0000803f000000bfffff7f7f01000000");
  assert.deepEqual(f32leDecode(b64), x);
  assert.throws(() => f32leDecode("AAA="), /multiple of 4/);
});

describe("cache.embedding", () => {
  test("get, set, mset, mget and delete (JSON vectors)", async () => {
    const h = unique("emb");
    assert.deepEqual(await db.embeddings.get({ hash: h }), { hash: h, hit: false, vector: null });
    assert.deepEqual(await db.embeddings.set({ hash: h }, v(0.1, 0.2, 0.3)), { stored: 1, hashes: [h] });
    const got = await db.embeddings.get({ hash: h });
    assert.equal(got.hit, true);
    assert.deepEqual(got.vector, v(0.1, 0.2, 0.3));
    const ms = await db.embeddings.mset([
      { key: { text: "hello", model: "m1" }, vector: [1, 2] },
      { key: { hash: `${h}b` }, vector: [3] },
    ]);
    assert.equal(ms.stored, 2);
    assert.match(ms.hashes[0], /^[0-9a-f]{64}$/);
    const mg = await db.embeddings.mget([ms.hashes[0], "missing-" + h, `${h}b`]);
    assert.deepEqual(mg, { vectors: [v(1, 2), null, v(3)], hits: 2 });
    assert.deepEqual((await db.embeddings.get({ text: "hello", model: "m1" })).vector, v(1, 2));
    assert.equal(await db.embeddings.delete([h, `${h}b`, "missing-" + h]), 2);
    assert.equal(await db.embeddings.delete({ text: "hello", model: "m1" }), 1);
  });

  test("get, set, mset, mget in the binary float32 form", async () => {
    const h = unique("embb");
    const x = v(0.1, -2.5e-8, 3.4028234663852886e38);
    await bin.embeddings.set({ hash: h }, x);
    const got = await bin.embeddings.get({ hash: h });
    assert.equal(f32leEncode(got.vector!), f32leEncode(x), "bit for bit");
    await bin.embeddings.mset([{ key: { hash: `${h}2` }, vector: v(7) }]);
    const mg = await bin.embeddings.mget([h, "missing", `${h}2`]);
    assert.deepEqual(mg, { vectors: [x, null, v(7)], hits: 2 });
    assert.deepEqual((await db.embeddings.get({ hash: h })).vector, x, "the JSON form reads the same vector");
  });
});

describe("db.vector", () => {
  const coll = unique("docs").toLowerCase().slice(0, 40);

  test("create, upsert, search, stats, delete (JSON vectors)", async () => {
    const c = await db.vectors.createCollection(coll, { dimension: 3, metric: "cosine" });
    assert.deepEqual([c.name, c.dimension, c.metric], [coll, 3, "cosine"]);
    assert.equal(
      await db.vectors.upsert(coll, [
        { id: "a", vector: [1, 0, 0], content: "east", metadata: { kind: "x" } },
        { id: "b", vector: [0, 1, 0], content: "north", metadata: { kind: "y" } },
        { id: "c", vector: v(0.9, 0.1, 0), content: "mostly east", metadata: { kind: "x" } },
      ]),
      3,
    );
    const m = await db.vectors.search(coll, [1, 0, 0], { k: 2 });
    assert.deepEqual(
      m.map((x) => x.id),
      ["a", "c"],
    );
    assert.ok(Math.abs(m[0].score - 1) < 1e-6);
    assert.equal(m[0].content, "east");
    assert.deepEqual(m[0].metadata, { kind: "x" });
    const f = await db.vectors.search(coll, [0, 1, 0], { k: 5, filter: { kind: "x" } });
    assert.deepEqual(
      f.map((x) => x.id).sort(),
      ["a", "c"],
    );
    const st = await db.vectors.stats(coll);
    assert.deepEqual([st.total, st.embedded, st.dimension], [3, 3, 3]);
    assert.equal(await db.vectors.delete(coll, ["b", "zz"]), 1);
    await assert.rejects(db.vectors.search(coll, [1, 0]), (e: unknown) => e instanceof DbworkerError && e.code === "BAD_REQUEST");
    await assert.rejects(db.vectors.search(unique("nocoll").toLowerCase().slice(0, 40), [1, 0, 0]), (e: unknown) => e instanceof DbworkerError && e.code === "NOT_FOUND");
    const rb = await db.vectors.rebuildIndex(coll, "hnsw");
    assert.equal(rb.index, "hnsw");
  });

  test("upsert and search with vector_b64, vectors back bit for bit", async () => {
    const x = v(0.3, 0.2, 0.1);
    assert.equal(await bin.vectors.upsert(coll, [{ id: "bin", vector: x }]), 1);
    const m = await bin.vectors.search(coll, x, { k: 1, includeVectors: true });
    assert.equal(m[0].id, "bin");
    assert.equal(f32leEncode(m[0].vector!), f32leEncode(x));
    const j = await db.vectors.search(coll, x, { k: 1, includeVectors: true });
    assert.deepEqual(j[0].vector, x);
  });
});

test("db.graph: nodes, edges, neighbours, paths, subgraphs, delete", async () => {
  const a = unique("n");
  const b = `${a}_b`;
  const c = `${a}_c`;
  const na = await db.graph.addNode({ node_id: a, node_type: "person", label: "A", properties: { age: 3 } });
  assert.deepEqual([na.node_id, na.node_type, na.label, na.properties], [a, "person", "A", { age: 3 }]);
  await db.graph.addNode({ node_id: b });
  await db.graph.addNode({ node_id: c });
  const e = await db.graph.addEdge({ from: a, to: b, edge_type: "knows", weight: 2 });
  assert.deepEqual([e.from, e.to, e.edge_type, e.weight], [a, b, "knows", 2]);
  await db.graph.addEdge({ from: b, to: c, edge_type: "knows" });
  const merged = await db.graph.addNode({ node_id: a, properties: { name: "x" } });
  assert.deepEqual([merged.node_type, merged.properties], ["person", { age: 3, name: "x" }]);
  const replaced = await db.graph.addNode({ node_id: a, properties: { name: "y" } }, { mode: "replace" });
  assert.deepEqual([replaced.node_type, replaced.label, replaced.properties], ["node", null, { name: "y" }]);
  const nb = await db.graph.neighbors(a, { direction: "out" });
  assert.deepEqual(
    nb.map((x) => [x.node.node_id, x.direction]),
    [[b, "out"]],
  );
  const p = await db.graph.findPath(a, c);
  assert.equal(p.found, true);
  assert.deepEqual(
    p.nodes.map((x) => x.node_id),
    [a, b, c],
  );
  const sg = await db.graph.subgraph(a, { depth: 2 });
  assert.equal(sg.nodes.length, 3);
  assert.equal(sg.edges.length, 2);
  const del = await db.graph.deleteNode(b);
  assert.equal(del.edges_deleted, 2);
  assert.equal((await db.graph.findPath(a, c)).found, false);
});

test("db.stats, db.vacuum and db.health", async () => {
  const table = unique("maint");
  await db.script(`CREATE TABLE ${table} (id int); INSERT INTO ${table} SELECT generate_series(1, 100)`);
  const st = await db.stats({ table: `${schema}.${table}`, publish: false });
  assert.equal(st.tables.length, 1);
  assert.equal(st.tables[0].table, table);
  assert.equal(st.tables[0].schema, schema);
  assert.ok(st.database.size_bytes > 0);
  const vac = await db.vacuum({ table: `${schema}.${table}` });
  assert.equal(vac.status, "ok");
  assert.equal(vac.table, table);
  const job = await db.vacuum({ table: `${schema}.${table}`, async: true });
  assert.ok(job.job_id && job.stream);
  await assert.rejects(db.stats({ table: `${schema}.no_such_table` }), (e: unknown) => e instanceof DbworkerError && e.code === "NOT_FOUND");
  const h = await db.health();
  assert.equal(h.status, "healthy");
  assert.equal(h.state.backend, "redis");
  assert.equal(h.nats.connected, true);
  assert.ok(h.postgres.pgvector);
});
