package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The credits dialect's wire names (see docs/credits.md).
const (
	creditsBalanceHeader = "Coinop-Credits-Balance"
	creditsPassHeader    = "Coinop-Pass-Expires"
	creditsTokenPrefix   = "cop_"
	reasonBalanceTooLow  = "credits_balance_too_low"
	reasonTokenUnknown   = "credits_token_unknown"
	reasonTokenRevoked   = "credits_token_revoked"
)

// Credits buys the credits plans a 402 offers (a pack of credits, a time
// pass) and presents their bearer tokens on later requests to the same
// origin, so that a thousand calls cost one payment. It is a Reuser and an
// Observer; it is safe for concurrent use.
//
// Its options are the plans that cover the request (enough credits, or a
// pass), cheapest first within each unit, each priced in what the plan
// costs on a rail one of Pay speaks; the Transport's Policy decides. A
// plan is bought only from the origin whose 402 offers it.
type Credits struct {
	// Pay are the methods that pay for plans (an X402).
	Pay []Method
	// Base performs the purchase requests. If nil, http.DefaultTransport.
	Base http.RoundTripper
	// Store keeps the tokens per origin. If nil, they are kept in memory.
	Store *CreditStore
	// Plan, if set, is the only plan bought.
	Plan string
	// OnBalance, if set, is told where an origin's account stands after
	// each answer that says so.
	OnBalance func(origin string, h CreditHolding)
}

var (
	_ Reuser   = (*Credits)(nil)
	_ Observer = (*Credits)(nil)
)

// Name is "credits".
func (*Credits) Name() string { return "credits" }

// offeredPlan is a plan as a 402's "plans" member lists it.
type offeredPlan struct {
	Name        string         `json:"name"`
	Credits     int64          `json:"credits"`
	PassSeconds int64          `json:"passSeconds"`
	Requests    int64          `json:"requests"`
	URL         string         `json:"url"`
	Offers      []neutralOffer `json:"offers"`
}

// neutralOffer is an engine offer, as the JSON body writes it.
type neutralOffer struct {
	Rail     string `json:"rail"`
	Protocol string `json:"protocol"`
	Network  string `json:"network"`
	Asset    string `json:"asset"`
	PayTo    string `json:"payTo"`
	Amount   string `json:"amount"`
	Price    string `json:"price"`
}

// Options lists the plans the 402 offers that cover the request, on the
// rails Pay speaks.
func (c *Credits) Options(ctx context.Context, ch *Challenge) ([]Option, error) {
	var body struct {
		Offers []neutralOffer `json:"offers"`
		Plans  []offeredPlan  `json:"plans"`
	}
	if json.Unmarshal(ch.Body, &body) != nil || len(body.Plans) == 0 {
		return nil, nil
	}
	cost := int64(-1)
	for _, o := range body.Offers {
		if o.Protocol == "credits" {
			if n, err := strconv.ParseInt(o.Amount, 10, 64); err == nil && n >= 0 {
				cost = n
			}
		}
	}
	if cost < 0 {
		return nil, nil
	}
	origin := originOf(ch.Request.URL)
	var opts []Option
	for _, p := range body.Plans {
		if c.Plan != "" && p.Name != c.Plan {
			continue
		}
		pu, err := url.Parse(p.URL)
		if err != nil || originOf(pu) != origin {
			continue // a plan is bought where it is used, never elsewhere
		}
		if p.PassSeconds <= 0 && p.Credits < cost {
			continue
		}
		for _, o := range p.Offers {
			m := c.payer(o.Protocol)
			amount, ok := new(big.Int).SetString(o.Amount, 10)
			if m == nil || !ok || amount.Sign() <= 0 || !strings.HasPrefix(o.Network, "eip155:") {
				continue
			}
			// Amounts are written in the buyer's decimals, never in what the
			// server's price text implies (as X402 does).
			decimals := 0
			if x, ok := m.(*X402); ok {
				decimals = x.Decimals
			}
			price := Price{Amount: amount, Unit: TokenUnit(o.Network, o.Asset), Decimals: decimals, Symbol: symbolOf(o.Price)}
			plan, offer := p, o
			opts = append(opts, Option{
				Method: c.Name(), Price: price, Network: o.Network, Asset: o.Asset, PayTo: o.PayTo, Header: "Authorization",
				About: fmt.Sprintf("credits plan %s (%s) for %s (token %s) to %s on %s", p.Name, p.contents(), price, o.Asset, o.PayTo, o.Network),
				Pay:   func(ctx context.Context) (*Credential, error) { return c.buy(ctx, origin, plan, offer, m) },
			})
		}
	}
	slices.SortStableFunc(opts, func(a, b Option) int {
		if a.Price.Unit != b.Price.Unit {
			return 0
		}
		return a.Price.Amount.Cmp(b.Price.Amount)
	})
	return opts, nil
}

