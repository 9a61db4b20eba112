package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestStartupMistakesExitCleanly runs the real binary on start-up mistakes:
// each exits 1 with one line on stderr, and no stack trace reaches it.
func TestStartupMistakesExitCleanly(t *testing.T) {
	bin := buildCoinop(t)
	dir := t.TempDir()
	n := 0
	config := func(store, key string) string {
		n++
		path := filepath.Join(dir, fmt.Sprintf("%d", n), "coinop.yaml")
		if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		err := os.WriteFile(path, []byte(`listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
store: `+store+`
pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:1
    `+key+`
    assets:
      - symbol: USDC
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: USDC
        eip712_version: "2"
routes:
  - match: GET /weather
    price: 0.001 USDC
`), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	db := filepath.Join(dir, "coinop.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"serve: unset key variable", []string{"serve", "-c", config(db, "settlement_key_env: COINOP_TEST_UNSET_KEY")},
			`^coinop serve: \S+coinop\.yaml:8: networks\[0\]\.settlement_key_env: settlement key: environment variable COINOP_TEST_UNSET_KEY is empty$`},
		{"serve: missing key file", []string{"serve", "-c", config(db, "settlement_key_file: "+filepath.Join(dir, "none.key"))},
			`^coinop serve: \S+coinop\.yaml:8: networks\[0\]\.settlement_key_file: settlement key: open \S+none\.key: no such file or directory$`},
		{"serve: unreachable postgres", []string{"serve", "-c", config("postgres://coinop@127.0.0.1:1/coinop", "settlement_key_env: COINOP_TEST_UNSET_KEY")},
			`^coinop serve: \S+coinop\.yaml:3: store: postgres://127\.0\.0\.1:1/coinop: postgres: open: .*connection refused`},
		{"audit: bad store path", []string{"audit", "-c", config("/dev/null/coinop.db", "settlement_key_env: COINOP_TEST_UNSET_KEY")},
			`^coinop audit: store /dev/null/coinop\.db: sqlite: open: mkdir /dev/null: not a directory$`},
		{"facilitator: missing key file", []string{"facilitator", "--network", "eip155:84532=http://127.0.0.1:1", "--settlement-key-file", filepath.Join(dir, "none.key"), "--store", db},
			`^coinop facilitator: settlement key: open \S+none\.key: no such file or directory$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			cmd.Env = append(os.Environ(), "COINOP_TEST_UNSET_KEY=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want 1\n%s", err, &stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !regexp.MustCompile(c.want).MatchString(lines[0]) {
				t.Errorf("stderr:\n%s\nwant one line matching %s", &stderr, c.want)
			}
			if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "panic") {
				t.Errorf("a stack trace reached stderr:\n%s", &stderr)
			}
		})
	}
}
