// Package client is the typed Go client of dbworker: one method per operation
// of the protocol, over any *nats.Conn.
//
//	c := client.New(nc)
//	res, err := c.Query(ctx, "SELECT id, email FROM users WHERE active = :active", map[string]any{"active": true})
//	var e *client.Error
//	if errors.As(err, &e) && e.SQLState == "23505" { ... }
//
// A context deadline is the request's timeout; without one the client's
// default (WithTimeout, 30s) applies. Failed requests return *Error, which
// carries the protocol's status, code and, for database errors, the SQLSTATE.
//
// Answers come back on the connection's inboxes. On a broker that gives each
// user an inbox prefix of its own (dbworker's nats-server.conf), connect with
// that prefix: nats.Connect(url, nats.UserInfo("orders", pw),
// client.InboxPrefix("_INBOX_orders")).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Error is a failed request: status, code, message and, for database errors,
// SQLSTATE, detail and hint. Use errors.As to read it.
type Error = messages.Error

// ErrNoWorker is returned (wrapped) when no worker serves the subject.
var ErrNoWorker = errors.New("no dbworker serves this subject")

// TimeoutDefault is the request timeout when the context has no deadline.
const TimeoutDefault = 30 * time.Second

// Client sends requests to dbworker.
type Client struct {
	nc      *nats.Conn
	prefix  string
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithPrefix sets the subject prefix the workers were started with
// (SUBJECT_PREFIX), such as "prod.".
func WithPrefix(prefix string) Option {
	return func(c *Client) {
		if prefix != "" && prefix[len(prefix)-1] != '.' {
			prefix += "."
		}
		c.prefix = prefix
	}
}

// WithTimeout sets the timeout of requests whose context has no deadline.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client over nc. The caller keeps ownership of nc.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, timeout: TimeoutDefault}
	for _, o := range opts {
		o(c)
	}
	return c
}

type requestIDKey struct{}

// WithRequestID returns a context whose requests carry id in the Request-Id
// header, so the worker's log lines can be matched with the caller's.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// do sends req to subject and decodes the answer into resp.
func (c *Client) do(ctx context.Context, subject string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	msg := nats.NewMsg(c.prefix + subject)
	msg.Data = body
	id, _ := ctx.Value(requestIDKey{}).(string)
	if id == "" {
		id = nuid.Next()
	}
	msg.Header.Set("Request-Id", id)
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s: %w", subject, ErrNoWorker)
	case err != nil:
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		var eb messages.ErrorBody
		if json.Unmarshal(reply.Data, &eb) == nil && eb.Error != nil {
			return eb.Error
		}
		status, _ := strconv.Atoi(code)
		return &Error{Code: messages.CodeInternal, Status: status, Message: reply.Header.Get("Nats-Service-Error")}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", subject, err)
	}
	return nil
}

// Health asks a worker for db.health.
func (c *Client) Health(ctx context.Context) (*messages.HealthResult, error) {
	var h messages.HealthResult
	if err := c.do(ctx, "db.health", struct{}{}, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Stats runs db.stats.
func (c *Client) Stats(ctx context.Context, req messages.StatsRequest) (*messages.StatsResult, error) {
	var res messages.StatsResult
	if err := c.do(ctx, "db.stats", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Vacuum runs db.vacuum synchronously and returns the stored result. A
// target being vacuumed elsewhere is an *Error with code LOCKED.
func (c *Client) Vacuum(ctx context.Context, req messages.VacuumRequest) (*messages.VacuumResult, error) {
	req.Async = false
	var res messages.VacuumResult
	if err := c.do(ctx, "db.vacuum", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// VacuumAsync queues a VACUUM job and returns where it is.
func (c *Client) VacuumAsync(ctx context.Context, req messages.VacuumRequest) (*messages.JobAccepted, error) {
	req.Async = true
	var res messages.JobAccepted
	if err := c.do(ctx, "db.vacuum", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
