// Request and answer shapes of the wire protocol (docs/protocol.md), as
// pkg/messages has them: field names as sent. Answers of db.execute are
// decoded further by the client (values.ts).

export type Op = "query" | "one" | "many" | "script" | "tx" | "insert" | "update";
export type Isolation = "read_committed" | "repeatable_read" | "serializable";
export type RowFormat = "object" | "array";
/** A parameter list: an object binds :name, an array binds $n or ?. */
export type Params = Record<string, unknown> | unknown[];

/** The body of a db.execute request (and of a request inside db.tx). */
export interface ExecuteRequest {
  op?: Op;
  sql?: string;
  /** A named query to run instead of sql. */
  query?: string;
  params?: Params;
  params_list?: Params[];
  statements?: Statement[];
  table?: string;
  data?: Record<string, unknown>;
  returning?: string[];
  where?: string;
  where_params?: Record<string, unknown>;
  all_rows?: boolean;
  max_rows?: number;
  timeout_ms?: number;
  read_only?: boolean;
  row_format?: RowFormat;
  /** numeric, and int8 past ±(2^53−1), as strings. The client always sets it. */
  safe_numbers?: boolean;
  isolation?: Isolation;
  deferrable?: boolean;
}

/** One statement of a tx batch. */
export interface Statement {
  sql: string;
  params?: Params;
  op?: "query" | "one";
  /** Rows the statement must write (or return); any other count rolls back. */
  expect_rows?: number;
}

export interface Column {
  name: string;
  /** pg_type.typname: int4, numeric, _int8 for arrays... */
  type: string;
}

/** db.execute's answer as sent (rows still JSON values). */
export interface RawExecuteResult {
  columns?: Column[];
  rows?: unknown[];
  row?: unknown;
  rows_affected: number;
  command?: string;
  commands?: string[];
  truncated?: boolean;
  results?: RawExecuteResult[];
}

/** The last message of a stream that succeeded. */
export interface StreamEnd {
  row_count: number;
  rows_affected: number;
  command: string;
  truncated: boolean;
}

export interface TxBeginRequest {
  op?: "begin";
  isolation?: Isolation;
  read_only?: boolean;
  deferrable?: boolean;
  idle_timeout_ms?: number;
  max_lifetime_ms?: number;
  timeout_ms?: number;
}

export interface TxBeginResult {
  tx: string;
  subject: string;
  read_only: boolean;
  idle_timeout_ms: number;
  max_lifetime_ms: number;
}

export interface TxEndResult {
  committed?: boolean;
  rolled_back?: boolean;
}

export interface RateLimitRequest {
  key: string;
  limit: number;
  window_ms?: number;
  window_seconds?: number;
  cost?: number;
}

export interface RateLimitResult {
  allowed: boolean;
  remaining: number;
  limit: number;
  /** 0 when allowed; -1 when the call can never pass. */
  retry_after_ms: number;
  reset_ms: number;
}

export interface LockRequest {
  op: "acquire" | "release" | "refresh" | "status";
  key: string;
  owner?: string;
  lease?: string;
  ttl_ms?: number;
  ttl_seconds?: number;
  wait_ms?: number;
}

export interface LockAcquireResult {
  acquired: boolean;
  owner: string;
  /** The secret that releases and refreshes the lock (acquired only). */
  lease?: string;
  /** Fencing token: grows with every acquisition (below 2^53). */
  token?: number;
  expires_at?: string;
  expires_in_ms?: number;
  wait_refused?: boolean;
}

export interface LockReleaseResult {
  released: boolean;
  reason?: "not_held" | "not_owner";
}

export interface LockRefreshResult {
  refreshed: boolean;
  expires_at?: string;
  reason?: "not_held" | "not_owner";
}

export interface LockStatusResult {
  held: boolean;
  owner?: string;
  expires_in_ms?: number;
  token?: number;
}

export interface EmbeddingItem {
  hash?: string;
  text?: string;
  model?: string;
  vector?: number[];
  vector_b64?: string;
}

export interface EmbeddingRequest {
  op: "get" | "set" | "mget" | "mset" | "delete";
  hash?: string;
  text?: string;
  model?: string;
  vector?: number[];
  vector_b64?: string;
  hashes?: string[];
  items?: EmbeddingItem[];
  ttl_ms?: number;
  ttl_seconds?: number;
  encoding?: "json" | "f32le";
}

export interface VectorItem {
  id: string;
  vector?: number[];
  vector_b64?: string;
  content?: string;
  metadata?: Record<string, unknown>;
}

export type Metric = "cosine" | "l2" | "ip";

