package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func freePorts(t *testing.T, n int) []int {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startCluster runs three embedded nats-servers with JetStream, routed to
// each other on loopback.
func startCluster(t *testing.T) []*server.Server {
	t.Helper()
	routes := freePorts(t, 3)
	var routeURLs []*url.URL
	for _, p := range routes {
		u, _ := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", p))
		routeURLs = append(routeURLs, u)
	}
	var servers []*server.Server
	for i := 0; i < 3; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "dbworker-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  routeURLs,
		}
		s, err := server.NewServer(opts)
		require.NoError(t, err)
		go s.Start()
		require.True(t, s.ReadyForConnections(10*time.Second))
		servers = append(servers, s)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	// Wait for a JetStream meta leader.
	require.Eventually(t, func() bool {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	return servers
}

// TestClusterNodeLoss: three NATS nodes, streams with three replicas, two
// workers; one node is killed while jobs run. The workers keep serving and
// every job yields exactly one result.
func TestClusterNodeLoss(t *testing.T) {
	t.Parallel()
	servers := startCluster(t)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	pg := testenv.NewPostgres(t)
	b := &bundle{t: t, pg: pg, ns: servers[0]}
	var err error
	b.nc, err = nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(b.nc.Close)
	b.sub, _ = subjects.New("")
	o := options{maxConns: 8, acquire: 5 * time.Second, mode: "read_write", maxRows: 100, maxConcurrent: 8, maintenance: true,
		natsURL: strings.Join(urls, ","), replicas: 3, beforeVacuum: "SELECT pg_sleep(0.2)"}
	_, w1 := b.startWorker(t, "w1", o)
	_, w2 := b.startWorker(t, "w2", o)
	const tables, jobs = 6, 18
	for i := 0; i < tables; i++ {
		pg.Exec(t, fmt.Sprintf("CREATE TABLE c%d (x int)", i))
	}
	js, err := jetstream.New(b.nc)
	require.NoError(t, err)
	ctx := context.Background()
	info, err := js.Stream(ctx, maintenance.StreamJobs)
	require.NoError(t, err)
	require.Equal(t, 3, info.CachedInfo().Config.Replicas)
	// JS_REPLICAS=auto on three nodes is three replicas.
	auto, err := subjects.New("auto.")
	require.NoError(t, err)
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{Subjects: auto}))
	autoJobs := maintenance.StreamName(auto, maintenance.StreamJobs)
	info, err = js.Stream(ctx, autoJobs)
	require.NoError(t, err)
	require.Equal(t, 3, info.CachedInfo().Config.Replicas, "auto")
	for _, name := range []string{maintenance.StreamJobs, maintenance.StreamStats, maintenance.StreamVacuum} {
		require.NoError(t, js.DeleteStream(ctx, maintenance.StreamName(auto, name)))
	}

	publish := func(i int) {
		require.Eventually(t, func() bool {
			_, err := js.Publish(ctx, "db.vacuum.jobs", []byte(fmt.Sprintf(`{"table":"c%d"}`, i%tables)), jetstream.WithMsgID(fmt.Sprint("cj-", i)))
			return err == nil
		}, 20*time.Second, 100*time.Millisecond)
	}
	for i := 0; i < jobs/2; i++ {
		publish(i)
	}
	servers[2].Shutdown() // a node dies mid-jobs
	for i := jobs / 2; i < jobs; i++ {
		publish(i)
	}
	// Requests are still served.
	require.Eventually(t, func() bool {
		msg, err := b.nc.Request("db.execute", []byte(`{"sql":"SELECT 1"}`), time.Second)
		return err == nil && msg.Header.Get("Nats-Service-Error-Code") == ""
	}, 20*time.Second, 100*time.Millisecond)

	var perJob map[string]int
	require.Eventually(t, func() bool {
		perJob = map[string]int{}
		stream, err := js.Stream(ctx, maintenance.StreamVacuum)
		if err != nil {
			return false
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return false
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			var r messages.VacuumResult
			if json.Unmarshal(m.Data(), &r) == nil && r.Status != messages.StatusFailed {
				perJob[r.JobID]++
			}
		}
		return len(perJob) == jobs
	}, 60*time.Second, 500*time.Millisecond, "results for %d of %d jobs", len(perJob), jobs)
	for id, n := range perJob {
		require.Equal(t, 1, n, "job %s has exactly one result", id)
	}
	require.NoError(t, w1.Stop(ctx))
	require.NoError(t, w2.Stop(ctx))
}
