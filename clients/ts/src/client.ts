// The client: one per NATS connection (which stays the caller's), safe to
// share. Every db.execute request asks for safe_numbers.

import type { NatsConnection } from "@nats-io/nats-core";

import { DbworkerError } from "./errors.js";
import { Graph, Vectors } from "./data.js";
import type {
  ExecuteRequest,
  HealthResult,
  Isolation,
  JobAccepted,
  RawExecuteResult,
  RateLimitResult,
  Statement,
  StatsRequest,
  StatsResult,
  TxBeginResult,
  VacuumRequest,
  VacuumResult,
} from "./messages.js";
import { decodeBatch, Queryable, requestFields, type BatchResult, type CallOptions, type QueryOptions } from "./sql.js";
import { Embeddings, KV, Locks, type Locker, type LockOptions, type RateLimitOptions, type Sender } from "./state.js";
import { RowStream } from "./stream.js";
import { bodyError, Transport } from "./transport.js";
import { beginRequest, Tx, type TxHost, type TxOptions } from "./tx.js";
import type { ValueOptions } from "./values.js";

/** The request timeout when a call names none. */
export const TIMEOUT_DEFAULT_MS = 30_000;

export interface ClientOptions extends ValueOptions {
  /** The workers' SUBJECT_PREFIX, such as "prod." (the trailing dot may be left out). */
  prefix?: string;
  /**
   * The inbox prefix answers come back on: "_INBOX" by default; a user with
   * its own inboxes (nats-server.conf, "_INBOX_orders") sets it. The worker
   * answers only under WORKER_TRUSTED_REPLY_PREFIXES.
   */
  inboxPrefix?: string;
  /** How long a call waits for its answer (each message of a stream). Default 30 s. */
  timeoutMs?: number;
  /**
   * How vectors travel (cache.embedding, db.vector): "f32le" (default),
   * base64 of little-endian float32 (vector_b64); "json", arrays of numbers.
   */
  vectorEncoding?: "f32le" | "json";
}

const TOKEN = /^[^\s.*>]+$/;

function normalizePrefix(p: string | undefined): string {
  if (!p) return "";
  const s = p.endsWith(".") ? p.slice(0, -1) : p;
  if (!s.split(".").every((t) => TOKEN.test(t))) throw new RangeError(`prefix ${JSON.stringify(p)} is not a run of subject tokens`);
  return s + ".";
}

/** A statement of a tx batch: SQL with its params, as Statement. */
export type TxStatement = Statement;

/** Options of a tx batch. */
export interface TxBatchOptions extends QueryOptions {
  isolation?: Isolation;
  deferrable?: boolean;
}

/** Sends requests to dbworker over a NATS connection. */
export class DbworkerClient extends Queryable implements Sender, TxHost {
  readonly transport: Transport;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly vectorEncoding: "f32le" | "json";
  private readonly valueOptions: ValueOptions;

  /** state.kv */
  readonly kv: KV;
  /** state.lock */
  readonly locks: Locks;
  /** cache.embedding */
  readonly embeddings: Embeddings;
  /** db.vector */
  readonly vectors: Vectors;
  /** db.graph */
  readonly graph: Graph;

