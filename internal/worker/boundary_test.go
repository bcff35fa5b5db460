package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// TestWritesHonourReadOnlyOnEverySubject: read-only mode, a read_only request
// and the allowlist refuse writes on db.vector and db.graph as they do on
// db.execute, and reads still answer. The tables say nothing was written.
func TestWritesHonourReadOnlyOnEverySubject(t *testing.T) {
	t.Parallel()
	writes := []struct{ subject, body string }{
		{subjects.DBVector, `{"op":"create_collection","collection":"docs","dimension":3}`},
		{subjects.DBVector, `{"op":"upsert","collection":"docs","id":"a","vector":[1,2,3]}`},
		{subjects.DBVector, `{"op":"delete","collection":"docs","ids":["a"]}`},
		{subjects.DBVector, `{"op":"rebuild_index","collection":"docs"}`},
		{subjects.DBGraph, `{"op":"add_node","node_id":"n1","node_type":"t"}`},
		{subjects.DBGraph, `{"op":"add_edge","from":"n1","to":"n2","edge_type":"e"}`},
		{subjects.DBGraph, `{"op":"delete_node","node_id":"n1"}`},
	}
	withReadOnly := func(body string) string { return body[:len(body)-1] + `,"read_only":true}` }
	for _, c := range []struct {
		name     string
		opt      func(*options)
		readOnly bool // set read_only on each request
	}{
		{"read-only mode", func(o *options) { o.mode = pgexec.ModeReadOnly }, false},
		{"read_only request", func(o *options) {}, true},
		{"allowlist", func(o *options) { o.namedOnly = true }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.opt)
			for _, w := range writes {
				body := w.body
				if c.readOnly {
					body = withReadOnly(body)
				}
				e := b.request(w.subject, []byte(body)).errorOf(t)
				require.Equal(t, "FORBIDDEN", e["code"], "%s %s", w.subject, body)
			}
			count := func(sql string) int64 {
				conn, err := pgx.Connect(context.Background(), b.pg.URL)
				require.NoError(t, err)
				defer conn.Close(context.Background())
				var n int64
				require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(&n))
				return n
			}
			require.Zero(t, count("SELECT count(*) FROM "+pgx.Identifier{b.pg.Schema, "dbworker_collections"}.Sanitize()))
			require.Zero(t, count("SELECT count(*) FROM graph_nodes"))
			// Reads are not writes.
			a := b.request(subjects.DBGraph, []byte(`{"op":"get_neighbors","node_id":"n1"}`))
			require.NotEqual(t, "403", a.status, fmt.Sprintf("%s", a.body))
		})
	}
}
