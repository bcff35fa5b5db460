package migrate_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/migrate"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func apply(ctx context.Context, db migrate.Beginner, files fstest.MapFS) ([]string, error) {
	ms, err := migrate.FromFS(files)
	if err != nil {
		return nil, err
	}
	return migrate.Apply(ctx, db, ms, zerolog.Nop())
}

// TestApplyOnce starts several appliers at once: each file is applied
// exactly once, and a changed file is refused.
func TestApplyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(c.Close)
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
			applied[i], errs[i] = apply(ctx, c, files)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		require.NoError(t, errs[i])
		total += len(applied[i])
	}
	require.Equal(t, 2, total, "each file applied once across all callers")
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT n FROM counter").Scan(&n))
	require.Equal(t, 1, n)

	files["002_bump.sql"] = &fstest.MapFile{Data: []byte("UPDATE counter SET n = n + 100;")}
	_, err = apply(ctx, c, files)
	require.ErrorContains(t, err, "changed after it was applied")

	files["002_bump.sql"] = &fstest.MapFile{Data: []byte("UPDATE counter SET n = n + 1;")}
	files["003_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x int); SELECT 1/0;")}
	_, err = apply(ctx, c, files)
	require.Error(t, err)
	_, err = c.Exec(ctx, "SELECT * FROM half")
	require.Error(t, err, "a failed file leaves nothing half-applied")
}

// TestTableOfAnotherSchemaIsNotThisOne: a migrations table further down the
// search_path (another tenant's, in public) neither hides this schema's
// migrations nor is read: each schema applies its own.
func TestTableOfAnotherSchemaIsNotThisOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	decoy := pg.Schema + "_decoy"
	pg.Exec(t, "CREATE SCHEMA "+decoy+"; CREATE TABLE "+decoy+"."+migrate.Table+" (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO "+decoy+"."+migrate.Table+" VALUES ('001_t.sql', 'x')")
	t.Cleanup(func() { pg.Exec(t, "DROP SCHEMA "+decoy+" CASCADE") })
	u, err := url.Parse(pg.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", pg.Schema+","+decoy)
	u.RawQuery = q.Encode()
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: u.String(), MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	done, err := apply(ctx, c, fstest.MapFS{"001_t.sql": {Data: []byte("CREATE TABLE t (x int)")}})
	require.NoError(t, err)
	require.Equal(t, []string{"001_t.sql"}, done)
	var where string
	require.NoError(t, c.QueryRow(ctx, "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 't'::regclass").Scan(&where))
	require.Equal(t, pg.Schema, where)
}
