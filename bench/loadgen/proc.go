package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ),
// 100 Hz on every Linux architecture Go supports for this tool.
const clockTick = 10 * time.Millisecond

// Usage is what a group of processes consumed, read from /proc.
type Usage struct {
	CPU     time.Duration // user + system time, summed over the processes
	PeakRSS int64         // bytes: VmHWM summed over the processes
}

// Procs is a set of root processes, each counted with its descendants, as
// one target: nginx's master and workers, node and its helpers.
type Procs []int

// Usage reads the current CPU time and peak RSS of ps and their descendants.
// Processes that have exited are skipped.
func (ps Procs) Usage() (Usage, error) {
	var u Usage
	pids, err := ps.tree()
	if err != nil {
		return u, err
	}
	for _, pid := range pids {
		cpu, err := cpuTime(pid)
		if err != nil {
			continue
		}
		u.CPU += cpu
		if rss, err := peakRSS(pid); err == nil {
			u.PeakRSS += rss
		}
	}
	return u, nil
}

// ResetPeak resets the peak RSS of ps and their descendants to their current
// RSS (Linux: "5" to /proc/<pid>/clear_refs), so that a process serving
// several measurements reports the peak of each. It reports whether every
// reset succeeded.
func (ps Procs) ResetPeak() bool {
	pids, err := ps.tree()
	if err != nil {
		return false
	}
	ok := true
	for _, pid := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			ok = false
		}
	}
	return ok
}

// tree lists ps and every live descendant.
func (ps Procs) tree() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := parentOf(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	seen := map[int]bool{}
	queue := append([]int(nil), ps...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out, nil
}

// statFields returns the fields of /proc/<pid>/stat after the command name
// (which may contain spaces), so index 0 is the state (field 3).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

func parentOf(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(f[1])
}

// cpuTime is utime + stime (fields 14 and 15).
func cpuTime(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// Status returns the named kB fields of /proc/<pid>/status (VmHWM, RssAnon,
// RssFile, Threads, …) summed over ps and their descendants, in bytes (or
// counts, for fields without a unit).
func (ps Procs) Status(fields ...string) map[string]int64 {
	out := map[string]int64{}
	pids, _ := ps.tree()
	for _, pid := range pids {
		for _, f := range fields {
			if v, err := statusField(pid, f); err == nil {
				out[f] += v
			}
		}
	}
	return out
}

// peakRSS reads VmHWM from /proc/<pid>/status.
func peakRSS(pid int) (int64, error) { return statusField(pid, "VmHWM") }

func statusField(pid int, field string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			if len(f) > 1 && f[1] == "kB" {
				n <<= 10
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
