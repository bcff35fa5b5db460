// Package client is the typed Go client of dbworker, over any *nats.Conn.
//
//	c, err := client.New(nc)
//	res, err := c.Query(ctx, "SELECT id, email FROM users WHERE active = :active", client.NamedArgs{"active": true})
//	var e *client.Error
//	if errors.As(err, &e) && e.SQLState == "23505" { ... }
//
// # Shape
//
// Every op of every subject has a method. The SQL of db.execute is called
// on the Client, with pgx's names: Query, QueryRow, Exec, plus Many, Script,
// Tx, Insert and Update as the protocol has them, and Named for a named
// query (Execute sends any request as it is). The rest is grouped in
// handles, as nats.go's jetstream groups its own:
//
//	c.KV()          state.kv: Get, Set, Delete, Incr
//	c.Locks()       state.lock: Acquire, Release, Refresh, Status, and Lock (a held, refreshed Locker)
//	c.RateLimits()  state.ratelimit: Allow
//	c.Embeddings()  cache.embedding: Get, Set, MGet, MSet, Delete, MDelete
//	c.Vectors()     db.vector: CreateCollection, Upsert, Search, Delete, Stats, RebuildIndex
//	c.Graph()       db.graph: AddNode, AddEdge, Neighbors, FindPath, Subgraph, DeleteNode
//	c.Maintenance() db.stats and db.vacuum: Stats, Vacuum, VacuumAsync
//	c.Health(ctx)   db.health
//
// # Transactions
//
// Tx runs a batch of statements in one transaction (WithIsolation, and a
// statement's ExpectRows, which rolls the batch back when a count is not
// met). An interactive transaction spans calls: BeginTx returns a *Tx with
// Query, QueryRow, Exec, Many, Insert, Update, Commit and Rollback, held by
// one worker (db.tx). InTx runs a function in one, committing on nil,
// rolling back on an error or a panic, and running it again after a
// serialization failure (40001):
//
//	err := c.InTx(ctx, client.TxOptions{Isolation: client.Serializable}, func(tx *client.Tx) error {
//		var bal int
//		if err := tx.QueryRow(ctx, "SELECT bal FROM accounts WHERE id = $1 FOR UPDATE", client.Args{1}).Scan(&bal); err != nil {
//			return err
//		}
//		_, err := tx.Exec(ctx, "UPDATE accounts SET bal = $1 WHERE id = 1", client.Args{bal - 10})
//		return err
//	})
//
// A transaction that ended (it timed out, or its worker stopped or died) is
// ErrTxGone; one aborted by a failed statement answers TX_ABORTED until it
// is rolled back.
//
// # Arguments and rows
//
// A statement's parameters are NamedArgs (for :name placeholders, like
// pgx.NamedArgs) or Args (for $n or ?), or nil. Rows come back as JSON;
// CollectRows and CollectOneRow decode them into structs (by their json
// tags), maps, or, for one column, plain values:
//
//	type user struct {
//		ID    int64  `json:"id"`
//		Email string `json:"email"`
//	}
//	users, err := client.CollectRows[user](c.Query(ctx, "SELECT id, email FROM users WHERE id > $1", client.Args{100}))
//	var n int64
//	err = c.QueryRow(ctx, "SELECT count(*) FROM users", nil).Scan(&n) // client.ErrNoRows when there is no row
//
// # Large results
//
// Query returns every row, however many: an answer too large for one NATS
// message is streamed by the worker and gathered by the client, so only
// WithMaxRows caps it (Truncated then says rows were cut), and it is never
// returned short: a lost message is ErrStreamBroken, an answer cut by an
// older worker's row cap ErrTruncated. To hold a few messages at a time
// rather than every row, read them as they come, as pgx.Rows are read:
//
//	rows, err := c.QueryStream(ctx, "SELECT id, email FROM users", nil)
//	if err != nil { ... }
//	defer rows.Close()
//	for rows.Next() {
//		var u user
//		if err := rows.Scan(&u); err != nil { ... }
//	}
//	if err := rows.Err(); err != nil { ... } // the end of the stream, or its error
//
// or with AllRows, a range-over-func iterator:
//
//	for u, err := range client.AllRows[user](c.QueryStream(ctx, "SELECT id, email FROM users", nil)) { ... }
//
// The worker sends a few messages ahead of what Next has read and waits for
// more credit, which Next grants as it goes; Close, or leaving the loop,
// stops the statement. docs/protocol.md, "Streamed results", has the wire
// side.
//
// # Options
//
// Options tune one call instead of variant methods: client.WithMaxRows(10),
// client.WithReadOnly() or client.WithStatementTimeout(d) on SQL,
// client.WithTTL(d) on KV and embedding sets (WithTTL(0): never expire),
// client.WithCost(n) on a rate limit, client.WithOwner and client.WithWait
// on locks, client.WithK(5) and friends on a vector search,
// client.WithReplace() on a graph AddNode or AddEdge. An option given a value it cannot take fails
// the call before anything is sent, as New fails on a bad Option.
//
// The client sends no safe_numbers, so numeric and int8 come back as JSON
// numbers unless the worker runs with DB_SAFE_NUMBERS=true: then they come
// as strings (int8 only past ±(2^53−1)), which an int64 or float64 field
// refuses. client.WithSafeNumbers(false) asks for numbers on a call
// whatever the worker's default, and client.WithSafeNumbersDefault(false)
// on every call of a client (a call's own option still wins).
//
// # Vectors
//
// Embeddings and Vectors take and return []float32. On the wire they go as
// base64 of their little-endian bytes (vector_b64, and encoding "f32le" for
// answers), exact to the bit and far cheaper than JSON numbers to encode on
// both sides; client.WithJSONVectors() on New sends JSON arrays instead,
// for workers older than the binary form. client.WithIncludeVectors() gives
// a Search's matches their Vector.
//
// # Timeouts and errors
//
// A context deadline is the request's timeout; without one the client's
// default (WithTimeout, 30s) applies. Failed requests return *Error, which
// carries the protocol's status, code and, for database errors, the SQLSTATE.
//
// # Inboxes
//
// Answers come back on the connection's inboxes. On a broker that gives each
// user an inbox prefix of its own (dbworker's nats-server.conf), connect with
// that prefix: nats.Connect(url, nats.UserInfo("orders", pw),
// client.InboxPrefix("_INBOX_orders")).
package client
