package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

func TestMaintenanceEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maintenance = true; o.prefix = "m1." })
	b.pg.Exec(t, "CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 100); DELETE FROM users WHERE id <= 10")

	st := b.ok(`{"table":"users"}`, subjects.DBStats)
	tables := st["tables"].([]any)
	require.Len(t, tables, 1)
	require.Equal(t, "90", fmt.Sprint(tables[0].(map[string]any)["row_count"]))

	res := b.ok(`{"table":"users","verbose":true}`, subjects.DBVacuum)
	require.Equal(t, "ok", res["status"])
	require.Equal(t, "10", fmt.Sprint(res["before"].(map[string]any)["dead_rows"]))
	require.NotEmpty(t, res["output"], "VERBOSE notices are captured")
	require.Equal(t, "M1_DB_VACUUM", res["stream"], "streams are named after the prefix")

	acc := b.ok(`{"table":"users","async":true}`, subjects.DBVacuum)
	require.Equal(t, "M1_DB_JOBS", acc["stream"])

	for body, code := range map[string]string{
		`{"table":"nope"}`:              "NOT_FOUND",
		`{"table":"users","full":true}`: "FORBIDDEN",
		`{"table":"users","bogus":1}`:   "BAD_REQUEST",
		`{"schema":"x"}`:                "BAD_REQUEST",
	} {
		e := b.request(subjects.DBVacuum, []byte(body)).errorOf(t)
		require.Equal(t, code, e["code"], body)
	}
	e := b.request(subjects.DBStats, []byte(`{"table":"nope"}`)).errorOf(t)
	require.Equal(t, "NOT_FOUND", e["code"])

	// The async job runs (the stream's subjects carry the prefix) and leaves
	// the queue.
	require.Eventually(t, func() bool {
		msg, err := b.nc.Request("$JS.API.STREAM.INFO.M1_DB_JOBS", nil, time.Second)
		if err == nil && len(msg.Data) == 0 {
			return false
		}
		if err != nil {
			return false
		}
		var info struct {
			State struct{ Messages uint64 } `json:"state"`
		}
		return json.Unmarshal(msg.Data, &info) == nil && info.State.Messages == 0
	}, 10*time.Second, 50*time.Millisecond)

	// A target being vacuumed elsewhere answers LOCKED, naming the holder.
	got, err := b.state.AcquireLock(context.Background(), maintenance.VacuumLockKey(b.pg.Schema, "users"), "other-worker/run", time.Minute)
	require.NoError(t, err)
	require.True(t, got.Acquired)
	a := b.request(subjects.DBVacuum, []byte(`{"table":"users"}`))
	require.Equal(t, "409", a.status)
	le := a.errorOf(t)
	require.Equal(t, "LOCKED", le["code"])
	require.Contains(t, le["message"], "other-worker/run")
}

// TestVectorAndGraphEndpoints: db.vector and db.graph over NATS.
func TestVectorAndGraphEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ok(`{"op":"create_collection","collection":"docs"}`, subjects.DBVector)
	b.ok(`{"op":"upsert","collection":"docs","items":[{"id":"a","vector":[1,0,0],"content":"apples","metadata":{"lang":"en"}},{"id":"b","vector":[0,1,0]}]}`, subjects.DBVector)
	res := b.ok(`{"op":"search","collection":"docs","vector":[1,0.1,0],"k":1,"filter":{"lang":"en"}}`, subjects.DBVector)
	m := res["matches"].([]any)[0].(map[string]any)
	require.Equal(t, "a", m["id"])
	require.Equal(t, "apples", m["content"])
	for body, code := range map[string]string{
		`{"op":"search","collection":"docs","vector":[1,0]}`:             "BAD_REQUEST",
		`{"op":"search","collection":"nope","vector":[1,0,0]}`:           "NOT_FOUND",
		`{"op":"create_collection","collection":"x","metric":"jaccard"}`: "BAD_REQUEST",
	} {
		e := b.request(subjects.DBVector, []byte(body)).errorOf(t)
		require.Equal(t, code, e["code"], body)
	}

	b.ok(`{"op":"add_node","node_id":"a","properties":{"x":1}}`, subjects.DBGraph)
	b.ok(`{"op":"add_node","node_id":"b"}`, subjects.DBGraph)
	b.ok(`{"op":"add_edge","from":"a","to":"b","edge_type":"knows"}`, subjects.DBGraph)
	nb := b.ok(`{"op":"get_neighbors","node_id":"a"}`, subjects.DBGraph)
	require.Len(t, nb["neighbors"], 1)
	p := b.ok(`{"op":"find_path","from":"a","to":"b"}`, subjects.DBGraph)
	require.Equal(t, true, p["found"])
	e := b.request(subjects.DBGraph, []byte(`{"op":"add_edge","from":"a","to":"ghost"}`)).errorOf(t)
	require.Equal(t, "NOT_FOUND", e["code"])
}
