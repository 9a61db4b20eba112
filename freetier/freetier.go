// Package freetier serves a number of requests per window and identity
// free on a priced route before it turns to 402: a paywall.Allowance whose
// counters live in the payments journal's database (Atomically), so that
// every gateway instance sharing it counts the same requests.
//
// An identity is the payer of a verified payment (a wallet, a credits
// token's holder) or, for a request without one, the client's IP address:
// the peer's, or, when the peer is a configured trusted proxy, the last
// address X-Forwarded-For names that is not itself a trusted proxy.
//
// Every answer of such a route carries the RateLimit-Policy and RateLimit
// header fields of draft-ietf-httpapi-ratelimit-headers (q quota, w window
// seconds; r remaining, t seconds to the window's reset).
package freetier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// Store is the database the counters live in.
type Store interface {
	Atomically(ctx context.Context, fn func(tx store.Tx) error) error
	Migrate(ctx context.Context, name, ddl string) error
}

const ddl = `CREATE TABLE free_tier_counts (
	ident TEXT NOT NULL,
	win BIGINT NOT NULL,
	used BIGINT NOT NULL CHECK (used >= 0),
	PRIMARY KEY (ident, win)
)`

// Counters count requests per tier, identity and window.
type Counters struct {
	s   Store
	now func() time.Time
}

// Open migrates the counters' table in s once and returns them; now is
// their clock.
func Open(ctx context.Context, s Store, now func() time.Time) (*Counters, error) {
	if err := s.Migrate(ctx, "freetier-0001", ddl); err != nil {
		return nil, fmt.Errorf("freetier: %w", err)
	}
	return &Counters{s: s, now: now}, nil
}

// Tier is one route's free tier: Requests per Window per identity.
type Tier struct {
	// Name names the tier's counters (the route's pattern) and its policy
	// in the headers.
	Name     string
	Requests int64
	Window   time.Duration
	// Trusted are the proxies whose X-Forwarded-For is believed.
	Trusted []netip.Prefix
	C       *Counters
}

// window is the fixed window holding now: its start, and what is left of it.
func (t *Tier) window(now time.Time) (start int64, left time.Duration) {
	w := int64(t.Window)
	n := now.UnixNano()
	start = n - n%w
	return start, time.Duration(start + w - n)
}

// Admit implements paywall.Allowance: it counts r against identity payer
// (or r's client address) and serves it free while the window has requests
// left. The count is one compare-and-set statement (used < quota) in the
// shared database, so instances never serve more than the quota together.
// A free request whose upstream then fails still counts.
func (t *Tier) Admit(ctx context.Context, r *http.Request, payer string, h http.Header) (bool, error) {
	id := payer
	if id == "" {
		id = "ip:" + ClientIP(r, t.Trusted)
	}
	sum := sha256.Sum256([]byte(t.Name + "\x00" + id))
	key := hex.EncodeToString(sum[:16])
	now := t.C.now()
	start, left := t.window(now)
	var used int64
	var free bool
	err := t.C.s.Atomically(ctx, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM free_tier_counts WHERE ident = ? AND win < ?`, key, start); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO free_tier_counts (ident, win, used) VALUES (?, ?, 0) ON CONFLICT DO NOTHING`, key, start); err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `UPDATE free_tier_counts SET used = used + 1 WHERE ident = ? AND win = ? AND used < ?`, key, start, t.Requests)
		if err != nil {
			return err
		}
		free = n == 1
		return tx.QueryRow(ctx, `SELECT used FROM free_tier_counts WHERE ident = ? AND win = ?`, []any{key, start}, &used)
	})
	if err != nil {
		return false, coinop.Wrap(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, err, "the free tier's counters are unavailable")
	}
	t.headers(h, max(t.Requests-used, 0), left)
	return free, nil
}

// headers set the RateLimit fields: the policy, and where the identity
// stands in it.
func (t *Tier) headers(h http.Header, remaining int64, left time.Duration) {
	name := strconv.Quote(policyName(t.Name))
	h.Set("RateLimit-Policy", name+";q="+strconv.FormatInt(t.Requests, 10)+";w="+strconv.FormatInt(int64(t.Window/time.Second), 10))
	secs := int64((left + time.Second - 1) / time.Second)
	h.Set("RateLimit", name+";r="+strconv.FormatInt(remaining, 10)+";t="+strconv.FormatInt(secs, 10))
}

// policyName is a tier's name as a structured-field string: printable
// ASCII without quotes or backslashes.
func policyName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, s)
}

// ClientIP is r's client address: the peer's, or, when the peer is a
// trusted proxy, the rightmost X-Forwarded-For address that is not one
// (each proxy appends the address it got the request from; only the
// entries added by trusted proxies are believed).
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer.String() // a malformed hop: believe no further
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
