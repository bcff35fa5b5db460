// Package schedule reads maintenance schedules and publishes each due job to
// DB_JOBS exactly once per slot, however many publishers run.
//
// A job's Nats-Msg-Id is "<schedule>:<slot>", the slot being the scheduled
// time in RFC 3339; DB_JOBS drops a second message with the same id within its
// duplicate window, so replicas of the publisher need no coordination.
package schedule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/goccy/go-yaml"
	yamlparser "github.com/goccy/go-yaml/parser"
	"github.com/robfig/cron/v3"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Job kinds.
const (
	KindStats  = "stats"
	KindVacuum = "vacuum"
)

// Schedule is one entry of the schedules file.
type Schedule struct {
	// Name identifies the schedule in message ids; [A-Za-z0-9_-]+.
	Name string `yaml:"name"`
	// Cron is a cron expression, with an optional leading seconds field, or a
	// descriptor such as @daily or @every 15m.
	Cron string `yaml:"cron"`
	// Job is stats or vacuum.
	Job string `yaml:"job"`
	// Body is the job's request body (db.stats or db.vacuum fields).
	Body map[string]any `yaml:"body"`

	spec cron.Schedule
	body []byte
}

// File is the schedules file.
type File struct {
	Schedules []*Schedule `yaml:"schedules"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Load reads and checks a schedules file.
func Load(path string) ([]*Schedule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open schedules: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads and checks schedules: names unique and well formed, cron
// expressions valid and able to fire, bodies valid requests of their kind.
// Errors name the schedule and its line.
func Parse(r io.Reader) ([]*Schedule, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	var f File
	if err := yaml.UnmarshalWithOptions(src, &f, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("parse schedules: %w", err)
	}
	lines := scheduleLines(src, len(f.Schedules))
	now := time.Now()
	seen := map[string]bool{}
	for i, s := range f.Schedules {
		if s == nil {
			return nil, fmt.Errorf("schedule %d (line %d) is empty", i+1, lines[i])
		}
		if !nameRE.MatchString(s.Name) {
			return nil, fmt.Errorf("schedule %d (line %d): name %q must match [A-Za-z0-9_-]+", i+1, lines[i], s.Name)
		}
		where := fmt.Sprintf("schedule %q (line %d)", s.Name, lines[i])
		if seen[s.Name] {
			return nil, fmt.Errorf("%s appears twice", where)
		}
		seen[s.Name] = true
		if s.spec, err = parseSpec(s.Cron, now); err != nil {
			return nil, fmt.Errorf("%s: cron %q: %w", where, s.Cron, err)
		}
		if s.body, err = json.Marshal(orEmpty(s.Body)); err != nil {
			return nil, fmt.Errorf("%s: body: %w", where, err)
		}
		var target any
		switch s.Job {
		case KindStats:
			target = &messages.StatsRequest{}
		case KindVacuum:
			target = &messages.VacuumRequest{}
		default:
			return nil, fmt.Errorf("%s: job must be stats or vacuum, got %q", where, s.Job)
		}
		dec := json.NewDecoder(bytes.NewReader(s.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			return nil, fmt.Errorf("%s: body is not a %s request: %w", where, s.Job, err)
		}
		if v, ok := target.(*messages.VacuumRequest); ok && v.Async {
			return nil, fmt.Errorf("%s: async has no meaning in a job", where)
		}
	}
	return f.Schedules, nil
}

// scheduleLines returns the line of each of the n schedules in src, 0 when
// unknown.
func scheduleLines(src []byte, n int) []int {
	lines := make([]int, n)
	file, err := yamlparser.ParseBytes(src, 0)
	if err != nil {
		return lines
	}
	for i := range lines {
		p, err := yaml.PathString(fmt.Sprintf("$.schedules[%d]", i))
		if err != nil {
			continue
		}
		if node, err := p.FilterFile(file); err == nil && node != nil && node.GetToken() != nil {
			lines[i] = node.GetToken().Position.Line
		}
	}
	return lines
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Next returns the first slot strictly after t. Constant-delay schedules
// (@every) are aligned to multiples of their period since the Unix epoch, so
// every publisher computes the same slots.
func (s *Schedule) Next(t time.Time) time.Time {
	if c, ok := s.spec.(cron.ConstantDelaySchedule); ok {
		return t.Truncate(c.Delay).Add(c.Delay)
	}
	return s.spec.Next(t)
}

// Subject is the jobs subject of the schedule's kind.
func (s *Schedule) Subject() string {
	if s.Job == KindVacuum {
		return subjects.DBVacuumJobs
	}
	return subjects.DBStatsJobs
}

// MsgID is the job's Nats-Msg-Id for a slot.
func (s *Schedule) MsgID(slot time.Time) string {
	return s.Name + ":" + slot.UTC().Format(time.RFC3339)
}

// Body is the job body, as JSON.
func (s *Schedule) JobBody() []byte { return s.body }
