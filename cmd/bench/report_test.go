package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReportCPU: the CPU per request of each process is in the table, the
// targets say met, not met or not measured, and the chart has its panel.
func TestReportCPU(t *testing.T) {
	cpu := func(svc, nats, pg, redis, callers float64) *cpuPerRequest {
		return &cpuPerRequest{Service: svc, NATS: nats, Postgres: pg, Redis: redis, Callers: callers}
	}
	rep := report{Callers: []int{16}, Duration: "1s", Results: []result{
		{Path: "state.ratelimit (memory)", Group: "ratelimit", Concurrency: 16, Ops: 100, OpsPerSec: 17000, CPU: cpu(14.2, 13.6, 0, 0.1, 11.2)},
		{Path: noopPath, Group: "ratelimit", Baseline: true, Concurrency: 16, Ops: 100, OpsPerSec: 20000, CPU: cpu(5.7, 11.7, 0, 0, 9)},
		{Path: "direct Lua rate limit (go-redis)", Group: "ratelimit", Baseline: true, Concurrency: 16, Ops: 100, OpsPerSec: 30000, CPU: cpu(0, 0, 0, 12.2, 11.4)},
	}}
	md := markdown(rep)
	require.Contains(t, md, "| state.ratelimit (memory) | 16 | 14.2 | 13.6 | 0.0 | 0.1 | 11.2 | 39.1 |")
	require.Contains(t, md, "| direct Lua rate limit (go-redis) | 16 |  | 0.0 | 0.0 | 12.2 | 11.4 | 23.6 |", "no service on a direct baseline")
	require.Contains(t, md, "| state.ratelimit (memory) at 16 callers: worker CPU <= 18 µs/request | 14.2 µs (2.5× the no-op endpoint's 5.7 µs) | yes |")
	require.Contains(t, md, "| state.ratelimit (memory) at 16 callers >= 80% of the ceiling | 85% (17.0k/s of 20.0k/s) | yes |")
	require.Contains(t, md, "| db.execute SELECT 1 at 16 callers: worker CPU <= 30 µs/request | not measured | |")
	require.Contains(t, md, "| 16 callers: ops/s, p50, p99 | worker RSS at 16 |")
	require.NotContains(t, md, "### db.execute SELECT 1", "a group not measured has no section")

	svg := chart(rep.Results, rep.Callers)
	require.Contains(t, svg, "CPU per request of the worker")
	require.Equal(t, 1, strings.Count(svg, "<svg"))

	// The JSON carries the CPU per request under its own names.
	js, err := json.Marshal(rep)
	require.NoError(t, err)
	require.Contains(t, string(js), `"cpu_us_per_request":{"service":14.2,"nats_server":13.6,"postgres":0,"redis":0.1,"callers":11.2}`)
}

func TestOnlyAndCallers(t *testing.T) {
	o := options{only: map[string]bool{"ratelimit": true, "SELECT 1": true}}
	require.True(t, o.selects(path{name: "state.ratelimit (redis)", group: "ratelimit"}))
	require.True(t, o.selects(path{name: "direct pgx SELECT 1", group: "select1"}))
	require.False(t, o.selects(path{name: "db.execute 100 rows (arrays)", group: "rows100"}))
	require.True(t, options{}.selects(path{name: "x", group: "y"}), "no -only: every path")
	c, err := parseCallers("1, 16,64")
	require.NoError(t, err)
	require.Equal(t, []int{1, 16, 64}, c)
	for _, bad := range []string{"", "0", "a", "1,,2", "-4"} {
		_, err := parseCallers(bad)
		require.Error(t, err, bad)
	}
	require.Equal(t, "state.ratelimit_memory", slug("state.ratelimit (memory)"))
}
