// Package clitest runs long-lived coinop commands (dev, serve, facilitator)
// in-process for tests, the way httptest runs servers.
package clitest

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/cli"
)

// ReadyTimeout bounds how long Start waits for a command's ready line.
const ReadyTimeout = 60 * time.Second

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs `coinop args...` in-process until t ends, waits for its stdout
// to match ready, and returns ready's first submatch (the URL it serves). At
// the end of t the command is cancelled and must exit 0 within 40 seconds.
func Start(t testing.TB, ready *regexp.Regexp, args ...string) string {
	t.Helper()
	url, _ := StartOutput(t, ready, args...)
	return url
}

// StartOutput is Start that also returns the command's stdout, which keeps
// growing while the command runs.
func StartOutput(t testing.TB, ready *regexp.Regexp, args ...string) (string, *Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &Buffer{}, &Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, args, cli.Env{Stdout: out, Stderr: errOut, Stdin: strings.NewReader("")})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("coinop %s exited %d\n%s", args[0], code, errOut)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("coinop %s did not stop", args[0])
		}
	})
	deadline := time.Now().Add(ReadyTimeout)
	for {
		if m := ready.FindStringSubmatch(out.String()); m != nil {
			return m[1], out
		}
		select {
		case code := <-done:
			t.Fatalf("coinop %s exited %d before it was ready\n%s\n%s", args[0], code, out, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("coinop %s not ready after %s\n%s\n%s", args[0], ReadyTimeout, out, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
