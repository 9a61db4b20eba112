package eip3009_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/eip3009"
)

// TestLoadKeyRefusesOpenFiles: a key file its group or others may read or
// write is refused with the fix in the message; the owner's alone loads.
func TestLoadKeyRefusesOpenFiles(t *testing.T) {
	const hexKey = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, false},
		{0o604, false},
		{0o644, false},
		{0o620, false},
		{0o666, false},
	} {
		t.Run(c.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wallet.key")
			if err := os.WriteFile(path, []byte(hexKey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			k, err := eip3009.LoadKey(path)
			switch {
			case c.ok && (err != nil || k == nil):
				t.Fatalf("refused: %v", err)
			case !c.ok && (err == nil || !strings.Contains(err.Error(), "chmod 600 "+path)):
				t.Fatalf("loaded, or no fix named: %v", err)
			case err != nil && strings.Contains(err.Error(), hexKey[2:10]):
				t.Fatalf("the error shows key material: %v", err)
			}
		})
	}
}
