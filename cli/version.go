package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion prints the module path and version, and the VCS revision,
// time and modified flag the binary was built from, so a bug report names
// exactly what ran. A binary built inside a clean clone has the pseudo-version
// the go command derives from the commit (v0.0.0-<time>-<hash>, "+dirty" when
// modified), "(devel)" where it could not stamp one; `go install …@v1.2.3`
// gives the tag.
func runVersion(args []string, env Env) error {
	fs := newFlagSet("version", env)
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(env.Stdout, "coinop (no build information) %s\n", runtime.Version())
		return nil
	}
	writeVersion(env.Stdout, bi)
	return nil
}

func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	path := bi.Main.Path
	if path == "" {
		path = bi.Path
	}
	fmt.Fprintf(w, "coinop %s %s\n", path, version)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(w, "  vcs.revision  %s\n", rev)
		fmt.Fprintf(w, "  vcs.time      %s\n", settings["vcs.time"])
		fmt.Fprintf(w, "  vcs.modified  %s\n", settings["vcs.modified"])
	} else {
		fmt.Fprintln(w, "  vcs           none recorded (built without VCS stamping)")
	}
	fmt.Fprintf(w, "  go            %s\n", bi.GoVersion)
}
