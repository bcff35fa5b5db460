// Package testenv gives tests real, isolated services: a PostgreSQL schema of
// their own on the local server and an embedded nats-server of their own.
//
// VerifyNoLeaks is the TestMain of every package whose code starts
// goroutines: it fails the run if one outlives the tests.
//
// A missing service skips the test with the reason, except under CI=true,
// where it fails: CI must never pass by skipping.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/natsserver"
)

// PostgresURLDefault is used when neither TEST_POSTGRES_URL nor POSTGRES_URL is set.
const PostgresURLDefault = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"

// T is what a helper needs of a test to fail it. *testing.T and *testing.B
// have it, and so does the *assert.CollectT that require.EventuallyWithT
// gives its condition: the condition runs in a goroutine of its own, where
// the test's FailNow must not be called. A helper that takes a T can be used
// in both places.
type T interface {
	require.TestingT
	Helper()
}

// Unavailable fails the test under CI=true and skips it otherwise.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required (CI=true): %v", service, err)
	}
	t.Skipf("%s unavailable, skipping (run `make services`): %v", service, err)
}

// BaseURL is the PostgreSQL server tests use.
func BaseURL() string {
	for _, k := range []string{"TEST_POSTGRES_URL", "POSTGRES_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return PostgresURLDefault
}

// Postgres is a schema of the test's own.
type Postgres struct {
	// URL connects with search_path set to the schema, then public (where
	// pgvector's types live).
	URL    string
	Schema string
}

// NewPostgres creates a fresh schema, dropped when the test ends.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	schema := "t_" + UniqueName()
	// The extension is shared by all tests; take a lock so parallel packages
	// do not race to create it.
	ownObject(t, "schema "+schema+" and extension vector",
		"CREATE SCHEMA "+schema+"; SELECT pg_advisory_lock(4242); CREATE EXTENSION IF NOT EXISTS vector; SELECT pg_advisory_unlock(4242)",
		"DROP SCHEMA "+schema+" CASCADE")
	u := baseURL(t)
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	return &Postgres{URL: u.String(), Schema: schema}
}

// Count runs a query that returns one integer, on a connection of its own.
// It fails no test (-1 stands for an error), so that the conditions of
// require.Eventually, which run on another goroutine, may call it.
func (p *Postgres) Count(sql string, args ...any) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// SyncBuffer is a buffer that a process (or a logger on other goroutines)
// writes while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Exec runs SQL in the test's schema, failing the test on error.
func (p *Postgres) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// NATSOptions tune NewNATS.
type NATSOptions struct {
	MaxPayload int32
}

// NewNATS starts an embedded nats-server with JetStream on a free port,
// shut down when the test ends.
func NewNATS(t testing.TB, opts ...NATSOptions) *server.Server {
	t.Helper()
	o := natsserver.Options{Port: -1, StoreDir: t.TempDir()}
	for _, x := range opts {
		o.MaxPayload = x.MaxPayload
	}
	s, err := natsserver.Start(o)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(fmt.Sprintf("test/%s", t.Name())))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// NewDatabase creates a database of the test's own, dropped when the test
// ends, for tests that need what a schema cannot isolate: VACUUM, for one,
// cannot remove rows deleted after the oldest snapshot of any session in the
// same database, so other tests' open transactions would change its work.
func NewDatabase(t testing.TB) *Postgres {
	t.Helper()
	name := "t_" + UniqueName()
	ownObject(t, "database "+name, "CREATE DATABASE "+name, "DROP DATABASE "+name+" WITH (FORCE)")
	u := baseURL(t)
	u.Path = "/" + name
	return &Postgres{URL: u.String(), Schema: "public"}
}

// ownObject runs create as the tests' superuser, and drop when the test ends.
func ownObject(t testing.TB, what, create, drop string) {
	t.Helper()
	if err := admin(t, create); err != nil {
		t.Fatalf("create %s (run `make services`): %v", what, err)
	}
	t.Cleanup(func() {
		if err := admin(t, drop); err != nil {
			t.Errorf("drop %s: %v", what, err)
		}
	})
}

// baseURL is BaseURL parsed.
func baseURL(t testing.TB) *url.URL {
	t.Helper()
	u, err := url.Parse(BaseURL())
	if err != nil {
		t.Fatalf("parse %s: %v", BaseURL(), err)
	}
	return u
}

// admin runs sql as the tests' superuser on a connection of its own. A
// server that cannot be reached is Unavailable.
func admin(t testing.TB, sql string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		Unavailable(t, "PostgreSQL", err)
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// UniqueName returns 80 random bits as 16 lowercase base32 letters and
// digits: a name no other test, in this process or another, uses, and safe
// unquoted as a SQL identifier or in a key. (A lowercased nuid is not: two
// nuids of one process can differ only in the case of a letter.)
func UniqueName() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
