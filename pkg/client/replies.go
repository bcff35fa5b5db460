package client

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// replies routes the messages of answers that may be streamed: one
// subscription of the client's on <inbox>.*, made at the first such
// request, and a token of the inbox per request, as nats.go routes the
// answers of its own requests. (A subscription per request costs the
// server a subscribe and an unsubscribe each time: it doubled a SELECT 1's
// latency.) The subscription lasts as long as the connection.
type replies struct {
	nc *nats.Conn

	mu     sync.Mutex
	prefix string // "<inbox>."
	sub    *nats.Subscription
	calls  map[string]*call
}

// call is the messages of one request's answer. They wait in msgs; one that
// finds it full (only a sender that ignores the window's credit sends that
// many) is dropped, and lost says so.
type call struct {
	token string
	msgs  chan *nats.Msg
	lost  atomic.Bool
}

// open returns a reply subject of its own and the call its messages reach.
func (r *replies) open() (string, *call, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil || !r.sub.IsValid() {
		prefix := r.nc.NewInbox() + "."
		sub, err := r.nc.Subscribe(prefix+"*", r.route)
		if err != nil {
			return "", nil, err
		}
		// route never blocks: messages wait in their call's channel, bounded
		// by the window, not in the subscription.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			_ = sub.Unsubscribe()
			return "", nil, err
		}
		r.prefix, r.sub, r.calls = prefix, sub, map[string]*call{}
	}
	c := &call{token: nuid.Next(), msgs: make(chan *nats.Msg, 2*streamWindow+2)}
	r.calls[c.token] = c
	return r.prefix + c.token, c, nil
}

// route hands a message to its call; one for a call that has ended is
// dropped.
func (r *replies) route(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	r.mu.Lock()
	c := r.calls[token]
	r.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.msgs <- m:
	default:
		c.lost.Store(true)
	}
}

// close ends a call: its later messages are dropped.
func (r *replies) close(c *call) {
	r.mu.Lock()
	delete(r.calls, c.token)
	r.mu.Unlock()
}
