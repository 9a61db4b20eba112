package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// KindCredits is the kind of rail block for prepaid credits: routes that
// accept it charge a per-request cost in credits to the bearer token of an
// account, which buyers fund by buying the block's plans (packs of credits,
// time passes) on the other rails.
const KindCredits = "credits"

// CreditsRail are the settings of a rail block of kind credits.
type CreditsRail struct {
	// Plans are what buyers can buy: at least one.
	Plans []*CreditPlan `yaml:"plans"`
	// LowBalance is the balance below which responses warn
	// (Coinop-Credits-Warning); 0 never warns.
	LowBalance int64 `yaml:"low_balance,omitempty"`
	// SignInWithX lets the wallet that bought a plan reach its account by
	// x402's sign-in-with-x, besides the bearer token.
	SignInWithX bool `yaml:"sign_in_with_x,omitempty"`
}

// CreditPlan is one plan of a credits rail: a pack of credits, a pass, or
// both, sold at /.well-known/coinop/plans/<name> (and at Path, when set) on
// the rails Accept names.
type CreditPlan struct {
	Name string `yaml:"name"`
	// Credits is the pack's credits.
	Credits int64 `yaml:"credits,omitempty"`
	// Pass is the pass's length ("1h", "720h").
	Pass time.Duration `yaml:"pass,omitempty"`
	// Requests caps the pass's requests; 0 is unlimited.
	Requests int64 `yaml:"requests,omitempty"`
	// Path is another path the plan is sold at, besides the well-known one.
	Path string `yaml:"path,omitempty"`
	// Accept lists the rails the plan is sold on and its price on each.
	Accept []*Accept `yaml:"accept"`

	// Resolved are the accept entries resolved. Check sets it.
	Resolved []Accepted `yaml:"-"`
}

// PlanPrefix is where every plan is sold: PlanPrefix + name.
const PlanPrefix = "/.well-known/coinop/plans/"

// MaxPass is the longest pass a plan may sell.
const MaxPass = 5 * 366 * 24 * time.Hour

func newCreditsRail() RailSettings { return &CreditsRail{} }

