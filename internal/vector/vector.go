// Package vector serves db.vector: collections of embeddings in pgvector
// tables, with upsert, similarity search across collections, delete, stats
// and index rebuilds.
//
// A collection is a table <schema>.<name> (id text primary key, content,
// metadata jsonb, embedding vector(N)), listed with its dimension, metric and
// index kind in <schema>.dbworker_collections. Names are checked against a
// strict pattern and the catalog, and quoted; values are always bound.
package vector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/migrate"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Defaults and limits.
const (
	DimensionDefault = 384
	SchemaDefault    = "public"
	MaxDimension     = 16000
	MaxHNSWDimension = 2000
	KDefault         = 10
	MaxK             = 1000
	// MaxSearchCollections caps the distinct collections of one search, and
	// MaxSearchRows caps k × collections: the rows one search may read.
	MaxSearchCollections = 64
	MaxSearchRows        = 10000
	MaxBatch             = 10000
	catalogTable         = "dbworker_collections"
)

// Metrics and their pgvector operators and operator classes.
var metrics = map[string]struct{ op, opclass string }{
	"cosine": {"<=>", "vector_cosine_ops"},
	"l2":     {"<->", "vector_l2_ops"},
	"ip":     {"<#>", "vector_ip_ops"},
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Config configures a Service.
type Config struct {
	// Schema holds the collections. Defaults to public.
	Schema string
	// Dimension is a new collection's dimension when none is given.
	// Defaults to 384 (PGVECTOR_DIMENSION).
	Dimension int
	// Read, when set, serves searches: a replica's pool (POSTGRES_READ_URL),
	// used when pgvector is installed there. Writes and the catalog's
	// lookups for them stay on the primary.
	Read DB
}

// DB is what the service needs of PostgreSQL: queries, transactions and
// whether pgvector is installed. *pgexec.Client is one.
type DB interface {
	pgexec.Querier
	PGVectorVersion() string
}

// Service carries out db.vector requests.
type Service struct {
	pg  DB
	cfg Config
}

// New returns a Service; Init creates its catalog table. Fields of cfg left
// zero take their defaults; a dimension out of pgvector's range is an error.
func New(pg DB, cfg Config) (*Service, error) {
	if pg == nil {
		return nil, errors.New("vector: New needs a DB")
	}
	cfg.Schema = cmp.Or(cfg.Schema, SchemaDefault)
	cfg.Dimension = cmp.Or(cfg.Dimension, DimensionDefault)
	if cfg.Dimension < 1 || cfg.Dimension > MaxDimension {
		return nil, fmt.Errorf("vector: Dimension must be between 1 and %d, got %d", MaxDimension, cfg.Dimension)
	}
	return &Service{pg: pg, cfg: cfg}, nil
}

func (s *Service) ident(parts ...string) string {
	return pgx.Identifier(append([]string{s.cfg.Schema}, parts...)).Sanitize()
}

// Init creates the collections catalog when missing. It fails when pgvector
// is not installed.
func (s *Service) Init(ctx context.Context) error {
	if s.pg.PGVectorVersion() == "" {
		return errors.New("pgvector is not installed in this database")
	}
	// CREATE SCHEMA IF NOT EXISTS asks for the database's CREATE privilege
	// even when the schema exists, which a least-privilege login lacks.
	var exists bool
	if err := s.pg.QueryRow(ctx, "SELECT pg_catalog.to_regnamespace($1) IS NOT NULL", pgx.Identifier{s.cfg.Schema}.Sanitize()).Scan(&exists); err != nil {
		return fmt.Errorf("look up the vector schema: %w", err)
	}
	if !exists {
		err := migrate.Locked(ctx, s.pg, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.cfg.Schema}.Sanitize())
			return err
		})
		if err != nil && !migrate.AlreadyExists(err) {
			return fmt.Errorf("create the vector schema: %w", err)
		}
	}
	_, err := migrate.Apply(ctx, s.pg, []migrate.Migration{{
		Name: "vector/" + s.cfg.Schema + "/001_catalog",
		SQL: `CREATE TABLE IF NOT EXISTS ` + s.ident(catalogTable) + ` (
			name       text PRIMARY KEY,
			dimension  int NOT NULL,
			metric     text NOT NULL,
			index_kind text NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`,
	}}, *zerolog.Ctx(ctx))
	if err != nil {
		return fmt.Errorf("create vector catalog: %w", err)
	}
	return nil
}

