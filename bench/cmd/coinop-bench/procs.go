package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// world owns the processes of one bench run and stops every one of them,
// by process group id, when the run ends.
type world struct {
	dir   string // scratch directory: configs, logs, journals
	mu    sync.Mutex
	procs []*proc
}

// proc is one started process. Its stdout lines are kept for waitLine; both
// streams are copied to logPath.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	lines   chan string
	done    chan struct{}
}

// start runs bin with args and extra environment in its own process group.
func (w *world) start(name, bin string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(w.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer logf.Close()
		sc := bufio.NewScanner(io.TeeReader(out, logf))
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
		cmd.Wait()
	}()
	w.mu.Lock()
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	return p, nil
}

// waitLine returns the first stdout line containing substr.
func (p *proc) waitLine(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line := <-p.lines:
			if strings.Contains(line, substr) {
				return line, nil
			}
		case <-p.done:
			return "", fmt.Errorf("%s exited before it was ready; log: %s\n%s", p.name, p.logPath, tail(p.logPath))
		case <-t.C:
			return "", fmt.Errorf("%s not ready after %s; log: %s\n%s", p.name, timeout, p.logPath, tail(p.logPath))
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends p's process group: SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// close stops every process the world started, newest first.
func (w *world) close() {
	w.mu.Lock()
	ps := w.procs
	w.procs = nil
	w.mu.Unlock()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].stop()
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
