package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// SetLogger sends go-redis's own log lines (such as failed dials while Redis is
// down) to l at debug level; the worker reports an unreachable Redis through
// UNAVAILABLE answers and db.health instead of one line per dial. It is
// process-wide, as go-redis's logger is.
func SetLogger(l zerolog.Logger) { goredis.SetLogger(logger{l}) }

type logger struct{ l zerolog.Logger }

func (g logger) Printf(_ context.Context, format string, v ...any) {
	g.l.Debug().Str("component", "go-redis").Msgf(format, v...)
}

func init() { SetLogger(zerolog.Nop()) }

// NewClient makes a client from a URL: redis:// or rediss:// for one server,
// with addr= parameters for a cluster, with master_name= for Sentinel.
func NewClient(rawURL string) (goredis.UniversalClient, error) {
	if rawURL == "" {
		return nil, errors.New("REDIS_URL is required for the redis state backend")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, errors.New("REDIS_URL must be a redis:// or rediss:// URL")
	}
	q := u.Query()
	// Fail fast while Redis is down: go-redis's defaults (3 retries of 5
	// dials each) hold a caller for about two seconds before it learns the
	// state backend is unavailable. A max_retries parameter still wins.
	maxRetries := 1
	if q.Has("max_retries") {
		maxRetries = 0 // keep the URL's
	}
	switch {
	case q.Has("master_name"):
		o, err := goredis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (sentinel): %v", redactErr(err))
		}
		if maxRetries > 0 {
			o.MaxRetries = maxRetries
		}
		o.DialerRetries = dialerRetries
		return goredis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := goredis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %v", redactErr(err))
		}
		if maxRetries > 0 {
			o.MaxRetries = maxRetries
		}
		o.DialerRetries = dialerRetries
		return goredis.NewClusterClient(o), nil
	}
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %v", redactErr(err))
	}
	if maxRetries > 0 {
		o.MaxRetries = maxRetries
	}
	o.DialerRetries = dialerRetries
	return goredis.NewClient(o), nil
}

// dialerRetries is how often a connection is dialled before a command fails.
const dialerRetries = 2

// redactErr keeps URL parse errors from echoing a password.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
