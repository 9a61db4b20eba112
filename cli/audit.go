package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/gateway"
)

// runAudit reconciles a gateway's journal with its chains and exits 1 on
// any discrepancy.
func runAudit(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("audit", env)
	path := fs.String("c", "coinop.yaml", "the gateway's config file (coinop dev writes .coinop/dev/coinop.yaml)")
	fromBlock := fs.Uint64("from-block", 0, "scan payee transfers from this block on")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	store, err := gateway.OpenJournal(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer store.Close()
	chains := map[string]*evm.Chain{}
	for _, n := range cfg.Networks {
		if n.Facilitator != "" && n.RPC == "" {
			// No node to read; its settled payments are reported unchecked.
			fmt.Fprintf(env.Stderr, "coinop audit: network %s is settled by the facilitator %s; configure its rpc to audit it\n", n.ID, n.Facilitator)
			continue
		}
		cl, err := ethclient.DialContext(ctx, n.RPC)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.ID, err)
		}
		defer cl.Close()
		if chains[n.ID], err = evm.NewChain(evm.ChainConfig{Network: n.ID, ChainID: n.ChainID(), Backend: cl}); err != nil {
			return err
		}
	}
	var payees []audit.Payee
	seen := map[audit.Payee]bool{}
	for _, r := range cfg.AllRails() {
		x, ok := r.Settings.(*config.X402Rail)
		if !ok {
			continue
		}
		res := x.Resolved
		pe := audit.Payee{Network: res.Network.ID, Asset: common.HexToAddress(res.Asset.Address), PayTo: common.HexToAddress(res.PayTo)}
		if !seen[pe] {
			seen[pe] = true
			payees = append(payees, pe)
		}
	}
	rep, err := audit.Run(ctx, store, chains, payees, *fromBlock)
	if err != nil {
		return err
	}
	ledgerLine, err := auditCredits(ctx, cfg, store, rep)
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(env.Stdout, "DISCREPANCY", p)
	}
	if ledgerLine != "" {
		fmt.Fprintln(env.Stdout, ledgerLine)
	}
	fmt.Fprintf(env.Stdout, "audit: %d settled payments checked, %d payee transfers found, %d discrepancies\n", rep.Settled, rep.Transfers, len(rep.Problems))
	if !rep.Clean() {
		return &exitError{1, errors.New("")}
	}
	return nil
}

// auditCredits audits the credits ledger when a credits rail is configured,
// and returns its summary line ("" when none is).
func auditCredits(ctx context.Context, cfg *config.Config, j gateway.Journal, rep *audit.Report) (string, error) {
	if !slices.ContainsFunc(cfg.Rails, func(r *config.Rail) bool { return r != nil && r.Kind == config.KindCredits }) {
		return "", nil
	}
	st, ok := j.(credits.Store)
	if !ok {
		return "", errors.New("the journal cannot hold a credits ledger")
	}
	led, err := credits.Open(ctx, st, time.Now, rand.Reader)
	if err != nil {
		return "", err
	}
	cr, err := rep.Credits(ctx, led)
	if err != nil {
		return "", err
	}
	t := cr.Totals
	return fmt.Sprintf("credits: %d accounts, purchased %d, debited %d, released %d, balances %d (= purchased - debited + released: %v), %d settled charges, %d debits, %d pending purchases",
		t.Accounts, t.Purchased, t.Debited, t.Released, t.Balances, t.Clean(), cr.Charges, t.Debits, t.Pending), nil
}