func (p offeredPlan) contents() string {
	var s []string
	if p.Credits > 0 {
		s = append(s, strconv.FormatInt(p.Credits, 10)+" credits")
	}
	if p.PassSeconds > 0 {
		pass := (time.Duration(p.PassSeconds) * time.Second).String() + " pass"
		if p.Requests > 0 {
			pass += " of " + strconv.FormatInt(p.Requests, 10) + " requests"
		}
		s = append(s, pass)
	}
	return strings.Join(s, " and ")
}

func symbolOf(price string) string {
	if f := strings.Fields(price); len(f) == 2 {
		return f[1]
	}
	return ""
}

func (c *Credits) payer(protocol string) Method {
	for _, m := range c.Pay {
		if m.Name() == protocol {
			return m
		}
	}
	return nil
}

func (c *Credits) base() http.RoundTripper {
	if c.Base == nil {
		return http.DefaultTransport
	}
	return c.Base
}

func (c *Credits) store() *CreditStore {
	if c.Store == nil {
		c.Store = &CreditStore{}
	}
	return c.Store
}

// planReceipt is a purchase's answer.
type planReceipt struct {
	Plan    string `json:"plan"`
	Account string `json:"account"`
	Token   string `json:"token"`
}

// buy buys plan at its URL with offer, paid through m, and keeps the token.
// The token held for the origin, if any, goes along: the purchase tops that
// account up.
func (c *Credits) buy(ctx context.Context, origin string, plan offeredPlan, offer neutralOffer, m Method) (*Credential, error) {
	held, _ := c.store().Get(origin)
	purchase := func(h http.Header) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, plan.URL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		if held.Token != "" {
			req.Header.Set("Authorization", "Bearer "+held.Token)
		}
		for k, v := range h {
			req.Header[k] = v
		}
		return c.base().RoundTrip(req)
	}
	resp, err := purchase(nil)
	if err != nil {
		return nil, fmt.Errorf("credits plan %s: %w", plan.Name, err)
	}
	if resp.StatusCode == http.StatusPaymentRequired {
		inner, err := challenge(resp.Request, resp)
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		opts, err := m.Options(ctx, inner)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(opts, func(o Option) bool {
			return o.Network == offer.Network && strings.EqualFold(o.Asset, offer.Asset) && strings.EqualFold(o.PayTo, offer.PayTo) &&
				o.Price.Amount != nil && o.Price.Amount.String() == offer.Amount
		})
		if i < 0 {
			return nil, fmt.Errorf("credits plan %s: its purchase no longer offers %s on %s", plan.Name, offer.Price, offer.Network)
		}
		cred, err := opts[i].Pay(ctx)
		if err != nil {
			return nil, err
		}
		// A purchase whose answer is lost is sent again with the same
		// credential: the server answers a settled payment again without a
		// new charge (and a new token for the same account).
		for attempt := 0; ; attempt++ {
			if resp, err = purchase(cred.Header); err == nil {
				break
			}
			if attempt == len(paidRetryDelays) || ctx.Err() != nil {
				return nil, fmt.Errorf("credits plan %s: %w: %w", plan.Name, ErrMaybeSpent, err)
			}
			time.Sleep(paidRetryDelays[attempt])
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var rc planReceipt
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &rc) != nil {
		return nil, fmt.Errorf("credits plan %s: the purchase answered %s", plan.Name, resp.Status)
	}
	h := held
	if rc.Token != "" {
		if !strings.HasPrefix(rc.Token, creditsTokenPrefix) {
			return nil, fmt.Errorf("credits plan %s: the purchase answered no token", plan.Name)
		}
		h.Token = rc.Token
	}
	if h.Token == "" {
		return nil, fmt.Errorf("credits plan %s: the purchase answered no token", plan.Name)
	}
	h.Account, h.Plan, h.Low = rc.Account, plan.Name, false
	h.Balance += plan.Credits
	if err := c.store().Put(origin, h); err != nil {
		return nil, fmt.Errorf("credits plan %s: bought, but the token could not be kept: %w", plan.Name, err)
	}
	return &Credential{Header: http.Header{"Authorization": {"Bearer " + h.Token}}, Payment: Payment{Header: "Authorization", Value: "Bearer " + creditsTokenPrefix + "…"}}, nil
}

