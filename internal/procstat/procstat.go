// Package procstat reads the CPU time Linux processes have used, from /proc,
// so that a benchmark can report the CPU each process spends per request.
//
//	before := procstat.Read(pids)
//	... the work ...
//	cpu := procstat.Read(pids).Since(before) // per pid, and Total
//
// CPU time is the sum over a process's threads of their time on a CPU
// (/proc/<pid>/task/<tid>/schedstat, in nanoseconds), user and system alike.
// Where schedstat is missing (a kernel without CONFIG_SCHED_INFO) it falls
// back to utime + stime of /proc/<pid>/stat, in clock ticks of 10 ms. A
// thread that exits between two samples takes its time with it under
// schedstat; Go programs, PostgreSQL backends and redis-server keep their
// threads, which is what this package is for.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Root is the proc file system; tests point it at a fake tree.
var Root = "/proc"

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go runs on.
const userHZ = 100

// CPU returns the CPU time process pid has used so far, all its threads.
func CPU(pid int) (time.Duration, error) {
	if d, err := schedCPU(pid); err == nil {
		return d, nil
	}
	return StatCPU(pid)
}

// schedCPU sums the first field of every thread's schedstat.
func schedCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(filepath.Join(Root, strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil {
		return 0, err
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("procstat: no schedstat for pid %d", pid)
	}
	var sum time.Duration
	read := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited after the glob
		}
		ns, err := ParseSchedstat(b)
		if err != nil {
			return 0, err
		}
		sum += ns
		read++
	}
	if read == 0 {
		return 0, fmt.Errorf("procstat: pid %d is gone", pid)
	}
	return sum, nil
}

// StatCPU returns utime + stime of /proc/<pid>/stat: the process's CPU time,
// threads that exited included, at a resolution of 10 ms.
func StatCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	u, s, err := ParseStat(b)
	if err != nil {
		return 0, err
	}
	return time.Duration(u+s) * (time.Second / userHZ), nil
}

// ParseSchedstat reads the time on a CPU, in nanoseconds, from a schedstat
// line: "<on-cpu ns> <waiting ns> <timeslices>".
func ParseSchedstat(b []byte) (time.Duration, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, fmt.Errorf("procstat: schedstat %q: want 3 fields", b)
	}
	ns, err := strconv.ParseUint(string(f[0]), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("procstat: schedstat %q: %w", b, err)
	}
	return time.Duration(ns), nil
}

// ParseStat reads utime and stime (fields 14 and 15, in clock ticks) from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses: the fields are counted from the
// last ')'.
func ParseStat(b []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("procstat: stat has no command name")
	}
	// After ')': state (field 3), ..., utime is field 14, stime field 15.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("procstat: stat has %d fields after the command name, want at least 13", len(f))
	}
	if utime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("procstat: utime: %w", err)
	}
	if stime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("procstat: stime: %w", err)
	}
	return utime, stime, nil
}

// Sample is the CPU time of a set of processes at one moment, by pid.
type Sample map[int]time.Duration

// Read samples the CPU time of pids. A pid that is not running is left out.
func Read(pids []int) Sample {
	s := make(Sample, len(pids))
	for _, pid := range pids {
		if d, err := CPU(pid); err == nil {
			s[pid] = d
		}
	}
	return s
}

// Delta is the CPU time a set of processes used between two samples.
type Delta struct {
	Total time.Duration
	// New is the processes seen only in the later sample: all their time
	// counts, since they started in between. Gone is those seen only in the
	// earlier one: their time since then is lost (not in Total).
	New, Gone int
}

// Since returns the CPU time used between before and s, summed over the
// processes of s.
func (s Sample) Since(before Sample) Delta {
	var d Delta
	for pid, t := range s {
		if b, ok := before[pid]; ok {
			d.Total += t - b
		} else {
			d.Total += t
			d.New++
		}
	}
	for pid := range before {
		if _, ok := s[pid]; !ok {
			d.Gone++
		}
	}
	return d
}

// Memory returns one memory field of /proc/<pid>/status, such as "VmRSS" or
// "VmHWM" (peak RSS), in bytes; pid 0 is this process.
func Memory(pid int, field string) (int64, error) {
	proc := "self"
	if pid != 0 {
		proc = strconv.Itoa(pid)
	}
	b, err := os.ReadFile(filepath.Join(Root, proc, "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) >= 2 && string(f[0]) == field+":" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procstat: %s of pid %s: %w", field, proc, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("procstat: no %s in /proc/%s/status", field, proc)
}