// Handle carries out one request.
func (s *Service) Handle(ctx context.Context, req *messages.VectorRequest) (any, error) {
	return s.HandleWithin(ctx, req, 0)
}

// HandleWithin is Handle for an answer of at most maxAnswer bytes (0: no
// bound): a search with include_vectors whose matches' vectors could not
// fit is TOO_LARGE as soon as that is known, before it holds them all.
func (s *Service) HandleWithin(ctx context.Context, req *messages.VectorRequest, maxAnswer int) (any, error) {
	f32le, err := messages.CheckEncoding(req.Encoding)
	if err != nil {
		return nil, err
	}
	if s.pg.PGVectorVersion() == "" {
		return nil, messages.Errorf(messages.CodeUnavailable, "pgvector is not installed in this database")
	}
	if req.TimeoutMS != nil {
		// The worker already runs the request under this deadline, counted
		// from its receipt; here it also holds for callers of the package.
		if *req.TimeoutMS <= 0 {
			return nil, messages.BadRequest("timeout_ms", "timeout_ms must be positive")
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	switch req.Op {
	case messages.OpCreateCollection:
		return s.create(ctx, req)
	case messages.OpUpsert:
		return s.upsert(ctx, req)
	case messages.OpSearch:
		return s.search(ctx, req, f32le, maxAnswer)
	case messages.OpDelete:
		return s.delete(ctx, req)
	case messages.OpStats:
		return s.stats(ctx, req)
	case messages.OpRebuildIndex:
		return s.rebuild(ctx, req)
	case "":
		return nil, messages.BadRequest("op", "op is required: create_collection, upsert, search, delete, stats or rebuild_index")
	}
	return nil, messages.BadRequest("op", "unknown op %q: use create_collection, upsert, search, delete, stats or rebuild_index", req.Op)
}

func checkName(field, name string) error {
	if !nameRE.MatchString(name) {
		return messages.BadRequest(field, "collection names are 1 to 48 of [a-z0-9_], starting with a letter or _; got %q", name)
	}
	return nil
}

// collection reads a collection's definition from the catalog.
func (s *Service) collection(ctx context.Context, name string) (messages.Collection, error) {
	if err := checkName("collection", name); err != nil {
		return messages.Collection{}, err
	}
	c := messages.Collection{Name: name}
	err := s.pg.QueryRow(ctx, `SELECT dimension, metric, index_kind FROM `+s.ident(catalogTable)+` WHERE name = $1`, name).
		Scan(&c.Dimension, &c.Metric, &c.Index)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, messages.Errorf(messages.CodeNotFound, "collection %q does not exist", name)
	}
	return c, err
}

func (s *Service) create(ctx context.Context, req *messages.VectorRequest) (any, error) {
	if err := checkName("collection", req.Collection); err != nil {
		return nil, err
	}
	c := messages.Collection{Name: req.Collection, Dimension: req.Dimension, Metric: req.Metric, Index: req.Index}
	if c.Dimension == 0 {
		c.Dimension = s.cfg.Dimension
	}
	if c.Metric == "" {
		c.Metric = "cosine"
	}
	if c.Index == "" {
		c.Index = "hnsw"
	}
	if _, ok := metrics[c.Metric]; !ok {
		return nil, messages.BadRequest("metric", "metric must be cosine, l2 or ip, got %q", c.Metric)
	}
	switch {
	case c.Dimension < 1 || c.Dimension > MaxDimension:
		return nil, messages.BadRequest("dimension", "dimension must be 1 to %d, got %d", MaxDimension, c.Dimension)
	case c.Index == "ivfflat":
		return nil, messages.BadRequest("index", "an IVFFlat index needs data to train on: create the collection with hnsw or none, load it, then rebuild_index with index ivfflat")
	case c.Index != "hnsw" && c.Index != "none":
		return nil, messages.BadRequest("index", "index must be hnsw or none, got %q", c.Index)
	case c.Index == "hnsw" && c.Dimension > MaxHNSWDimension:
		return nil, messages.BadRequest("dimension", "an HNSW index takes at most %d dimensions; use index none", MaxHNSWDimension)
	}
	err := pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		// Serialise creators of the same name.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "dbworker.vector."+c.Name); err != nil {
			return err
		}
		var existing messages.Collection
		err := tx.QueryRow(ctx, `SELECT dimension, metric, index_kind FROM `+s.ident(catalogTable)+` WHERE name = $1`, c.Name).
			Scan(&existing.Dimension, &existing.Metric, &existing.Index)
		if err == nil {
			if existing.Dimension != c.Dimension || existing.Metric != c.Metric {
				return messages.Errorf(messages.CodeConflict, "collection %q exists with dimension %d and metric %s", c.Name, existing.Dimension, existing.Metric)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (
			id         text PRIMARY KEY,
			content    text,
			metadata   jsonb NOT NULL DEFAULT '{}',
			embedding  vector(%d),
			created_at timestamptz NOT NULL DEFAULT now(),
			updated_at timestamptz NOT NULL DEFAULT now())`, s.ident(c.Name), c.Dimension)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE INDEX ON `+s.ident(c.Name)+` USING gin (metadata jsonb_path_ops)`); err != nil {
			return err
		}
		if c.Index == "hnsw" {
			if _, err := tx.Exec(ctx, s.indexSQL(c, "hnsw", 0)); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.ident(catalogTable)+` (name, dimension, metric, index_kind) VALUES ($1, $2, $3, $4)`,
			c.Name, c.Dimension, c.Metric, c.Index)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.collection(ctx, c.Name)
}

// indexSQL builds the embedding index of a collection.
func (s *Service) indexSQL(c messages.Collection, kind string, lists int) string {
	idx := pgx.Identifier{c.Name + "_embedding_idx"}.Sanitize()
	if kind == "ivfflat" {
		return fmt.Sprintf(`CREATE INDEX %s ON %s USING ivfflat (embedding %s) WITH (lists = %d)`, idx, s.ident(c.Name), metrics[c.Metric].opclass, lists)
	}
	return fmt.Sprintf(`CREATE INDEX %s ON %s USING hnsw (embedding %s)`, idx, s.ident(c.Name), metrics[c.Metric].opclass)
}

// metadataObject checks that metadata, when given, is a JSON object.
func metadataObject(field string, raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "{}", nil
	}
	if s[0] != '{' {
		return "", messages.BadRequest(field, "%s must be a JSON object", field)
	}
	return s, nil
}

