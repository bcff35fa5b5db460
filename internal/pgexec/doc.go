// Package pgexec runs SQL against PostgreSQL for dbworker: the Executor
// behind db.execute, on a pgx pool ([Client]) set up for it.
//
// It is layered the way pgx is, each layer a package that knows only the
// ones below it:
//
//	sqltext    placeholders found and rewritten (:name, $n, ?), statements split;
//	           knows no database
//	pgjson     values both ways: binary column to JSON, JSON parameter to the
//	           text form its type parses; the type catalog; knows no requests
//	stmtcache  statement descriptions per connection
//	table      a request's table checked against the catalog, its INSERT and
//	           UPDATE built with quoted identifiers
//	migrate    schema migrations applied once each (schema files, graph, vector),
//	           and the lock every piece of start-up DDL takes
//	pooler     what a transaction pooler takes: startup parameters, settings
//	           per transaction, cancel requests
//	pgrole     the login's privileges, checked by a read-only worker
//	named      the named-queries file: statements run by name, the allowlist
//	pgerr      errors mapped to the protocol: SQLSTATEs to codes, causes kept
//	pgexec     a request on one connection (the session), and the Executor
//	           that validates requests and picks the session's shape
//
// Using it:
//
//	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: "postgres://localhost/app"})
//	if err != nil { ... }
//	defer c.Close()
//	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{Mode: pgexec.ModeReadOnly})
//	if err != nil { ... }
//	answer, err := ex.Execute(ctx, &messages.ExecuteRequest{SQL: "select 1 as x"}, pgjson.Output{MaxBytes: 1 << 20})
//	// {"columns":[{"name":"x","type":"int4"}],"rows":[{"x":1}],...}
//
// The Client is also a [Querier], the narrow face of the pool that vector,
// graph and maintenance take.
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
//
// # Poolers and replicas
//
// Behind a pooler in transaction mode (Config.Pooler, package pooler) the
// client sends no startup parameter but application_name, and every request
// runs in a transaction of its own that sets the statement timeout and the
// settings text forms depend on. ExecutorConfig.Read is a second Client, on a
// replica, for what only reads. Client.WritesRefused reports a database that
// refuses writes (a hot standby), where the worker runs no start-up DDL.
package pgexec
