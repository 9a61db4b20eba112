package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/coinop/coinop"
	"go.yaml.in/yaml/v3"
)

// Rail is one named rail block: a way to pay that routes accept by name.
//
// Name is journaled with every payment taken through the rail and is how an
// unfinished payment finds its rail again after a restart or a crash:
// renaming a rail strands its unfinished payments (they are neither settled
// nor released) until a rail of the old name is configured again.
type Rail struct {
	// Name is unique among the rails: one word, such as "usdc-base".
	Name string
	// Kind names the module that reads the block's other settings: "x402".
	Kind string
	// Settings are the module's settings, decoded from the block's other
	// keys (for "x402", *X402Rail).
	Settings RailSettings

	node *yaml.Node // the block as read by Parse, for its module to decode
}

// RailSettings are the settings of one kind of rail block: a module.
// Parse decodes the block's keys other than name and kind into the value
// its kind's constructor returns (railModules), strictly: an unknown key
// is a problem with its line.
type RailSettings interface {
	// Check validates the settings against the configuration (its
	// networks and assets, its top-level pay_to) and resolves what they
	// refer to, reporting each problem through at with a path relative to
	// the block ("network", "pay_to").
	Check(c *Config, at *Reporter)
	// ParsePrice reads a price of an accept entry naming this rail:
	// "<amount> <SYMBOL>" or atomic units. It is called only after a Check
	// that reported nothing.
	ParsePrice(s string) (coinop.Price, error)
	// Normalize writes what Check resolved into the settings' fields, in
	// canonical form.
	Normalize()
}

// AsyncCapped is implemented by settings whose rail may serve async
// routes: payments served before they settle, within a cap per payer.
type AsyncCapped interface {
	// AsyncExposure is the cap, or an error that says where to set it.
	AsyncExposure() (coinop.Price, error)
}

// railModules are the kinds of rail block, each with the constructor of
// its settings with their defaults filled: one line per module.
func railModules() map[string]func() RailSettings {
	return map[string]func() RailSettings{
		KindX402:    newX402Rail,
		KindCredits: newCreditsRail,
		KindL402:    newL402Rail,
	}
}

// PathSettings is implemented by settings that name files: their paths,
// which a configuration read from a file resolves against its directory
// (see resolvePaths).
type PathSettings interface {
	Paths() []*string
}

// Overlapping is implemented by settings whose credentials may not tell
// two rails of the module apart: a route that accepts both would take
// every payment meant for the second as a failed payment to the first.
type Overlapping interface {
	// Overlaps says why a credential for o could be taken for one of
	// these settings' rail; "" when it cannot.
	Overlaps(o RailSettings) string
}

// Reporter reports problems of one rail block; paths are relative to it.
type Reporter struct {
	v      *checker
	prefix string
}

// Addf reports a problem with the setting at key ("" for the whole block).
func (r *Reporter) Addf(key, format string, args ...any) {
	path := r.prefix
	if key != "" {
		path += "." + key
	}
	r.v.addf(path, format, args...)
}

// Tainted reports whether a value the setting at path (relative to the
// configuration's root, "networks[0]") depends on failed to decode: its
// problems are reported already.
func (r *Reporter) Tainted(path string) bool { return r.v.tainted(path) }

// Accept is one entry of a route's accept list: a rail and its price.
type Accept struct {
	// Rail is the name of a rail block.
	Rail string `yaml:"rail"`
	// Price is "<amount> <SYMBOL>" ("0.001 USDC") or atomic units ("1000").
	Price string `yaml:"price"`
}

// Accepted is an accept entry resolved: the rail and what a request costs
// on it.
type Accepted struct {
	Rail  *Rail
	Price coinop.Price
	// AsyncExposure caps, per payer, what async routes may serve through
	// the rail before the payments settle (AsyncCapped); a nil Amount
	// when the rail has no cap.
	AsyncExposure coinop.Price
}

// UnmarshalYAML keeps the block for its module, which Parse runs once the
// whole file is decoded (decodeRails), and reads its name and kind.
func (r *Rail) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!%s into config.Rail", n.Line, strings.TrimPrefix(n.ShortTag(), "!!"))}}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var dst *string
		switch k.Value {
		case "name":
			dst = &r.Name
		case "kind":
			dst = &r.Kind
		default:
			continue
		}
		if err := v.Decode(dst); err != nil {
			return err
		}
	}
	r.node = n
	return nil
}

