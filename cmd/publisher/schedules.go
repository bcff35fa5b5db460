package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/schedule"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// schedules lists the schedules with their next run and, with --check, asks
// a worker whether each one's target exists.
func (c *cli) schedules(ctx context.Context, cmd *schedulesCmd) int {
	scheds, err := schedule.Load(cmp.Or(cmd.File, c.cfg.SchedulesFile))
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	var checks []string
	failed := 0
	if cmd.Check {
		nc, _, err := c.connect(zerolog.Nop())
		if err != nil {
			return c.fail(exitFailed, "%v", err)
		}
		defer nc.Close()
		api, err := c.client(nc)
		if err != nil {
			return c.fail(exitFailed, "%v", err)
		}
		for _, s := range scheds {
			msg := c.checkTarget(ctx, api, s, cmd.Timeout)
			if msg != "ok" {
				failed++
			}
			checks = append(checks, msg)
		}
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	head := "NAME\tCRON\tJOB\tNEXT RUN\tBODY"
	if cmd.Check {
		head += "\tTARGET"
	}
	fmt.Fprintln(tw, head)
	now := time.Now()
	for i, s := range scheds {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", s.Name, s.Cron, s.Job, s.Next(now).Format(time.RFC3339), s.JobBody())
		if cmd.Check {
			line += "\t" + checks[i]
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	if failed > 0 {
		return c.fail(exitFailed, "%d schedule(s) name a target the workers cannot find", failed)
	}
	return exitOK
}

// checkTarget asks a worker, with a db.stats request that stores nothing,
// whether the table or schema a schedule names exists. It answers "ok" or
// what is wrong.
func (c *cli) checkTarget(ctx context.Context, api *client.Client, s *schedule.Schedule, timeout time.Duration) string {
	var target struct {
		Table  string `json:"table"`
		Schema string `json:"schema"`
	}
	_ = json.Unmarshal(s.JobBody(), &target) // Load checked the body
	if target.Table == "" && target.Schema == "" {
		return "ok"
	}
	if s.Job == schedule.KindVacuum && target.Table == "" {
		return "VACUUM takes a table, or nothing for the whole database"
	}
	no := false
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := api.Maintenance().Stats(rctx, messages.StatsRequest{Table: target.Table, Schema: target.Schema, Publish: &no})
	var e *client.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return string(e.Code) + ": " + e.Message
	}
	return fmt.Sprintf("not checked: %v", err) // the client names db.stats
}
