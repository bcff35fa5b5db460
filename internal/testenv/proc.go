package testenv

import (
	"os"
	"runtime/debug"
	"testing"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/procstat"
)

// BackendCPU is the CPU time (user and system) a process on this machine has
// used, such as a PostgreSQL backend by its PID (procstat.CPU). Benchmarks
// divide it by their iterations to report what a request costs the server.
func BackendCPU(tb testing.TB, pid uint32) time.Duration {
	tb.Helper()
	d, err := procstat.CPU(int(pid))
	if err != nil {
		tb.Fatalf("read the CPU time of process %d (is PostgreSQL on this machine?): %v", pid, err)
	}
	return d
}

// ReportCPU reports the CPU a process used since start, per iteration, as the
// metric name (for example "pg-cpu-µs/op").
func ReportCPU(b *testing.B, pid uint32, start time.Duration, name string) {
	b.Helper()
	b.ReportMetric(float64((BackendCPU(b, pid)-start).Microseconds())/float64(b.N), name)
}

// ResetPeakRSS returns freed memory to the OS and resets this process's peak
// RSS (VmHWM) to its current RSS (Linux: /proc/self/clear_refs, "5").
func ResetPeakRSS(tb testing.TB) {
	tb.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset the peak RSS: %v", err)
	}
}

// PeakRSS is a process's peak resident memory (VmHWM) in bytes; pid 0 is this
// process.
func PeakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	return procMemory(tb, pid, "VmHWM")
}

// RSS is a process's resident memory (VmRSS) in bytes; pid 0 is this process.
func RSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	return procMemory(tb, pid, "VmRSS")
}

// procMemory reads one memory field of /proc/<pid>/status, in bytes.
func procMemory(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	n, err := procstat.Memory(pid, field)
	if err != nil {
		tb.Fatalf("read the memory of process %d: %v", pid, err)
	}
	return n
}
