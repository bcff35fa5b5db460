package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"

	goredis "github.com/redis/go-redis/v9"
)

// ErrorKind names what kind of failure err is, for a metric's label: the
// upper-case prefix of an error reply (CROSSSLOT, READONLY, LOADING,
// CLUSTERDOWN, NOSCRIPT, OOM, WRONGTYPE, ERR...), "timeout", "connection" or
// "other". A miss (goredis.Nil), no error and a caller that gave up
// (context.Canceled) are "": not failures of Redis.
func ErrorKind(err error) string {
	var re goredis.Error
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, goredis.Nil), errors.Is(err, context.Canceled):
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, goredis.ErrPoolTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &re):
		return replyPrefix(re.Error())
	case errors.Is(err, goredis.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne):
		return "connection"
	}
	return "other"
}

// replyPrefix is an error reply's first word when it is an upper-case code
// of at most 16 letters (bounding the label's values), else "other".
func replyPrefix(msg string) string {
	n := 0
	for n < len(msg) && n <= 16 && msg[n] >= 'A' && msg[n] <= 'Z' {
		n++
	}
	if n == 0 || n > 16 || (n < len(msg) && msg[n] != ' ') {
		return "other"
	}
	return msg[:n]
}

// ErrorHook is a go-redis hook that reports every failed command, those of
// pipelines included, to count, with its ErrorKind. Add it with client.AddHook; on a
// cluster client it sees the outcome after go-redis's own redirects and
// retries, so a MOVED that was followed is not counted.
func ErrorHook(count func(kind string)) goredis.Hook { return errorHook(count) }

type errorHook func(kind string)

// handshake tells the commands go-redis sends on each new connection (HELLO,
// CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS) and ignores the errors of: an
// older server refuses some of them on every connection. The worker itself
// sends no CLIENT command.
func handshake(cmd goredis.Cmder) bool {
	name := cmd.Name()
	return name == "hello" || name == "client"
}

// DialHook counts nothing: a failed dial fails the command that asked for
// it, which is counted once, as "connection".
func (h errorHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h errorHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if kind := ErrorKind(err); kind != "" && !handshake(cmd) {
			h(kind)
		}
		return err
	}
}

// ProcessPipelineHook counts each failed command of a pipeline, as it
// would be counted sent alone: the count does not depend on how commands
// were grouped (REDIS_PIPELINES), a miss among them hides no failure after
// it, and a pipeline that failed as a whole counts once per command it
// failed (or once when no command carries the error).
func (h errorHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil || slices.ContainsFunc(cmds, handshake) {
			return err
		}
		counted := false
		for _, cmd := range cmds {
			if kind := ErrorKind(cmd.Err()); kind != "" {
				h(kind)
				counted = true
			}
		}
		if kind := ErrorKind(err); kind != "" && !counted {
			h(kind)
		}
		return err
	}
}
