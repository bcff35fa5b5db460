package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/schedule"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

type cli struct {
	cfg            *config.Publisher
	stdout, stderr io.Writer
}

func (c *cli) fail(code int, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "publisher: "+format+"\n", args...)
	return code
}

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("publisher "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return fs
}

func (c *cli) connect(log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := c.cfg.ConnectNATS("dbworker-publisher", "", log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (c *cli) maintenanceConfig() maintenance.Config {
	return maintenance.Config{
		WorkerID:             "publisher",
		Subjects:             c.cfg.Subjects(),
		Replicas:             c.cfg.JSReplicas,
		ResultsMaxAge:        c.cfg.ResultsMaxAge.D(),
		ResultsMaxPerSubject: c.cfg.ResultsMaxPerSubject,
		DuplicateWindow:      c.cfg.JobsDuplicateWindow.D(),
	}
}

// daemon publishes scheduled jobs until ctx ends.
func (c *cli) daemon(ctx context.Context, args []string) int {
	fs := c.flags("run")
	file := fs.String("f", c.cfg.SchedulesFile, "schedules file")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	log := c.cfg.Logger()
	scheds, err := schedule.Load(*file)
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	nc, js, err := c.connect(log)
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	if err := maintenance.CreateMissingStreams(ctx, js, c.maintenanceConfig()); err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	for _, s := range scheds {
		log.Info().Str("schedule", s.Name).Str("cron", s.Cron).Str("job", s.Job).Time("next", s.Next(time.Now())).Msg("scheduled")
	}
	r := &schedule.Runner{JS: js, Subjects: c.cfg.Subjects(), Schedules: scheds, Log: log}
	_ = r.Run(ctx)
	log.Info().Msg("stopped")
	return exitOK
}

// schedules lists the schedules with their next run.
func (c *cli) schedules(args []string) int {
	fs := c.flags("schedules")
	file := fs.String("f", c.cfg.SchedulesFile, "schedules file")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	scheds, err := schedule.Load(*file)
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tJOB\tNEXT RUN\tBODY")
	now := time.Now()
	for _, s := range scheds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Cron, s.Job, s.Next(now).Format(time.RFC3339), s.JobBody())
	}
	_ = tw.Flush()
	return exitOK
}

