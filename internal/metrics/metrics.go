// Package metrics defines dbworker's Prometheus metrics on a registry of the
// worker's own (no globals), with the Go runtime and process collectors.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the worker's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	maintenance *prometheus.CounterVec
	locks       *prometheus.CounterVec
	rateLimits  *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	fleet       fleet    // fleet.go
	backends    backends // backends.go

	// allowed and denied are rateLimits' series, bound on first use.
	allowed, denied atomic.Pointer[prometheus.Counter]
}

// New registers every metric on a new registry.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbworker_requests_total", Help: "Requests answered, by endpoint and code (OK on success).",
	}, []string{"endpoint", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dbworker_request_duration_seconds", Help: "Time from receipt to answer, by endpoint and code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"endpoint", "code"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dbworker_requests_in_flight", Help: "Requests being handled or waiting for the worker's pool.",
	})
	m.maintenance = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbworker_maintenance_runs_total", Help: "Maintenance runs by kind (vacuum, stats), source (request, job) and status (ok, failed, skipped, busy).",
	}, []string{"kind", "source", "status"})
	m.locks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbworker_lock_operations_total", Help: "state.lock operations by op and outcome.",
	}, []string{"op", "outcome"})
	m.rateLimits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbworker_ratelimit_checks_total", Help: "state.ratelimit checks by outcome (allowed, denied).",
	}, []string{"outcome"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbworker_replies_dropped_total", Help: "Answers not sent because the reply subject was not trusted, by reason (untrusted, own_subject, system, malformed).",
	}, []string{"reason"})
	m.Registry.MustRegister(m.requests, m.duration, m.inFlight, m.maintenance, m.locks, m.rateLimits, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.fleet = newFleet(m.Registry)
	m.backends = newBackends(m.Registry)
	return m
}

// Request records one answered request.
func (m *Metrics) Request(endpoint, code string, seconds float64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(endpoint, code).Inc()
	m.duration.WithLabelValues(endpoint, code).Observe(seconds)
}

// InFlight moves the in-flight gauge.
func (m *Metrics) InFlight(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

// MaintenanceRun records a run's outcome: kind is vacuum or stats, source
// request or job (SourceRequest, SourceJob).
func (m *Metrics) MaintenanceRun(kind, source, status string) {
	if m != nil {
		m.maintenance.WithLabelValues(kind, source, status).Inc()
	}
}

// Lock records a lock operation's outcome.
func (m *Metrics) Lock(op, outcome string) {
	if m != nil {
		m.locks.WithLabelValues(op, outcome).Inc()
	}
}

// RateLimit records a check's outcome.
func (m *Metrics) RateLimit(allowed bool) {
	if m == nil {
		return
	}
	outcome, c := "denied", &m.denied
	if allowed {
		outcome, c = "allowed", &m.allowed
	}
	bound(c, func() prometheus.Counter { return m.rateLimits.WithLabelValues(outcome) }).Inc()
}

// bound returns the series p holds, binding it with with on first use: a
// series appears in /metrics once recorded, as WithLabelValues' do, and
// later uses skip the label lookup.
func bound[T any](p *atomic.Pointer[T], with func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := with()
	p.Store(&v)
	return v
}

// EndpointRequests records an endpoint's answers: Request for one
// endpoint, with its OK series bound on first use.
type EndpointRequests struct {
	m        *Metrics
	endpoint string
	ok       atomic.Pointer[okSeries]
}

type okSeries struct {
	count prometheus.Counter
	took  prometheus.Observer
}

// Endpoint returns the recorder of endpoint's answers; nil (which records
// nothing) when m is nil.
func (m *Metrics) Endpoint(endpoint string) *EndpointRequests {
	if m == nil {
		return nil
	}
	return &EndpointRequests{m: m, endpoint: endpoint}
}

// Record is Request(endpoint, code, seconds).
func (e *EndpointRequests) Record(code string, seconds float64) {
	if e == nil {
		return
	}
	if code != "OK" {
		e.m.Request(e.endpoint, code, seconds)
		return
	}
	s := bound(&e.ok, func() okSeries {
		return okSeries{e.m.requests.WithLabelValues(e.endpoint, code), e.m.duration.WithLabelValues(e.endpoint, code)}
	})
	s.count.Inc()
	s.took.Observe(seconds)
}

// ReplyDropped records an answer the worker would not send, and why.
func (m *Metrics) ReplyDropped(reason string) {
	if m != nil {
		m.dropped.WithLabelValues(reason).Inc()
	}
}

// WatchLane exports the requests running in a worker's lane and waiting for
// one of its slots.
func (m *Metrics) WatchLane(lane string, running, queued func() int) {
	if m == nil {
		return
	}
	labels := prometheus.Labels{"lane": lane}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dbworker_lane_running", Help: "Requests running in a lane (db, state, maint, health).", ConstLabels: labels},
			func() float64 { return float64(running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dbworker_lane_queued", Help: "Requests waiting for a slot of a lane.", ConstLabels: labels},
			func() float64 { return float64(queued()) }),
	)
}
