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
// A request holds one pooled connection and leaves it as it found it (see
// session.go): every statement is sent on its own with the extended protocol
// (the server refuses a smuggled second one), transaction control is refused
// and the transaction status checked after each statement, read-only
// requests run in READ ONLY transactions that always roll back, and the last
// round trip ends with DISCARD ALL. The worker keeps no prepared statement on
// the server: statements are sent unnamed with descriptions cached per
// connection, so no request can drop or replace one another caller runs.
package pgexec
