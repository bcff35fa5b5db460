package procstat_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/procstat"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' of its own: fields count from the last ')'.
	line := "4242 (a b) c)) S 1 4242 4242 0 -1 4194624 373 0 0 0 25 18 0 0 20 0 5 0 3687 62283776 1703 18446744073709551615\n"
	u, s, err := procstat.ParseStat([]byte(line))
	require.NoError(t, err)
	require.Equal(t, uint64(25), u)
	require.Equal(t, uint64(18), s)

	for _, bad := range []string{"", "4242 no parens S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194624 373 0 0 0 x 18 0"} {
		_, _, err := procstat.ParseStat([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestParseSchedstat(t *testing.T) {
	d, err := procstat.ParseSchedstat([]byte("434630854 182637169 2689\n"))
	require.NoError(t, err)
	require.Equal(t, 434630854*time.Nanosecond, d)
	for _, bad := range []string{"", "1 2", "x 2 3", "-1 2 3"} {
		_, err := procstat.ParseSchedstat([]byte(bad))
		require.Error(t, err, bad)
	}
}

// TestCPUCountsWork: the process's CPU time grows by about the time spent
// spinning, in both sources.
func TestCPUCountsWork(t *testing.T) {
	pid := os.Getpid()
	before, err := procstat.CPU(pid)
	require.NoError(t, err)
	statBefore, err := procstat.StatCPU(pid)
	require.NoError(t, err)
	spin(200 * time.Millisecond)
	after, err := procstat.CPU(pid)
	require.NoError(t, err)
	statAfter, err := procstat.StatCPU(pid)
	require.NoError(t, err)
	// Spinning for 200 ms of wall time is at most 200 ms of CPU (plus the
	// runtime's own), at least some of it even on a loaded machine.
	require.Greater(t, after-before, 20*time.Millisecond)
	require.Less(t, after-before, 2*time.Second)
	require.GreaterOrEqual(t, statAfter, statBefore)
	require.Greater(t, statAfter-statBefore, time.Duration(0))
}

func spin(d time.Duration) {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x += i
		}
	}
	_ = x
}

// TestFallbackToStat: with no schedstat (a fake /proc), CPU is utime+stime
// in 10 ms ticks; a missing pid is left out of a Sample.
func TestFallbackToStat(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "7"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "7", "stat"),
		[]byte("7 (postgres) S 1 7 7 0 -1 4194624 373 0 0 0 120 30 0 0 20 0 1 0 3687 62283776 1703\n"), 0o644))
	useRoot(t, root)

	d, err := procstat.CPU(7)
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, d)
	_, err = procstat.CPU(8)
	require.Error(t, err)
	s := procstat.Read([]int{7, 8})
	require.Equal(t, procstat.Sample{7: 1500 * time.Millisecond}, s)
}

// TestSchedstatSumsThreads: every thread's time counts.
func TestSchedstatSumsThreads(t *testing.T) {
	root := t.TempDir()
	for tid, line := range map[string]string{"9": "1000 5 1\n", "10": "2500 5 1\n"} {
		dir := filepath.Join(root, "9", "task", tid)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "schedstat"), []byte(line), 0o644))
	}
	useRoot(t, root)
	d, err := procstat.CPU(9)
	require.NoError(t, err)
	require.Equal(t, 3500*time.Nanosecond, d)
}

// useRoot points the package at a fake /proc for the test.
func useRoot(t *testing.T, root string) {
	old := procstat.Root
	procstat.Root = root
	t.Cleanup(func() { procstat.Root = old })
}

func TestSince(t *testing.T) {
	before := procstat.Sample{1: 10 * time.Millisecond, 2: 5 * time.Millisecond, 3: time.Second}
	after := procstat.Sample{1: 30 * time.Millisecond, 2: 5 * time.Millisecond, 4: 7 * time.Millisecond}
	d := after.Since(before)
	// pid 1: +20 ms, pid 2: +0, pid 4 new: all its 7 ms, pid 3 gone: lost.
	require.Equal(t, procstat.Delta{Total: 27 * time.Millisecond, New: 1, Gone: 1}, d)
	require.Equal(t, procstat.Delta{}, procstat.Sample{}.Since(procstat.Sample{}))
}

// TestMemory: this process's RSS is read in bytes, and grows by about what
// it touches; a missing field or pid is an error.
func TestMemory(t *testing.T) {
	before, err := procstat.Memory(0, "VmRSS")
	require.NoError(t, err)
	require.Greater(t, before, int64(1<<20))
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	after, err := procstat.Memory(os.Getpid(), "VmRSS")
	require.NoError(t, err)
	require.Greater(t, after-before, int64(32<<20))
	peak, err := procstat.Memory(0, "VmHWM")
	require.NoError(t, err)
	require.GreaterOrEqual(t, peak, after)
	_ = buf[len(buf)-1]

	_, err = procstat.Memory(0, "NoSuchField")
	require.Error(t, err)
	_, err = procstat.Memory(1<<30, "VmRSS")
	require.Error(t, err)
}
