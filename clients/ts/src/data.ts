// db.vector (pgvector collections) and db.graph (nodes, edges, traversals).

import type {
  Collection,
  GraphEdge,
  GraphNeighbor,
  GraphNode,
  GraphPathResult,
  GraphRequest,
  GraphSubgraphResult,
  Metric,
  VectorMatch,
  VectorRequest,
  VectorStats,
} from "./messages.js";
import type { CallOptions } from "./sql.js";
import type { Sender } from "./state.js";
import { f32leDecode, f32leEncode, float } from "./values.js";

/** An item to upsert. */
export interface VectorUpsertItem {
  id: string;
  vector?: ArrayLike<number>;
  content?: string;
  metadata?: Record<string, unknown>;
}

export interface SearchOptions extends CallOptions {
  k?: number;
  metric?: Metric;
  minSimilarity?: number;
  /** jsonb containment on metadata. */
  filter?: Record<string, unknown>;
  efSearch?: number;
  /** Each match carries its vector (a Float32Array). */
  includeVectors?: boolean;
  statementTimeoutMs?: number;
  readOnly?: boolean;
}

/** A match, with its vector when asked for. */
export interface Match extends Omit<VectorMatch, "vector" | "vector_b64"> {
  vector?: Float32Array;
}

/** db.vector. */
export class Vectors {
  constructor(private readonly s: Sender) {}

  private send<T>(body: VectorRequest, o: CallOptions): Promise<T> {
    return this.s.send<T>("db.vector", body, o);
  }

  private vectorFields(v: ArrayLike<number> | undefined): { vector?: number[]; vector_b64?: string } {
    if (v === undefined) return {};
    return this.s.vectorEncoding === "f32le" ? { vector_b64: f32leEncode(v) } : { vector: Array.from(v) };
  }

  createCollection(collection: string, o: CallOptions & { dimension?: number; metric?: Metric; index?: "hnsw" | "none" } = {}): Promise<Collection> {
    return this.send({ op: "create_collection", collection, dimension: o.dimension, metric: o.metric, index: o.index }, o);
  }

  /** Inserts or replaces items, in one transaction. */
  async upsert(collection: string, items: VectorUpsertItem[], o: CallOptions = {}): Promise<number> {
    const body: VectorRequest = {
      op: "upsert",
      collection,
      items: items.map((it) => ({ id: it.id, content: it.content, metadata: it.metadata, ...this.vectorFields(it.vector) })),
    };
    return (await this.send<{ upserted: number }>(body, o)).upserted;
  }

  /** The k nearest items, best first, over one collection or several. */
  async search(collections: string | string[], vector: ArrayLike<number>, o: SearchOptions = {}): Promise<Match[]> {
    const body: VectorRequest = {
      op: "search",
      ...(Array.isArray(collections) ? { collections } : { collection: collections }),
      ...this.vectorFields(vector),
      k: o.k,
      metric: o.metric,
      min_similarity: o.minSimilarity,
      filter: o.filter,
      ef_search: o.efSearch,
      timeout_ms: o.statementTimeoutMs,
      read_only: o.readOnly || undefined,
    };
    if (o.includeVectors) {
      body.include_vectors = true;
      if (this.s.vectorEncoding === "f32le") body.encoding = "f32le";
    }
    const r = await this.send<{ matches: VectorMatch[] }>(body, o);
    return r.matches.map((m) => {
      const { vector, vector_b64, ...rest } = m;
      const out: Match = { ...rest, score: float(m.score), distance: float(m.distance) };
      if (typeof vector_b64 === "string") out.vector = f32leDecode(vector_b64);
      else if (Array.isArray(vector)) out.vector = Float32Array.from(vector);
      return out;
    });
  }

  async delete(collection: string, ids: string[], o: CallOptions = {}): Promise<number> {
    return (await this.send<{ deleted: number }>({ op: "delete", collection, ids }, o)).deleted;
  }

  stats(collection: string, o: CallOptions = {}): Promise<VectorStats> {
    return this.send({ op: "stats", collection }, o);
  }

  rebuildIndex(collection: string, index: "hnsw" | "ivfflat", o: CallOptions = {}): Promise<VectorStats> {
    return this.send({ op: "rebuild_index", collection, index }, o);
  }
}

/** Options of a graph write: merge (default) keeps what is left out, replace resets it. */
export interface GraphWriteOptions extends CallOptions {
  mode?: "merge" | "replace";
}

export interface TraverseOptions extends CallOptions {
  direction?: "in" | "out" | "both";
  edgeType?: string;
}

/** db.graph. */
export class Graph {
  constructor(private readonly s: Sender) {}

  private send<T>(body: GraphRequest, o: CallOptions): Promise<T> {
    return this.s.send<T>("db.graph", body, o);
  }

  addNode(node: { node_id?: string; node_type?: string; label?: string; properties?: Record<string, unknown> }, o: GraphWriteOptions = {}): Promise<GraphNode> {
    return this.send({ op: "add_node", ...node, mode: o.mode }, o);
  }

  addEdge(
    edge: { from: string; to: string; edge_type?: string; weight?: number; confidence?: number; properties?: Record<string, unknown>; valid_from?: string; valid_until?: string },
    o: GraphWriteOptions = {},
  ): Promise<GraphEdge> {
    return this.send({ op: "add_edge", ...edge, mode: o.mode }, o);
  }

  async neighbors(nodeId: string, o: TraverseOptions & { limit?: number } = {}): Promise<GraphNeighbor[]> {
    const r = await this.send<{ neighbors: GraphNeighbor[] }>({ op: "get_neighbors", node_id: nodeId, direction: o.direction, edge_type: o.edgeType, limit: o.limit }, o);
    return r.neighbors;
  }

  findPath(from: string, to: string, o: TraverseOptions & { maxDepth?: number } = {}): Promise<GraphPathResult> {
    return this.send({ op: "find_path", from, to, max_depth: o.maxDepth, direction: o.direction, edge_type: o.edgeType }, o);
  }

  subgraph(root: string, o: TraverseOptions & { depth?: number } = {}): Promise<GraphSubgraphResult> {
    return this.send({ op: "query_subgraph", root, depth: o.depth, direction: o.direction, edge_type: o.edgeType }, o);
  }

  deleteNode(nodeId: string, o: CallOptions = {}): Promise<{ deleted: boolean; edges_deleted: number }> {
    return this.send({ op: "delete_node", node_id: nodeId }, o);
  }
}
