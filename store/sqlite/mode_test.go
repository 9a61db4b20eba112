//go:build unix

package sqlite_test

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store/sqlite"
)

// TestJournalFileModes: the journal and its -wal and -shm files are the
// owner's alone (0600) whatever the umask, and a journal left readable by
// others is made private when opened.
func TestJournalFileModes(t *testing.T) {
	old := syscall.Umask(0) // the loosest umask: files are as open as they are created
	t.Cleanup(func() { syscall.Umask(old) })
	for _, c := range []struct {
		name  string
		setup func(path string) error
	}{
		{"new", func(string) error { return nil }},
		{"existing, readable by others", func(path string) error {
			s, err := sqlite.Open(path)
			if err != nil {
				return err
			}
			if err := s.Close(); err != nil {
				return err
			}
			return os.Chmod(path, 0o644)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			path := filepath.Join(dir, "coinop.db")
			if err := c.setup(path); err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			// A write makes sure the -wal and -shm files exist.
			p := &coinop.Payment{ID: "p-" + c.name, Rail: "test", Network: "eip155:1", Asset: "0xa", Payer: "0xb", PayTo: "0xc",
				ReplayKey: "0x1", Amount: big.NewInt(1), Mode: coinop.ModeSync}
			if err := s.Reserve(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s: mode %04o, want 0600", filepath.Base(f), m)
				}
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("directory: %v %v, want 0700", fi.Mode(), err)
			}
		})
	}
}
