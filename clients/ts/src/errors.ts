// Errors of the client. A worker's error answer is a DbworkerError; the
// others say what went wrong on the way (no worker, a broken stream, a
// transaction that is gone, a timeout).

/** The error codes of docs/protocol.md, "Errors". */
export type ErrorCode =
  | "BAD_REQUEST"
  | "SQL_ERROR"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "TIMEOUT"
  | "CONFLICT"
  | "LOCKED"
  | "TOO_LARGE"
  | "UNAVAILABLE"
  | "INTERNAL"
  | "TX_ABORTED"
  | "TX_GONE";

/** The body of an error answer: {"error":{...}}. */
export interface ErrorBody {
  code: ErrorCode;
  status: number;
  message: string;
  sqlstate?: string;
  detail?: string;
  hint?: string;
  position?: number;
  failed_index?: number;
  param?: string;
}

/**
 * A failed request, as the worker answered it: the Nats-Service-Error-Code
 * and Nats-Service-Error headers, and the body's fields. Fields the worker
 * left out are undefined.
 */
export class DbworkerError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly sqlstate?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: number;
  /** The statement (tx, script) or item (many) that failed, from 0. */
  readonly failed_index?: number;
  /** The request field or parameter a BAD_REQUEST names. */
  readonly param?: string;
  /** The subject the request went to (a transaction's is shortened). */
  readonly subject: string;

  constructor(body: ErrorBody, subject: string) {
    super(`${subject}: ${body.code} (${body.status}${body.sqlstate ? `, SQLSTATE ${body.sqlstate}` : ""}): ${body.message}`);
    this.name = "DbworkerError";
    this.code = body.code;
    this.status = body.status;
    this.sqlstate = body.sqlstate;
    this.detail = body.detail;
    this.hint = body.hint;
    this.position = body.position;
    this.failed_index = body.failed_index;
    this.param = body.param;
    this.subject = subject;
  }

  /** failed_index, camel-cased. */
  get failedIndex(): number | undefined {
    return this.failed_index;
  }

  /** The worker's message, without the subject and code. */
  get workerMessage(): string {
    return this.message.slice(this.message.indexOf("): ") + 3);
  }
}

/** No worker serves the subject (NATS answered "no responders"). */
export class NoWorkerError extends Error {
  constructor(readonly subject: string) {
    super(`${subject}: no dbworker serves this subject`);
    this.name = "NoWorkerError";
  }
}

/** No answer came within the request's timeout. */
export class RequestTimeoutError extends Error {
  constructor(readonly subject: string, readonly timeoutMs: number) {
    super(`${subject}: no answer within ${timeoutMs}ms`);
    this.name = "RequestTimeoutError";
  }
}

/**
 * A streamed answer lost a message, or carried fewer rows than its totals
 * say: what was read is not the whole answer.
 */
export class StreamBrokenError extends Error {
  constructor(readonly subject: string, detail: string) {
    super(`${subject}: the stream is broken: ${detail}`);
    this.name = "StreamBrokenError";
  }
}

/**
 * An interactive transaction that has ended: committed, rolled back, timed
 * out, or its worker stopped (PostgreSQL then rolled it back). `cause` is
 * the worker's TX_GONE answer when there was one.
 */
export class TxGoneError extends Error {
  /**
   * reason says how it ended when the client saw it end ("committed",
   * "rolled back"); else the worker's message, or none.
   */
  constructor(readonly tx: string, cause?: unknown, reason?: string) {
    super(`tx ${tx.slice(0, 8)}: the transaction is gone${reason ? `: ${reason}` : cause instanceof Error ? `: ${cause.message}` : ""}`, { cause });
    this.name = "TxGoneError";
  }
}

/** Whether err is a DbworkerError with one of codes (any code when none). */
export function isDbworkerError(err: unknown, ...codes: ErrorCode[]): err is DbworkerError {
  return err instanceof DbworkerError && (codes.length === 0 || codes.includes(err.code));
}
