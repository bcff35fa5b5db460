package startstop_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/startstop"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

type svc struct {
	startstop.Base
	fail    error
	loops   atomic.Int32
	stopped atomic.Int32
}

func (s *svc) Start(ctx context.Context) error {
	ctx, err := s.StartInit(ctx)
	if err != nil {
		return err
	}
	s.Go(func(ctx context.Context) {
		s.loops.Add(1)
		<-ctx.Done()
	})
	if s.fail != nil {
		s.StartFailed()
		return s.fail
	}
	return nil
}

func (s *svc) Stop(ctx context.Context) error {
	if !s.StopInit() {
		return nil
	}
	s.stopped.Add(1)
	s.Cancel()
	return s.Wait(ctx)
}

func TestStartTwiceIsRefused(t *testing.T) {
	s := &svc{}
	require.NoError(t, s.Start(context.Background()))
	require.ErrorIs(t, s.Start(context.Background()), startstop.ErrStarted)
	require.NoError(t, s.Stop(context.Background()))
	require.NoError(t, s.Stop(context.Background()), "a second Stop is a no-op")
	assert.EqualValues(t, 1, s.stopped.Load())
	require.ErrorIs(t, s.Start(context.Background()), startstop.ErrStopped)
}

func TestStopBeforeStart(t *testing.T) {
	s := &svc{}
	require.NoError(t, s.Stop(context.Background()))
	require.ErrorIs(t, s.Start(context.Background()), startstop.ErrStopped)
	assert.True(t, s.Stopping())
}

func TestStartFailedStopsItsGoroutines(t *testing.T) {
	s := &svc{fail: errors.New("boom")}
	require.EqualError(t, s.Start(context.Background()), "boom")
	assert.True(t, s.Stopping())
	require.NoError(t, s.Stop(context.Background()))
	// goleak in TestMain proves the loop returned.
}

func TestCallerCancelDoesNotStopService(t *testing.T) {
	s := &svc{}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, s.Start(ctx))
	cancel()
	time.Sleep(10 * time.Millisecond)
	assert.False(t, s.Stopping())
	require.NoError(t, s.Stop(context.Background()))
}

type blocker struct {
	startstop.Base
	release chan struct{}
}

func (b *blocker) Start(ctx context.Context) error {
	if _, err := b.StartInit(ctx); err != nil {
		return err
	}
	b.Go(func(ctx context.Context) {
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	})
	return nil
}

func (b *blocker) Stop(ctx context.Context) error {
	if !b.StopInit() {
		return nil
	}
	return b.Wait(ctx)
}

func TestWaitCancelsAtDeadline(t *testing.T) {
	b := &blocker{release: make(chan struct{})}
	require.NoError(t, b.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Stop(ctx), context.DeadlineExceeded)
}

func TestStartAllStopsWhatStartedOnFailure(t *testing.T) {
	a, b, c := &svc{}, &svc{fail: errors.New("b failed")}, &svc{}
	err := startstop.StartAll(context.Background(), a, b, c)
	require.EqualError(t, err, "b failed")
	assert.EqualValues(t, 1, a.stopped.Load(), "a started, so it is stopped")
	assert.EqualValues(t, 0, c.loops.Load(), "c never started")
	require.NoError(t, startstop.StopAll(context.Background(), a, b, c))
}
