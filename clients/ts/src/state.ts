// The state endpoints: state.ratelimit, state.lock (and a Locker that keeps
// a lock refreshed), state.kv and cache.embedding.

import type {
  EmbeddingRequest,
  LockAcquireResult,
  LockRefreshResult,
  LockReleaseResult,
  LockStatusResult,
  RateLimitResult,
} from "./messages.js";
import type { CallOptions } from "./sql.js";
import { f32leDecode, f32leEncode } from "./values.js";

/** What the handles need of the client. */
export interface Sender {
  send<T>(subject: string, body: unknown, o?: CallOptions): Promise<T>;
  sendText(subject: string, body: unknown, o?: CallOptions): Promise<string>;
  /** "f32le": vectors travel as vector_b64; "json": as arrays. */
  readonly vectorEncoding: "f32le" | "json";
}

/** A TTL: ttlMs, whole milliseconds; 0 where allowed means "never expire". */
export interface TTLOptions extends CallOptions {
  ttlMs?: number;
}

export interface LockOptions extends TTLOptions {
  /** A display name of the holder; a random one by default. */
  owner?: string;
  /** Wait up to this long for a held lock (capped by STATE_LOCK_MAX_WAIT). */
  waitMs?: number;
}

/** state.lock: locks with leases and fencing tokens. */
export class Locks {
  constructor(private readonly s: Sender) {}

  acquire(key: string, o: LockOptions = {}): Promise<LockAcquireResult> {
    return this.s.send("state.lock", { op: "acquire", key, owner: o.owner, ttl_ms: o.ttlMs, wait_ms: o.waitMs }, o);
  }

  /** Releases with the lease acquire answered. */
  release(key: string, lease: string, o: CallOptions = {}): Promise<LockReleaseResult> {
    return this.s.send("state.lock", { op: "release", key, lease }, o);
  }

  refresh(key: string, lease: string, o: TTLOptions = {}): Promise<LockRefreshResult> {
    return this.s.send("state.lock", { op: "refresh", key, lease, ttl_ms: o.ttlMs }, o);
  }

  status(key: string, o: CallOptions = {}): Promise<LockStatusResult> {
    return this.s.send("state.lock", { op: "status", key }, o);
  }

  /**
   * Acquires key and keeps it, refreshing it every third of ttlMs until
   * unlock. Throws LockNotAcquiredError when another holds it.
   */
  async lock(key: string, ttlMs: number, o: LockOptions = {}): Promise<Locker> {
    if (!(ttlMs >= 3)) throw new RangeError(`lock ${JSON.stringify(key)}: ttlMs must be at least 3, got ${ttlMs}`);
    const res = await this.acquire(key, { ...o, ttlMs });
    if (!res.acquired) throw new LockNotAcquiredError(key, res);
    return new Locker(this, key, ttlMs, res);
  }
}

/** A lock another owner holds. */
export class LockNotAcquiredError extends Error {
  constructor(
    readonly key: string,
    readonly holder: LockAcquireResult,
  ) {
    super(`lock ${JSON.stringify(key)}: held by another owner (holder ${holder.owner}, token ${holder.token})`);
    this.name = "LockNotAcquiredError";
  }
}

/**
 * A lock kept refreshed. `lost` settles (with the reason) when a refresh
 * fails: stop the work the lock protects. Pass `token` to what it protects.
 */
export class Locker {
  readonly owner: string;
  readonly lease: string;
  readonly token: number;
  /** Resolves with the reason when the lock is lost; never after unlock. */
  readonly lost: Promise<Error>;
  private lostErr?: Error;
  private timer?: NodeJS.Timeout;
  private setLost!: (e: Error) => void;
  private stopped = false;
  private inflight?: Promise<void>;

  constructor(
    private readonly locks: Locks,
    readonly key: string,
    private readonly ttlMs: number,
    res: LockAcquireResult,
  ) {
    this.owner = res.owner;
    this.lease = res.lease ?? "";
    this.token = res.token ?? 0;
    this.lost = new Promise((resolve) => (this.setLost = resolve));
    const every = Math.max(1, Math.floor(ttlMs / 3));
    this.timer = setInterval(() => {
      if (!this.inflight) this.inflight = this.refresh(every).finally(() => (this.inflight = undefined));
    }, every);
    this.timer.unref();
  }

  /** The reason the lock was lost, or undefined while it is held. */
  get err(): Error | undefined {
    return this.lostErr;
  }

  private async refresh(timeoutMs: number): Promise<void> {
    let err: Error | undefined;
    try {
      const r = await this.locks.refresh(this.key, this.lease, { ttlMs: this.ttlMs, timeoutMs });
      if (!r.refreshed) err = new Error(`lock ${JSON.stringify(this.key)}: refresh refused: ${r.reason}`);
    } catch (e) {
      err = e as Error;
    }
    if (err && !this.stopped) {
      this.stop();
      this.lostErr = err;
      this.setLost(err);
    }
  }

  private stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops refreshing and releases the lock (nothing when it was lost). */
  async unlock(o: CallOptions = {}): Promise<void> {
    if (this.stopped) return;
    this.stop();
    await this.inflight;
    if (this.lostErr) return;
    const r = await this.locks.release(this.key, this.lease, o);
    if (!r.released) throw new Error(`lock ${JSON.stringify(this.key)}: release refused: ${r.reason}`);
  }
}

