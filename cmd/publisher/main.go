// Command publisher schedules maintenance jobs onto the DB_JOBS work queue
// and gives people one-shot maintenance commands.
//
//	publisher [run]                     publish scheduled jobs until SIGTERM
//	publisher schedules [--check]       list schedules and their next run
//	publisher vacuum [flags]            queue a VACUUM job; --wait follows it
//	publisher stats [flags]             print table statistics (db.stats)
//	publisher history vacuum|stats      print stored results
//
// Every command takes -h. Exit codes: 0 done, 1 the run failed or an error,
// 2 usage or configuration, 3 the run was skipped (target locked), 4 gave up
// waiting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

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

// commands is the command line, as kong reads it.
type commands struct {
	Run       runCmd       `cmd:"" default:"withargs" help:"Publish the jobs of SCHEDULES_FILE on time (the default command)."`
	Schedules schedulesCmd `cmd:"" help:"List the schedules with their next run; --check also asks a worker whether their targets exist."`
	Vacuum    vacuumCmd    `cmd:"" help:"Queue a VACUUM job; --wait shows its progress and prints its result."`
	Stats     statsCmd     `cmd:"" help:"Print table statistics from a worker (stored in DB_STATS)."`
	History   historyCmd   `cmd:"" help:"Print stored vacuum or stats results."`
}

type runCmd struct {
	File string `short:"f" placeholder:"FILE" help:"Schedules file (default: SCHEDULES_FILE)."`
}

type schedulesCmd struct {
	File    string        `short:"f" placeholder:"FILE" help:"Schedules file (default: SCHEDULES_FILE)."`
	Check   bool          `help:"Ask a worker (db.stats, nothing stored) whether each schedule's table or schema exists."`
	Timeout time.Duration `default:"10s" help:"With --check, how long to wait for each answer."`
}

type vacuumCmd struct {
	Table     string        `placeholder:"T" help:"Table (name or schema.name); the whole database when empty."`
	Schema    string        `placeholder:"S" help:"Schema of --table, when the table name holds a dot."`
	Wait      bool          `help:"Show progress and wait for the result."`
	Full      bool          `help:"VACUUM FULL (the workers must allow it)."`
	Verbose   bool          `help:"Capture VERBOSE output into the result."`
	NoAnalyze bool          `help:"Skip ANALYZE."`
	Timeout   time.Duration `default:"1h" help:"With --wait, how long to wait."`
}

type statsCmd struct {
	Table   string        `placeholder:"T" help:"Table (name or schema.name); every table of the workers' schemas when empty."`
	Schema  string        `placeholder:"S" help:"Schema."`
	JSON    bool          `name:"json" help:"Print the answer as JSON."`
	Timeout time.Duration `default:"30s" help:"Request timeout."`
}

type historyCmd struct {
	Kind   string `arg:"" enum:"vacuum,stats" help:"vacuum or stats."`
	Table  string `placeholder:"T" help:"Only this table (name or schema.name)."`
	Schema string `placeholder:"S" help:"Schema of --table."`
	Last   int    `default:"10" help:"How many results, the newest."`
	JSON   bool   `name:"json" help:"Print JSON lines."`
}

const description = `Schedules maintenance jobs onto DB_JOBS and runs one-shot maintenance commands.

Exit codes: 0 done, 1 failed, 2 usage or configuration, 3 skipped (target locked), 4 gave up waiting.`

// exited carries an exit code out of kong (help, a usage error) to run.
type exited struct{ code int }

// run is the whole program, for tests to drive.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var cmds commands
	parser, err := kong.New(&cmds,
		kong.Name("publisher"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exited{code}) }),
		kong.Help(func(opts kong.HelpOptions, kctx *kong.Context) error {
			if err := kong.DefaultHelpPrinter(opts, kctx); err != nil || kctx.Selected() != nil {
				return err
			}
			fmt.Fprintln(kctx.Stdout, "\nEnvironment:")
			return config.PublisherUsage(kctx.Stdout)
		}),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		panic(err) // the command structs are wrong: a programming error
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exited)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil {
			fmt.Fprintln(stderr, "Run with -h for help.")
		}
		return exitUsage
	}
	cfg, err := config.LoadPublisher()
	if err != nil {
		fmt.Fprintf(stderr, "publisher: invalid configuration: %v\n", err)
		return exitUsage
	}
	for _, s := range config.Misspelt(cfg, os.Environ()) {
		fmt.Fprintf(stderr, "publisher: warning: %s\n", s)
	}
	c := &cli{cfg: cfg, stdout: stdout, stderr: stderr}
	switch kctx.Command() {
	case "run":
		return c.daemon(ctx, &cmds.Run)
	case "schedules":
		return c.schedules(ctx, &cmds.Schedules)
	case "vacuum":
		return c.vacuum(ctx, &cmds.Vacuum)
	case "stats":
		return c.stats(ctx, &cmds.Stats)
	case "history <kind>":
		return c.history(ctx, &cmds.History)
	}
	return c.fail(exitUsage, "unknown command %q", kctx.Command())
}