func (s *Service) upsert(ctx context.Context, req *messages.VectorRequest) (any, error) {
	c, err := s.collection(ctx, req.Collection)
	if err != nil {
		return nil, err
	}
	items, prefix := req.Items, "items[%d]."
	if len(items) == 0 {
		prefix = "" // errors name the request's own fields
		if req.ID == "" {
			return nil, messages.BadRequest("id", "upsert needs id (or items)")
		}
		items = []messages.VectorItem{{ID: req.ID, Vector: req.Vector, VectorB64: req.VectorB64, Content: req.Content, Metadata: req.Metadata}}
	}
	if len(items) > MaxBatch {
		return nil, messages.BadRequest("items", "at most %d items at once, got %d", MaxBatch, len(items))
	}
	batch := &pgx.Batch{}
	q := `INSERT INTO ` + s.ident(c.Name) + ` (id, content, metadata, embedding) VALUES ($1, $2, $3::jsonb, $4)
		ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, metadata = EXCLUDED.metadata,
			embedding = EXCLUDED.embedding, updated_at = now()`
	for i, it := range items {
		field := prefix
		if field != "" {
			field = fmt.Sprintf(prefix, i)
		}
		if it.ID == "" || len(it.ID) > 1024 {
			return nil, messages.BadRequest(field+"id", "id must be 1 to 1024 bytes")
		}
		v, err := requestVector(field+"vector", it.Vector, it.VectorB64)
		if err != nil {
			return nil, err
		}
		vec, err := toVector(field+"vector", v, it.VectorB64 != nil, c.Dimension)
		if err != nil {
			return nil, err
		}
		meta, err := metadataObject(field+"metadata", it.Metadata)
		if err != nil {
			return nil, err
		}
		batch.Queue(q, it.ID, it.Content, meta, vec)
	}
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return nil, err
	}
	return messages.VectorUpsertResult{Upserted: len(items)}, nil
}

