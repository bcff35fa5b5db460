package worker

import (
	"encoding/json"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// stallProxy forwards TCP connections to target until stall: then it
// drops the upstream side and holds the callers' side open, unanswered, as
// a server behind a dropped route or a frozen VM would.
type stallProxy struct {
	l      net.Listener
	target string

	mu      sync.Mutex
	stalled bool
	conns   []net.Conn // the callers' sides
	ups     []net.Conn // the upstream sides
	copies  sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{l: l, target: target}
	p.copies.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) accept() {
	defer p.copies.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			continue // held open, never answered
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.ups = append(p.ups, up)
		p.mu.Unlock()
		p.copies.Add(2)
		go func() { defer p.copies.Done(); _, _ = io.Copy(up, c) }()
		go func() { defer p.copies.Done(); _, _ = io.Copy(c, up) }()
	}
}

// stall drops every upstream connection; the callers' sides stay open.
func (p *stallProxy) stall(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
	for _, c := range p.ups {
		_ = c.Close()
	}
}

func (p *stallProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	for _, c := range append(p.conns, p.ups...) {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.copies.Wait()
}

// TestHealthReadPoolThatDoesNotAnswer (red team): a read server that stops
// answering (not refusing: silent) makes db.health degraded, at once, with
// its other checks done. On main the read pool's check ran after the
// others on the request's one 5 s budget: db.health took 5 s, longer than
// a caller's usual timeout, and the JetStream check that followed it found
// its budget spent and reported jetstream false.
func TestHealthReadPoolThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	var proxy *stallProxy
	b := setup(t, func(o *options) {
		pg := testenv.NewPostgres(t)
		u, err := url.Parse(pg.URL)
		require.NoError(t, err)
		proxy = newStallProxy(t, u.Host)
		u.Host = proxy.l.Addr().String()
		o.readDSN = u.String()
	})
	h := b.health(t)
	require.Equal(t, messages.HealthHealthy, h.Status)
	require.NotNil(t, h.Postgres.Read)
	require.Equal(t, messages.HealthHealthy, h.Postgres.Read.Status)
	require.True(t, h.NATS.JetStream)

	proxy.stall(t)
	for range 2 { // the check's connection hangs, then a new one does
		start := time.Now()
		h = b.health(t)
		took := time.Since(start)
		require.Equal(t, messages.HealthDegraded, h.Status)
		require.Equal(t, messages.HealthHealthy, h.Postgres.Status)
		require.Equal(t, messages.HealthUnhealthy, h.Postgres.Read.Status)
		require.True(t, h.NATS.JetStream, "the JetStream check had its budget")
		require.Less(t, took, 4*time.Second, "db.health answered within its read check's budget")
	}
}

func (b *bundle) health(t *testing.T) messages.HealthResult {
	t.Helper()
	a := b.request(subjects.DBHealth, []byte(`{}`))
	require.Empty(t, a.status, "%s", a.body)
	var h messages.HealthResult
	require.NoError(t, json.Unmarshal(a.body, &h))
	return h
}
