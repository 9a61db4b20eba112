// Package audit reconciles the payments journal with the chain: every
// settled payment must have a successful transaction carrying its exact
// Transfer, every transfer to a payee must belong to exactly one settled
// payment, no payment may be left unfinished, and no served response may
// lack its payment (served, then failed, released or still settling), but
// for a bearer charge given back because the upstream it paid for failed
// (a forward-auth report), which the credits ledger accounts for.
package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/evm"
)

// Journal is the part of a payments journal the audit reads.
type Journal interface {
	List(ctx context.Context, state coinop.State, limit int) ([]*coinop.Payment, error)
	Unfinished(ctx context.Context) ([]*coinop.Payment, error)
}

// Payee is one (network, asset, recipient) whose incoming transfers must all
// be accounted for.
type Payee struct {
	Network string
	Asset   common.Address
	PayTo   common.Address
}

// Report is the audit's result. It is clean when Problems is empty.
type Report struct {
	Settled   int // settled journal entries checked on chain
	Transfers int // transfers to payees found on chain
	Problems  []string

	credits []*coinop.Payment // settled credits charges, for Credits
}

// Clean reports whether the journal and the chain agree.
func (r *Report) Clean() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// unpaid reports a served payment whose money has not moved.
func (r *Report) unpaid(p *coinop.Payment, what string) {
	r.problem("payment %s was served on %s but %s: %s of asset %s from %s to %s (state %s, reason %q, tx %q)",
		p.ID, p.Served.Format(time.RFC3339), what, p.Amount, p.Asset, p.Payer, p.PayTo, p.State, p.Reason, p.Reference)
}

// upstreamStatus is the prefix of coinop.ReasonUpstreamStatus.
var upstreamStatus = strings.TrimSuffix(coinop.ReasonUpstreamStatus(0), "0")

// givenBack reports whether p is a credits charge the check answered and
// then gave back, reported failed by the proxy's upstream
// (paywall.Paywall.Refund): the buyer was charged nothing, and the ledger's
// release of its debit is counted by Credits.
func givenBack(p *coinop.Payment) bool {
	return p.State == coinop.StateReleased && p.Bearer && p.Network == credits.Network && strings.HasPrefix(p.Reason, upstreamStatus)
}

// Run audits the journal against chains (by CAIP-2 network) for the given
// payees, scanning transfers from fromBlock on. An error means the audit
// could not complete (store or chain unreachable), not a discrepancy.
func Run(ctx context.Context, j Journal, chains map[string]*evm.Chain, payees []Payee, fromBlock uint64) (*Report, error) {
	rep := &Report{}
	unfinished, err := j.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range unfinished {
		if !p.Served.IsZero() {
			rep.unpaid(p, "is not settled yet")
			continue
		}
		rep.problem("payment %s is not final (%s, tx %q, reason %q)", p.ID, p.State, p.Reference, p.Reason)
	}
	// A response served for a payment that did not settle is money the
	// seller gave away: recovery says so loudly, and so does the audit,
	// every time, until an operator deals with it.
	for _, st := range []coinop.State{coinop.StateFailed, coinop.StateReleased} {
		ps, err := j.List(ctx, st, 0)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if !p.Served.IsZero() && !givenBack(p) {
				rep.unpaid(p, "was not paid")
			}
		}
	}
	settled, err := j.List(ctx, coinop.StateSettled, 0)
	if err != nil {
		return nil, err
	}
	byTx := map[string][]*coinop.Payment{}
	for _, p := range settled {
		if p.Network == credits.Network {
			rep.credits = append(rep.credits, p) // checked against the ledger (Credits)
			continue
		}
		rep.Settled++
		if p.Reference == "" {
			rep.problem("payment %s is settled without a transaction", p.ID)
			continue
		}
		key := strings.ToLower(p.Reference)
		byTx[key] = append(byTx[key], p) // a batch settles several payments in one transaction
		ch, ok := chains[p.Network]
		if !ok {
			rep.problem("payment %s is on network %s, which is not configured", p.ID, p.Network)
			continue
		}
		err := ch.TransferCheck(ctx, p.Reference, common.HexToAddress(p.Asset), common.HexToAddress(p.Payer), common.HexToAddress(p.PayTo), p.Amount)
		if err != nil {
			rep.problem("payment %s: %v", p.ID, err)
		}
	}
	// Each transfer to a payee must match one settled payment of its
	// transaction (same payer, same amount), and no payment may match twice.
	matched := map[*coinop.Payment]bool{}
	for _, pe := range payees {
		ch, ok := chains[pe.Network]
		if !ok {
			continue
		}
		ts, err := ch.TransfersTo(ctx, pe.Asset, pe.PayTo, fromBlock)
		if err != nil {
			return nil, fmt.Errorf("transfers to %s on %s: %w", pe.PayTo.Hex(), pe.Network, err)
		}
		for _, t := range ts {
			rep.Transfers++
			var match *coinop.Payment
			for _, p := range byTx[strings.ToLower(t.Tx.Hex())] {
				if !matched[p] && t.Value.Cmp(p.Amount) == 0 && strings.EqualFold(t.From.Hex(), p.Payer) && strings.EqualFold(t.To.Hex(), p.PayTo) {
					match = p
					break
				}
			}
			if match == nil {
				rep.problem("transfer of %s from %s to %s in %s (block %d) has no settled payment", t.Value, t.From.Hex(), t.To.Hex(), t.Tx.Hex(), t.Block)
				continue
			}
			matched[match] = true
		}
	}
	return rep, nil
}
