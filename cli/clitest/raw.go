//go:build unix

package clitest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Targets reads a corpus of request targets (adversarial/testdata/paths.txt):
// one a line; a line in double quotes is a Go string literal (for control
// bytes); empty lines and lines starting with "# " are skipped.
func Targets(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "# "):
			continue
		case strings.HasPrefix(line, `"`):
			s, err := strconv.Unquote(line)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
			line = s
		}
		targets = append(targets, line)
	}
	return targets
}

// Answer is a response to one raw request, or why there was none.
type Answer struct {
	Status int
	Header http.Header
	Body   string
	Err    error
}

// SendRaw writes "method target HTTP/1.1", Host 127.0.0.1 and the header
// lines verbatim on a fresh connection to addr, so that no client library
// normalizes the target, and reads the answer within 30 seconds.
func SendRaw(addr, method, target string, header ...string) Answer {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return Answer{Err: err}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return Answer{Err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return Answer{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Err: err}
}
