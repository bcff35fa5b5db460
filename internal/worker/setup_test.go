package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

type options struct {
	prefix        string
	maxConns      int32
	acquire       time.Duration
	mode          pgexec.Mode
	namedOnly     bool // DB_ALLOW_ADHOC=false, with one named query "one"
	maxRows       int
	maxPayload    int32
	maxConcurrent int
	maxQueued     int
	stateLane     int // StateConcurrent; default: the worker's default
	extra         []endpoint
	state         func(t testing.TB) state.Backend // default: memory
	maintenance   bool
	beforeVacuum  string
	natsURL       string // default: the bundle's server
	replicas      int    // of the maintenance streams
	// logs gets the worker's log lines, at debug, when set.
	logs io.Writer
	// streamCredit is the worker's StreamCreditTimeout (default: its default).
	streamCredit time.Duration
	// readDSN, when set, is the worker's read pool (Deps.ReadPostgres).
	readDSN string
}

type bundle struct {
	t   testing.TB
	pg  *testenv.Postgres
	ns  *server.Server
	nc  *nats.Conn // the client side
	w   *Worker
	cl  *pgexec.Client
	sub subjects.Subjects
	// state is shared by every worker of the bundle, as Redis would be.
	state state.Backend
}

// setup starts an embedded nats-server and a worker over a schema of the
// test's own.
func setup(t testing.TB, opts ...func(*options)) *bundle {
	t.Helper()
	o := options{prefix: "", maxConns: 8, acquire: 5 * time.Second, mode: pgexec.ModeReadWrite, maxRows: 10000, maxPayload: 8 << 20, maxConcurrent: 16}
	for _, f := range opts {
		f(&o)
	}
	b := &bundle{t: t, pg: testenv.NewPostgres(t), ns: testenv.NewNATS(t, testenv.NATSOptions{MaxPayload: o.maxPayload})}
	b.nc = testenv.Connect(t, b.ns)
	b.sub, _ = subjects.New(o.prefix)
	b.cl, b.w = b.startWorker(t, "w1", o)
	return b
}

func (b *bundle) startWorker(t testing.TB, id string, o options) (*pgexec.Client, *Worker) {
	t.Helper()
	cl, w := b.newWorker(t, id, o)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, w.Stop(context.Background())) })
	return cl, w
}

// newWorker returns a worker over the bundle's services, not started.
func (b *bundle) newWorker(t testing.TB, id string, o options) (*pgexec.Client, *Worker) {
	t.Helper()
	ctx := context.Background()
	logger := zerolog.Nop()
	if os.Getenv("TEST_LOG") != "" {
		logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	if o.logs != nil {
		logger = zerolog.New(o.logs).Level(zerolog.DebugLevel)
	}
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: b.pg.URL, MaxConns: o.maxConns, AcquireTimeout: o.acquire, Logger: &logger})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(cl.Close)
	natsURL := o.natsURL
	if natsURL == "" {
		natsURL = b.ns.ClientURL()
	}
	wnc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(wnc.Close)
	ecfg := pgexec.ExecutorConfig{Mode: o.mode, MaxRows: o.maxRows, DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute}
	if o.namedOnly {
		ecfg.NamedOnly = true
		ecfg.NamedQueries = map[string]named.Query{"one": {SQL: "SELECT 1 AS one", Op: "query"}}
	}
	ex, err := pgexec.NewExecutor(cl, ecfg)
	require.NoError(t, err)
	if b.state == nil {
		if o.state != nil {
			b.state = o.state(t)
		} else {
			mem := memory.New(memory.Options{})
			t.Cleanup(func() { mem.Close() })
			b.state = mem
		}
	}
	svc, err := state.NewService(b.state, state.ServiceConfig{})
	require.NoError(t, err)
	deps := Deps{NATS: wnc, Postgres: cl, Executor: ex, State: svc}
	if o.readDSN != "" {
		deps.ReadPostgres, err = pgexec.Connect(ctx, pgexec.Config{DSN: o.readDSN, MaxConns: 2, Logger: &logger})
		require.NoError(t, err)
		t.Cleanup(deps.ReadPostgres.Close)
	}
	if o.maintenance {
		deps.Maintenance, err = maintenance.New(maintenance.Config{WorkerID: id, Subjects: b.sub, Schemas: []string{b.pg.Schema}, Logger: logger,
			Replicas: o.replicas}, wnc, cl, b.state)
		require.NoError(t, err)
		deps.Maintenance.TestSignals.BeforeVacuumSQL = o.beforeVacuum
	}
	deps.Graph = graph.New(cl)
	require.NoError(t, deps.Graph.Init(ctx))
	if cl.PGVectorVersion() != "" {
		deps.Vector, err = vector.New(cl, vector.Config{Schema: b.pg.Schema, Dimension: 3})
		require.NoError(t, err)
		require.NoError(t, deps.Vector.Init(ctx))
	}
	reg := metrics.New()
	reg.WatchPool(metrics.PoolPrimary, cl.Pool())
	w, err := New(Config{ID: id, Subjects: b.sub, MaxConcurrent: o.maxConcurrent, StateConcurrent: o.stateLane, MaxQueued: o.maxQueued, Logger: logger, DrainTimeout: 20 * time.Second,
		DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute, Metrics: reg, StreamCreditTimeout: o.streamCredit}, deps)
	require.NoError(t, err)
	w.extra = o.extra
	return cl, w
}

// answer is a reply: the error code header (empty on success) and the body.
type answer struct {
	status string
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m), "body: %s", a.body)
	return m
}

// errorOf returns the error object of a failed answer.
func (a answer) errorOf(t testing.TB) map[string]any {
	t.Helper()
	require.NotEmpty(t, a.status, "expected an error, got %s", a.body)
	e, ok := a.json(t)["error"].(map[string]any)
	require.True(t, ok, "no error object in %s", a.body)
	return e
}

func (b *bundle) request(subject string, body []byte) answer {
	b.t.Helper()
	a, err := b.send(subject, body)
	require.NoError(b.t, err)
	return a
}

// send is request that fails no test but returns the error, for goroutines
// and EventuallyWithT conditions, where the test's FailNow must not be called.
func (b *bundle) send(subject string, body []byte) (answer, error) {
	msg, err := b.nc.Request(b.sub.Of(subject), body, 15*time.Second)
	if err != nil {
		return answer{}, fmt.Errorf("request %s %s: %w", subject, body, err)
	}
	return answer{status: msg.Header.Get("Nats-Service-Error-Code"), body: msg.Data}, nil
}

func (b *bundle) exec(body string) answer {
	b.t.Helper()
	return b.request(subjects.DBExecute, []byte(body))
}

// ok runs a request (db.execute unless a subject is given) that must succeed
// and returns its answer.
func (b *bundle) ok(body string, subject ...string) map[string]any {
	b.t.Helper()
	subj := subjects.DBExecute
	if len(subject) > 0 {
		subj = subject[0]
	}
	a := b.request(subj, []byte(body))
	require.Empty(b.t, a.status, "request %s failed: %s", body, a.body)
	return a.json(b.t)
}
