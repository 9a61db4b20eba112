package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// testListPage: keyset paging visits every selected payment once, in
// (Created, ID) order, even while payments are added; each filter selects
// exactly what it says.
func testListPage(t *testing.T, s Store) {
	var all []*coinop.Payment
	for i := range 11 {
		p := Payment(i)
		p.Route = []string{"GET /a", "GET /b"}[i%2]
		p.Payer = fmt.Sprintf("0x%040x", i%3)
		p.Rail = []string{"x402/a", "credits"}[i%2]
		reserve(t, s, p)
		if i%4 == 3 {
			transition(t, s, p.ID, coinop.StateVerified, coinop.StateReleased, "", "")
		}
		all = append(all, get(t, s, p.ID))
	}
	order := func(ps []*coinop.Payment) []string {
		ps = slices.Clone(ps)
		slices.SortStableFunc(ps, func(a, b *coinop.Payment) int {
			if c := a.Created.Compare(b.Created); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		return ids(ps)
	}
	pages := func(t *testing.T, f store.Filter, during func()) []string {
		t.Helper()
		var got []string
		for n := 0; ; n++ {
			page, err := s.ListPage(t.Context(), f)
			if err != nil {
				t.Fatalf("ListPage(%+v): %v", f, err)
			}
			if f.Limit > 0 && len(page.Payments) > f.Limit {
				t.Fatalf("page of %d payments, limit %d", len(page.Payments), f.Limit)
			}
			got = append(got, ids(page.Payments)...)
			if n == 0 && during != nil {
				during()
			}
			if page.Next == "" {
				return got
			}
			if n > 20 {
				t.Fatal("listing does not end")
			}
			f.Cursor = page.Next
		}
	}
	mid := all[5].Created
	tests := []struct {
		name   string
		filter store.Filter
		keep   func(p *coinop.Payment) bool
	}{
		{"all", store.Filter{Limit: 3}, func(*coinop.Payment) bool { return true }},
		{"one page", store.Filter{}, func(*coinop.Payment) bool { return true }},
		{"route", store.Filter{Route: "GET /b", Limit: 2}, func(p *coinop.Payment) bool { return p.Route == "GET /b" }},
		{"payer", store.Filter{Payer: all[1].Payer, Limit: 1}, func(p *coinop.Payment) bool { return p.Payer == all[1].Payer }},
		{"rail", store.Filter{Rail: "credits", Limit: 4}, func(p *coinop.Payment) bool { return p.Rail == "credits" }},
		{"state", store.Filter{State: coinop.StateReleased, Limit: 2}, func(p *coinop.Payment) bool { return p.State == coinop.StateReleased }},
		{"from", store.Filter{From: mid, Limit: 4}, func(p *coinop.Payment) bool { return !p.Created.Before(mid) }},
		{"to", store.Filter{To: mid, Limit: 4}, func(p *coinop.Payment) bool { return p.Created.Before(mid) }},
		{"route and state", store.Filter{Route: "GET /b", State: coinop.StateVerified, Limit: 2},
			func(p *coinop.Payment) bool { return p.Route == "GET /b" && p.State == coinop.StateVerified }},
		{"newest first", store.Filter{Newest: true, Limit: 3}, func(*coinop.Payment) bool { return true }},
		{"newest first, one page", store.Filter{Newest: true}, func(*coinop.Payment) bool { return true }},
		{"newest first from", store.Filter{Newest: true, From: mid, Limit: 2}, func(p *coinop.Payment) bool { return !p.Created.Before(mid) }},
		{"newest first by route", store.Filter{Newest: true, Route: "GET /a", Limit: 2}, func(p *coinop.Payment) bool { return p.Route == "GET /a" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []*coinop.Payment
			for _, p := range all {
				if tt.keep(p) {
					want = append(want, p)
				}
			}
			wantIDs := order(want)
			if tt.filter.Newest {
				slices.Reverse(wantIDs)
			}
			if got := pages(t, tt.filter, nil); !slices.Equal(got, wantIDs) {
				t.Errorf("listed %q\nwant   %q", got, wantIDs)
			}
		})
	}

	t.Run("payments added while paging", func(t *testing.T) {
		late := Payment(99)
		got := pages(t, store.Filter{Limit: 4}, func() {
			reserve(t, s, late) // Created no earlier, and an ID after, every listed one

		})
		if want := append(order(all), late.ID); !slices.Equal(got, want) {
			t.Errorf("listed %q\nwant   %q", got, want)
		}
	})

	t.Run("payments added while paging newest first", func(t *testing.T) {
		before := append(order(all), Payment(99).ID)
		slices.Reverse(before)
		got := pages(t, store.Filter{Limit: 4, Newest: true}, func() {
			reserve(t, s, Payment(98)) // newer than the first page: not in this listing
		})
		if !slices.Equal(got, before) {
			t.Errorf("listed %q\nwant   %q", got, before)
		}
	})

	t.Run("malformed cursor", func(t *testing.T) {
		for _, c := range []string{"!!", "bm8tc2VwYXJhdG9y", "eHx5"} {
			_, err := s.ListPage(t.Context(), store.Filter{Cursor: c})
			wantError(t, err, coinop.KindMalformed, "bad_cursor")
		}
	})
}