// Check implements RailSettings: the plans' own settings. Their accept
// entries name other rails, which are resolved once every rail block is
// (CheckAfterRails).
func (cr *CreditsRail) Check(c *Config, at *Reporter) {
	if cr.LowBalance < 0 {
		at.Addf("low_balance", "%d is negative", cr.LowBalance)
	}
	if len(cr.Plans) == 0 {
		at.Addf("plans", "empty: list at least one plan (credits: N, or pass: 1h), with the rails it is sold on")
		return
	}
	seen := map[string]int{}
	for i, p := range cr.Plans {
		k := fmt.Sprintf("plans[%d]", i)
		if p == nil {
			at.Addf(k, "empty plan")
			continue
		}
		switch {
		case p.Name == "":
			at.Addf(k+".name", "required: a name buyers ask for, e.g. %q", "starter")
		case strings.Trim(p.Name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" || len(p.Name) > 64:
			at.Addf(k+".name", "%q: use lower-case letters, digits, '-', '_' and '.' (it is part of a URL)", p.Name)
		default:
			if j, dup := seen[p.Name]; dup {
				at.Addf(k+".name", "%q is also plans[%d]", p.Name, j)
			}
			seen[p.Name] = i
		}
		switch {
		case p.Credits < 0:
			at.Addf(k+".credits", "%d is negative", p.Credits)
		case p.Pass < 0 || p.Pass > MaxPass:
			at.Addf(k+".pass", "%s is outside 1s to %s", p.Pass, MaxPass)
		case p.Pass > 0 && p.Pass < time.Second:
			at.Addf(k+".pass", "%s is shorter than a second", p.Pass)
		case p.Credits == 0 && p.Pass == 0:
			at.Addf(k, "a plan holds credits (credits: 5000), a pass (pass: 1h), or both")
		case p.Requests < 0:
			at.Addf(k+".requests", "%d is negative", p.Requests)
		case p.Requests > 0 && p.Pass == 0:
			at.Addf(k+".requests", "caps a pass's requests: set pass too")
		}
		if p.Path != "" && (!strings.HasPrefix(p.Path, "/") || strings.ContainsAny(p.Path, " {}?#") || strings.HasPrefix(p.Path, PlanPrefix)) {
			at.Addf(k+".path", "%q: want a plain absolute path, outside %s", p.Path, PlanPrefix)
		}
		if len(p.Accept) == 0 {
			at.Addf(k+".accept", "empty: list the rails the plan is sold on, with its price on each")
		}
	}
}

// CheckAfterRails resolves the plans' accept entries, once every rail
// block was checked: each names a rail of another kind and its price there.
func (cr *CreditsRail) CheckAfterRails(c *Config, at *Reporter) {
	var names []string
	for _, rl := range c.Rails {
		if rl != nil && rl.Name != "" && rl.Kind != KindCredits {
			names = append(names, rl.Name)
		}
	}
	for i, p := range cr.Plans {
		if p == nil {
			continue
		}
		p.Resolved = nil
		for j, a := range p.Accept {
			k := fmt.Sprintf("plans[%d].accept[%d]", i, j)
			if a == nil {
				at.Addf(k, "empty accept entry: want rail and price")
				continue
			}
			rail := c.railNamed(a.Rail)
			switch {
			case a.Rail == "":
				at.Addf(k+".rail", "required: the name of a rail (%s)", listOr(names, "none are configured"))
				continue
			case rail == nil:
				at.Addf(k+".rail", "%q is not a configured rail (%s)", a.Rail, listOr(names, "none are configured"))
				continue
			case rail.Kind == KindCredits:
				at.Addf(k+".rail", "%q is a credits rail: plans are bought with money, on another rail", a.Rail)
				continue
			case slices.ContainsFunc(p.Accept[:j], func(b *Accept) bool { return b != nil && b.Rail == a.Rail }):
				at.Addf(k+".rail", "%q is accepted twice for this plan", a.Rail)
				continue
			case a.Price == "":
				at.Addf(k+".price", "required: what the plan costs on %s", a.Rail)
				continue
			}
			ri := slices.Index(c.Rails, rail)
			if rail.Settings == nil || at.v.tainted(fmt.Sprintf("rails[%d]", ri)) || at.v.hasProblemUnder(fmt.Sprintf("rails[%d]", ri)) {
				continue
			}
			pr, err := rail.Settings.ParsePrice(a.Price)
			switch {
			case err != nil:
				at.Addf(k+".price", "%s", strings.TrimPrefix(err.Error(), "price "))
			case pr.Amount.Sign() == 0:
				at.Addf(k+".price", "%q is zero: a plan is sold for money", a.Price)
			default:
				p.Resolved = append(p.Resolved, Accepted{Rail: rail, Price: pr})
			}
		}
	}
}

// ParsePrice implements RailSettings: a route's cost in credits, a whole
// number ("3", "3 credits", "1 credit").
func (cr *CreditsRail) ParsePrice(s string) (coinop.Price, error) {
	f := strings.Fields(s)
	if len(f) == 2 && strings.EqualFold(f[1], "credit") {
		f[1] = "credits"
	}
	pr, err := coinop.ParsePrice(strings.Join(f, " "), "credits", 0)
	if err != nil {
		return coinop.Price{}, err
	}
	if !pr.Amount.IsInt64() {
		return coinop.Price{}, fmt.Errorf("price %q: too many credits", s)
	}
	return pr, nil
}

// Normalize implements RailSettings.
func (cr *CreditsRail) Normalize() {}

// PlanPaths are the paths plan p is sold at: the well-known one, then Path.
func (p *CreditPlan) PlanPaths() []string {
	out := []string{PlanPrefix + p.Name}
	if p.Path != "" {
		out = append(out, p.Path)
	}
	return out
}

// afterRails is implemented by settings that refer to other rail blocks:
// checked once every block was.
type afterRails interface {
	CheckAfterRails(c *Config, at *Reporter)
}

// checkAfterRails runs the rail blocks' checks that refer to other rails.
func (v *checker) checkAfterRails(c *Config) {
	for i, r := range c.Rails {
		p := fmt.Sprintf("rails[%d]", i)
		if r == nil || r.Settings == nil || v.tainted(p) {
			continue
		}
		if a, ok := r.Settings.(afterRails); ok {
			a.CheckAfterRails(c, &Reporter{v: v, prefix: p})
		}
	}
}
