// dbworker's TypeScript client: see README.md.
export { DbworkerClient, TIMEOUT_DEFAULT_MS, type ClientOptions, type TxBatchOptions, type TxStatement } from "./client.js";
export { DbworkerError, NoWorkerError, RequestTimeoutError, StreamBrokenError, TxGoneError, isDbworkerError, type ErrorBody, type ErrorCode } from "./errors.js";
export type * from "./messages.js";
export type { BatchResult, CallOptions, CommandTag, QueryOptions, Result, StatementResult } from "./sql.js";
export { Embeddings, KV, LockNotAcquiredError, Locker, Locks, type EmbeddingKey, type LockOptions, type RateLimitOptions, type TTLOptions } from "./state.js";
export { Graph, Vectors, type Match, type SearchOptions, type VectorUpsertItem } from "./data.js";
export { RowStream, STREAM_WINDOW, type StreamTotals } from "./stream.js";
export { Tx, type TxOptions } from "./tx.js";
export { f32leDecode, f32leEncode, type ValueOptions } from "./values.js";
