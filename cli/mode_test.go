//go:build unix

package cli_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/cli/clitest"
)

// TestDevFileModes: what `coinop dev` writes (keys, config, chain state,
// journal) is its owner's alone whatever the umask, and files and a
// directory a previous run left open to others are made private.
func TestDevFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	data := t.TempDir()
	dir := filepath.Join(data, "dev")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, _ := crypto.GenerateKey()
	for _, name := range []string{"payer.key", "settler.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(hex.EncodeToString(crypto.FromECDSA(k))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clitest.Start(t, regexp.MustCompile(`ready: gateway (http://\S+)`),
		"dev", "--listen", "127.0.0.1:0", "--rpc-listen", "127.0.0.1:0", "--data", data)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v, want 0700", dir, fi.Mode(), err)
	}
	for _, name := range []string{"payer.key", "settler.key", "coinop.yaml", "chain.json", "coinop.db"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", name, m)
		}
	}
}
