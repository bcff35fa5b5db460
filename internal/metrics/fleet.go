package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources of a maintenance run: a db.vacuum or db.stats request, or a job
// taken from DB_JOBS.
const (
	SourceRequest = "request"
	SourceJob     = "job"
)

// fleet holds the metrics of a worker among others: the maintenance runs'
// durations, the jobs consumer, the streams' configuration.
type fleet struct {
	runDuration  *prometheus.HistogramVec
	redeliveries prometheus.Counter
	jobsDropped  prometheus.Counter
	streamDrift  *prometheus.GaugeVec
	consDrift    *prometheus.GaugeVec
}

func newFleet(reg *prometheus.Registry) fleet {
	f := fleet{
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dbworker_maintenance_run_duration_seconds", Help: "Duration of the maintenance runs that ran, by kind (vacuum, stats), source (request, job) and status (ok, failed).",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600},
		}, []string{"kind", "source", "status"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dbworker_jobs_redeliveries_total", Help: "Jobs this worker took from DB_JOBS that had been delivered before (a worker died, a run failed for a passing reason, an ack was lost).",
		}),
		jobsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dbworker_jobs_dropped_total", Help: "Messages taken from DB_JOBS that were no job (a body no request decodes into, a subject that is no jobs subject), dropped without a result.",
		}),
		streamDrift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbworker_stream_config_drift", Help: "Settings of a stream whose live value differs from this worker's configuration, left as they are (JS_UPDATE_STREAMS=false); 0 when in step.",
		}, []string{"stream"}),
	}
	f.consDrift = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dbworker_consumer_config_drift", Help: "Settings of a durable consumer (DB_JOBS's jobs) whose live value differs from this worker's MAINT_* configuration, left as they are (JS_UPDATE_STREAMS=false); 0 when in step.",
	}, []string{"stream", "consumer"})
	reg.MustRegister(f.runDuration, f.redeliveries, f.jobsDropped, f.streamDrift, f.consDrift)
	return f
}

// MaintenanceDuration records how long a run that ran took.
func (m *Metrics) MaintenanceDuration(kind, source, status string, d time.Duration) {
	if m != nil {
		m.fleet.runDuration.WithLabelValues(kind, source, status).Observe(d.Seconds())
	}
}

// JobRedelivered counts a job taken that had been delivered before.
func (m *Metrics) JobRedelivered() {
	if m != nil {
		m.fleet.redeliveries.Inc()
	}
}

// JobDropped counts a message on DB_JOBS that was no job.
func (m *Metrics) JobDropped() {
	if m != nil {
		m.fleet.jobsDropped.Inc()
	}
}

// StreamDrift records the settings of stream whose live value differs from
// this worker's (none: in step).
func (m *Metrics) StreamDrift(stream string, fields []string) {
	if m != nil {
		m.fleet.streamDrift.WithLabelValues(stream).Set(float64(len(fields)))
	}
}

// ConsumerDrift records the settings of a durable consumer whose live value
// differs from this worker's (none: in step).
func (m *Metrics) ConsumerDrift(stream, consumer string, fields []string) {
	if m != nil {
		m.fleet.consDrift.WithLabelValues(stream, consumer).Set(float64(len(fields)))
	}
}

// JobsState is what the jobs consumer's info says of the jobs.
type JobsState struct {
	// Pending jobs have not been delivered yet: the consumer's lag.
	Pending uint64
	// AckPending jobs are delivered and not yet acked: running, or lost
	// with a worker until their AckWait ends.
	AckPending int
	// Redelivered jobs are delivered more than once and not yet acked.
	Redelivered int
}

// WatchJobs exports the jobs consumer's state, read by state at each scrape
// (within 2 seconds; a scrape that cannot read it gets none of these
// metrics). A second call on the same Metrics is ignored.
func (m *Metrics) WatchJobs(state func(ctx context.Context) (JobsState, error)) {
	if m == nil {
		return
	}
	err := m.Registry.Register(&jobsCollector{state: state,
		pending:     prometheus.NewDesc("dbworker_jobs_pending", "Jobs in DB_JOBS not yet delivered to any worker: the jobs consumer's lag.", nil, nil),
		ackPending:  prometheus.NewDesc("dbworker_jobs_ack_pending", "Jobs delivered and not yet acked: running, or held by a worker that died until their AckWait ends.", nil, nil),
		redelivered: prometheus.NewDesc("dbworker_jobs_redelivered", "Jobs delivered more than once and not yet acked.", nil, nil),
	})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		panic(err) // the descriptors are wrong: a programming error
	}
}

// jobsCollector reads the jobs consumer at each scrape.
type jobsCollector struct {
	state                            func(ctx context.Context) (JobsState, error)
	pending, ackPending, redelivered *prometheus.Desc
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
}

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.state(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(st.AckPending))
	ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(st.Redelivered))
}
