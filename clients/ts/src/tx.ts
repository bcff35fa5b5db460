// Interactive transactions (db.tx): begun on db.tx by any worker, then held
// by that worker on its subject until commit or rollback.

import { DbworkerError, NoWorkerError, TxGoneError } from "./errors.js";
import type { ExecuteRequest, Isolation, RawExecuteResult, TxBeginResult, TxEndResult } from "./messages.js";
import { Queryable, type CallOptions, type QueryOptions } from "./sql.js";
import { RowStream } from "./stream.js";
import { bodyError, type Transport } from "./transport.js";
import type { ValueOptions } from "./values.js";

/** How a transaction is opened. Every field is optional. */
export interface TxOptions extends CallOptions {
  isolation?: Isolation;
  readOnly?: boolean;
  deferrable?: boolean;
  /** Rolled back after this long without a request (default and cap: the worker's). */
  idleTimeoutMs?: number;
  /** Rolled back this long after begin (default and cap: the worker's). */
  maxLifetimeMs?: number;
  /** inTx: runs of fn after a serialization failure (40001). Default 3; 0 for none. */
  maxRetries?: number;
}

/** What a Tx needs of its client. */
export interface TxHost {
  transport: Transport;
  timeoutMs: number;
  values(o?: ValueOptions): ValueOptions;
}

/**
 * An interactive transaction. Calls wait for each other (the worker runs one
 * request of a transaction at a time), except rollback, which interrupts a
 * statement running.
 */
export class Tx extends Queryable {
  readonly id: string;
  /** The subject of the worker that holds the transaction (with its secret id). */
  readonly subject: string;
  readonly readOnly: boolean;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  private ended = false;
  /** How the client saw it end, for TxGoneError's message. */
  private endedBy?: string;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: TxHost,
    begun: TxBeginResult,
  ) {
    super();
    this.id = begun.tx;
    this.subject = begun.subject;
    this.readOnly = begun.read_only;
    this.idleTimeoutMs = begun.idle_timeout_ms;
    this.maxLifetimeMs = begun.max_lifetime_ms;
  }

  private get name(): string {
    return `tx ${this.id.slice(0, 8)}`;
  }

  /** Runs fn after the calls before it (one request of a transaction at a time). */
  private queued<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.turn.then(fn, fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async send<R>(body: unknown, o: CallOptions): Promise<R> {
    if (this.ended) throw new TxGoneError(this.id, undefined, this.endedBy);
    try {
      const raw = await this.host.transport.request<R>(this.subject, body, { timeoutMs: o.timeoutMs ?? this.host.timeoutMs, requestId: o.requestId, name: this.name });
      const err = bodyError(raw, this.name);
      if (err) throw err;
      return raw;
    } catch (e) {
      throw this.gone(e);
    }
  }

  private end(how: string): void {
    this.ended = true;
    this.endedBy ??= how;
  }

  /** Maps "no worker" and TX_GONE to TxGoneError. */
  private gone(e: unknown): unknown {
    if (e instanceof NoWorkerError || (e instanceof DbworkerError && e.code === "TX_GONE")) {
      this.ended = true;
      return new TxGoneError(this.id, e);
    }
    return e;
  }

  protected executeRaw(req: ExecuteRequest, o: CallOptions): Promise<RawExecuteResult> {
    return this.queued(() => this.send<RawExecuteResult>(req, o));
  }

  protected streamRaw<T>(req: ExecuteRequest, o: QueryOptions): Promise<RowStream<T>> {
    // The stream holds the transaction's turn until it is opened; its rows
    // are read after (the worker refuses a second request meanwhile).
    return this.queued(async () => {
      if (this.ended) throw new TxGoneError(this.id, undefined, this.endedBy);
      try {
        return await RowStream.open<T>(this.host.transport, this.subject, this.name, req, o.timeoutMs ?? this.host.timeoutMs, o.requestId, this.host.values(o));
      } catch (e) {
        throw this.gone(e);
      }
    });
  }

  protected valuesOf(o?: ValueOptions): ValueOptions {
    return this.host.values(o);
  }

  /**
   * Commits. A transaction aborted by an earlier error is rolled back
   * instead, and commit throws a DbworkerError with code TX_ABORTED.
   */
  commit(o: CallOptions = {}): Promise<void> {
    return this.queued(async () => {
      try {
        await this.send<TxEndResult>({ op: "commit" }, o);
        this.end("committed");
      } catch (e) {
        if (e instanceof DbworkerError && e.code === "TX_ABORTED") this.end("rolled back by a commit after an error (TX_ABORTED)");
        throw e;
      }
    });
  }

  /** Rolls back; a transaction that has ended already is not an error. */
  async rollback(o: CallOptions = {}): Promise<void> {
    if (this.ended) return;
    try {
      await this.send<TxEndResult>({ op: "rollback" }, o);
      this.end("rolled back");
    } catch (e) {
      if (e instanceof TxGoneError) return;
      throw e;
    }
  }
}

/** The body of a begin. */
export function beginRequest(o: TxOptions): Record<string, unknown> {
  return {
    op: "begin",
    isolation: o.isolation,
    read_only: o.readOnly || undefined,
    deferrable: o.deferrable || undefined,
    idle_timeout_ms: o.idleTimeoutMs,
    max_lifetime_ms: o.maxLifetimeMs,
  };
}
