//go:build unix

package clitest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Time bounds for the peer processes tests start.
const (
	StartTimeout   = 60 * time.Second // until a server accepts connections
	ProcessTimeout = 5 * time.Minute  // the longest any child process may live
	StopTimeout    = 15 * time.Second // from SIGTERM to SIGKILL
)

// Tool finds an installed program. Without it the test is skipped, or, when
// COINOP_CI=1, fails: CI installs every tool the tests use.
func Tool(t testing.TB, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	Missing(t, "%s is not installed (scripts/deps/webservers.sh installs it)", name)
	return ""
}

// Missing skips t, or fails it under COINOP_CI=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("COINOP_CI") == "1" {
		t.Fatalf("COINOP_CI=1 and %s", msg)
	}
	t.Skip(msg)
}

// SharedDir makes a directory that web servers' unprivileged workers
// (nobody, www-data) can read, unlike t.TempDir's.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "coinop-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ErrAddrInUse reports a server that lost the race for its port.
var ErrAddrInUse = errors.New("address in use")

// StartProcess starts cmd in its own process group, waits until addr accepts
// connections and stops the whole group when the test ends. logs are files
// worth showing when the process fails. It returns ErrAddrInUse when the
// process exited because another took its port, so the caller may retry on
// another one.
func StartProcess(t testing.TB, cmd *exec.Cmd, addr string, logs ...string) error {
	t.Helper()
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(StopTimeout):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// Workers that outlived their parent belong to the same group.
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	// Bound the process's life even if the test hangs.
	limit := time.AfterFunc(ProcessTimeout, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	t.Cleanup(func() { limit.Stop(); stop() })

	report := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n%s", strings.Join(cmd.Args, " "), out)
		for _, l := range logs {
			if s, err := os.ReadFile(l); err == nil {
				fmt.Fprintf(&b, "\n--- %s\n%s", l, s)
			}
		}
		return b.String()
	}
	deadline := time.Now().Add(StartTimeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			r := report()
			if strings.Contains(r, "in use") {
				return ErrAddrInUse
			}
			t.Fatalf("exited before listening on %s:\n%s", addr, r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening on %s after %s:\n%s", addr, StartTimeout, report())
		}
		time.Sleep(25 * time.Millisecond)
	}
}
