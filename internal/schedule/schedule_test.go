package schedule_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/schedule"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func TestParse(t *testing.T) {
	s, err := schedule.Parse(strings.NewReader(`
schedules:
  - name: stats-15m
    cron: "*/15 * * * *"
    job: stats
  - name: vacuum-nightly
    cron: "0 3 * * *"
    job: vacuum
    body: {analyze: true, table: public.users}
  - name: often
    cron: "@every 10m"
    job: stats
`))
	require.NoError(t, err)
	require.Len(t, s, 3)
	at := time.Date(2026, 1, 2, 10, 7, 30, 0, time.UTC)
	require.Equal(t, time.Date(2026, 1, 2, 10, 15, 0, 0, time.UTC), s[0].Next(at).UTC())
	require.Equal(t, time.Date(2026, 1, 3, 3, 0, 0, 0, time.UTC), s[1].Next(at).UTC(), "evaluated in the time of the clock given")
	require.Equal(t, time.Date(2026, 1, 2, 10, 10, 0, 0, time.UTC), s[2].Next(at).UTC(), "@every is aligned, so replicas agree")
	require.Equal(t, "stats-15m:2026-01-02T10:15:00Z", s[0].MsgID(s[0].Next(at)))
	require.JSONEq(t, `{"analyze":true,"table":"public.users"}`, string(s[1].JobBody()))
	require.Equal(t, "db.vacuum.jobs", s[1].Subject())

	for _, bad := range []string{
		"schedules:\n  - {name: a, cron: 'nope', job: stats}",
		"schedules:\n  - {name: a, cron: '* * * * *', job: reindex}",
		"schedules:\n  - {name: 'a b', cron: '* * * * *', job: stats}",
		"schedules:\n  - {name: a, cron: '* * * * *', job: stats}\n  - {name: a, cron: '* * * * *', job: stats}",
		"schedules:\n  - {name: a, cron: '* * * * *', job: vacuum, body: {tabel: x}}",
		"schedules:\n  - {name: a, cron: '* * * * *', job: vacuum, body: {async: true}}",
		"schedule: []",
	} {
		_, err := schedule.Parse(strings.NewReader(bad))
		require.Error(t, err, bad)
	}
}

// TestRefusedAtLoad: what cron would accept but could never mean what it
// says is refused with the schedule's name and line, and YAML errors carry
// the line of the mistake.
func TestRefusedAtLoad(t *testing.T) {
	entry := func(cron string) string {
		return "schedules:\n  - name: ok\n    cron: '* * * * *'\n    job: stats\n  - name: bad\n    cron: '" + cron + "'\n    job: stats\n"
	}
	for _, c := range []struct{ in, want string }{
		{entry("0 0 30 2 *"), `schedule "bad" (line 5): cron "0 0 30 2 *": never fires`},
		{entry("0 0 31 4 *"), `schedule "bad" (line 5): cron "0 0 31 4 *": never fires`},
		{entry("*/61 * * * *"), `schedule "bad" (line 5): cron "*/61 * * * *": step 61 of the minute field is out of range: 1 to 59`},
		{entry("0 */24 * * *"), "step 24 of the hour field"},
		{entry("*/90 * * * * *"), "step 90 of the second field"},
		{entry("0 0 1 */13 *"), "step 13 of the month field"},
		{entry("CRON_TZ=UTC 0 0 30 2 *"), "never fires"},
		{entry("@every 0s"), `schedule "bad" (line 5): cron "@every 0s": @every needs a whole number of seconds, at least 1s`},
		{entry("@every 1500ms"), "@every needs a whole number of seconds"},
		{entry("@every -5m"), "@every needs"},
		{"schedules:\n  - name: a\n    cron: '* * * * *'\n    job: stats\n  body: {}\n", "[5:3]"},
		{"# schedules\nschedules:\n  - name: a\n    cron: '* * * * *'\n    job: [stats\n", "[5:10]"},
		{"schedules:\n  - name: a\n    cronn: '* * * * *'\n", `[3:5] unknown field "cronn"`},
		{"schedules:\n  - name: a\n    cron: '* * * * *'\n    job: stats\n  - name: a\n    cron: '* * * * *'\n    job: stats\n", `schedule "a" (line 5) appears twice`},
	} {
		_, err := schedule.Parse(strings.NewReader(c.in))
		require.ErrorContains(t, err, c.want, c.in)
	}
	for _, good := range []string{"*/59 * * * *", "0 */23 * * *", "0 0 29 2 *", "@every 1m30s", "@daily", "CRON_TZ=UTC 0 3 * * *", "0 0 1-31/30 * *"} {
		_, err := schedule.Parse(strings.NewReader(entry(good)))
		require.NoError(t, err, good)
	}
}

func TestShippedSchedulesFile(t *testing.T) {
	s, err := schedule.Load("../../schedules.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, s)
}

// TestThreePublishersOneJobPerSlot runs three publishers on the same
// schedule: every slot yields exactly one job in DB_JOBS.
func TestThreePublishersOneJobPerSlot(t *testing.T) {
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{}))

	var mu sync.Mutex
	bySlot := map[string]int{}
	dups := 0
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		scheds, err := schedule.Parse(strings.NewReader("schedules:\n  - {name: tick, cron: '* * * * * *', job: stats}\n"))
		require.NoError(t, err)
		pnc := testenv.Connect(t, ns)
		pjs, err := jetstream.New(pnc)
		require.NoError(t, err)
		r := &schedule.Runner{JS: pjs, Schedules: scheds, Log: zerolog.Nop(), OnPublish: func(p schedule.Published) {
			mu.Lock()
			defer mu.Unlock()
			if !assert.NoError(t, p.Err) { // in the runner's goroutine: no FailNow
				return
			}
			bySlot[p.MsgID]++
			if p.Duplicate {
				dups++
			}
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(rctx)
		}()
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		full := 0
		for _, n := range bySlot {
			if n == 3 {
				full++
			}
		}
		return full >= 3
	}, 10*time.Second, 20*time.Millisecond)
	cancel()
	wg.Wait()

	stream, err := js.Stream(ctx, maintenance.StreamJobs)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.EqualValues(t, len(bySlot), info.State.Msgs, "one job per slot: %v", bySlot)
	published := 0
	for _, n := range bySlot {
		published += n
	}
	require.Equal(t, published-len(bySlot), dups, "every other publication was a duplicate")
}
