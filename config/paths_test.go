package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/config"
)

// TestLoadResolvesPathsAgainstTheFile: relative paths in coinop.yaml are
// relative to the file's directory, whatever the working directory;
// absolute paths and URLs are kept.
func TestLoadResolvesPathsAgainstTheFile(t *testing.T) {
	input, _ := readCase(t, "testdata/minimal.txt")
	network := "settlement_key_env: COINOP_SETTLEMENT_KEY"
	cases := []struct {
		name      string
		settings  string // prepended to minimal.txt
		keyFile   string // replaces settlement_key_env; "" keeps it
		wantStore string // relative to the file's directory unless absolute
		wantData  string
		wantKey   string
	}{
		{"defaults", "", "", ".coinop/coinop.db", ".coinop", ""},
		{"relative", "store: journal/coinop.db\ndata_dir: state\n", "keys/settler.key", "journal/coinop.db", "state", "keys/settler.key"},
		{"dot and parent", "store: ./j.db\ndata_dir: ../shared\n", "../keys/s.key", "j.db", "../shared", "../keys/s.key"},
		{"absolute", "store: /var/lib/coinop/j.db\ndata_dir: /var/lib/coinop\n", "/etc/coinop/s.key", "/var/lib/coinop/j.db", "/var/lib/coinop", "/etc/coinop/s.key"},
		{"postgres URL", "store: postgres://coinop@127.0.0.1:5432/coinop\n", "", "postgres://coinop@127.0.0.1:5432/coinop", ".coinop", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "site")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			text := c.settings + input
			if c.keyFile != "" {
				text = strings.Replace(text, network, "settlement_key_file: "+c.keyFile, 1)
			}
			path := filepath.Join(dir, "coinop.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Chdir(t.TempDir()) // anywhere but dir
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := func(p string) string {
				if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
					return p
				}
				return filepath.Join(dir, p)
			}
			if cfg.Store != want(c.wantStore) || cfg.DataDir != want(c.wantData) || cfg.Networks[0].SettlementKeyFile != want(c.wantKey) {
				t.Errorf("store %q data_dir %q key %q, want %q %q %q", cfg.Store, cfg.DataDir, cfg.Networks[0].SettlementKeyFile,
					want(c.wantStore), want(c.wantData), want(c.wantKey))
			}
		})
	}
}
