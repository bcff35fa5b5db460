package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jeeves-avionics/dbworker/internal/state/redis"
)

// RedisURLDefault is used when neither TEST_REDIS_URL nor REDIS_URL is set.
const RedisURLDefault = "redis://127.0.0.1:6379/0"

// RedisURL is the Redis server tests use.
func RedisURL() string {
	for _, k := range []string{"TEST_REDIS_URL", "REDIS_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return RedisURLDefault
}

// NewRedisPrefix checks that Redis answers and returns a key prefix of the
// test's own; its keys are deleted when the test ends.
func NewRedisPrefix(t testing.TB) string {
	t.Helper()
	opts, err := goredis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	c := goredis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		Unavailable(t, "Redis", err)
	}
	prefix := "test:" + UniqueName() + ":"
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := redis.DeletePrefix(ctx, c, prefix); err != nil {
			t.Errorf("clean up redis keys %s*: %v", prefix, err)
		}
	})
	return prefix
}
