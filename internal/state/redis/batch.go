package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// scriptRunner runs one script call. direct sends each call on its own;
// batcher sends concurrent calls together.
type scriptRunner interface {
	runScript(ctx context.Context, s *goredis.Script, keys []string, args []any) (any, error)
}

// direct runs every call as its own round trip: EVALSHA, then EVAL when
// Redis does not have the script yet.
type direct struct{ c goredis.Scripter }

func (d direct) runScript(ctx context.Context, s *goredis.Script, keys []string, args []any) (any, error) {
	return s.Run(ctx, d.c, keys, args...).Result()
}

// batcher shares round trips between concurrent script calls (rate limits,
// locks). At most maxPipelines pipelines are in flight at once; a call that
// arrives while all of them are busy waits, and the next pipeline to go
// carries every call that waited (up to maxBatch): under load N calls cost
// one write and one read, in the worker and in Redis, instead of N of each;
// alone, a call goes at once, as it would without the batcher.
//
// Nothing is delayed to make a batch, and no goroutine is started: the
// caller whose pipeline returns hands the next batch to the first waiting
// caller, which sends it and takes its own answer from it.
//
// Each call stays its own command: its own keys, its own script run, its
// own reply or error. Redis runs the commands of a pipeline one after the
// other, as it would run them from separate connections; a script's error
// is that call's alone. A connection error fails the calls of the pipeline
// it broke (they may or may not have run, as for a lone call).
type batcher struct {
	c            goredis.UniversalClient
	maxPipelines int
	maxBatch     int

	mu       sync.Mutex
	inFlight int     // pipelines being sent or read
	waiting  []*call // calls waiting for a pipeline, oldest first
}

// call is one script call of a batch.
type call struct {
	ctx    context.Context
	script *goredis.Script
	keys   []string
	args   []any

	cmd *goredis.Cmd
	// wake receives once: nil when the call's answer is in cmd, or the
	// batch this call is to send (itself included).
	wake  chan []*call
	taken bool // in a batch: its answer will come (under batcher.mu)
}

func newBatcher(c goredis.UniversalClient, maxPipelines, maxBatch int) *batcher {
	return &batcher{c: c, maxPipelines: maxPipelines, maxBatch: maxBatch}
}

func (b *batcher) runScript(ctx context.Context, s *goredis.Script, keys []string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // the caller gave up: not sent
	}
	c := &call{ctx: ctx, script: s, keys: keys, args: args}
	b.mu.Lock()
	if b.inFlight < b.maxPipelines {
		b.inFlight++
		c.taken = true
		b.mu.Unlock()
		b.send(c, []*call{c})
		return c.cmd.Result()
	}
	c.wake = make(chan []*call, 1)
	b.waiting = append(b.waiting, c)
	b.mu.Unlock()

	var batch []*call
	select {
	case batch = <-c.wake:
	case <-ctx.Done():
		b.mu.Lock()
		if !c.taken {
			b.waiting = deleteCall(b.waiting, c)
			b.mu.Unlock()
			return nil, ctx.Err() // never sent
		}
		b.mu.Unlock()
		batch = <-c.wake // sent or being sent: its answer comes
	}
	if batch != nil {
		b.send(c, batch)
	}
	return c.cmd.Result()
}

// send runs batch as one pipeline, answers every call of it, and passes the
// pipeline's turn on to the calls that waited meanwhile, if any. self is the
// caller's own call, one of batch's.
func (b *batcher) send(self *call, batch []*call) {
	ctx, cancel := batchContext(batch)
	_, _ = b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range batch {
			c.cmd = p.EvalSha(ctx, c.script.Hash(), c.keys, c.args...)
		}
		return nil
	})
	cancel()
	for _, c := range batch {
		if isNoScript(c.cmd.Err()) { // Redis restarted or flushed its scripts: send the source
			c.cmd = c.script.Eval(c.ctx, b.c, c.keys, c.args...)
		}
	}
	b.mu.Lock()
	var next []*call
	if len(b.waiting) > 0 {
		n := min(len(b.waiting), b.maxBatch)
		next = b.waiting[:n:n]
		b.waiting = b.waiting[n:]
		for _, c := range next {
			c.taken = true
		}
	} else {
		b.inFlight--
	}
	b.mu.Unlock()
	for _, c := range batch {
		if c != self {
			c.wake <- nil
		}
	}
	if next != nil {
		next[0].wake <- next // it sends them, and wakes the others
	}
}

// batchContext bounds a pipeline by the latest deadline of its calls (none
// when a call has none), and is not canceled by any one caller giving up:
// the others' answers are on the same connection.
func batchContext(batch []*call) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(c.ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}

func isNoScript(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}

func deleteCall(cs []*call, c *call) []*call {
	for i, x := range cs {
		if x == c {
			return append(cs[:i], cs[i+1:]...)
		}
	}
	return cs
}