export interface VectorRequest {
  op: "create_collection" | "upsert" | "search" | "delete" | "stats" | "rebuild_index";
  collection?: string;
  collections?: string[];
  dimension?: number;
  metric?: Metric;
  index?: "hnsw" | "ivfflat" | "none";
  id?: string;
  ids?: string[];
  vector?: number[];
  vector_b64?: string;
  content?: string;
  metadata?: Record<string, unknown>;
  items?: VectorItem[];
  k?: number;
  min_similarity?: number;
  filter?: Record<string, unknown>;
  ef_search?: number;
  include_vectors?: boolean;
  encoding?: "json" | "f32le";
  timeout_ms?: number;
  read_only?: boolean;
}

export interface Collection {
  name: string;
  dimension: number;
  metric: Metric;
  index: string;
}

export interface VectorMatch {
  id: string;
  collection: string;
  content: string | null;
  /** A number, or "NaN"/"Infinity"/"-Infinity" as sent (decoded to number by the client). */
  score: number;
  distance: number;
  metadata: Record<string, unknown> | null;
  vector?: number[];
  vector_b64?: string;
}

export interface VectorStats extends Collection {
  total: number;
  embedded: number;
  missing_embeddings: number;
  index_bytes: number;
  index_size: string;
}

export interface GraphRequest {
  op: "add_node" | "add_edge" | "get_neighbors" | "find_path" | "query_subgraph" | "delete_node";
  node_id?: string;
  node_type?: string;
  label?: string;
  properties?: Record<string, unknown>;
  from?: string;
  to?: string;
  edge_type?: string;
  weight?: number;
  confidence?: number;
  valid_from?: string;
  valid_until?: string;
  direction?: "in" | "out" | "both";
  limit?: number;
  max_depth?: number;
  root?: string;
  depth?: number;
  mode?: "merge" | "replace";
  read_only?: boolean;
}

export interface GraphNode {
  node_id: string;
  node_type: string;
  label: string | null;
  properties: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

export interface GraphEdge {
  edge_id: number;
  from: string;
  to: string;
  edge_type: string;
  weight: number;
  confidence: number;
  properties: Record<string, unknown>;
  valid_from: string | null;
  valid_until: string | null;
}

export interface GraphNeighbor {
  node: GraphNode;
  edge: GraphEdge;
  direction: "in" | "out";
}

export interface GraphPathResult {
  found: boolean;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface GraphSubgraphResult {
  nodes: GraphNode[];
  edges: GraphEdge[];
  truncated: boolean;
}

export interface StatsRequest {
  table?: string;
  schema?: string;
  publish?: boolean;
}

export interface TableStats {
  schema: string;
  table: string;
  total_bytes: number;
  table_bytes: number;
  indexes_bytes: number;
  toast_bytes: number;
  total_size: string;
  row_count: number;
  dead_rows: number;
  dead_ratio: number;
  mods_since_analyze: number;
  inserts_since_vacuum: number;
  last_vacuum: string | null;
  last_autovacuum: string | null;
  last_analyze: string | null;
  last_autoanalyze: string | null;
  vacuum_count: number;
  autovacuum_count: number;
  analyze_count: number;
  autoanalyze_count: number;
  xid_age: number;
  seq_scan: number;
  idx_scan: number | null;
}

export interface StatsResult {
  run_id: string;
  job_id?: string;
  worker_id: string;
  at: string;
  tables: TableStats[];
  database: { name: string; size_bytes: number; size: string };
}

export interface VacuumRequest {
  table?: string;
  schema?: string;
  analyze?: boolean;
  full?: boolean;
  verbose?: boolean;
  skip_locked?: boolean;
  timeout_ms?: number;
  async?: boolean;
}

export interface VacuumResult {
  run_id: string;
  job_id?: string;
  worker_id: string;
  schema?: string;
  table?: string;
  status: "ok" | "failed" | "skipped";
  started_at: string;
  finished_at: string;
  duration_ms: number;
  before?: { dead_rows: number; table_bytes: number };
  after?: { dead_rows: number; table_bytes: number };
  output?: string[];
  error?: { code: string; status: number; message: string };
  holder?: string;
  stream?: string;
  sequence?: number;
}

export interface JobAccepted {
  job_id: string;
  stream: string;
  sequence: number;
}

export interface PostgresHealth {
  status: string;
  latency_ms: number;
  version?: string;
  pgvector: string | null;
  pool: { total: number; idle: number; acquired: number; max: number };
  error?: string;
  /** The read pool (POSTGRES_READ_URL), on workers that have one. */
  read?: PostgresHealth;
}

export interface HealthResult {
  status: "healthy" | "degraded" | "unhealthy";
  postgres: PostgresHealth;
  state: {
    backend: "memory" | "redis";
    status: string;
    total_commands_processed?: number;
    total_connections_received?: number;
    keyspace_hits?: number;
    keyspace_misses?: number;
  };
  nats: { server: string; connected: boolean; jetstream: boolean };
  worker: {
    id: string;
    version: string;
    uptime_s: number;
    in_flight: number;
    busy: boolean;
    lanes?: Record<string, { running: number; max: number; queued: number }>;
  };
}
