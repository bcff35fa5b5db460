// db.execute from TypeScript: the methods an interactive transaction and the
// client share (query, queryOne, exec, many, insert, update, stream), and
// how their options become request fields.

import type { Column, ExecuteRequest, Params, RawExecuteResult, RowFormat } from "./messages.js";
import type { RowStream } from "./stream.js";
import { RowDecoder, type ValueOptions } from "./values.js";

/** Options every call takes. */
export interface CallOptions {
  /** How long to wait for the answer (each message of a stream). Defaults to the client's timeoutMs. */
  timeoutMs?: number;
  /** Sent as the Request-Id header, to match the worker's log lines; a new id by default. */
  requestId?: string;
}

/** Options of a db.execute call. */
export interface QueryOptions extends CallOptions, ValueOptions {
  /** max_rows: the worker's DB_MAX_ROWS is the default and the cap of a plain answer. */
  maxRows?: number;
  /** timeout_ms: how long the worker lets the SQL run. */
  statementTimeoutMs?: number;
  /** read_only: a READ ONLY transaction that is rolled back. */
  readOnly?: boolean;
  /** "array" gives each row as an array in column order. */
  rowFormat?: RowFormat;
}

/** A query's rows, decoded. */
export interface Result<T = Record<string, unknown>> {
  columns: Column[];
  rows: T[];
  rowsAffected: number;
  command: string;
  /** Rows past max_rows were cut. */
  truncated: boolean;
}

/** One statement's answer in a tx batch or a many: rows, or row for op "one". */
export interface StatementResult<T = Record<string, unknown>> extends Result<T> {
  row?: T | null;
}

/** What a statement did. */
export interface CommandTag {
  rowsAffected: number;
  command: string;
}

/** The answer of many, tx and script. */
export interface BatchResult<T = Record<string, unknown>> {
  results: StatementResult<T>[];
  /** Rows written (INSERT, UPDATE, DELETE, MERGE), over every statement. */
  rowsAffected: number;
}

/** The request fields that options set. */
export function requestFields(o: QueryOptions | undefined): Partial<ExecuteRequest> {
  const r: Partial<ExecuteRequest> = { safe_numbers: true };
  if (!o) return r;
  if (o.maxRows !== undefined) r.max_rows = o.maxRows;
  if (o.statementTimeoutMs !== undefined) r.timeout_ms = o.statementTimeoutMs;
  if (o.readOnly) r.read_only = true;
  if (o.rowFormat) r.row_format = o.rowFormat;
  return r;
}

/** Decodes one answer (rows or row), and its results for batches. */
export function decodeResult<T>(raw: RawExecuteResult, values: ValueOptions): StatementResult<T> {
  const columns = raw.columns ?? [];
  const d = new RowDecoder(columns, values);
  const out: StatementResult<T> = {
    columns,
    rows: (raw.rows ?? []).map((r) => d.row(r) as T),
    rowsAffected: raw.rows_affected,
    command: raw.command ?? "",
    truncated: raw.truncated ?? false,
  };
  if ("row" in raw) out.row = raw.row === null ? null : (d.row(raw.row) as T);
  return out;
}

export function decodeBatch<T>(raw: RawExecuteResult, values: ValueOptions): BatchResult<T> {
  return { results: (raw.results ?? []).map((r) => decodeResult<T>(r, values)), rowsAffected: raw.rows_affected };
}

/** The SQL methods of a client and of an interactive transaction. */
export abstract class Queryable {
  /** Sends an ExecuteRequest (safe_numbers set) and returns the answer as sent. */
  protected abstract executeRaw(req: ExecuteRequest, o: CallOptions): Promise<RawExecuteResult>;
  /** Sends an ExecuteRequest as a caller that reads streamed answers. */
  protected abstract streamRaw<T>(req: ExecuteRequest, o: QueryOptions): Promise<RowStream<T>>;
  /** The value options in force for o. */
  protected abstract valuesOf(o?: ValueOptions): ValueOptions;

