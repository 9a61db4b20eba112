package client

import (
	"fmt"
	"math/big"
	"strings"
	"sync"
)

// Policy limits what a Transport may pay. Limits are per unit of account:
// an amount in one unit never counts against another's. The zero Policy
// refuses every payment.
type Policy struct {
	// MaxAmount is the most one request may cost in an EVM token's atomic
	// units, for tokens Limits does not name. A nil MaxAmount refuses
	// every token payment Limits does not allow.
	MaxAmount *big.Int
	// Budget is the most all payments in one token may cost together, for
	// tokens Limits does not name. Nil means no total limit.
	Budget *big.Int
	// MaxName names MaxAmount in refusals ("--max-amount"); "" says "the
	// per-request maximum".
	MaxName string
	// Limits are the limits of the units they name (Price.Unit: UnitMsat,
	// TokenUnit(…)). A unit with neither an entry here nor, for an EVM
	// token, MaxAmount is never paid.
	Limits map[string]Limit
	// Networks, Assets and PayTo, when non-empty, list the only networks,
	// token addresses and recipients that may be paid (compared
	// case-insensitively). An option that names no network (or asset, or
	// payee) passes a list only if the list is empty.
	Networks []string
	Assets   []string
	PayTo    []string
}

// Limit bounds spending in one unit.
type Limit struct {
	// Max is the most one request may cost; nil refuses every payment.
	Max *big.Int
	// Budget is the most all payments may cost together; nil is no limit.
	Budget *big.Int
	// Name names Max in refusals ("--max-sats"); "" says "the per-request
	// maximum".
	Name string
}

func (p *Policy) limit(unit string) Limit {
	if l, ok := p.Limits[unit]; ok {
		return l
	}
	if strings.HasPrefix(unit, "eip155:") {
		return Limit{Max: p.MaxAmount, Budget: p.Budget, Name: p.MaxName}
	}
	return Limit{}
}

// ledger is what a Transport has spent, per unit.
type ledger struct {
	mu    sync.Mutex
	spent map[string]*big.Int
}

func (l *ledger) total(unit string) *big.Int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return new(big.Int).Set(l.get(unit))
}

func (l *ledger) get(unit string) *big.Int {
	if l.spent == nil {
		l.spent = map[string]*big.Int{}
	}
	v, ok := l.spent[unit]
	if !ok {
		v = new(big.Int)
		l.spent[unit] = v
	}
	return v
}

// check applies the policy to o without booking it.
func (p *Policy) check(o Option) error {
	amount := o.Price.Amount
	if amount == nil || amount.Sign() < 0 {
		return fmt.Errorf("%s: no valid amount", o.About)
	}
	switch {
	case len(p.Networks) > 0 && !contains(p.Networks, o.Network):
		return fmt.Errorf("network %s is not allowed", orNone(o.Network))
	case len(p.Assets) > 0 && !contains(p.Assets, o.Asset):
		return fmt.Errorf("asset %s is not allowed", orNone(o.Asset))
	case len(p.PayTo) > 0 && !contains(p.PayTo, o.PayTo):
		return fmt.Errorf("payee %s is not allowed", orNone(o.PayTo))
	}
	l := p.limit(o.Price.Unit)
	name := l.Name
	if name == "" {
		name = "the per-request maximum"
	}
	if l.Max == nil {
		if _, ok := p.Limits[o.Price.Unit]; !ok && !strings.HasPrefix(o.Price.Unit, "eip155:") {
			return fmt.Errorf("%s: this client sets no limit for %s", o.Price, o.Price.Unit)
		}
		return fmt.Errorf("%s exceeds %s %s", o.Price, name, o.Price.format(nil))
	}
	if amount.Cmp(l.Max) > 0 {
		return fmt.Errorf("%s exceeds %s %s", o.Price, name, o.Price.format(l.Max))
	}
	return nil
}

// book adds o's price to what was spent in its unit, or refuses it when
// that would pass the unit's budget.
func (p *Policy) book(l *ledger, o Option) error {
	budget := p.limit(o.Price.Unit).Budget
	l.mu.Lock()
	defer l.mu.Unlock()
	spent := l.get(o.Price.Unit)
	next := new(big.Int).Add(spent, o.Price.Amount)
	if budget != nil && next.Cmp(budget) > 0 {
		return fmt.Errorf("%s would exceed the budget (%s of %s spent)", o.Price, o.Price.format(spent), o.Price.format(budget))
	}
	spent.Set(next)
	return nil
}

// unbook takes back what book added for an option whose Pay spent nothing.
func unbook(l *ledger, o Option) {
	l.mu.Lock()
	defer l.mu.Unlock()
	spent := l.get(o.Price.Unit)
	spent.Sub(spent, o.Price.Amount)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func lower(s string) string { return strings.ToLower(s) }
