package admin

import (
	"context"
	"encoding/csv"
	"errors"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/paywall"
	"github.com/coinop/coinop/store"
)

// Journal is what the admin API reads of a payments journal; the store
// packages implement it.
type Journal interface {
	ListPage(ctx context.Context, f store.Filter) (store.Page, error)
	Get(ctx context.Context, id string) (*coinop.Payment, error)
	Events(ctx context.Context, id string) ([]store.Event, error)
}

// maxExport bounds the payments one CSV export or revenue sum reads, so a
// request cannot hold the journal for long; past it the answer says it is
// truncated (a 206-like header, X-Coinop-Truncated: true) and a narrower
// time range gets the rest.
const maxExport = 100_000

// payment is one payment as the admin API shows it: what the journal holds,
// never the credential (Payload) or the prepared settlement.
type payment struct {
	ID        string    `json:"id"`
	Rail      string    `json:"rail"`
	Route     string    `json:"route"`
	Network   string    `json:"network"`
	Asset     string    `json:"asset"`
	Payer     string    `json:"payer"`
	PayTo     string    `json:"payTo"`
	Amount    string    `json:"amount"`
	Resource  string    `json:"resource"`
	State     string    `json:"state"`
	Reference string    `json:"reference,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Mode      string    `json:"mode"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Served    time.Time `json:"served,omitzero"`
}

func view(p *coinop.Payment) payment {
	v := payment{ID: p.ID, Rail: p.Rail, Route: p.Route, Network: p.Network, Asset: p.Asset, Payer: p.Payer, PayTo: p.PayTo,
		Resource: p.Resource, State: string(p.State), Reference: p.Reference, Reason: p.Reason, Mode: p.Mode,
		Created: p.Created, Updated: p.Updated, Served: p.Served}
	if p.Amount != nil {
		v.Amount = p.Amount.String()
	}
	if v.Mode == "" {
		v.Mode = coinop.ModeSync
	}
	return v
}