// MarshalYAML writes name and kind, then the module's settings.
func (r *Rail) MarshalYAML() (any, error) {
	var out yaml.Node
	if err := out.Encode(struct {
		Name string `yaml:"name"`
		Kind string `yaml:"kind"`
	}{r.Name, r.Kind}); err != nil {
		return nil, err
	}
	if r.Settings != nil {
		var s yaml.Node
		if err := s.Encode(r.Settings); err != nil {
			return nil, err
		}
		out.Content = append(out.Content, s.Content...)
	}
	return &out, nil
}

// decodeRails runs each rail block's module on its keys besides name and
// kind. It returns the problems and the paths that failed to decode, as
// the strict decode of the whole file does.
func decodeRails(c *Config, src *source) (problems []Problem, undecoded []string) {
	modules := railModules()
	for i, r := range c.Rails {
		if r == nil || r.node == nil {
			continue
		}
		p := fmt.Sprintf("rails[%d]", i)
		newSettings, ok := modules[r.Kind]
		if !ok {
			r.node = nil
			continue // Validate reports the kind
		}
		s := newSettings()
		fields := append([]string{"name", "kind"}, yamlFields(reflect.TypeOf(s).Elem())...)
		rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: r.node.Line, Column: r.node.Column}
		for j := 0; j+1 < len(r.node.Content); j += 2 {
			k := r.node.Content[j]
			switch {
			case k.Value == "name" || k.Value == "kind":
			case !slices.Contains(fields, k.Value):
				problems = append(problems, Problem{File: src.file, Line: k.Line, Path: p,
					Message: fmt.Sprintf("%s (rail of kind %s)", suggestField(k.Value, fields), r.Kind)})
			default:
				rest.Content = append(rest.Content, k, r.node.Content[j+1])
			}
		}
		if err := rest.Decode(s); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				problems = append(problems, Problem{File: src.file, Line: r.node.Line, Path: p, Message: err.Error()})
				undecoded = append(undecoded, p)
				continue
			}
			for _, e := range te.Errors {
				prob, path := src.decodeProblem(e)
				problems = append(problems, prob)
				if path != nil {
					undecoded = append(undecoded, *path)
				}
			}
		}
		r.Settings, r.node = s, nil
	}
	return problems, undecoded
}

// yamlFields are the yaml keys of struct type t.
func yamlFields(t reflect.Type) []string {
	var fields []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && tag != "-" && tag != "" {
			fields = append(fields, tag)
		}
	}
	return fields
}

