// The client's side of NATS request-reply: one subscription on
// <inboxPrefix>.<id>.* for every answer, a token of it per request (as
// nats.js routes its own requests, and as pkg/client does for streams), the
// Request-Id header, and error answers turned into DbworkerError.

import { headers, nuid, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/nats-core";

import { DbworkerError, NoWorkerError, RequestTimeoutError, type ErrorBody } from "./errors.js";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// A bigint has no JSON form in JSON.stringify (it throws); the encoder
// writes it as a marked string, then replaces the string with its digits.
const BIGINT_MARK = `~dbworker-bigint-${nuid.next()}~`;
const BIGINT_STRING = new RegExp(`"${BIGINT_MARK}(-?[0-9]+)"`, "g");

function replacer(this: unknown, key: string, v: unknown): unknown {
  if (typeof v === "bigint") return BIGINT_MARK + v.toString();
  // The value before toJSON (a Buffer's is {type, data}).
  const orig = (this as Record<string, unknown>)[key];
  if (orig instanceof Uint8Array) return Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString("base64");
  if (ArrayBuffer.isView(orig) && !(orig instanceof DataView)) return Array.from(orig as unknown as ArrayLike<unknown>);
  return v;
}

/**
 * A request body as JSON, for values the client gives back as well as plain
 * JSON: a bigint is written as its exact digits (a JSON number, which the
 * worker binds by the parameter's type), a Uint8Array (or Buffer) as base64
 * (bytea's form), any other typed array (Float32Array...) as an array of
 * numbers. Everything else is JSON.stringify's.
 */
export function encodeBody(body: unknown): string {
  const s = JSON.stringify(body, replacer) ?? "null";
  return s.includes(BIGINT_MARK) ? s.replace(BIGINT_STRING, "$1") : s;
}

/** The messages of one request's answer, in arrival order. */
export class Call {
  private queue: Msg[] = [];
  private waiter?: (m: Msg | undefined) => void;
  private failed?: Error;
  /** A message arrived past the bound (only a sender ignoring credit does that). */
  lost = false;

  constructor(
    /** How errors name the request (a transaction's subject holds its secret id). */
    readonly name: string,
    readonly reply: string,
    private readonly bound: number,
    private readonly onClose: () => void,
  ) {}

  push(m: Msg): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
      return;
    }
    if (this.queue.length >= this.bound) {
      this.lost = true;
      return;
    }
    this.queue.push(m);
  }

  /**
   * Ends the call with err (the answer subscription failed: a permissions
   * violation on the inbox), rather than a timeout later.
   */
  fail(err: Error): void {
    this.failed = err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(undefined);
  }

  /** The next message, or RequestTimeoutError after timeoutMs. */
  next(timeoutMs: number): Promise<Msg> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new RequestTimeoutError(this.name, timeoutMs));
      }, timeoutMs);
      this.waiter = (msg) => {
        clearTimeout(timer);
        if (msg) resolve(msg);
        else reject(this.failed ?? new RequestTimeoutError(this.name, timeoutMs));
      };
    });
  }

  close(): void {
    this.onClose();
  }
}

export interface SendOptions {
  timeoutMs: number;
  requestId?: string;
  /** Extra headers (Stream-Window). */
  headers?: Record<string, string>;
  /** How many messages may wait unread (a stream's window and its end). */
  bound?: number;
  /** How errors name the request; the subject by default. */
  name?: string;
}

/** Routes answers to their calls over one wildcard subscription. */
export class Transport {
  private sub?: Subscription;
  private prefix = "";
  private readonly calls = new Map<string, Call>();

  constructor(
    readonly nc: NatsConnection,
    private readonly inboxPrefix: string,
  ) {}

