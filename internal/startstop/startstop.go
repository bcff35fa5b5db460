// Package startstop is the one lifecycle of dbworker's long-running parts,
// in the spirit of river's startstop: a service is started once, stopped
// once, and whatever it started is stopped when its Start fails.
//
// A service embeds [Base]:
//
//	func (s *Service) Start(ctx context.Context) error {
//		ctx, err := s.StartInit(ctx)
//		if err != nil {
//			return err // ErrStarted, or ErrStopped after a Stop
//		}
//		if err := s.setup(ctx); err != nil {
//			s.StartFailed() // stops what Go started, and the service
//			return err
//		}
//		s.Go(s.loop) // tracked: Stop waits for it
//		return nil
//	}
//
//	func (s *Service) Stop(ctx context.Context) error {
//		if !s.StopInit() {
//			return nil // never started, or already stopped
//		}
//		return s.Wait(ctx) // waits for the loops, cancels them at ctx's end
//	}
//
// A second Start fails with ErrStarted rather than running twice, and Stop
// is idempotent: the second and later calls return at once with nil.
package startstop

import (
	"context"
	"errors"
	"sync"
)

// ErrStarted is returned by Start on a service that is running.
var ErrStarted = errors.New("already started")

// ErrStopped is returned by Start on a service that was stopped: a stopped
// service does not start again.
var ErrStopped = errors.New("stopped; a stopped service does not start again")

// errStopping is the cause of a service's context at Stop.
var errStopping = errors.New("service stopping")

type phase uint8

const (
	phaseNew phase = iota
	phaseRunning
	phaseStopped
)

// Base is embedded by a service to guard its Start and Stop and to track
// the goroutines it starts. Its zero value is ready.
type Base struct {
	mu     sync.Mutex
	phase  phase
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

// StartInit begins a Start. It returns the service's own context, which
// keeps ctx's values but not its cancellation, and ends at Stop (or when
// Start fails). A service that is running, or was stopped, is not started
// again: the error says which.
func (b *Base) StartInit(ctx context.Context) (context.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.phase {
	case phaseRunning:
		return nil, ErrStarted
	case phaseStopped:
		return nil, ErrStopped
	}
	b.phase = phaseRunning
	b.ctx, b.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	return b.ctx, nil
}

// Go runs fn in a goroutine that Stop waits for, with the service's context.
// It must be called between StartInit and Stop.
func (b *Base) Go(fn func(ctx context.Context)) {
	b.mu.Lock()
	ctx := b.ctx
	if b.phase != phaseRunning {
		b.mu.Unlock()
		panic("startstop: Go called on a service that is not running")
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		fn(ctx)
	}()
}

// StartFailed ends a Start that failed: the service's context is cancelled,
// every goroutine started with Go is waited for, and the service is stopped
// (a later Start returns ErrStopped; a later Stop does nothing).
func (b *Base) StartFailed() {
	b.mu.Lock()
	cancel := b.cancel
	b.phase = phaseStopped
	b.mu.Unlock()
	if cancel != nil {
		cancel(errStopping)
	}
	b.wg.Wait()
}

// StopInit begins a Stop. It reports whether this call is the one that
// stops the service: false when it never started or was already stopped.
func (b *Base) StopInit() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.phase != phaseRunning {
		b.phase = phaseStopped
		return false
	}
	b.phase = phaseStopped
	return true
}

// Stopping reports whether Stop has begun (or the service never ran).
func (b *Base) Stopping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.phase == phaseStopped
}

// Cancel ends the service's context now, so that its goroutines stop what
// they do. Wait does it too, at ctx's end.
func (b *Base) Cancel() {
	b.mu.Lock()
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel(errStopping)
	}
}

// Wait waits for every goroutine started with Go. Past ctx's end it cancels
// the service's context, waits for them to return and returns ctx's error.
// The service's context is cancelled when Wait returns either way.
func (b *Base) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		b.Cancel()
		<-done
	}
	b.Cancel()
	return err
}

// Service is what StartAll starts.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// StartAll starts services in order. When one fails, the ones already
// started are stopped, last first, and the error names the failure.
func StartAll(ctx context.Context, services ...Service) error {
	for i, s := range services {
		if err := s.Start(ctx); err != nil {
			for j := i - 1; j >= 0; j-- {
				err = errors.Join(err, services[j].Stop(ctx))
			}
			return err
		}
	}
	return nil
}

// StopAll stops services, last first, and joins their errors.
func StopAll(ctx context.Context, services ...Service) error {
	var err error
	for i := len(services) - 1; i >= 0; i-- {
		err = errors.Join(err, services[i].Stop(ctx))
	}
	return err
}