// vacuum queues a VACUUM job and, with --wait, follows it to its result.
func (c *cli) vacuum(ctx context.Context, args []string) int {
	fs := c.flags("vacuum")
	table := fs.String("table", "", "table (name or schema.name); the whole database when empty")
	schema := fs.String("schema", "", "schema of --table, when the table name holds a dot")
	wait := fs.Bool("wait", false, "show progress and wait for the result")
	full := fs.Bool("full", false, "VACUUM FULL (the workers must allow it)")
	verbose := fs.Bool("verbose", false, "capture VERBOSE output into the result")
	noAnalyze := fs.Bool("no-analyze", false, "skip ANALYZE")
	timeout := fs.Duration("timeout", time.Hour, "with --wait, how long to wait")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	analyze := !*noAnalyze
	req := messages.VacuumRequest{Table: *table, Schema: *schema, Full: *full, Verbose: *verbose, Analyze: &analyze, JobID: nuid.Next()}
	log := zerolog.Nop()
	nc, js, err := c.connect(log)
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	if err := maintenance.CreateMissingStreams(ctx, js, c.maintenanceConfig()); err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	subs := c.cfg.Subjects()
	var progress *nats.Subscription
	found := make(chan messages.VacuumResult, 1)
	if *wait {
		// Listen before publishing, so neither progress nor the result is missed.
		events := make(chan *nats.Msg, 64)
		if progress, err = nc.ChanSubscribe(subs.Of("db.vacuum.progress.*"), events); err != nil {
			return c.fail(exitFailed, "subscribe to progress: %v", err)
		}
		defer progress.Unsubscribe()
		// Results are read one message at a time from where DB_VACUUM ends
		// now (readers may create no consumer; maintenance/read.go).
		stream := maintenance.StreamName(subs, maintenance.StreamVacuum)
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return c.fail(exitFailed, "read %s: %v", stream, err)
		}
		next := st.CachedInfo().State.LastSeq + 1
		results := time.NewTicker(250 * time.Millisecond)
		defer results.Stop()
		poll := func() error {
			var bodies [][]byte
			bodies, next, err = maintenance.ResultsAfter(ctx, js, stream, subs.Of("db.vacuum.results.>"), next, 0)
			for _, b := range bodies {
				var r messages.VacuumResult
				if json.Unmarshal(b, &r) == nil && r.JobID == req.JobID {
					select {
					case found <- r:
					default:
					}
				}
			}
			return err
		}
		bar := newProgressWriter(c.stderr)
		defer bar.clear()
		body, _ := json.Marshal(req)
		ack, err := js.Publish(ctx, subs.Of(subjects.DBVacuumJobs), body, jetstream.WithMsgID(req.JobID))
		if err != nil {
			return c.fail(exitFailed, "queue job: %v", err)
		}
		fmt.Fprintf(c.stderr, "queued job %s (DB_JOBS #%d)\n", req.JobID, ack.Sequence)
		deadline := time.NewTimer(*timeout)
		defer deadline.Stop()
		for {
			select {
			case m := <-events:
				var p messages.VacuumProgress
				if json.Unmarshal(m.Data, &p) == nil && p.JobID == req.JobID {
					bar.show(p)
				}
			case <-results.C:
				if err := poll(); err != nil && ctx.Err() == nil {
					fmt.Fprintf(c.stderr, "reading results: %v\n", err)
				}
			case r := <-found:
				bar.clear()
				out, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintln(c.stdout, string(out))
				switch r.Status {
				case messages.StatusOK:
					return exitOK
				case messages.StatusSkipped:
					return exitSkipped
				}
				return exitFailed
			case <-deadline.C:
				return c.fail(exitTimeout, "no result for job %s within %s (it stays queued)", req.JobID, *timeout)
			case <-ctx.Done():
				return c.fail(exitTimeout, "interrupted; job %s stays queued", req.JobID)
			}
		}
	}
	body, _ := json.Marshal(req)
	ack, err := js.Publish(ctx, subs.Of(subjects.DBVacuumJobs), body, jetstream.WithMsgID(req.JobID))
	if err != nil {
		return c.fail(exitFailed, "queue job: %v", err)
	}
	out, _ := json.Marshal(messages.JobAccepted{JobID: req.JobID, Stream: ack.Stream, Sequence: ack.Sequence})
	fmt.Fprintln(c.stdout, string(out))
	return exitOK
}

// progressWriter draws progress on a terminal as one line redrawn in place,
// and elsewhere (a log, a pipe) as a line per phase.
type progressWriter struct {
	w         io.Writer
	tty       bool
	lastPhase string
	drawn     bool
}

func newProgressWriter(w io.Writer) *progressWriter {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressWriter{w: w, tty: tty}
}

func (p *progressWriter) show(ev messages.VacuumProgress) {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+progressBar(ev))
		p.drawn = true
		return
	}
	if ev.Phase != p.lastPhase {
		fmt.Fprintln(p.w, progressBar(ev))
		p.lastPhase = ev.Phase
	}
}

func (p *progressWriter) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// progressBar renders one progress event as a line.
func progressBar(p messages.VacuumProgress) string {
	const width = 30
	frac := 0.0
	if p.HeapBlksTotal > 0 {
		frac = float64(p.HeapBlksScanned) / float64(p.HeapBlksTotal)
	}
	if p.Done {
		frac = 1
	}
	filled := int(frac * width)
	return fmt.Sprintf("[%s%s] %3.0f%%  %s  %d/%d blocks", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), frac*100, p.Phase, p.HeapBlksScanned, p.HeapBlksTotal)
}

