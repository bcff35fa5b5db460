package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestMemoryStateWorkerRefusesToJoin: a worker with state in memory does not
// start where another worker serves its prefix, with one line saying what to
// do instead; on another prefix it starts, and so it does when told to.
func TestMemoryStateWorkerRefusesToJoin(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	base := []string{"NATS_URL=" + ns.ClientURL(), "POSTGRES_URL=" + pg.URL, "VECTOR_SCHEMA=" + pg.Schema, "MAINT_CONCURRENCY=0"}
	startWorker(t, nc, append(base, "WORKER_ID=first-"+pg.Schema)...)

	cmd := exec.Command(workerBin)
	cmd.Env = append(os.Environ(), append(base, "WORKER_ID=second-"+pg.Schema)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the second memory-state worker started; logs:\n%s", &stderr)
	require.Equal(t, 1, ee.ExitCode())
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	require.Equal(t, `worker: state is in memory (DEPLOYMENT_MODE=single_node) and other workers serve SUBJECT_PREFIX "" (first-`+pg.Schema+
		`): each would keep its own rate limits, locks and values; use DEPLOYMENT_MODE=distributed with REDIS_URL (or STATE_MEMORY_ALLOW_PEERS=true to run anyway)`, last)

	// Another prefix is another pool.
	other := startWorkerAs(t, nc, "other-"+pg.Schema, append(base, "SUBJECT_PREFIX=other.")...)
	require.NotContains(t, other.String(), "other workers serve")
	// Told to, it starts, and says what it costs.
	allowed := startWorkerAs(t, nc, "allowed-"+pg.Schema, append(base, "STATE_MEMORY_ALLOW_PEERS=true")...)
	require.Contains(t, allowed.String(), "starting anyway (STATE_MEMORY_ALLOW_PEERS=true)")
}

// startWorkerAs runs the binary as worker id with env and waits until it
// answers $SRV.PING.
func startWorkerAs(t *testing.T, nc *nats.Conn, id string, env ...string) *testenv.SyncBuffer {
	t.Helper()
	cmd := exec.Command(workerBin)
	cmd.Env = append(os.Environ(), append(env, "WORKER_ID="+id)...)
	logs := &testenv.SyncBuffer{}
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return serving(t, nc)[id] }, 20*time.Second, 50*time.Millisecond, "worker did not come up: %s", logs)
	return logs
}

// TestFleetStartsTogetherOnACluster: three workers started at the same
// instant on a three-node cluster of nats-server processes (the system's
// nats-server: Debian's 2.9.10 in CI), with JS_REPLICAS=3, all serve within
// 20 s and the streams have three replicas; a fourth started without the
// variable leaves them so.
func TestFleetStartsTogetherOnACluster(t *testing.T) {
	urls := testenv.NewNATSCluster(t, 3)
	natsURL := strings.Join(urls, ",")
	pg := testenv.NewPostgres(t)
	redisPrefix := testenv.NewRedisPrefix(t)
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	base := []string{"NATS_URL=" + natsURL, "POSTGRES_URL=" + pg.URL, "DEPLOYMENT_MODE=distributed", "REDIS_URL=" + testenv.RedisURL(),
		"STATE_KEY_PREFIX=" + redisPrefix, "MAINT_SCHEMAS=" + pg.Schema, "VECTOR_SCHEMA=" + pg.Schema, "POSTGRES_POOL_SIZE=2", "POSTGRES_MAX_OVERFLOW=0", "LOG_LEVEL=debug"}

	type proc struct{ logs *testenv.SyncBuffer }
	start := func(id string, env ...string) proc {
		cmd := exec.Command(workerBin)
		cmd.Env = append(append(os.Environ(), base...), append(env, "WORKER_ID="+id)...)
		p := proc{logs: &testenv.SyncBuffer{}}
		cmd.Stderr = p.logs
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return p
	}
	logsOf := func(ps []proc) string {
		var b strings.Builder
		for _, p := range ps {
			b.WriteString(p.logs.String())
		}
		return b.String()
	}
	began := time.Now()
	var procs []proc
	for _, id := range []string{"c1", "c2", "c3"} {
		procs = append(procs, start(id, "JS_REPLICAS=3"))
	}
	waitServing := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(serving(t, nc)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d workers serving after 20s; logs:\n%s", len(serving(t, nc)), n, logsOf(procs))
			}
		}
	}
	waitServing(3)
	t.Logf("3 workers serving %s after their start", time.Since(began).Round(time.Millisecond))

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	replicas := func() map[string]int {
		out := map[string]int{}
		for _, name := range []string{maintenance.StreamJobs, maintenance.StreamStats, maintenance.StreamVacuum} {
			s, err := js.Stream(ctx, name)
			require.NoError(t, err)
			out[name] = s.CachedInfo().Config.Replicas
		}
		return out
	}
	r3 := map[string]int{maintenance.StreamJobs: 3, maintenance.StreamStats: 3, maintenance.StreamVacuum: 3}
	require.Equal(t, r3, replicas())

	// A fourth, without JS_REPLICAS: the streams stay as their owners made them.
	procs = append(procs, start("c4"))
	waitServing(4)
	require.Equal(t, r3, replicas())
	require.NotContains(t, procs[3].logs.String(), "stream created")
}

// serving returns the worker ids of the dbworker instances that answer a
// $SRV.PING within half a second.
func serving(t *testing.T, nc *nats.Conn) map[string]bool {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.PublishRequest("$SRV.PING.dbworker", inbox, nil))
	ids := map[string]bool{}
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return ids
		}
		var ping micro.Ping
		if json.Unmarshal(msg.Data, &ping) == nil && ping.Metadata["worker_id"] != "" {
			ids[ping.Metadata["worker_id"]] = true
		}
	}
}
