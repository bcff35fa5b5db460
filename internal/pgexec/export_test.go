package pgexec

// What the end of a request sends (session.go), for the benchmarks that
// write a request's sequence on pgconn directly.
var (
	ResetSQL = resetSQL
	SeedSQL  = seedSQL
)
