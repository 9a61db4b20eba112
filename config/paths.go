package config

import (
	"path/filepath"
	"strings"
)

// resolvePaths makes the file paths of a configuration read from a file
// absolute, relative to that file's directory (dir), not to the directory
// the command runs in: `coinop audit -c /srv/shop/coinop.yaml` run from
// anywhere must open the journal the gateway writes, or it would create an
// empty one and report every real transfer as unaccounted for. Absolute
// paths, URLs (a postgres:// store) and unset values are left as they are.
//
// Every path-like setting is resolved here, in one place; a new one must
// be added too.
func (c *Config) resolvePaths(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	resolve := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	resolve(&c.DataDir)
	if !strings.Contains(c.Store, "://") {
		resolve(&c.Store)
	}
	for _, n := range c.Networks {
		resolve(&n.SettlementKeyFile)
	}
	for _, r := range c.Rails {
		if ps, ok := r.Settings.(PathSettings); ok {
			for _, p := range ps.Paths() {
				resolve(p)
			}
		}
	}
}
