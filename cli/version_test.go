package cli

import (
	"bytes"
	"runtime/debug"
	"testing"
)

// TestWriteVersion pins what `coinop version` prints for the build
// information a release, a stamped checkout and an unstamped one carry.
func TestWriteVersion(t *testing.T) {
	stamped := []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "4dc1d90e1a2b3c4d5e6f708192a3b4c5d6e7f809"},
		{Key: "vcs.time", Value: "2026-12-01T22:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}
	cases := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"go install @v1.2.0", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/coinop/coinop", Version: "v1.2.0"}},
			"coinop github.com/coinop/coinop v1.2.0\n  vcs           none recorded (built without VCS stamping)\n  go            go1.26.8\n"},
		{"stamped checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/coinop/coinop", Version: "(devel)"}, Settings: stamped},
			"coinop github.com/coinop/coinop (devel)\n  vcs.revision  4dc1d90e1a2b3c4d5e6f708192a3b4c5d6e7f809\n  vcs.time      2026-12-01T22:00:00Z\n  vcs.modified  true\n  go            go1.26.8\n"},
		{"no module version", debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/coinop/coinop/cmd/coinop"},
			"coinop github.com/coinop/coinop/cmd/coinop (devel)\n  vcs           none recorded (built without VCS stamping)\n  go            go1.26.8\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			writeVersion(&b, &c.bi)
			if b.String() != c.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), c.want)
			}
		})
	}
}
