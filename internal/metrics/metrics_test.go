package metrics_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/metrics"
)

// TestBoundSeries: an endpoint's recorder and the rate-limit outcomes count
// as Request and RateLimit do, and a series appears only once recorded.
func TestBoundSeries(t *testing.T) {
	m := metrics.New()
	e := m.Endpoint("ratelimit")
	require.NotContains(t, dump(t, m), `endpoint="ratelimit"`, "no series before a request")
	e.Record("OK", 0.001)
	e.Record("OK", 0.002)
	e.Record("TIMEOUT", 0.5)
	m.Request("ratelimit", "OK", 0.003) // the unbound path shares the series
	m.RateLimit(true)
	m.RateLimit(true)
	m.RateLimit(false)
	out := dump(t, m)
	require.Contains(t, out, `dbworker_requests_total{code="OK",endpoint="ratelimit"} 3`)
	require.Contains(t, out, `dbworker_requests_total{code="TIMEOUT",endpoint="ratelimit"} 1`)
	require.Contains(t, out, `dbworker_request_duration_seconds_count{code="OK",endpoint="ratelimit"} 3`)
	require.Contains(t, out, `dbworker_ratelimit_checks_total{outcome="allowed"} 2`)
	require.Contains(t, out, `dbworker_ratelimit_checks_total{outcome="denied"} 1`)

	var none *metrics.Metrics
	none.Endpoint("x").Record("OK", 1) // a worker without metrics records nothing
	none.RateLimit(true)
}

func dump(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	var b strings.Builder
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			labels := make([]string, 0, len(mm.GetLabel()))
			for _, l := range mm.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			var v float64
			name := mf.GetName()
			switch {
			case mm.Counter != nil:
				v = mm.GetCounter().GetValue()
			case mm.Histogram != nil:
				v, name = float64(mm.GetHistogram().GetSampleCount()), name+"_count"
			default:
				continue
			}
			b.WriteString(name + "{" + strings.Join(labels, ",") + "} " + fmtF(v) + "\n")
		}
	}
	return b.String()
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