// checkRails checks the rail blocks: names, kinds and each module's
// settings.
func (v *checker) checkRails(c *Config) {
	modules := railModules()
	var kinds []string
	for k := range modules {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	seen := map[string]int{}
	for i, r := range c.Rails {
		p := fmt.Sprintf("rails[%d]", i)
		if r == nil {
			v.addf(p, "empty rail")
			continue
		}
		if r.Name == "" {
			v.addf(p+".name", "required: a name routes accept the rail by, e.g. %q", "usdc-base")
		} else {
			v.checkName(p+".name", r.Name, "rails", i, seen)
		}
		newSettings, ok := modules[r.Kind]
		if !ok {
			if r.Kind == "" {
				v.addf(p+".kind", "required: the kind of rail (%s)", strings.Join(kinds, ", "))
			} else {
				v.addf(p+".kind", "%q is not a kind of rail (%s)", r.Kind, strings.Join(kinds, ", "))
			}
			continue
		}
		if v.tainted(p) {
			continue
		}
		if want := reflect.TypeOf(newSettings()); reflect.TypeOf(r.Settings) != want {
			// Only a Config built in code can get here: Parse decodes
			// every block of a known kind into its module's settings.
			v.addf(p, "settings are %T, want %v for kind %s", r.Settings, want, r.Kind)
			continue
		}
		r.Settings.Check(c, &Reporter{v: v, prefix: p})
	}
	v.checkAfterRails(c)
}

// railNamed is the configured rail of that name, nil if none.
func (c *Config) railNamed(name string) *Rail {
	for _, r := range c.Rails {
		if r != nil && r.Name == name {
			return r
		}
	}
	return nil
}

// checkAccept resolves a route's accept list (the route's new form).
func (v *checker) checkAccept(p string, c *Config, r *Route, res *Resolved) {
	if len(r.Accept) == 0 {
		v.addf(p+".accept", "empty: list the rails this route accepts, or set free: true")
		return
	}
	var names []string
	for _, rl := range c.Rails {
		if rl != nil && rl.Name != "" {
			names = append(names, rl.Name)
		}
	}
	for i, a := range r.Accept {
		q := fmt.Sprintf("%s.accept[%d]", p, i)
		if a == nil {
			v.addf(q, "empty accept entry: want rail and price")
			continue
		}
		rail := c.railNamed(a.Rail)
		switch {
		case a.Rail == "":
			v.addf(q+".rail", "required: the name of a rail (%s)", listOr(names, "none are configured"))
			continue
		case rail == nil:
			v.addf(q+".rail", "%q is not a configured rail (%s)", a.Rail, listOr(names, "none are configured"))
			continue
		case slices.ContainsFunc(r.Accept[:i], func(b *Accept) bool { return b != nil && b.Rail == a.Rail }):
			v.addf(q+".rail", "%q is accepted twice on this route", a.Rail)
			continue
		}
		if a.Price == "" {
			v.addf(q+".price", "required: what a request costs on %s", a.Rail)
			continue
		}
		j := slices.Index(c.Rails, rail)
		if rail.Settings == nil || v.tainted(fmt.Sprintf("rails[%d]", j)) || v.hasProblemUnder(fmt.Sprintf("rails[%d]", j)) {
			continue
		}
		if v.addPrice(q+".price", a.Price, rail, res) {
			v.checkOverlap(q+".rail", res)
		}
	}
}

// checkOverlap reports a rail, the last of res.Accept, whose payments an
// earlier rail of the route would take for its own.
func (v *checker) checkOverlap(at string, res *Resolved) {
	last := res.Accept[len(res.Accept)-1].Rail
	for _, a := range res.Accept[:len(res.Accept)-1] {
		if o, ok := a.Rail.Settings.(Overlapping); ok {
			if why := o.Overlaps(last.Settings); why != "" {
				v.addf(at, "%s overlaps %s on this route: %s", last.Name, a.Rail.Name, why)
				return
			}
		}
	}
}

// addPrice parses price on rail and adds the accepted pair to res,
// reporting whether it did.
func (v *checker) addPrice(at, price string, rail *Rail, res *Resolved) bool {
	pr, err := rail.Settings.ParsePrice(price)
	switch {
	case err != nil:
		v.addf(at, "%s", strings.TrimPrefix(err.Error(), "price "))
	case pr.Amount.Sign() == 0:
		v.addf(at, "%q is zero; a route without payment is free: true", price)
	default:
		a := Accepted{Rail: rail, Price: pr}
		if c, ok := rail.Settings.(AsyncCapped); ok {
			a.AsyncExposure, _ = c.AsyncExposure() // an uncapped rail, refused on async routes
		}
		res.Accept = append(res.Accept, a)
		return true
	}
	return false
}

// hasProblemUnder reports whether a problem was found at or inside path.
func (v *checker) hasProblemUnder(path string) bool {
	for _, p := range v.problems {
		if coveredBy(p.Path, []string{path}) {
			return true
		}
	}
	return false
}

// AllRails are the rail blocks, then the implicit rails of routes of the
// older form that Validate resolved and Parse has not listed in Rails:
// every rail the gateway builds.
func (c *Config) AllRails() []*Rail {
	all := slices.Clone(c.Rails)
	for _, r := range c.Routes {
		for _, a := range r.Resolved.Accept {
			if !slices.Contains(all, a.Rail) {
				all = append(all, a.Rail)
			}
		}
	}
	return all
}

// RailPath is the setting that describes r, to locate a problem found at
// start-up: its block "rails[i]", or for an implicit rail the first route
// "routes[j]" of the older form that stands for it.
func (c *Config) RailPath(r *Rail) string {
	for j, rt := range c.Routes {
		if rt == nil || len(rt.Resolved.Accept) == 0 || c.src == nil {
			continue
		}
		if rt.Resolved.Accept[0].Rail == r && c.src.has(fmt.Sprintf("routes[%d].price", j)) {
			return fmt.Sprintf("routes[%d]", j)
		}
	}
	if i := slices.Index(c.Rails, r); i >= 0 {
		return fmt.Sprintf("rails[%d]", i)
	}
	return "rails"
}
