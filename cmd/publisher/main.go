// Command publisher schedules maintenance jobs onto the DB_JOBS work queue
// and gives people one-shot maintenance commands.
//
//	publisher [run]                     publish scheduled jobs until SIGTERM
//	publisher schedules                 list schedules and their next run
//	publisher vacuum [flags]            queue a VACUUM job; --wait follows it
//	publisher stats [flags]             print table statistics (db.stats)
//	publisher history vacuum|stats      print stored results
//
// Exit codes: 0 done, 1 the run failed or an error, 2 usage or configuration,
// 3 the run was skipped (target locked), 4 gave up waiting.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jeeves-avionics/dbworker/internal/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitSkipped = 3
	exitTimeout = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `Usage: publisher [command] [flags]

Commands:
  run                      publish the jobs of SCHEDULES_FILE on time (the default)
  schedules                list the schedules with their next run
  vacuum [--table T] [--schema S] [--wait] [--full] [--verbose] [--no-analyze] [--timeout D]
                           queue a VACUUM job; --wait shows its progress and result
  stats [--table T] [--schema S] [--json]
                           print table statistics (and store them in DB_STATS)
  history vacuum|stats [--table T] [--schema S] [--last N] [--json]
                           print stored results

Exit codes: 0 done, 1 failed, 2 usage, 3 skipped (target locked), 4 gave up waiting.

Environment:
`

func usage(w io.Writer) {
	fmt.Fprint(w, usageText)
	_ = config.PublisherUsage(w)
}

// run is the whole program, for tests to drive.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || len(args) > 0 && (args[0] == "-h" || args[0] == "--help") && cmd == "run" {
		usage(stdout)
		return exitOK
	}
	cfg, err := config.LoadPublisher()
	if err != nil {
		fmt.Fprintf(stderr, "publisher: invalid configuration: %v\n", err)
		return exitUsage
	}
	c := &cli{cfg: cfg, stdout: stdout, stderr: stderr}
	switch cmd {
	case "run":
		return c.daemon(ctx, args)
	case "schedules":
		return c.schedules(args)
	case "vacuum":
		return c.vacuum(ctx, args)
	case "stats":
		return c.stats(ctx, args)
	case "history":
		return c.history(ctx, args)
	}
	fmt.Fprintf(stderr, "publisher: unknown command %q\n\n", cmd)
	usage(stderr)
	return exitUsage
}
