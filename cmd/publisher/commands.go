package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/natsversion"
	"github.com/jeeves-avionics/dbworker/internal/schedule"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/client"
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

func (c *cli) connect(log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := c.cfg.ConnectNATS("dbworker-publisher", "", log)
	if err != nil {
		return nil, nil, err
	}
	v, err := natsversion.Check(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	log.Info().Stringer("nats_server", v).Stringer("minimum", natsversion.Minimum).Msg("nats-server supported")
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// client returns a dbworker client over nc, under the configured prefix.
func (c *cli) client(nc *nats.Conn) (*client.Client, error) {
	return client.New(nc, client.WithPrefix(c.cfg.Subjects().Prefix()))
}

// answerError says what a request to subject failed with. The client names
// the subject of a failed request, not that of an error answer.
func answerError(subject string, err error) error {
	var e *client.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s: %w", subject, err)
	}
	return err
}

func (c *cli) maintenanceConfig() maintenance.Config {
	return maintenance.Config{
		WorkerID:             "publisher",
		Subjects:             c.cfg.Subjects(),
		Replicas:             int(c.cfg.JSReplicas),
		UpdateStreams:        c.cfg.JSUpdateStreams,
		ResultsMaxAge:        c.cfg.ResultsMaxAge.D(),
		ResultsMaxPerSubject: c.cfg.ResultsMaxPerSubject,
		DuplicateWindow:      c.cfg.JobsDuplicateWindow.D(),
	}
}

// daemon publishes scheduled jobs until ctx ends.
func (c *cli) daemon(ctx context.Context, cmd *runCmd) int {
	log := c.cfg.Logger()
	scheds, err := schedule.Load(cmp.Or(cmd.File, c.cfg.SchedulesFile))
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	nc, js, err := c.connect(log)
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	mc := c.maintenanceConfig()
	mc.Logger = log
	if err := maintenance.SetupStreams(ctx, js, mc); err != nil {
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

// stats asks a worker for table statistics and prints them.
func (c *cli) stats(ctx context.Context, cmd *statsCmd) int {
	nc, _, err := c.connect(zerolog.Nop())
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	api, err := c.client(nc)
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, cmd.Timeout)
	defer cancel()
	res, err := api.Maintenance().Stats(rctx, messages.StatsRequest{Table: cmd.Table, Schema: cmd.Schema})
	if err != nil {
		return c.fail(exitFailed, "%v", answerError(subjects.DBStats, err))
	}
	if cmd.JSON {
		out, err := json.Marshal(res)
		if err != nil {
			return c.fail(exitFailed, "db.stats answer: %v", err)
		}
		fmt.Fprintln(c.stdout, string(out))
		return exitOK
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
func (c *cli) history(ctx context.Context, cmd *historyCmd) int {
	if cmd.Last < 1 {
		return c.fail(exitUsage, "--last must be at least 1, got %d", cmd.Last)
	}
	kind := cmd.Kind
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
	if cmd.Table != "" {
		s, t := cmd.Schema, cmd.Table
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
	records, err := maintenance.LastResults(ctx, js, stream, filter, cmd.Last)
	if err != nil {
		return c.fail(exitFailed, "read %s: %v", stream, err)
	}
	if cmd.JSON {
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
			switch {
			case r.Table != "" && r.Schema == "": // a job naming a bare table that was not found
				target = r.Table
			case r.Table != "":
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