  private ensureSub(): void {
    if (this.sub && !this.sub.isClosed()) return;
    const prefix = `${this.inboxPrefix}.${nuid.next()}.`;
    this.prefix = prefix;
    const sub = this.nc.subscribe(`${this.prefix}*`, {
      callback: (err, m) => {
        if (err) {
          // The server refused the subscription (a user that may read only
          // its own inbox prefix, and inboxPrefix not set to it): every call
          // waiting fails with that, and the next call subscribes again.
          const why = new Error(`the answer subscription ${this.inboxPrefix}.> failed (set inboxPrefix to the user's own?): ${err.message}`, { cause: err });
          if (this.sub === sub) this.sub = undefined;
          for (const c of this.calls.values()) if (c.reply.startsWith(prefix)) c.fail(why);
          return;
        }
        const token = m.subject.slice(m.subject.lastIndexOf(".") + 1);
        this.calls.get(token)?.push(m);
      },
    });
    this.sub = sub;
  }

  /** Publishes body to subject with a reply subject of its own. */
  open(subject: string, body: unknown, o: SendOptions): Call {
    this.ensureSub();
    const token = nuid.next();
    const call = new Call(o.name ?? subject, this.prefix + token, o.bound ?? 4, () => this.calls.delete(token));
    this.calls.set(token, call);
    const h = headers();
    h.set("Request-Id", o.requestId ?? nuid.next());
    for (const [k, v] of Object.entries(o.headers ?? {})) h.set(k, v);
    try {
      this.nc.publish(subject, encoder.encode(encodeBody(body)), { reply: call.reply, headers: h });
    } catch (e) {
      call.close();
      throw e;
    }
    return call;
  }

  /** Sends one request and returns its answer's body, parsed. */
  async request<T>(subject: string, body: unknown, o: SendOptions): Promise<T> {
    const call = this.open(subject, body, o);
    try {
      const m = await call.next(o.timeoutMs);
      return parseAnswer<T>(m, call.name);
    } finally {
      call.close();
    }
  }

  /** request, returning the answer's text (for exact integers). */
  async requestText(subject: string, body: unknown, o: SendOptions): Promise<string> {
    const call = this.open(subject, body, o);
    try {
      const m = await call.next(o.timeoutMs);
      const err = answerError(m, call.name);
      if (err) throw err;
      return decoder.decode(m.data);
    } finally {
      call.close();
    }
  }

  publish(subject: string, body: string): void {
    this.nc.publish(subject, encoder.encode(body));
  }

  /** Ends the subscription (the connection stays the caller's). */
  close(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}

/** Whether m is NATS's "no responders" status. */
export function isNoResponders(m: Msg): boolean {
  return m.data.length === 0 && m.headers?.code === 503;
}

/** The error an answer carries, or undefined. */
export function answerError(m: Msg, name: string): Error | undefined {
  if (isNoResponders(m)) return new NoWorkerError(name);
  const code = header(m.headers, "Nats-Service-Error-Code");
  if (!code) return undefined;
  try {
    const body = JSON.parse(decoder.decode(m.data)) as { error?: ErrorBody };
    if (body.error && typeof body.error.code === "string") return new DbworkerError(body.error, name);
  } catch {
    // fall through: the headers alone
  }
  return new DbworkerError({ code: "INTERNAL", status: Number(code), message: header(m.headers, "Nats-Service-Error") ?? "" }, name);
}

/**
 * An error body that came without the error headers (only a broken or
 * hostile server sends one): a db.execute or db.tx answer never has an
 * "error" field, so it is the error still. Other endpoints' answers may
 * (a db.vacuum run's record), so only those two check.
 */
export function bodyError(raw: unknown, name: string): DbworkerError | undefined {
  const e = (raw as { error?: ErrorBody } | null)?.error;
  if (e && typeof e === "object" && typeof e.code === "string") return new DbworkerError(e, name);
  return undefined;
}

/** Parses an answer, throwing its error. */
export function parseAnswer<T>(m: Msg, name: string): T {
  const err = answerError(m, name);
  if (err) throw err;
  return JSON.parse(decoder.decode(m.data)) as T;
}

export function header(h: MsgHdrs | undefined, k: string): string | undefined {
  if (!h) return undefined;
  const v = h.get(k);
  return v === "" ? undefined : v;
}

export function text(m: Msg): string {
  return decoder.decode(m.data);
}
