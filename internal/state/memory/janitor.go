package memory

import (
	"context"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/startstop"
)

// janitor calls sweep every period, from New to Close.
type janitor struct {
	life  startstop.Base
	every time.Duration
	sweep func()
}

// Start starts the janitor's loop; a second Start returns
// startstop.ErrStarted.
func (j *janitor) Start(ctx context.Context) error {
	if _, err := j.life.StartInit(ctx); err != nil {
		return err
	}
	j.life.Go(func(ctx context.Context) {
		t := time.NewTicker(j.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				j.sweep()
			}
		}
	})
	return nil
}

// Stop ends the loop and waits for a sweep under way. It is idempotent.
func (j *janitor) Stop(ctx context.Context) error {
	if !j.life.StopInit() {
		return nil
	}
	j.life.Cancel()
	return j.life.Wait(ctx)
}