// stats asks a worker for table statistics and prints them.
func (c *cli) stats(ctx context.Context, args []string) int {
	fs := c.flags("stats")
	table := fs.String("table", "", "table (name or schema.name); every table of the workers' schemas when empty")
	schema := fs.String("schema", "", "schema")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	nc, _, err := c.connect(zerolog.Nop())
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	body, _ := json.Marshal(messages.StatsRequest{Table: *table, Schema: *schema})
	rctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, c.cfg.Subjects().Of(subjects.DBStats), body)
	if err != nil {
		return c.fail(exitFailed, "db.stats: %v", err)
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		return c.fail(exitFailed, "db.stats: %s", strings.TrimSpace(string(msg.Data)))
	}
	if *asJSON {
		fmt.Fprintln(c.stdout, string(msg.Data))
		return exitOK
	}
	var res messages.StatsResult
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		return c.fail(exitFailed, "db.stats answer: %v", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSIZE\tROWS\tDEAD\tDEAD %\tLAST VACUUM\tLAST AUTOVACUUM\tXID AGE")
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s.%s\t%s\t%d\t%d\t%.1f\t%s\t%s\t%d\n", t.Schema, t.Table, t.TotalSize, t.RowCount, t.DeadRows,
			100*t.DeadRatio, when(t.LastVacuum), when(t.LastAutovacuum), t.XIDAge)
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stdout, "database %s: %s (run %s)\n", res.Database.Name, res.Database.Size, res.RunID)
	return exitOK
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// history prints the last stored results of vacuum or stats runs.
func (c *cli) history(ctx context.Context, args []string) int {
	if len(args) == 0 || (args[0] != "vacuum" && args[0] != "stats") {
		return c.fail(exitUsage, "history needs vacuum or stats")
	}
	kind := args[0]
	fs := c.flags("history " + kind)
	table := fs.String("table", "", "only this table (name or schema.name)")
	schema := fs.String("schema", "", "schema of --table")
	last := fs.Int("last", 10, "how many results")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if fs.Parse(args[1:]) != nil || *last < 1 {
		return exitUsage
	}
	nc, js, err := c.connect(zerolog.Nop())
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	stream := maintenance.StreamName(c.cfg.Subjects(), maintenance.StreamVacuum)
	if kind == "stats" {
		stream = maintenance.StreamName(c.cfg.Subjects(), maintenance.StreamStats)
	}
	filter := c.cfg.Subjects().Of("db." + kind + ".results.>")
	if *table != "" {
		s, t := *schema, *table
		if s == "" {
			if i := strings.IndexByte(t, '.'); i >= 0 {
				s, t = t[:i], t[i+1:]
			}
		}
		if s == "" {
			filter = c.cfg.Subjects().Of("db." + kind + ".results.*." + subjects.EncodeToken(t))
		} else if kind == "vacuum" {
			filter = c.cfg.Subjects().VacuumResults(s, t)
		} else {
			filter = c.cfg.Subjects().StatsResults(s, t)
		}
	}
	records, err := maintenance.LastResults(ctx, js, stream, filter, *last)
	if err != nil {
		return c.fail(exitFailed, "read %s: %v", stream, err)
	}
	if *asJSON {
		for _, r := range records {
			fmt.Fprintln(c.stdout, string(r))
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	if kind == "vacuum" {
		fmt.Fprintln(tw, "FINISHED\tTABLE\tSTATUS\tDURATION\tDEAD BEFORE\tDEAD AFTER\tWORKER\tJOB")
		for _, raw := range records {
			var r messages.VacuumResult
			if json.Unmarshal(raw, &r) != nil {
				continue
			}
			before, after := "-", "-"
			if r.Before != nil {
				before = fmt.Sprint(r.Before.DeadRows)
			}
			if r.After != nil {
				after = fmt.Sprint(r.After.DeadRows)
			}
			target := subjects.DatabaseToken
			if r.Table != "" {
				target = r.Schema + "." + r.Table
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%dms\t%s\t%s\t%s\t%s\n", r.FinishedAt.Format(time.RFC3339), target, r.Status, r.DurationMS, before, after, r.WorkerID, r.JobID)
		}
	} else {
		fmt.Fprintln(tw, "AT\tTABLE\tSIZE\tROWS\tDEAD\tRUN")
		for _, raw := range records {
			var r messages.StatsRecord
			if json.Unmarshal(raw, &r) != nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s.%s\t%s\t%d\t%d\t%s\n", r.At.Format(time.RFC3339), r.Schema, r.Table, r.TotalSize, r.RowCount, r.DeadRows, r.RunID)
		}
	}
	_ = tw.Flush()
	return exitOK
}