// filter reads a listing's query: from and to (RFC 3339), route, payer,
// rail, state, limit, cursor, order (oldest, the default, or newest).
func filter(r *http.Request) (store.Filter, error) {
	q := r.URL.Query()
	f := store.Filter{Route: q.Get("route"), Payer: q.Get("payer"), Rail: q.Get("rail"), State: coinop.State(q.Get("state")), Cursor: q.Get("cursor")}
	bad := func(format string, args ...any) (store.Filter, error) {
		return store.Filter{}, coinop.Errorf(coinop.KindMalformed, "bad_query", format, args...)
	}
	switch f.State {
	case "", coinop.StateVerified, coinop.StateSettling, coinop.StateSettled, coinop.StateFailed, coinop.StateReleased:
	default:
		return bad("state %q: want verified, settling, settled, failed or released", f.State)
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(t.name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return bad("%s %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", t.name, s)
			}
			*t.to = v
		}
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		return bad("order %q: want oldest or newest", q.Get("order"))
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return bad("limit %q: want a positive number", s)
		}
		f.Limit = n
	}
	return f, nil
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	page, err := a.j.ListPage(r.Context(), f)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	out := struct {
		Payments []payment `json:"payments"`
		Next     string    `json:"next,omitempty"`
	}{Payments: []payment{}, Next: page.Next}
	for _, p := range page.Payments {
		out.Payments = append(out.Payments, view(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) one(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := a.j.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		paywall.WriteError(w, r, coinop.Errorf(coinop.KindNotFound, "no_payment", "no payment %q in the journal", id))
		return
	}
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	evs, err := a.j.Events(r.Context(), id)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	type event struct {
		From      string    `json:"from"`
		To        string    `json:"to"`
		Reference string    `json:"reference,omitempty"`
		Reason    string    `json:"reason,omitempty"`
		At        time.Time `json:"at"`
	}
	out := struct {
		payment
		History []event `json:"history"`
	}{payment: view(p), History: []event{}}
	for _, e := range evs {
		out.History = append(out.History, event{string(e.From), string(e.To), e.Reference, e.Reason, e.At})
	}
	writeJSON(w, http.StatusOK, out)
}

// each calls fn for every payment f matches, page by page, up to
// maxExport; it reports whether it stopped there.
func (a *api) each(ctx context.Context, f store.Filter, fn func(*coinop.Payment) error) (truncated bool, err error) {
	f.Limit, f.Cursor = store.MaxPageSize, ""
	n := 0
	for {
		page, err := a.j.ListPage(ctx, f)
		if err != nil {
			return false, err
		}
		for _, p := range page.Payments {
			if n == maxExport {
				return true, nil
			}
			if err := fn(p); err != nil {
				return false, err
			}
			n++
		}
		if page.Next == "" {
			return false, nil
		}
		f.Cursor = page.Next
	}
}

var csvHeader = []string{"id", "created", "route", "rail", "network", "asset", "payer", "pay_to", "amount", "state", "reference", "reason", "mode", "served", "resource"}

func (a *api) export(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	// Read first, write after: an error halfway must not leave half a file
	// that looks whole.
	var rows [][]string
	truncated, err := a.each(r.Context(), f, func(p *coinop.Payment) error {
		v := view(p)
		served := ""
		if !v.Served.IsZero() {
			served = v.Served.Format(time.RFC3339Nano)
		}
		rows = append(rows, []string{v.ID, v.Created.Format(time.RFC3339Nano), v.Route, v.Rail, v.Network, v.Asset, v.Payer, v.PayTo,
			v.Amount, v.State, v.Reference, v.Reason, v.Mode, served, v.Resource})
		return nil
	})
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="coinop-payments.csv"`)
	if truncated {
		w.Header().Set("X-Coinop-Truncated", "true")
	}
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	cw.WriteAll(rows)
}

// revenue sums settled payments by route, day (UTC) or rail, and by network
// and asset (amounts in different assets are never added together).
func (a *api) revenue(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	by := r.URL.Query().Get("by")
	key := map[string]func(*coinop.Payment) string{
		"route": func(p *coinop.Payment) string { return p.Route },
		"day":   func(p *coinop.Payment) string { return p.Created.UTC().Format(time.DateOnly) },
		"rail":  func(p *coinop.Payment) string { return p.Rail },
	}[by]
	if by == "" {
		by, key = "route", func(p *coinop.Payment) string { return p.Route }
	}
	if key == nil {
		paywall.WriteError(w, r, coinop.Errorf(coinop.KindMalformed, "bad_query", "by %q: want route, day or rail", by))
		return
	}
	f.State = coinop.StateSettled
	totals, truncated, err := a.sum(r.Context(), f, key)
	if err != nil {
		paywall.WriteError(w, r, err)
		return
	}
	out := struct {
		By        string   `json:"by"`
		Totals    []*total `json:"totals"`
		Truncated bool     `json:"truncated,omitempty"`
	}{By: by, Totals: totals, Truncated: truncated}
	writeJSON(w, http.StatusOK, out)
}

// total is the sum of the payments sharing a key, in one network's asset.
type total struct {
	Key      string `json:"key"`
	Network  string `json:"network"`
	Asset    string `json:"asset"`
	Amount   string `json:"amount"`
	Payments int    `json:"payments"`
	sum      *big.Int
}

// sum adds up the payments f matches by key, network and asset (up to
// maxExport of them; truncated says whether it stopped there), sorted by
// key, network and asset.
func (a *api) sum(ctx context.Context, f store.Filter, key func(*coinop.Payment) string) (totals []*total, truncated bool, err error) {
	byKey := map[[3]string]*total{}
	truncated, err = a.each(ctx, f, func(p *coinop.Payment) error {
		k := [3]string{key(p), p.Network, p.Asset}
		t := byKey[k]
		if t == nil {
			t = &total{Key: k[0], Network: k[1], Asset: k[2], sum: new(big.Int)}
			byKey[k] = t
		}
		if p.Amount != nil {
			t.sum.Add(t.sum, p.Amount)
		}
		t.Payments++
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	totals = []*total{}
	for _, t := range byKey {
		t.Amount = t.sum.String()
		totals = append(totals, t)
	}
	sort.Slice(totals, func(i, j int) bool {
		a, b := totals[i], totals[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		return a.Asset < b.Asset
	})
	return totals, truncated, nil
}

type api struct{ j Journal }
