package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/gateway"
)

// creditsFile is where curl keeps credits tokens, per origin, in the data
// dir: one JSON file only its owner may read.
func creditsFile(data string) string { return filepath.Join(data, "credits.json") }

// creditsMethod buys credits plans with x and keeps their tokens in the
// data dir; a plan is bought only when the policy allows its price.
func (p *payFlags) creditsMethod(env Env, x *client.X402) *client.Credits {
	c := &client.Credits{Pay: []client.Method{x}, Plan: p.plan,
		Store: &client.CreditStore{Path: creditsFile(dataDir(p.data, env))}}
	if !p.silent {
		c.OnBalance = func(origin string, h client.CreditHolding) {
			fmt.Fprintf(env.Stderr, "* credits at %s: %s\n", origin, holding(h))
		}
	}
	return c
}

// holding says where an account stands, for people.
func holding(h client.CreditHolding) string {
	s := fmt.Sprintf("balance %d", h.Balance)
	if !h.PassUntil.IsZero() {
		s += ", pass until " + h.PassUntil.Format(time.RFC3339)
	}
	if h.Low {
		s += " (too low: the next purchase tops it up)"
	}
	return s
}

// runCredits lists the credits tokens curl holds, per origin, without the
// tokens themselves; `coinop credits revoke TOKEN -c coinop.yaml` is the
// seller's: it revokes a token in the gateway's ledger.
func runCredits(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("credits", env)
	dataFlag := fs.String("data-dir", "", "coinop data dir; default $COINOP_DATA or ./.coinop")
	cfgPath := fs.String("c", "coinop.yaml", "with revoke: the gateway's config file")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 2 && pos[0] == "revoke":
		return revokeToken(ctx, *cfgPath, pos[1], env)
	case len(pos) != 0:
		fmt.Fprint(env.Stderr, "usage: coinop credits [--data-dir DIR], or coinop credits revoke TOKEN -c coinop.yaml; try 'coinop credits --help'\n")
		return &exitError{2, errors.New("")}
	}
	path := creditsFile(dataDir(*dataFlag, env))
	all, err := (&client.CreditStore{Path: path}).List()
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Fprintf(env.Stdout, "no credits held (%s); `coinop curl` buys a plan when a 402 offers one\n", path)
		return nil
	}
	origins := make([]string, 0, len(all))
	for o := range all {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORIGIN\tPLAN\tACCOUNT\tSTANDING\tTOKEN\tUPDATED")
	for _, o := range origins {
		h := all[o]
		tok := h.Token
		if len(tok) > 8 {
			tok = tok[:8] + "…"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", o, h.Plan, h.Account, holding(h), tok, h.Updated.Format(time.RFC3339))
	}
	w.Flush()
	fmt.Fprintf(env.Stdout, "(%d origins, in %s)\n", len(origins), strings.TrimSpace(path))
	return nil
}

// revokeToken revokes token in the ledger of the gateway cfgPath describes.
func revokeToken(ctx context.Context, cfgPath, token string, env Env) error {
	hash, err := credits.ParseToken(token)
	if err != nil {
		return &exitError{2, errors.New("not a credits token (cop_…)")}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	j, err := gateway.OpenJournal(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer j.Close()
	st, ok := j.(credits.Store)
	if !ok {
		return errors.New("the journal cannot hold a credits ledger")
	}
	led, err := credits.Open(ctx, st, time.Now, rand.Reader)
	if err != nil {
		return err
	}
	known, err := led.Revoke(ctx, hash)
	if err != nil {
		return err
	}
	if !known {
		return &exitError{1, errors.New("no such token in this gateway's ledger")}
	}
	fmt.Fprintln(env.Stdout, "revoked: the token can no longer be charged or topped up")
	return nil
}
