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
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

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

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

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
// expressions valid, bodies valid requests of their kind.
func Parse(r io.Reader) ([]*Schedule, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse schedules: %w", err)
	}
	seen := map[string]bool{}
	for i, s := range f.Schedules {
		if !nameRE.MatchString(s.Name) {
			return nil, fmt.Errorf("schedule %d: name %q must match [A-Za-z0-9_-]+", i, s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("schedule %q appears twice", s.Name)
		}
		seen[s.Name] = true
		spec, err := parser.Parse(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: cron %q: %w", s.Name, s.Cron, err)
		}
		s.spec = spec
		if s.body, err = json.Marshal(orEmpty(s.Body)); err != nil {
			return nil, fmt.Errorf("schedule %q: body: %w", s.Name, err)
		}
		var target any
		switch s.Job {
		case KindStats:
			target = &messages.StatsRequest{}
		case KindVacuum:
			target = &messages.VacuumRequest{}
		default:
			return nil, fmt.Errorf("schedule %q: job must be stats or vacuum, got %q", s.Name, s.Job)
		}
		dec := json.NewDecoder(bytes.NewReader(s.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			return nil, fmt.Errorf("schedule %q: body is not a %s request: %w", s.Name, s.Job, err)
		}
		if v, ok := target.(*messages.VacuumRequest); ok && v.Async {
			return nil, fmt.Errorf("schedule %q: async has no meaning in a job", s.Name)
		}
	}
	return f.Schedules, nil
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
