// Shared set-up of the tests: a NATS connection to the worker test/run.sh
// started, and a client with its subject prefix.

import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";

import { DbworkerClient, NoWorkerError, RequestTimeoutError, type ClientOptions } from "../src/index.js";

export const natsURL = process.env.DBWORKER_TEST_NATS_URL ?? "";
export const prefix = process.env.DBWORKER_TEST_PREFIX ?? "";
export const schema = process.env.DBWORKER_TEST_SCHEMA ?? "";

if (!natsURL) {
  throw new Error("DBWORKER_TEST_NATS_URL is not set: run the tests with test/run.sh (make test-ts), which starts a worker");
}

/** A fresh connection and client; close them with done(). */
export async function setup(o: ClientOptions = {}): Promise<{ nc: NatsConnection; db: DbworkerClient; done: () => Promise<void> }> {
  const nc = await connect({ servers: natsURL });
  const db = new DbworkerClient(nc, { prefix, vectorEncoding: "json", ...o });
  await waitForWorker(db);
  return {
    nc,
    db,
    done: async () => {
      db.close();
      await nc.close();
    },
  };
}

/** Waits (up to 30 s) for the worker to answer db.health. */
async function waitForWorker(db: DbworkerClient): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await db.health({ timeoutMs: 2000 });
      return;
    } catch (e) {
      if (!(e instanceof NoWorkerError || e instanceof RequestTimeoutError) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A name unique to this run, for tables, keys and collections. */
let n = 0;
export function unique(base: string): string {
  return `${base}_${process.pid}_${Date.now() % 1e6}_${n++}`;
}

