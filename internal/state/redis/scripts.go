package redis

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// The Lua scripts. Each file in scripts/ opens with its KEYS, ARGV and return
// value; each runs through run.
var (
	//go:embed scripts/ratelimit.lua
	rateLimitSrc string
	//go:embed scripts/ratelimit_counter.lua
	rateCounterSrc string
	//go:embed scripts/lock_acquire.lua
	lockAcquireSrc string
	//go:embed scripts/lock_release.lua
	lockReleaseSrc string
	//go:embed scripts/lock_refresh.lua
	lockRefreshSrc string
	//go:embed scripts/lock_status.lua
	lockStatusSrc string

	rateLimitScript   = goredis.NewScript(rateLimitSrc)
	rateCounterScript = goredis.NewScript(rateCounterSrc)
	lockAcquireScript = goredis.NewScript(lockAcquireSrc)
	lockReleaseScript = goredis.NewScript(lockReleaseSrc)
	lockRefreshScript = goredis.NewScript(lockRefreshSrc)
	lockStatusScript  = goredis.NewScript(lockStatusSrc)
)

// run is the one typed way a script runs: EVALSHA, then EVAL when Redis does
// not have the script yet; errors come back classified.
func run(ctx context.Context, c scriptRunner, s *goredis.Script, keys []string, args ...any) ([]any, error) {
	v, err := c.runScript(ctx, s, keys, args)
	if err != nil {
		return nil, classify(err)
	}
	switch r := v.(type) {
	case []any:
		return r, nil
	case int64:
		return []any{r}, nil
	}
	return nil, fmt.Errorf("unexpected script reply %T", v)
}

// toInt reads an integer of a script's reply.
func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}
