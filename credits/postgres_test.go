package credits_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/credits"
	"github.com/coinop/coinop/store/postgres"
	"github.com/coinop/coinop/store/postgres/pgtest"
)

// pgSchema returns a DSN on a fresh schema of $PG_DSN (scripts/postgres.sh
// starts a server), dropped when t ends; it skips without PG_DSN, and fails
// under COINOP_CI=1 or COINOP_REQUIRE_POSTGRES=1.
func pgSchema(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "credits_test")
}

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenWith(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A balance covering K requests, hit by 10·K concurrent requests split
// across two engines (two instances) on one PostgreSQL: exactly K served,
// the rest 402 with the plans, the ledger drained and clean in the eyes of
// both instances.
func TestConcurrentChargesTwoInstancesPostgres(t *testing.T) {
	dsn := pgSchema(t)
	a := newShopEngine(t, openPG(t, dsn), 10, time.Now, goods)
	b := newShopEngine(t, openPG(t, dsn), 10, time.Now, goods)
	rc := a.buy(t, "pack", "") // 100 credits at 10 each: K = 10
	const k = 10
	served := hammer(t, []string{a.srv.URL, b.srv.URL}, rc.Token, 10*k)
	if served != k {
		t.Errorf("%d served across two instances, want exactly %d", served, k)
	}
	checkDrained(t, a.ledger, k)
	checkDrained(t, b.ledger, k)
}

// The ledger's statements that only passes, releases, revocations and
// secrets run, on PostgreSQL: a capped pass bought, extended and spent, its
// end, a debit released, a token revoked, the sums clean.
func TestLedgerOnPostgres(t *testing.T) {
	dsn := pgSchema(t)
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	e := newShopEngine(t, openPG(t, dsn), 5, clk.now, goods)
	rc := e.buy(t, "capped", "") // 3 requests within an hour
	for i := range 3 {
		if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 200 {
			t.Fatalf("pass request %d: %d %s", i+1, a.status, a.body)
		}
	}
	if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 402 {
		t.Fatalf("beyond the cap: %d", a.status)
	}
	e.buy(t, "capped", rc.Token) // extends: 3 more
	if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 200 || a.header.Get(credits.HeaderPassLeft) != "2" {
		t.Fatalf("extended: %d %v", a.status, a.header)
	}
	clk.add(3 * time.Hour)
	if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 402 {
		t.Fatalf("after the pass: %d", a.status)
	}
	e.buy(t, "pack", rc.Token)
	if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 200 || a.header.Get(credits.HeaderBalance) != "95" {
		t.Fatalf("pack: %d %v", a.status, a.header)
	}
	if _, err := e.ledger.Release(t.Context(), "no-such-payment"); err != nil {
		t.Fatal(err)
	}
	s1, err := e.ledger.Secret(t.Context(), "x")
	s2, _ := e.ledger.Secret(t.Context(), "x")
	if err != nil || string(s1) != string(s2) {
		t.Fatalf("Secret: %v", err)
	}
	if ok, err := e.ledger.Revoke(t.Context(), credits.HashToken(rc.Token)); !ok || err != nil {
		t.Fatalf("Revoke: %v %v", ok, err)
	}
	if a := e.send(t, "GET", "/api/x", bearer(rc.Token)); a.status != 402 || !strings.Contains(a.body, credits.ReasonTokenRevoked) {
		t.Fatalf("revoked: %d %s", a.status, a.body)
	}
	tot, err := e.ledger.Check(t.Context())
	if err != nil || !tot.Clean() || tot.Purchased != 100 || tot.Debited != 5 || tot.Debits != 5 {
		t.Errorf("totals %+v %v", tot, err)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
