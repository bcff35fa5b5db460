package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Error is a failed request: status, code, message and, for database errors,
// SQLSTATE, detail and hint. Use errors.As to read it.
type Error = messages.Error

// ErrNoWorker is returned (wrapped) when no worker serves the subject.
var ErrNoWorker = errors.New("no dbworker serves this subject")

// TimeoutDefault is the request timeout when the context has no deadline.
const TimeoutDefault = 30 * time.Second

// Client sends requests to dbworker. It is safe for concurrent use.
type Client struct {
	nc       *nats.Conn
	subjects subjects.Subjects
	timeout  time.Duration
	replies  *replies // of QueryStream and Query (replies.go)
	// jsonVectors sends and asks for vectors as JSON arrays, not base64.
	jsonVectors bool
	// safeNumbers is every db.execute request's safe_numbers unless the
	// call sets its own (WithSafeNumbers); nil sends none.
	safeNumbers *bool
}

// Option configures a Client. An option given a value it cannot take makes
// New fail.
type Option func(*Client) error

// WithPrefix sets the subject prefix the workers were started with
// (SUBJECT_PREFIX), such as "prod." (the trailing dot may be left out). A
// prefix that is not a run of subject tokens ("a b", "prod.*") is refused.
func WithPrefix(prefix string) Option {
	return func(c *Client) error {
		s, err := subjects.New(prefix)
		if err != nil {
			return fmt.Errorf("WithPrefix: %w", err)
		}
		c.subjects = s
		return nil
	}
}

// WithTimeout sets the timeout of requests whose context has no deadline.
// Defaults to TimeoutDefault (30s); it must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithJSONVectors makes cache.embedding and db.vector requests carry
// vectors as JSON arrays of numbers ("vector", "vectors") rather than as
// base64 of their little-endian float32 bytes ("vector_b64", encoding
// "f32le"), the default. The binary form is exact and cheaper to encode on
// both sides; JSON is for workers older than it, which refuse its fields.
// Either way the API takes and returns []float32, bit for bit.
func WithJSONVectors() Option {
	return func(c *Client) error {
		c.jsonVectors = true
		return nil
	}
}

// WithSafeNumbersDefault sets safe_numbers on every db.execute request of
// the client, in and out of transactions and on streams, unless a call sets
// its own (WithSafeNumbers). WithSafeNumbersDefault(false) gives a client
// whose structs have number fields numbers back from a worker started with
// DB_SAFE_NUMBERS=true. Without it the client sends no safe_numbers, which
// workers older than the field need.
func WithSafeNumbersDefault(on bool) Option {
	return func(c *Client) error {
		c.safeNumbers = &on
		return nil
	}
}

// defaults fills in what the client sets on every db.execute request that
// the call left unset.
func (c *Client) defaults(req *messages.ExecuteRequest) {
	if req.SafeNumbers == nil && c.safeNumbers != nil {
		on := *c.safeNumbers
		req.SafeNumbers = &on
	}
}

// New returns a client over nc. The caller keeps ownership of nc.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, errors.New("client: nil *nats.Conn")
	}
	c := &Client{nc: nc, timeout: TimeoutDefault, replies: &replies{nc: nc}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	return c, nil
}

type requestIDKey struct{}

// WithRequestID returns a context whose requests carry id in the Request-Id
// header, so the worker's log lines can be matched with the caller's.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// do sends req to subject (without prefix) and decodes the answer into resp
// (nothing when resp is nil).
func (c *Client) do(ctx context.Context, subject string, req, resp any) error {
	return c.send(ctx, c.subjects.Of(subject), req, resp)
}

// send is do on a subject given in full, prefix included.
func (c *Client) send(ctx context.Context, subject string, req, resp any) error {
	return c.sendAs(ctx, subject, subject, req, resp)
}

// sendAs is send, with errors naming the request as name (a transaction's
// subject holds its secret id).
func (c *Client) sendAs(ctx context.Context, subject, name string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", name, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	id, _ := ctx.Value(requestIDKey{}).(string)
	if id == "" {
		id = nuid.Next()
	}
	msg.Header.Set("Request-Id", id)
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s: %w", name, ErrNoWorker)
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := answerError(reply); err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", name, err)
	}
	return nil
}

// Health asks a worker for db.health.
func (c *Client) Health(ctx context.Context) (*messages.HealthResult, error) {
	var h messages.HealthResult
	if err := c.do(ctx, subjects.DBHealth, struct{}{}, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// KV returns the handle of state.kv: JSON values under keys.
func (c *Client) KV() KV { return KV{c} }

// Locks returns the handle of state.lock: locks with leases and fencing
// tokens, and Lockers that keep them.
func (c *Client) Locks() Locks { return Locks{c} }

// RateLimits returns the handle of state.ratelimit.
func (c *Client) RateLimits() RateLimits { return RateLimits{c} }

// Embeddings returns the handle of cache.embedding.
func (c *Client) Embeddings() Embeddings { return Embeddings{c} }

// Vectors returns the handle of db.vector: pgvector collections.
func (c *Client) Vectors() Vectors { return Vectors{c} }

// Graph returns the handle of db.graph: nodes, edges and traversals.
func (c *Client) Graph() Graph { return Graph{c} }

// Maintenance returns the handle of db.stats and db.vacuum.
func (c *Client) Maintenance() Maintenance { return Maintenance{c} }
