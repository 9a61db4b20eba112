package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/config"
)

// TestUpgrade upgrades every golden input that loads and checks that the
// result loads, configures the same gateway (the same canonical form: the
// same routes, prices and rails, names included) and is what
// testdata/upgrade/<name>.yaml holds. Upgrading it again changes nothing.
func TestUpgrade(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	upgraded := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		input, _ := readCase(t, file)
		c, err := config.Parse("coinop.yaml", []byte(input))
		if err != nil {
			continue // only files that load are upgraded
		}
		upgraded++
		t.Run(name, func(t *testing.T) {
			out, err := config.Upgrade("coinop.yaml", []byte(input))
			if err != nil {
				t.Fatalf("Upgrade: %v", err)
			}
			golden := filepath.Join("testdata", "upgrade", name+".yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if want, err := os.ReadFile(golden); err != nil || !bytes.Equal(out, want) {
				t.Errorf("upgraded:\n%s\nwant (%s, %v):\n%s", out, golden, err, want)
			}
			u, err := config.Parse("upgraded.yaml", out)
			if err != nil {
				t.Fatalf("the upgraded file does not load: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "\n    price:") {
				t.Errorf("a route keeps the older form:\n%s", out)
			}
			before, _ := c.Canonical()
			after, _ := u.Canonical()
			if !bytes.Equal(before, after) {
				t.Errorf("the upgraded file configures another gateway:\n%s\nbefore:\n%s", after, before)
			}
			again, err := config.Upgrade("upgraded.yaml", out)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("upgrading again: %v\n%s", err, again)
			}
		})
	}
	if upgraded == 0 {
		t.Fatal("no golden input loads")
	}
}

// Mixed forms and files that do not load are refused with Parse's
// line-numbered problems.
func TestUpgradeRefusesBrokenFiles(t *testing.T) {
	input, want := readCase(t, "testdata/bad_accept.txt")
	_, err := config.Upgrade("coinop.yaml", []byte(input))
	if err == nil || err.Error()+"\n" != want {
		t.Errorf("Upgrade: %v\nwant %s", err, want)
	}
}

// FuzzUpgrade checks the property Upgrade promises: a file that loads
// upgrades to one that loads and configures the same gateway.
func FuzzUpgrade(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			if _, uerr := config.Upgrade("fuzz.yaml", data); uerr == nil {
				t.Fatalf("Upgrade accepted a file Parse refuses: %v", err)
			}
			return
		}
		out, err := config.Upgrade("fuzz.yaml", data)
		if err != nil {
			var e *config.Error
			if errors.As(err, &e) && strings.Contains(err.Error(), "cannot upgrade") {
				return // aliases and merge keys are left to the operator
			}
			t.Fatalf("Upgrade of a file that loads: %v", err)
		}
		u, err := config.Parse("upgraded.yaml", out)
		if err != nil {
			t.Fatalf("the upgraded file does not load: %v\n%s", err, out)
		}
		before, _ := c.Canonical()
		after, _ := u.Canonical()
		if !bytes.Equal(before, after) {
			t.Fatalf("the upgraded file configures another gateway:\n%s\nbefore:\n%s", after, before)
		}
	})
}
