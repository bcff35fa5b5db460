// Streamed results (docs/protocol.md, "Streamed results"): the request
// carries Stream-Window; an answer too large for one message arrives as data
// messages with Stream-Id and Stream-Seq, read with credit granted on the
// Stream-Credit subject, and ends with Stream-End: the totals, or an error.

import type { Msg } from "@nats-io/nats-core";

import { StreamBrokenError } from "./errors.js";
import type { Column, RawExecuteResult, StreamEnd } from "./messages.js";
import { answerError, header, text, type Call, type Transport } from "./transport.js";
import { RowDecoder, type ValueOptions } from "./values.js";

/** The window the client asks for: data messages ahead of its credit. */
export const STREAM_WINDOW = 4;

/** What a finished stream reports. */
export interface StreamTotals {
  /** Rows the answer carried. */
  rowCount: number;
  rowsAffected: number;
  command: string;
  /** Rows past max_rows were cut. */
  truncated: boolean;
}

/**
 * The rows of a query, read as they arrive: `for await (const row of s)`.
 * A stream read to its end has `totals`; one left early (break) is
 * cancelled at the worker. An error (the statement's, a lost message) is
 * thrown by the loop: rows read before it are not the whole answer.
 */
export class RowStream<T = Record<string, unknown>> implements AsyncIterable<T> {
  /** The result's columns (known once the stream is open). */
  columns: Column[] = [];
  /** Set when the last message has been read. */
  totals?: StreamTotals;

  private id?: string;
  private credit?: string;
  private seq = 0;
  private read = 0;
  private done = false;
  private pending: unknown[] = [];
  private decoder?: RowDecoder;
  private iterating = false;

  private constructor(
    private readonly transport: Transport,
    private readonly call: Call,
    private readonly name: string,
    private readonly timeoutMs: number,
    private readonly values: ValueOptions,
  ) {}

  /** Sends a streamed request and reads its first message. */
  static async open<T>(transport: Transport, subject: string, name: string, body: unknown, timeoutMs: number, requestId: string | undefined, values: ValueOptions): Promise<RowStream<T>> {
    const call = transport.open(subject, body, {
      timeoutMs,
      requestId,
      headers: { "Stream-Window": String(STREAM_WINDOW) },
      bound: 2 * STREAM_WINDOW + 2,
      name,
    });
    const s = new RowStream<T>(transport, call, name, timeoutMs, values);
    try {
      await s.receive();
    } catch (e) {
      call.close();
      throw e;
    }
    return s;
  }

  private async nextMsg(): Promise<Msg> {
    // A message dropped past the bound breaks the answer whatever follows.
    if (this.call.lost) throw new StreamBrokenError(this.name, "messages arrived past the window");
    try {
      return await this.call.next(this.timeoutMs);
    } catch (e) {
      if (this.call.lost) throw new StreamBrokenError(this.name, "messages arrived past the window");
      throw e;
    }
  }

  /** Reads the next message into pending, or the totals. */
  private async receive(): Promise<void> {
    const m = await this.nextMsg();
    if (this.seq === 0) {
      this.id = header(m.headers, "Stream-Id");
      this.credit = header(m.headers, "Stream-Credit");
      if (!this.id) return this.whole(m);
    }
    this.seq++;
    const id = header(m.headers, "Stream-Id");
    const seq = header(m.headers, "Stream-Seq");
    if (id !== this.id || seq !== String(this.seq)) {
      throw new StreamBrokenError(this.name, `expected message ${this.seq} of stream ${this.id}, got message ${seq} of stream ${id}`);
    }
    if (header(m.headers, "Stream-End") === "true") return this.end(m);
    const chunk = JSON.parse(text(m)) as { columns?: Column[]; rows: unknown[] };
    if (this.seq === 1) this.setColumns(chunk.columns ?? []);
    this.pending = chunk.rows ?? [];
  }

  private setColumns(columns: Column[]): void {
    this.columns = columns;
    this.decoder = new RowDecoder(columns, this.values);
  }

  private whole(m: Msg): void {
    this.done = true;
    const err = answerError(m, this.name);
    if (err) throw err;
    const res = JSON.parse(text(m)) as RawExecuteResult;
    this.setColumns(res.columns ?? []);
    this.pending = res.rows ?? [];
    this.totals = { rowCount: this.pending.length, rowsAffected: res.rows_affected, command: res.command ?? "", truncated: res.truncated ?? false };
  }

  private end(m: Msg): void {
    this.done = true;
    this.pending = [];
    const err = answerError(m, this.name);
    if (err) throw err;
    const e = JSON.parse(text(m)) as StreamEnd;
    if (e.row_count !== this.read) {
      throw new StreamBrokenError(this.name, `the worker sent ${e.row_count} rows, ${this.read} arrived`);
    }
    this.totals = { rowCount: e.row_count, rowsAffected: e.rows_affected, command: e.command, truncated: e.truncated };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.iterating) throw new Error(`${this.name}: a RowStream is read once`);
    this.iterating = true;
    let finished = false;
    try {
      for (;;) {
        while (this.pending.length > 0) {
          const r = this.pending.shift();
          this.read++;
          yield this.decoder!.row(r) as T;
        }
        if (this.done) break;
        // Every row of data message seq is read: grant credit for it.
        if (this.seq > 0 && this.credit) this.transport.publish(this.credit, `{"ack":${this.seq}}`);
        await this.receive();
      }
      finished = true;
    } finally {
      if (!finished) this.cancel();
      this.call.close();
    }
  }

  /** Stops the stream: the worker cancels the statement and sends nothing more. */
  cancel(): void {
    if (!this.done && this.credit) this.transport.publish(this.credit, `{"cancel":true}`);
    this.done = true;
    this.call.close();
  }

  /** Reads every row into an array. */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const r of this) out.push(r);
    return out;
  }
}