// score turns a distance into a similarity: 1 - distance for cosine, the
// inner product for ip, 1 / (1 + distance) for l2.
func score(metric string, d float64) float64 {
	switch metric {
	case "cosine":
		return 1 - d
	case "ip":
		return -d
	}
	return 1 / (1 + d)
}

// searchNames returns the distinct collections of a search, in the order
// given, checking their names and the caps.
func searchNames(req *messages.VectorRequest, k int) ([]string, error) {
	var names []string
	seen := make(map[string]bool)
	add := func(field, name string) error {
		if seen[name] {
			return nil
		}
		if err := checkName(field, name); err != nil {
			return err
		}
		if len(names) == MaxSearchCollections {
			return messages.BadRequest("collections", "a search takes at most %d distinct collections", MaxSearchCollections)
		}
		seen[name] = true
		names = append(names, name)
		return nil
	}
	if req.Collection != "" {
		if err := add("collection", req.Collection); err != nil {
			return nil, err
		}
	}
	for _, name := range req.Collections {
		if err := add("collections", name); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, messages.BadRequest("collection", "search needs collection or collections")
	}
	if k*len(names) > MaxSearchRows {
		return nil, messages.BadRequest("k", "k × collections must be at most %d, got %d × %d: lower k or search fewer collections",
			MaxSearchRows, k, len(names))
	}
	return names, nil
}

