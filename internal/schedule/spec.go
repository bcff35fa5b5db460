package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronField is one field of a cron expression and the values it takes.
type cronField struct {
	name     string
	min, max int
}

var (
	fieldsWithSeconds = []cronField{{"second", 0, 59}, {"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31}, {"month", 1, 12}, {"day-of-week", 0, 6}}
	fieldsFive        = fieldsWithSeconds[1:]
)

// parseSpec parses a cron expression and refuses what robfig/cron accepts
// but cannot mean what it says: a step larger than its field's range
// (*/61 fires only at minute 0), an @every below one second or with a
// fraction of one (cron rounds both), and a date that never comes (0 0 30 2 *,
// which cron would report as the zero time).
func parseSpec(expr string, now time.Time) (cron.Schedule, error) {
	spec, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	if every, ok := strings.CutPrefix(strings.TrimSpace(expr), "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(every))
		if err != nil {
			return nil, err
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("@every needs a whole number of seconds, at least 1s, got %s", every)
		}
		return spec, nil
	}
	if err := checkSteps(expr); err != nil {
		return nil, err
	}
	if spec.Next(now).IsZero() {
		return nil, fmt.Errorf("never fires: no date matches it")
	}
	return spec, nil
}

// checkSteps refuses a step (x/n) larger than its field's range.
func checkSteps(expr string) error {
	fields := strings.Fields(expr)
	if len(fields) > 0 && (strings.HasPrefix(fields[0], "CRON_TZ=") || strings.HasPrefix(fields[0], "TZ=")) {
		fields = fields[1:]
	}
	if len(fields) == 0 || strings.HasPrefix(fields[0], "@") {
		return nil // a descriptor: @hourly, @daily...
	}
	defs := fieldsFive
	if len(fields) == 6 {
		defs = fieldsWithSeconds
	}
	for i, f := range fields {
		if i >= len(defs) {
			break
		}
		for _, part := range strings.Split(f, ",") {
			_, step, ok := strings.Cut(part, "/")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(step)
			if err != nil {
				continue // the parser has already refused it
			}
			if span := defs[i].max - defs[i].min; n > span {
				return fmt.Errorf("step %d of the %s field is out of range: 1 to %d", n, defs[i].name, span)
			}
		}
	}
	return nil
}
