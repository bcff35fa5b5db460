package pgexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

func connect(t *testing.T, pg *testenv.Postgres) *pgexec.Client {
	t.Helper()
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 4, CreateExtension: true})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestClientIsAQuerier: the client is the narrow face vector, graph and
// maintenance take, and pgvector's types are registered on its connections.
func TestClientIsAQuerier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c := connect(t, pg)
	var q pgexec.Querier = c
	require.NotEmpty(t, c.PGVectorVersion())
	_, err := q.Exec(ctx, `CREATE TABLE items (id serial PRIMARY KEY, embedding vector(3))`)
	require.NoError(t, err)
	var v pgvector.Vector
	require.NoError(t, q.QueryRow(ctx, "INSERT INTO items (embedding) VALUES ($1) RETURNING embedding", pgvector.NewVector([]float32{1, 2, 3})).Scan(&v))
	require.Equal(t, pgvector.NewVector([]float32{1, 2, 3}), v, "pgvector types are registered on every connection")
	err = pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (embedding) VALUES (NULL)"); err != nil {
			return err
		}
		return errors.New("abort")
	})
	require.EqualError(t, err, "abort")
	var n int
	require.NoError(t, q.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n))
	require.Equal(t, 1, n)
	require.Equal(t, "dbworker", c.ConnConfig().RuntimeParams["application_name"])
}

// TestDescribeCacheHeals: a cached statement description that no longer
// matches its table is described again.
func TestDescribeCacheHeals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 1})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(c.Close)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	require.NoError(t, err)
	pg.Exec(t, "CREATE TABLE shifty (a int)")
	pg.Exec(t, "INSERT INTO shifty VALUES (1)")
	req := &messages.ExecuteRequest{SQL: "SELECT * FROM shifty"}
	out, err := ex.Execute(ctx, req, pgjson.Output{})
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1}]`)
	pg.Exec(t, "ALTER TABLE shifty ADD COLUMN b text DEFAULT 'x', ALTER COLUMN a TYPE bigint")
	// The statement autocommitted before its result showed the change, so it
	// is not sent again behind the caller's back (it could have written): the
	// caller is told, and the next one is described afresh.
	_, err = ex.Execute(ctx, req, pgjson.Output{})
	require.Error(t, err)
	require.Equal(t, messages.CodeUnavailable, pgerr.AsError(err).Code)
	out, err = ex.Execute(ctx, req, pgjson.Output{})
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1,"b":"x"}]`)
	// Where it ran in a transaction that was rolled back, it is sent again.
	pg.Exec(t, "ALTER TABLE shifty ALTER COLUMN b DROP DEFAULT, ALTER COLUMN b TYPE int USING 7")
	out, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT * FROM shifty", ReadOnly: true}, pgjson.Output{})
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1,"b":7}]`)
}

func TestStatementTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c := connect(t, pg)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{DefaultTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	_, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT pg_sleep(10)"}, pgjson.Output{})
	require.Less(t, time.Since(start), 3*time.Second)
	me := pgerr.AsError(err)
	require.Equal(t, messages.CodeTimeout, me.Code, "%v", err)
	for i := 0; i < 3; i++ {
		_, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: fmt.Sprintf("SELECT %d", i)}, pgjson.Output{})
		require.NoError(t, err)
	}
}

func ExampleExecutor_Execute() {
	ctx := context.Background()
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := ex.Execute(ctx, &messages.ExecuteRequest{
		SQL:    "SELECT :n::int8 * 2 AS doubled, :label::text AS label",
		Params: []byte(`{"n":9007199254740993,"label":"big"}`),
	}, pgjson.Output{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(out))
	// Output: {"columns":[{"name":"doubled","type":"int8"},{"name":"label","type":"text"}],"rows":[{"doubled":18014398509481986,"label":"big"}],"rows_affected":1,"command":"SELECT 1","truncated":false}
}

// TestWithoutPGVector: in a database without the extension (and no right to
// create it) the client still works and says so once in the log.
func TestWithoutPGVector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.BaseURL())
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer admin.Close(ctx)
	db := "dbw_novec_" + strings.ToLower(fmt.Sprint(time.Now().UnixNano()))
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db+" TEMPLATE template0")
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), testenv.BaseURL())
		if err == nil {
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), "DROP DATABASE "+db+" WITH (FORCE)")
		}
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	u, err := url.Parse(testenv.BaseURL())
	require.NoError(t, err)
	u.Path = "/" + db
	var logs bytes.Buffer
	logger := zerolog.New(&logs)
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: u.String(), CreateExtension: false, Logger: &logger})
	require.NoError(t, err)
	defer c.Close()
	require.Empty(t, c.PGVectorVersion())
	require.Equal(t, 1, strings.Count(logs.String(), "pgvector is not installed"), logs.String())
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	require.NoError(t, err)
	for i := 0; i < 3; i++ { // new connections do not repeat the warning
		out, err := ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT '[1,2,3]' AS v"}, pgjson.Output{})
		require.NoError(t, err)
		require.Contains(t, string(out), `"rows":[{"v":"[1,2,3]"}]`)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "pgvector is not installed"))
}

// TestSearchPathWithoutTheExtensionSchema: pgvector's types are registered by
// their qualified names, so a search_path without the extension's schema
// still connects and still reads vectors.
func TestSearchPathWithoutTheExtensionSchema(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	u, err := url.Parse(pg.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", pg.Schema) // no public
	u.RawQuery = q.Encode()
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: u.String(), MaxConns: 2})
	require.NoError(t, err)
	defer c.Close()
	var v pgvector.Vector
	require.NoError(t, c.QueryRow(context.Background(), "SELECT '[1,2,3]'::public.vector AS v").Scan(&v))
	require.Equal(t, pgvector.NewVector([]float32{1, 2, 3}), v)
}

// TestNewExecutorRefusesBadConfig: a mode or limit that makes no sense is an
// error, never a silent fallback. "readonly" (a typo of read_only) used to
// run read-write.
func TestNewExecutorRefusesBadConfig(t *testing.T) {
	t.Parallel()
	c := connect(t, testenv.NewPostgres(t))
	for name, cfg := range map[string]pgexec.ExecutorConfig{
		"typo of read_only":         {Mode: "readonly"},
		"unknown mode":              {Mode: "READ_ONLY"},
		"negative max rows":         {MaxRows: -1},
		"negative timeout":          {DefaultTimeout: -time.Second},
		"default above max":         {DefaultTimeout: time.Minute, MaxTimeout: time.Second},
		"named query without sql":   {NamedQueries: map[string]named.Query{"q": {Op: messages.OpQuery}}},
		"named query with a bad op": {NamedQueries: map[string]named.Query{"q": {SQL: "SELECT 1", Op: messages.OpScript}}},
	} {
		_, err := pgexec.NewExecutor(c, cfg)
		require.Error(t, err, name)
	}
	_, err := pgexec.NewExecutor(nil, pgexec.ExecutorConfig{})
	require.Error(t, err)
	mode, err := pgexec.ParseMode("read_only")
	require.NoError(t, err)
	require.Equal(t, pgexec.ModeReadOnly, mode)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{Mode: pgexec.ModeReadOnly})
	require.NoError(t, err)
	_, err = ex.Execute(context.Background(), &messages.ExecuteRequest{SQL: "CREATE TABLE nope (x int)"}, pgjson.Output{})
	require.Equal(t, "25006", pgerr.AsError(err).SQLState, "%v", err)
}
