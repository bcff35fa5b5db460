package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BackendCPU is the CPU time (user and system) a process on this machine has
// used, such as a PostgreSQL backend by its PID. Benchmarks divide it by their
// iterations to report what a request costs the server.
func BackendCPU(tb testing.TB, pid uint32) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read the CPU time of process %d (is PostgreSQL on this machine?): %v", pid, err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// ReportCPU reports the CPU a process used since start, per iteration, as the
// metric name (for example "pg-cpu-µs/op").
func ReportCPU(b *testing.B, pid uint32, start time.Duration, name string) {
	b.Helper()
	b.ReportMetric(float64((BackendCPU(b, pid)-start).Microseconds())/float64(b.N), name)
}
