package schedule

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/startstop"
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

// Runner publishes every schedule's jobs at their slots, from Start to Stop,
// or with Run until a context ends. A runner runs once: a second Start or Run
// returns startstop.ErrStarted, and one after Stop startstop.ErrStopped.
type Runner struct {
	JS        jetstream.JetStream
	Subjects  subjects.Subjects
	Schedules []*Schedule
	Log       zerolog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// OnPublish, when set, sees every publication (tests count them).
	OnPublish func(Published)

	life    startstop.Base
	now     func() time.Time
	stopped <-chan struct{} // closed when the loops are told to stop
}

// Start starts the loops, one per schedule: a slow publish of one never
// delays another. They run until Stop.
func (r *Runner) Start(ctx context.Context) error {
	ctx, err := r.life.StartInit(ctx)
	if err != nil {
		return err
	}
	r.now = r.Now
	if r.now == nil {
		r.now = time.Now
	}
	r.stopped = ctx.Done()
	for _, s := range r.Schedules {
		r.life.Go(func(ctx context.Context) { r.loop(ctx, s) })
	}
	return nil
}

// Stop stops the loops, cutting short a publication under way (a slot not
// yet published is left to the other publishers), and waits for them. It is
// idempotent.
func (r *Runner) Stop(ctx context.Context) error {
	if !r.life.StopInit() {
		return nil
	}
	r.life.Cancel()
	return r.life.Wait(ctx)
}

// Run publishes until ctx ends (or Stop), then stops. It returns ctx's
// error, or Start's.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-r.stopped:
	}
	if err := r.Stop(context.Background()); err != nil {
		return err
	}
	return ctx.Err()
}

func (r *Runner) loop(ctx context.Context, s *Schedule) {
	slot := s.Next(r.now())
	for {
		t := time.NewTimer(slot.Sub(r.now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.publish(ctx, s, slot)
		slot = s.Next(slot)
		// Never publish slots that passed while this one was in flight.
		if now := r.now(); slot.Before(now) {
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
