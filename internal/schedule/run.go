package schedule

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// Published reports one publication attempt.
type Published struct {
	Schedule  string
	Slot      time.Time
	MsgID     string
	Sequence  uint64
	Duplicate bool // another publisher already published this slot
	Err       error
}

// Runner publishes every schedule's jobs at their slots until its context ends.
type Runner struct {
	JS        jetstream.JetStream
	Subjects  subjects.Subjects
	Schedules []*Schedule
	Log       zerolog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// OnPublish, when set, sees every publication (tests count them).
	OnPublish func(Published)
}

// Run publishes until ctx ends. Each schedule has its own loop: a slow publish
// of one never delays another.
func (r *Runner) Run(ctx context.Context) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	var wg sync.WaitGroup
	for _, s := range r.Schedules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, s)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (r *Runner) loop(ctx context.Context, s *Schedule) {
	slot := s.Next(r.Now())
	for {
		t := time.NewTimer(slot.Sub(r.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.publish(ctx, s, slot)
		slot = s.Next(slot)
		// Never publish slots that passed while this one was in flight.
		if now := r.Now(); slot.Before(now) {
			slot = s.Next(now)
		}
	}
}

// publish sends one slot's job, retrying for a while: a slot not published
// by anyone is a missed job.
func (r *Runner) publish(ctx context.Context, s *Schedule, slot time.Time) {
	p := Published{Schedule: s.Name, Slot: slot, MsgID: s.MsgID(slot)}
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := r.JS.Publish(pctx, r.Subjects.Of(s.Subject()), s.JobBody(), jetstream.WithMsgID(p.MsgID))
		cancel()
		if err == nil {
			p.Sequence, p.Duplicate, p.Err = ack.Sequence, ack.Duplicate, nil
			break
		}
		p.Err = fmt.Errorf("publish %s: %w", p.MsgID, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	ev := r.Log.Info()
	if p.Err != nil {
		ev = r.Log.Error().Err(p.Err)
	}
	ev.Str("schedule", s.Name).Str("msg_id", p.MsgID).Uint64("seq", p.Sequence).Bool("duplicate", p.Duplicate).Msg("job published")
	if r.OnPublish != nil {
		r.OnPublish(p)
	}
}
