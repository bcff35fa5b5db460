package worker

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Lanes: each kind of work has a concurrency budget of its own, so that one
// kind cannot starve another. Slow queries fill the db lane; state requests,
// maintenance requests and health checks keep theirs.
const (
	laneDB     = "db"     // db.execute, db.vector, db.graph
	laneState  = "state"  // state.*, cache.*
	laneMaint  = "maint"  // db.stats, db.vacuum
	laneHealth = "health" // db.health
	laneTx     = "tx"     // db.tx and the subjects of open transactions
)

// errLaneFull is returned by admit when a lane's slots are taken and its
// queue is full.
var errLaneFull = errors.New("lane full")

// lane is a bounded number of slots and a bounded queue of requests waiting
// for one. Waiters take freed slots in arrival order (a channel's blocked
// senders are served first in, first out).
type lane struct {
	name      string
	slots     chan struct{}
	maxQueued int64
	maxBytes  int64
	// deadline: requests run under their deadline (db work), rather than
	// only waiting under it.
	deadline bool

	queued      atomic.Int64
	queuedBytes atomic.Int64
}

func newLane(name string, size, maxQueued, maxBytes int, deadline bool) *lane {
	return &lane{name: name, slots: make(chan struct{}, size), maxQueued: int64(maxQueued), maxBytes: int64(maxBytes), deadline: deadline}
}

// goPool runs each request on a goroutine of its own, as a go statement
// would, but on an idle one when there is one: a goroutine that has served
// a request waits for the next, until done is closed, while fewer than max
// are waiting. A busy worker then neither starts a goroutine per request nor
// grows a new stack for each. No request waits for a goroutine: with none
// idle, a new one starts. A goroutine starts only when no other is waiting,
// so there are about as many as the most requests that were in flight at
// once, and never more than max idle.
type goPool struct {
	work chan func()
	idle atomic.Int64
	max  int64
}

func newGoPool(max int) *goPool { return &goPool{work: make(chan func()), max: int64(max)} }

func (p *goPool) goServe(done <-chan struct{}, f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	go p.loop(done, f)
}

func (p *goPool) loop(done <-chan struct{}, f func()) {
	for {
		f()
		if p.idle.Add(1) > p.max {
			p.idle.Add(-1)
			return
		}
		select {
		case f = <-p.work:
			p.idle.Add(-1)
		case <-done:
			p.idle.Add(-1)
			return
		}
	}
}

// admit takes a free slot (queued false) or a place in the queue (queued
// true, then wait must follow). It never blocks: with every slot taken and
// the queue full (by count, or by bytes once one request waits), it returns
// errLaneFull.
func (l *lane) admit(size int) (queued bool, err error) {
	select {
	case l.slots <- struct{}{}:
		return false, nil
	default:
	}
	if n := l.queued.Add(1); n > l.maxQueued {
		l.queued.Add(-1)
		return false, errLaneFull
	}
	if b := l.queuedBytes.Add(int64(size)); b > l.maxBytes && b != int64(size) {
		l.queuedBytes.Add(-int64(size))
		l.queued.Add(-1)
		return false, errLaneFull
	}
	return true, nil
}

// wait takes a slot for a queued request, or gives up when ctx is done. Either
// way the request leaves the queue.
func (l *lane) wait(ctx context.Context, size int) error {
	defer l.queued.Add(-1)
	defer l.queuedBytes.Add(-int64(size))
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave frees a slot.
func (l *lane) leave() { <-l.slots }

// health reports the lane's use.
func (l *lane) health() messages.LaneHealth {
	return messages.LaneHealth{Running: len(l.slots), Max: cap(l.slots), Queued: int(l.queued.Load())}
}

// full reports whether every slot is taken.
func (l *lane) full() bool { return len(l.slots) == cap(l.slots) }
