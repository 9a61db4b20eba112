package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coinop/coinop/config"
)

// runConfig runs `coinop config SUBCOMMAND`; upgrade is the one there is.
func runConfig(_ context.Context, args []string, env Env) error {
	fs := newFlagSet("config", env)
	path := fs.String("c", "coinop.yaml", "config file")
	write := fs.Bool("w", false, "rewrite the file in place instead of printing it")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "upgrade" {
		fmt.Fprint(env.Stderr, "usage: coinop config upgrade -c coinop.yaml [-w]; try 'coinop config --help'\n")
		return &exitError{2, errors.New("")}
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	out, err := config.Upgrade(*path, data)
	if err != nil {
		return err
	}
	if !*write {
		_, err := env.Stdout.Write(out)
		return err
	}
	return replaceFile(*path, out)
}

// replaceFile writes data over path through a temporary file in the same
// directory, renamed into place, keeping path's permissions: a crash or a
// full disk leaves the old file whole, never half a configuration.
func replaceFile(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
