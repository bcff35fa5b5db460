// Package pgexec runs SQL against PostgreSQL for dbworker, with pgx and
// pgvector-go.
//
// It has two faces. [Client] is the Go API of the Python client dbworker
// replaces: a pool with Exec, FetchOne, FetchAll, Insert, Update, InTx and
// ApplySchema (schema files applied once each, tracked in a table, under an
// advisory lock):
//
//	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: "postgres://localhost/app"})
//	if err != nil { ... }
//	defer c.Close()
//	row, err := c.Insert(ctx, "users", map[string]any{"email": "a@x"}, "id")
//
// [Executor] carries out db.execute requests. It binds JSON parameters
// (:name, $n or ?, found by a lexer that skips literals, quoted identifiers,
// dollar quotes, comments and :: casts) by the parameter types the server
// describes, and encodes result rows straight from the wire to JSON by column
// type, with exact int8 and numeric digits:
//
//	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{MaxRows: 10000})
//	answer, err := ex.Execute(ctx, &messages.ExecuteRequest{SQL: "select 1 as x"}, 1<<20)
//	// {"columns":[{"name":"x","type":"int4"}],"rows":[{"x":1}],...}
//
// # Errors
//
// [AsError] maps any error to the protocol's error model: SQLSTATEs to codes
// and statuses, context deadlines to TIMEOUT, connection failures and an
// exhausted pool to UNAVAILABLE.
//
// # Sessions
//
// A request that leaves session state behind (SET, LISTEN, PREPARE, DECLARE,
// temporary tables) or an open transaction has its connection closed instead of
// returned to the pool, so no request inherits another's settings.
package pgexec