  constructor(
    readonly nc: NatsConnection,
    o: ClientOptions = {},
  ) {
    super();
    this.prefix = normalizePrefix(o.prefix);
    const inbox = (o.inboxPrefix ?? "_INBOX").replace(/\.$/, "");
    if (!inbox.split(".").every((t) => TOKEN.test(t))) throw new RangeError(`inboxPrefix ${JSON.stringify(o.inboxPrefix)} is not a run of subject tokens`);
    if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${o.timeoutMs}`);
    this.timeoutMs = o.timeoutMs ?? TIMEOUT_DEFAULT_MS;
    this.vectorEncoding = o.vectorEncoding ?? "f32le";
    this.valueOptions = { numeric: o.numeric, dates: o.dates };
    this.transport = new Transport(nc, inbox);
    this.kv = new KV(this);
    this.locks = new Locks(this);
    this.embeddings = new Embeddings(this);
    this.vectors = new Vectors(this);
    this.graph = new Graph(this);
  }

  /** A subject with the prefix. */
  subject(s: string): string {
    return this.prefix + s;
  }

  /** Sends body to subject (without prefix) and returns the parsed answer. */
  send<T>(subject: string, body: unknown, o: CallOptions = {}): Promise<T> {
    const full = this.subject(subject);
    return this.transport.request<T>(full, body, { timeoutMs: o.timeoutMs ?? this.timeoutMs, requestId: o.requestId });
  }

  sendText(subject: string, body: unknown, o: CallOptions = {}): Promise<string> {
    const full = this.subject(subject);
    return this.transport.requestText(full, body, { timeoutMs: o.timeoutMs ?? this.timeoutMs, requestId: o.requestId });
  }

  values(o?: ValueOptions): ValueOptions {
    return { numeric: o?.numeric ?? this.valueOptions.numeric, dates: o?.dates ?? this.valueOptions.dates };
  }

  protected valuesOf(o?: ValueOptions): ValueOptions {
    return this.values(o);
  }

  protected async executeRaw(req: ExecuteRequest, o: CallOptions): Promise<RawExecuteResult> {
    const raw = await this.send<RawExecuteResult>("db.execute", req, o);
    const err = bodyError(raw, this.subject("db.execute"));
    if (err) throw err;
    return raw;
  }

  protected streamRaw<T>(req: ExecuteRequest, o: QueryOptions): Promise<RowStream<T>> {
    const s = this.subject("db.execute");
    return RowStream.open<T>(this.transport, s, s, req, o.timeoutMs ?? this.timeoutMs, o.requestId, this.values(o));
  }

  /** Runs statements in one transaction, one round trip each; the first failure rolls back all (failed_index). */
  async tx<T = Record<string, unknown>>(statements: TxStatement[], o?: TxBatchOptions): Promise<BatchResult<T>> {
    const req: ExecuteRequest = { op: "tx", statements, isolation: o?.isolation, deferrable: o?.deferrable || undefined, ...requestFields(o) };
    return decodeBatch<T>(await this.executeRaw(req, o ?? {}), this.values(o));
  }

  /** Runs any number of statements without params in one transaction. */
  async script(sql: string, o?: QueryOptions): Promise<{ commands: string[]; command: string; rowsAffected: number }> {
    const raw = await this.executeRaw({ op: "script", sql, ...requestFields(o) }, o ?? {});
    return { commands: raw.commands ?? [], command: raw.command ?? "", rowsAffected: raw.rows_affected };
  }

  /** Opens an interactive transaction; end it with commit or rollback. */
  async beginTx(o: TxOptions = {}): Promise<Tx> {
    const begun = await this.send<TxBeginResult>("db.tx", beginRequest(o), o);
    return new Tx(this, begun);
  }

  /**
   * Runs fn in a transaction: commits when it returns, rolls back when it
   * throws. A serialization failure (SQLSTATE 40001), from fn or from the
   * commit, runs fn again in a new transaction, up to maxRetries (3) times:
   * fn must be safe to run again.
   */
  async inTx<R>(fn: (tx: Tx) => Promise<R>, o: TxOptions = {}): Promise<R> {
    const retries = o.maxRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.inTxOnce(fn, o);
      } catch (e) {
        if (attempt >= retries || !(e instanceof DbworkerError) || e.sqlstate !== "40001") throw e;
      }
    }
  }

  private async inTxOnce<R>(fn: (tx: Tx) => Promise<R>, o: TxOptions): Promise<R> {
    const tx = await this.beginTx(o);
    let out: R;
    try {
      out = await fn(tx);
    } catch (e) {
      await tx.rollback().catch(() => undefined);
      throw e;
    }
    await tx.commit();
    return out;
  }

  /** state.ratelimit: consumes cost (1) of key's limit per window. */
  rateLimit(key: string, limit: number, windowMs: number, o: RateLimitOptions = {}): Promise<RateLimitResult> {
    return this.send("state.ratelimit", { key, limit, window_ms: windowMs, cost: o.cost }, o);
  }

  /** Acquires a lock (answered with its lease when taken). */
  lock(key: string, o: LockOptions = {}) {
    return this.locks.acquire(key, o);
  }

  /** Releases a lock with its lease. */
  release(key: string, lease: string, o: CallOptions = {}) {
    return this.locks.release(key, lease, o);
  }

  /** A lock kept refreshed until unlock (Locks.lock). */
  locker(key: string, ttlMs: number, o: LockOptions = {}): Promise<Locker> {
    return this.locks.lock(key, ttlMs, o);
  }

  /** db.health */
  health(o: CallOptions = {}): Promise<HealthResult> {
    return this.send("db.health", {}, o);
  }

  /** db.stats */
  stats(req: StatsRequest = {}, o: CallOptions = {}): Promise<StatsResult> {
    return this.send("db.stats", req, o);
  }

  /** db.vacuum: the run's result, or with async the queued job. */
  vacuum(req: VacuumRequest & { async: true }, o?: CallOptions): Promise<JobAccepted>;
  vacuum(req?: VacuumRequest, o?: CallOptions): Promise<VacuumResult>;
  vacuum(req: VacuumRequest = {}, o: CallOptions = {}): Promise<VacuumResult | JobAccepted> {
    return this.send("db.vacuum", req, o);
  }

  /** Stops the client's answer subscription (the NATS connection stays open). */
  close(): void {
    this.transport.close();
  }
}
