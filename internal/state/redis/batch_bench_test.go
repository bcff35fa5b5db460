package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// redisPID is the PID of the Redis server the tests use, for its CPU time.
func redisPID(b *testing.B, be *redis.Backend) uint32 {
	info, err := be.Client().Info(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ := strconv.ParseUint(v, 10, 32)
			return uint32(pid)
		}
	}
	b.Fatal("INFO server has no process_id")
	return 0
}

// BenchmarkServeRedisRateLimit: 16 concurrent rate-limit calls (8 per
// core) on the Redis backend, each call on its own round trip against
// calls sharing pipelines, with the CPU each costs this process and Redis.
func BenchmarkServeRedisRateLimit(b *testing.B) {
	for _, pipelines := range []int{0, 2, 4, 8} {
		name := "direct"
		if pipelines > 0 {
			name = fmt.Sprintf("pipelines=%d", pipelines)
		}
		b.Run(name, func(b *testing.B) {
			c, err := redis.NewClient(testenv.RedisURL())
			if err != nil {
				b.Fatal(err)
			}
			be := redis.New(c, testenv.NewRedisPrefix(b), redis.WithPipelines(pipelines))
			defer be.Close()
			ctx := context.Background()
			pid := redisPID(b, be)
			var n atomic.Int64
			if _, err := be.RateLimit(ctx, "warm", 1_000_000, 1, time.Minute); err != nil {
				b.Fatal(err)
			}
			self := uint32(os.Getpid())
			redisStart, selfStart := testenv.BackendCPU(b, pid), testenv.BackendCPU(b, self)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := "k" + strconv.FormatInt(n.Add(1), 10)
				for pb.Next() {
					if _, err := be.RateLimit(ctx, key, state.ExactLimitMax, 1, time.Second); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			testenv.ReportCPU(b, pid, redisStart, "redis-cpu-µs/op")
			testenv.ReportCPU(b, self, selfStart, "client-cpu-µs/op")
		})
	}
}