/** state.kv: JSON values under keys. */
export class KV {
  constructor(private readonly s: Sender) {}

  /** The value (parsed with JSON.parse: the caller's own JSON), or found false. */
  get<T = unknown>(key: string, o: CallOptions = {}): Promise<{ found: boolean; value: T | null }> {
    return this.s.send("state.kv", { op: "get", key }, o);
  }

  /** Stores any JSON value; ttlMs 0 or none keeps it until deleted. */
  async set(key: string, value: unknown, o: TTLOptions = {}): Promise<void> {
    await this.s.send("state.kv", { op: "set", key, value: value === undefined ? null : value, ttl_ms: o.ttlMs }, o);
  }

  /** Whether the key existed. */
  async delete(key: string, o: CallOptions = {}): Promise<boolean> {
    return (await this.s.send<{ deleted: boolean }>("state.kv", { op: "delete", key }, o)).deleted;
  }

  /** Adds amount (default 1) and returns the new value, exact to 64 bits. */
  async incr(key: string, amount: number | bigint = 1, o: CallOptions = {}): Promise<bigint> {
    // The amount goes as its exact digits (encodeBody writes a bigint so).
    const text = await this.s.sendText("state.kv", { op: "incr", key, amount: BigInt(amount) }, o);
    const m = /"value"\s*:\s*(-?\d+)/.exec(text);
    if (!m) throw new Error(`state.kv incr: unexpected answer ${text}`);
    return BigInt(m[1]);
  }
}

/** An embedding's key: its hash, or the text and model it is the hash of. */
export type EmbeddingKey = { hash: string } | { text: string; model: string };

function keyFields(k: EmbeddingKey): { hash?: string; text?: string; model?: string } {
  return "hash" in k ? { hash: k.hash } : { text: k.text, model: k.model };
}

/** cache.embedding: float32 vectors under hashes, sent as binary float32 (vector_b64) by default. */
export class Embeddings {
  constructor(private readonly s: Sender) {}

  private vectorFields(v: ArrayLike<number>): { vector?: number[]; vector_b64?: string } {
    return this.s.vectorEncoding === "f32le" ? { vector_b64: f32leEncode(v) } : { vector: Array.from(v) };
  }

  private encoding(): Partial<EmbeddingRequest> {
    return this.s.vectorEncoding === "f32le" ? { encoding: "f32le" } : {};
  }

  async get(key: EmbeddingKey, o: CallOptions = {}): Promise<{ hash: string; hit: boolean; vector: Float32Array | null }> {
    const r = await this.s.send<{ hash: string; hit: boolean; vector?: number[] | null; vector_b64?: string | null }>(
      "cache.embedding",
      { op: "get", ...keyFields(key), ...this.encoding() },
      o,
    );
    return { hash: r.hash, hit: r.hit, vector: toVector(r.vector, r.vector_b64) };
  }

  /** Stores a vector; ttlMs 0 keeps it until deleted, none takes CACHE_EMBEDDING_TTL. */
  async set(key: EmbeddingKey, vector: ArrayLike<number>, o: TTLOptions = {}): Promise<{ stored: number; hashes: string[] }> {
    return this.s.send("cache.embedding", { op: "set", ...keyFields(key), ...this.vectorFields(vector), ttl_ms: o.ttlMs }, o);
  }

  async mset(items: { key: EmbeddingKey; vector: ArrayLike<number> }[], o: TTLOptions = {}): Promise<{ stored: number; hashes: string[] }> {
    const body = { op: "mset", items: items.map((it) => ({ ...keyFields(it.key), ...this.vectorFields(it.vector) })), ttl_ms: o.ttlMs };
    return this.s.send("cache.embedding", body, o);
  }

  /** Vectors in request order, null for misses. */
  async mget(hashes: string[], o: CallOptions = {}): Promise<{ vectors: (Float32Array | null)[]; hits: number }> {
    const r = await this.s.send<{ vectors?: (number[] | null)[]; vectors_b64?: (string | null)[]; hits: number }>(
      "cache.embedding",
      { op: "mget", hashes, ...this.encoding() },
      o,
    );
    const vectors = r.vectors_b64 ? r.vectors_b64.map((b) => toVector(undefined, b)) : (r.vectors ?? []).map((v) => toVector(v, undefined));
    return { vectors, hits: r.hits };
  }

  /** How many of the keys existed. */
  async delete(keys: EmbeddingKey | string[], o: CallOptions = {}): Promise<number> {
    const body = Array.isArray(keys) ? { op: "delete", hashes: keys } : { op: "delete", ...keyFields(keys) };
    return (await this.s.send<{ deleted: number }>("cache.embedding", body, o)).deleted;
  }
}

function toVector(v: number[] | null | undefined, b64: string | null | undefined): Float32Array | null {
  if (typeof b64 === "string") return f32leDecode(b64);
  if (Array.isArray(v)) return Float32Array.from(v);
  return null;
}

/** state.ratelimit's answer, and how to call it. */
export interface RateLimitOptions extends CallOptions {
  /** Units this call consumes (default 1; 0 asks without consuming). */
  cost?: number;
}

export type { RateLimitResult };