  /** Sends any db.execute body (safe_numbers is added) and decodes the answer. */
  async execute<T = Record<string, unknown>>(req: ExecuteRequest, o?: QueryOptions): Promise<StatementResult<T> & Partial<BatchResult<T>>> {
    const raw = await this.executeRaw({ ...req, ...requestFields(o), ...pick(req) }, o ?? {});
    const values = this.valuesOf(o);
    const res: StatementResult<T> & Partial<BatchResult<T>> = decodeResult<T>(raw, values);
    if (raw.results) res.results = decodeBatch<T>(raw, values).results;
    return res;
  }

  /** Runs one statement and returns its rows (one message: at most max_rows, truncated says so). */
  async query<T = Record<string, unknown>>(sql: string, params?: Params, o?: QueryOptions): Promise<Result<T>> {
    const raw = await this.executeRaw({ op: "query", sql, params, ...requestFields(o) }, o ?? {});
    const r = decodeResult<T>(raw, this.valuesOf(o));
    return { columns: r.columns, rows: r.rows, rowsAffected: r.rowsAffected, command: r.command, truncated: r.truncated };
  }

  /** Runs one statement and returns its first row, or null when there is none. */
  async queryOne<T = Record<string, unknown>>(sql: string, params?: Params, o?: QueryOptions): Promise<T | null> {
    const raw = await this.executeRaw({ op: "one", sql, params, ...requestFields(o) }, o ?? {});
    return decodeResult<T>(raw, this.valuesOf(o)).row ?? null;
  }

  /** Runs one statement for what it does, sending no row back. */
  async exec(sql: string, params?: Params, o?: QueryOptions): Promise<CommandTag> {
    const raw = await this.executeRaw({ op: "query", sql, params, ...requestFields(o), max_rows: 0 }, o ?? {});
    return { rowsAffected: raw.rows_affected, command: raw.command ?? "" };
  }

  /** Runs one statement once per item of paramsList, pipelined, in one transaction. */
  async many<T = Record<string, unknown>>(sql: string, paramsList: Params[], o?: QueryOptions): Promise<BatchResult<T>> {
    const raw = await this.executeRaw({ op: "many", sql, params_list: paramsList, ...requestFields(o) }, o ?? {});
    return decodeBatch<T>(raw, this.valuesOf(o));
  }

  /** Inserts one row; returns the columns of returning (every column by default). */
  async insert<T = Record<string, unknown>>(table: string, data: Record<string, unknown>, o?: QueryOptions & { returning?: string[] }): Promise<T | null> {
    const raw = await this.executeRaw({ op: "insert", table, data, returning: o?.returning, ...requestFields(o) }, o ?? {});
    return decodeResult<T>(raw, this.valuesOf(o)).row ?? null;
  }

  /** Updates the rows where matches (where_params bind its :names); allRows for every row. */
  async update(table: string, data: Record<string, unknown>, where: string, whereParams?: Record<string, unknown>, o?: QueryOptions & { allRows?: boolean }): Promise<CommandTag> {
    const raw = await this.executeRaw(
      { op: "update", table, data, where: where || undefined, where_params: whereParams, all_rows: o?.allRows || undefined, ...requestFields(o) },
      o ?? {},
    );
    return { rowsAffected: raw.rows_affected, command: raw.command ?? "" };
  }

  /**
   * Runs a query whose answer may be larger than one message: its rows
   * arrive as they are read, with flow control. max_rows, when given, is the
   * only cap.
   */
  stream<T = Record<string, unknown>>(sql: string, params?: Params, o?: QueryOptions): Promise<RowStream<T>> {
    return this.streamRaw<T>({ op: "query", sql, params, ...requestFields(o) }, o ?? {});
  }
}

/** Fields of req that options must not override. */
function pick(req: ExecuteRequest): Partial<ExecuteRequest> {
  const out: Partial<ExecuteRequest> = {};
  for (const k of ["max_rows", "timeout_ms", "read_only", "row_format"] as const) {
    if (req[k] !== undefined) (out as Record<string, unknown>)[k] = req[k];
  }
  return out;
}
