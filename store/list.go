package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// Filter selects payments for an operator's paged listing (List). Zero
// fields select everything.
type Filter struct {
	// From and To bound Created: From <= Created < To.
	From, To time.Time
	// Route, Payer, Rail and State match exactly.
	Route, Payer, Rail string
	State              coinop.State
	// Limit is the most payments in one page: 0 means DefaultPageSize;
	// more than MaxPageSize is MaxPageSize.
	Limit int
	// Cursor continues a listing where the page that returned it as Next
	// ended; "" starts at the beginning.
	Cursor string
	// Newest lists newest first, by (Created, ID) descending: the recent
	// payments on the first page. A cursor continues in the order of the
	// listing that returned it; payments journaled after the first page
	// are not in such a listing (a new one starts with them).
	Newest bool
}

// Page is one page of a listing, oldest first by (Created, ID) unless the
// Filter asks for the newest first: a stable order, so that paging never
// skips nor repeats a payment, even while new ones are journaled. Next is
// the cursor of the next page; "" after the last.
type Page struct {
	Payments []*coinop.Payment
	Next     string
}

// Page sizes of List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Listing is a Filter translated into SQL for a backend: Where (beginning
// with " WHERE", or "") and Args for it, with Limit+1 rows to fetch so that
// a full page knows whether another follows. It is shared by the backends
// so that both page the same way (keyset pagination on (created_at, id),
// never OFFSET: a page costs the same wherever it starts).
type Listing struct {
	Where string
	Args  []any
	Limit int
	// Order is the ORDER BY clause, with a leading space.
	Order string
}

// Plan translates f for a backend whose n-th placeholder is mark(n) and
// whose times are stored as ts(t). A malformed cursor is KindBadRequest.
func Plan(f Filter, mark func(n int) string, ts func(time.Time) any) (Listing, error) {
	var (
		conds []string
		l     Listing
	)
	add := func(cond string, args ...any) {
		for _, a := range args {
			l.Args = append(l.Args, a)
			cond = strings.Replace(cond, "?", mark(len(l.Args)), 1)
		}
		conds = append(conds, cond)
	}
	if !f.From.IsZero() {
		add("created_at >= ?", ts(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < ?", ts(f.To))
	}
	for _, c := range []struct{ col, v string }{{"route", f.Route}, {"payer", f.Payer}, {"rail", f.Rail}, {"state", string(f.State)}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if f.Cursor != "" {
		created, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return l, coinop.Wrap(coinop.KindMalformed, "bad_cursor", err, "the listing cursor is malformed")
		}
		if f.Newest {
			add("(created_at, id) < (?, ?)", ts(created), id)
		} else {
			add("(created_at, id) > (?, ?)", ts(created), id)
		}
	}
	l.Order = " ORDER BY created_at, id"
	if f.Newest {
		l.Order = " ORDER BY created_at DESC, id DESC"
	}
	if len(conds) > 0 {
		l.Where = " WHERE " + strings.Join(conds, " AND ")
	}
	l.Limit = f.Limit
	if l.Limit <= 0 {
		l.Limit = DefaultPageSize
	}
	l.Limit = min(l.Limit, MaxPageSize) + 1
	return l, nil
}

// Paginate cuts the rows a Listing fetched into a Page.
func (l Listing) Paginate(ps []*coinop.Payment) Page {
	if len(ps) < l.Limit {
		return Page{Payments: ps}
	}
	ps = ps[:l.Limit-1]
	last := ps[len(ps)-1]
	return Page{Payments: ps, Next: encodeCursor(last.Created, last.ID)}
}

// A cursor is the (Created, ID) of the last payment of a page, opaque to
// callers.
func encodeCursor(created time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(created.UnixNano(), 10) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("cursor: %w", err)
	}
	n, id, ok := strings.Cut(string(b), "|")
	if !ok || id == "" {
		return time.Time{}, "", errors.New("cursor: no payment ID")
	}
	nanos, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("cursor: %w", err)
	}
	return time.Unix(0, nanos).UTC(), id, nil
}
