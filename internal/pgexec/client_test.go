package pgexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
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

func TestClientAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c := connect(t, pg)
	require.NotEmpty(t, c.PGVectorVersion())
	pg.Exec(t, `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, embedding vector(3), tags text[])`)

	row, err := c.Insert(ctx, "items", map[string]any{"name": "a", "embedding": pgvector.NewVector([]float32{1, 2, 3}), "tags": []string{"x"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, row["id"])
	require.Equal(t, pgvector.NewVector([]float32{1, 2, 3}), row["embedding"], "pgvector types are registered on every connection")

	_, err = c.Insert(ctx, "items", map[string]any{"nope": 1})
	var me *messages.Error
	require.True(t, errors.As(err, &me))
	require.Equal(t, messages.CodeBadRequest, me.Code)

	n, err := c.Update(ctx, "items", map[string]any{"name": "b"}, "id = $1", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	_, err = c.Update(ctx, "items", map[string]any{"name": "b"}, "")
	require.Error(t, err)

	one, err := c.FetchOne(ctx, "SELECT name FROM items WHERE id = $1", 1)
	require.NoError(t, err)
	require.Equal(t, "b", one["name"])
	none, err := c.FetchOne(ctx, "SELECT name FROM items WHERE id = $1", 99)
	require.NoError(t, err)
	require.Nil(t, none)

	err = c.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (name) VALUES ('rolled back')"); err != nil {
			return err
		}
		return errors.New("abort")
	})
	require.EqualError(t, err, "abort")
	all, err := c.FetchAll(ctx, "SELECT name FROM items ORDER BY id")
	require.NoError(t, err)
	require.Len(t, all, 1)
}

// TestApplySchemaOnce starts several appliers at once: each file is applied
// exactly once, and a changed file is refused.
func TestApplySchemaOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c := connect(t, pg)
	files := fstest.MapFS{
		"001_counter.sql": {Data: []byte("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0);")},
		"002_bump.sql":    {Data: []byte("UPDATE counter SET n = n + 1;")},
		"README.md":       {Data: []byte("not a schema file")},
	}
	var wg sync.WaitGroup
	applied := make([][]string, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = c.ApplySchema(ctx, files)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		require.NoError(t, errs[i])
		total += len(applied[i])
	}
	require.Equal(t, 2, total, "each file applied once across all callers")
	row, err := c.FetchOne(ctx, "SELECT n FROM counter")
	require.NoError(t, err)
	require.EqualValues(t, 1, row["n"])

	files["002_bump.sql"] = &fstest.MapFile{Data: []byte("UPDATE counter SET n = n + 100;")}
	_, err = c.ApplySchema(ctx, files)
	require.ErrorContains(t, err, "changed after it was applied")

	files["002_bump.sql"] = &fstest.MapFile{Data: []byte("UPDATE counter SET n = n + 1;")}
	files["003_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x int); SELECT 1/0;")}
	_, err = c.ApplySchema(ctx, files)
	require.Error(t, err)
	_, err = c.FetchOne(ctx, "SELECT * FROM half")
	require.Error(t, err, "a failed file leaves nothing half-applied")
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
	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	pg.Exec(t, "CREATE TABLE shifty (a int)")
	pg.Exec(t, "INSERT INTO shifty VALUES (1)")
	req := &messages.ExecuteRequest{SQL: "SELECT * FROM shifty"}
	out, err := ex.Execute(ctx, req, 0)
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1}]`)
	pg.Exec(t, "ALTER TABLE shifty ADD COLUMN b text DEFAULT 'x', ALTER COLUMN a TYPE bigint")
	// The statement autocommitted before its result showed the change, so it
	// is not sent again behind the caller's back (it could have written): the
	// caller is told, and the next one is described afresh.
	_, err = ex.Execute(ctx, req, 0)
	require.Error(t, err)
	require.Equal(t, messages.CodeUnavailable, pgexec.AsError(err).Code)
	out, err = ex.Execute(ctx, req, 0)
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1,"b":"x"}]`)
	// Where it ran in a transaction that was rolled back, it is sent again.
	pg.Exec(t, "ALTER TABLE shifty ALTER COLUMN b DROP DEFAULT, ALTER COLUMN b TYPE int USING 7")
	out, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT * FROM shifty", ReadOnly: true}, 0)
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"a":1,"b":7}]`)
}

func TestStatementTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c := connect(t, pg)
	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{DefaultTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT pg_sleep(10)"}, 0)
	require.Less(t, time.Since(start), 3*time.Second)
	me := pgexec.AsError(err)
	require.Equal(t, messages.CodeTimeout, me.Code, "%v", err)
	for i := 0; i < 3; i++ {
		_, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: fmt.Sprintf("SELECT %d", i)}, 0)
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
	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	out, err := ex.Execute(ctx, &messages.ExecuteRequest{
		SQL:    "SELECT :n::int8 * 2 AS doubled, :label::text AS label",
		Params: []byte(`{"n":9007199254740993,"label":"big"}`),
	}, 0)
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
	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	for i := 0; i < 3; i++ { // new connections do not repeat the warning
		out, err := ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT '[1,2,3]' AS v"}, 0)
		require.NoError(t, err)
		require.Contains(t, string(out), `"rows":[{"v":"[1,2,3]"}]`)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "pgvector is not installed"))
	h := c.Health(ctx)
	require.Nil(t, h.PGVector)
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
	row, err := c.FetchOne(context.Background(), "SELECT '[1,2,3]'::public.vector AS v")
	require.NoError(t, err)
	require.Equal(t, pgvector.NewVector([]float32{1, 2, 3}), row["v"])
}