// Reuse presents the token held for req's origin, unless its balance was
// found too low (then the 402 it would get offers the top-up).
func (c *Credits) Reuse(req *http.Request) bool {
	h, ok := c.store().Get(originOf(req.URL))
	if !ok || h.Token == "" || h.Low {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+h.Token)
	return true
}

// Forget reads why the token was refused: unknown or revoked, it is
// dropped; a balance too low keeps it (a purchase tops it up) but stops
// presenting it until then; anything else (a route that takes no credits)
// leaves it as it is.
func (c *Credits) Forget(req *http.Request, resp *http.Response) {
	body, _ := readBody(resp)
	var p struct {
		Reason string `json:"reason"`
	}
	json.Unmarshal(body, &p)
	origin := originOf(req.URL)
	switch p.Reason {
	case reasonTokenUnknown, reasonTokenRevoked:
		c.store().Delete(origin)
	case reasonBalanceTooLow:
		if h, ok := c.store().Get(origin); ok {
			h.Low = true
			c.store().Put(origin, h)
		}
	}
}

// Observe records the balance and pass an answer reports.
func (c *Credits) Observe(req *http.Request, resp *http.Response, _ *Credential) {
	bal := resp.Header.Get(creditsBalanceHeader)
	if bal == "" {
		return
	}
	origin := originOf(req.URL)
	h, ok := c.store().Get(origin)
	if !ok {
		return
	}
	if n, err := strconv.ParseInt(bal, 10, 64); err == nil {
		h.Balance = n
	}
	h.PassUntil = time.Time{}
	if t, err := time.Parse(time.RFC3339, resp.Header.Get(creditsPassHeader)); err == nil {
		h.PassUntil = t
	}
	c.store().Put(origin, h)
	if c.OnBalance != nil {
		c.OnBalance(origin, h)
	}
}

// originOf is a URL's scheme://host[:port], lower case.
func originOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// CreditHolding is what a buyer holds at one origin.
type CreditHolding struct {
	Token   string `json:"token"`
	Account string `json:"account"`
	Plan    string `json:"plan"`
	// Balance is the last balance the origin reported.
	Balance   int64     `json:"balance"`
	PassUntil time.Time `json:"passUntil,omitzero"`
	// Low is set when the origin refused the token for its balance.
	Low     bool      `json:"low,omitempty"`
	Updated time.Time `json:"updated"`
}

// CreditStore keeps credits tokens per origin: in a JSON file only its
// owner may read (0600) when Path is set, else in memory. Every change is
// written at once (a new file renamed over the old one), so several
// processes see each other's tokens.
type CreditStore struct {
	Path string
	// Now stamps changes. If nil, time.Now.
	Now func() time.Time

	mu  sync.Mutex
	mem map[string]CreditHolding
}

func (s *CreditStore) load() (map[string]CreditHolding, error) {
	if s.Path == "" {
		if s.mem == nil {
			s.mem = map[string]CreditHolding{}
		}
		return s.mem, nil
	}
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]CreditHolding{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]CreditHolding{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	return m, nil
}

func (s *CreditStore) save(m map[string]CreditHolding) error {
	if s.Path == "" {
		s.mem = m
		return nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(s.Path), ".credits-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, bytes.NewReader(b)); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), s.Path)
}

// Get is what is held at origin.
func (s *CreditStore) Get(origin string) (CreditHolding, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return CreditHolding{}, false
	}
	h, ok := m[origin]
	return h, ok
}

// Put keeps h for origin.
func (s *CreditStore) Put(origin string, h CreditHolding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	h.Updated = now().UTC()
	m[origin] = h
	return s.save(m)
}

// Delete drops what is held at origin.
func (s *CreditStore) Delete(origin string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	delete(m, origin)
	return s.save(m)
}

// List is every origin's holding.
func (s *CreditStore) List() (map[string]CreditHolding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}