func (s *Service) search(ctx context.Context, req *messages.VectorRequest, f32le bool, maxAnswer int) (any, error) {
	k := req.K
	if k == 0 {
		k = KDefault
	}
	if k < 1 || k > MaxK {
		return nil, messages.BadRequest("k", "k must be 1 to %d, got %d", MaxK, k)
	}
	names, err := searchNames(req, k)
	if err != nil {
		return nil, err
	}
	if req.EFSearch != 0 && (req.EFSearch < 1 || req.EFSearch > 1000) {
		return nil, messages.BadRequest("ef_search", "ef_search must be 1 to 1000, got %d", req.EFSearch)
	}
	if req.Metric != "" {
		if _, ok := metrics[req.Metric]; !ok {
			return nil, messages.BadRequest("metric", "metric must be cosine, l2 or ip, got %q", req.Metric)
		}
	}
	filter, err := metadataObject("filter", req.Filter)
	if err != nil {
		return nil, err
	}
	query, err := requestVector("vector", req.Vector, req.VectorB64)
	if err != nil {
		return nil, err
	}
	if query == nil {
		return nil, messages.BadRequest("vector", "search needs a vector (or vector_b64)")
	}
	db := s.pg
	if s.cfg.Read != nil && s.cfg.Read.PGVectorVersion() != "" {
		db = s.cfg.Read
	}
	cols, err := s.collections(ctx, db, names)
	if err != nil {
		return nil, err
	}
	// With include_vectors, the least the answer takes per match: a match
	// may be replaced by one of another collection, of the least dimension.
	leastPerMatch := 0
	if req.IncludeVectors {
		leastPerMatch = leastVectorBytes(slices.MinFunc(cols, func(a, b messages.Collection) int { return a.Dimension - b.Dimension }).Dimension, f32le)
	}
	matches := []messages.VectorMatch{}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if req.EFSearch > 0 {
			if _, err := tx.Exec(ctx, "SELECT set_config('hnsw.ef_search', $1, true)", fmt.Sprint(req.EFSearch)); err != nil {
				return err
			}
		}
		for _, c := range cols {
			vec, err := toVector("vector", query, req.VectorB64 != nil, c.Dimension)
			if err != nil {
				return err
			}
			metric := c.Metric
			if req.Metric != "" {
				metric = req.Metric
			}
			op := metrics[metric].op
			// The filter is added only when given: an always-true condition
			// still skews the planner's estimate away from the index.
			sel := `id, content, metadata, embedding ` + op + ` $1 AS distance`
			if req.IncludeVectors {
				sel += `, embedding`
			}
			q := `SELECT ` + sel + ` FROM ` + s.ident(c.Name) + ` WHERE embedding IS NOT NULL`
			args := []any{vec, k}
			if filter != "{}" {
				q += ` AND metadata @> $3::jsonb`
				args = append(args, filter)
			}
			q += ` ORDER BY embedding ` + op + ` $1 LIMIT $2`
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				m := messages.VectorMatch{Collection: c.Name}
				var meta []byte
				var distance float64
				var embedding pgvector.Vector
				dest := []any{&m.ID, &m.Content, &meta, &distance}
				if req.IncludeVectors {
					dest = append(dest, &embedding)
				}
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					return err
				}
				if req.IncludeVectors {
					withVector(&m, embedding, f32le)
				}
				m.Metadata = meta
				m.Distance, m.Score = messages.Float(distance), messages.Float(score(metric, distance))
				if req.MinSimilarity == nil || float64(m.Score) >= *req.MinSimilarity {
					matches = append(matches, m)
				}
				// The answer holds at least min(matches seen, k) matches.
				if least := min(len(matches), k) * leastPerMatch; maxAnswer > 0 && least > maxAnswer {
					rows.Close()
					return messages.Errorf(messages.CodeTooLarge, "the answer would be at least %d bytes; the server's max payload allows %d: ask for a smaller k or leave out include_vectors",
						least, maxAnswer)
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			// Keep the best k so far: at most 2k matches are held at once.
			matches = best(matches, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return messages.VectorSearchResult{Matches: best(matches, k)}, nil
}

// best sorts matches best first and keeps the first k.
func best(matches []messages.VectorMatch, k int) []messages.VectorMatch {
	sort.SliceStable(matches, func(i, j int) bool { return matches[i].Score > matches[j].Score })
	if len(matches) > k {
		clear(matches[k:])
		matches = matches[:k]
	}
	return matches
}

// collections reads the definitions of the named collections from the
// catalog on db in one query, in the order given; an unknown one is NOT_FOUND.
func (s *Service) collections(ctx context.Context, db DB, names []string) ([]messages.Collection, error) {
	rows, err := db.Query(ctx, `SELECT name, dimension, metric, index_kind FROM `+s.ident(catalogTable)+` WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (messages.Collection, error) {
		var c messages.Collection
		err := row.Scan(&c.Name, &c.Dimension, &c.Metric, &c.Index)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	cols := make([]messages.Collection, 0, len(names))
	for _, name := range names {
		i := slices.IndexFunc(found, func(c messages.Collection) bool { return c.Name == name })
		if i < 0 {
			return nil, messages.Errorf(messages.CodeNotFound, "collection %q does not exist", name)
		}
		cols = append(cols, found[i])
	}
	return cols, nil
}

func (s *Service) delete(ctx context.Context, req *messages.VectorRequest) (any, error) {
	c, err := s.collection(ctx, req.Collection)
	if err != nil {
		return nil, err
	}
	ids := req.IDs
	if req.ID != "" {
		ids = append(ids, req.ID)
	}
	if len(ids) == 0 {
		return nil, messages.BadRequest("id", "delete needs id or ids")
	}
	tag, err := s.pg.Exec(ctx, `DELETE FROM `+s.ident(c.Name)+` WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	return messages.DeletedResult{Deleted: tag.RowsAffected()}, nil
}

func (s *Service) stats(ctx context.Context, req *messages.VectorRequest) (any, error) {
	c, err := s.collection(ctx, req.Collection)
	if err != nil {
		return nil, err
	}
	st := messages.VectorStats{Collection: c}
	err = s.pg.QueryRow(ctx, `SELECT count(*), count(embedding) FROM `+s.ident(c.Name)).Scan(&st.Total, &st.Embedded)
	if err != nil {
		return nil, err
	}
	st.MissingEmbeddings = st.Total - st.Embedded
	err = s.pg.QueryRow(ctx, `SELECT COALESCE(pg_relation_size(to_regclass($1)), 0), pg_size_pretty(COALESCE(pg_relation_size(to_regclass($1)), 0))`,
		s.ident(c.Name+"_embedding_idx")).Scan(&st.IndexBytes, &st.IndexSize)
	return st, err
}

func (s *Service) rebuild(ctx context.Context, req *messages.VectorRequest) (any, error) {
	c, err := s.collection(ctx, req.Collection)
	if err != nil {
		return nil, err
	}
	kind := req.Index
	if kind == "" {
		kind = c.Index
	}
	if kind == "none" {
		kind = "hnsw"
	}
	if kind != "hnsw" && kind != "ivfflat" {
		return nil, messages.BadRequest("index", "index must be hnsw or ivfflat, got %q", kind)
	}
	lists := 0
	if kind == "ivfflat" {
		var rows int64
		if err := s.pg.QueryRow(ctx, `SELECT count(embedding) FROM `+s.ident(c.Name)).Scan(&rows); err != nil {
			return nil, err
		}
		if rows == 0 {
			return nil, messages.BadRequest("index", "an IVFFlat index needs data to train on; load the collection first")
		}
		lists = int(max(1, min(rows/1000, 10000)))
	}
	// Build the new index under another name, then swap, so searches keep an
	// index until the new one is ready.
	tmp := pgx.Identifier{c.Name + "_embedding_idx_new"}.Sanitize()
	build := strings.Replace(s.indexSQL(c, kind, lists), pgx.Identifier{c.Name + "_embedding_idx"}.Sanitize(), tmp, 1)
	build = strings.Replace(build, "CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
	if _, err := s.pg.Exec(ctx, `DROP INDEX IF EXISTS `+pgx.Identifier{s.cfg.Schema, c.Name + "_embedding_idx_new"}.Sanitize()); err != nil {
		return nil, err
	}
	if _, err := s.pg.Exec(ctx, build); err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP INDEX IF EXISTS `+s.ident(c.Name+"_embedding_idx")); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER INDEX `+s.ident(c.Name+"_embedding_idx_new")+` RENAME TO `+pgx.Identifier{c.Name + "_embedding_idx"}.Sanitize()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+s.ident(catalogTable)+` SET index_kind = $2 WHERE name = $1`, c.Name, kind)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Fresh statistics, so the planner knows the table it now indexes.
	if _, err := s.pg.Exec(ctx, `ANALYZE `+s.ident(c.Name)); err != nil {
		return nil, err
	}
	return s.stats(ctx, &messages.VectorRequest{Collection: c.Name})
}
