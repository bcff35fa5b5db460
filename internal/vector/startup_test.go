package vector_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestStartupDDLConverges: workers that start at the same instant on a
// fresh database, where pgvector is not installed yet, all come up with it:
// CREATE EXTENSION, the vector schema and catalog and the graph tables run
// one worker at a time under the start-up DDL lock, and "already exists" is
// success. (Before the lock, the losers logged that vector columns come back
// as text, or exited on a duplicate key of pg_type_typname_nsp_index.)
func TestStartupDDLConverges(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	const workers = 6
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		errs   = make([]error, workers)
		logs   = make([]bytes.Buffer, workers)
		pgvers = make([]string, workers)
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			log := zerolog.New(&logs[i])
			<-start
			c, err := pgexec.Connect(ctx, pgexec.Config{DSN: db.URL, MaxConns: 2, CreateExtension: true, Logger: &log})
			if err != nil {
				errs[i] = fmt.Errorf("connect: %w", err)
				return
			}
			defer c.Close()
			pgvers[i] = c.PGVectorVersion()
			if err := graph.New(c).Init(log.WithContext(ctx)); err != nil {
				errs[i] = fmt.Errorf("graph: %w", err)
				return
			}
			vs, err := vector.New(c, vector.Config{Schema: "vecs", Dimension: 3})
			if err == nil {
				err = vs.Init(log.WithContext(ctx))
			}
			if err != nil {
				errs[i] = fmt.Errorf("vector: %w", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range workers {
		require.NoError(t, errs[i], "worker %d", i)
		require.NotEmpty(t, pgvers[i], "worker %d runs without pgvector: %s", i, logs[i].String())
		require.NotContains(t, logs[i].String(), "could not create", "worker %d", i)
	}
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: db.URL, MaxConns: 1})
	require.NoError(t, err)
	defer c.Close()
	s, err := vector.New(c, vector.Config{Schema: "vecs", Dimension: 3})
	require.NoError(t, err)
	out, err := s.Handle(context.Background(), &messages.VectorRequest{Op: messages.OpCreateCollection, Collection: "docs"})
	require.NoError(t, err, "%v", out)
	var applied []string
	rows, err := c.Query(context.Background(), "SELECT name FROM dbworker_schema_migrations ORDER BY name")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		applied = append(applied, name)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, strings.Join(applied, ","), "vector/vecs/001_catalog")
}
