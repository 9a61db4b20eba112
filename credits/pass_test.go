package credits_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coinop/coinop/credits"
)

// A pass serves every request until exactly its end, costs no credits, and
// says when it ends; at its end the route turns to 402 (the account holds
// no credits) and the ledger records the pass's expiry. Time is synctest's.
func TestPassExpiresAtItsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := openSQLite(t)
		e := newEngine(t, j, 5, time.Now, goods, true)
		rc := e.buy(t, "hour", "")
		end := time.Now().Add(time.Hour)
		time.Sleep(time.Hour - time.Nanosecond)
		a := e.call(t, rc.Token)
		if a.status != 200 || a.header.Get(credits.HeaderPassExpires) != end.UTC().Format(time.RFC3339) ||
			a.header.Get(credits.HeaderBalance) != "0" || a.header.Get(credits.HeaderPassLeft) != "" {
			t.Fatalf("a nanosecond before the end: %d %v", a.status, a.header)
		}
		time.Sleep(time.Nanosecond)
		if a := e.call(t, rc.Token); a.status != 402 || !strings.Contains(a.body, credits.ReasonBalanceTooLow) {
			t.Fatalf("at the end: %d %s", a.status, a.body)
		}
		tot, err := e.ledger.Check(t.Context())
		if err != nil || !tot.Clean() || tot.Debits != 1 || tot.Debited != 0 {
			t.Errorf("ledger %+v %v: want one debit of the pass, no credits", tot, err)
		}
	})
}

// A capped pass serves its requests and no more; a second pass bought
// while the first is active extends it.
func TestCappedPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := openSQLite(t)
		e := newEngine(t, j, 5, time.Now, goods, true)
		rc := e.buy(t, "capped", "") // 3 requests within an hour
		for i := range 3 {
			a := e.call(t, rc.Token)
			if left := a.header.Get(credits.HeaderPassLeft); a.status != 200 || left != string(rune('2'-i)) {
				t.Fatalf("request %d: %d, %q left", i+1, a.status, left)
			}
		}
		if a := e.call(t, rc.Token); a.status != 402 {
			t.Fatalf("beyond the cap: %d", a.status)
		}
		time.Sleep(30 * time.Minute)
		e.buy(t, "capped", rc.Token)
		a := e.call(t, rc.Token)
		if want := time.Now().Add(90 * time.Minute).UTC().Format(time.RFC3339); a.status != 200 ||
			a.header.Get(credits.HeaderPassExpires) != want || a.header.Get(credits.HeaderPassLeft) != "2" {
			t.Fatalf("extended pass: %d %v, want end %s and 2 left", a.status, a.header, want)
		}
	})
}

func (e *shopEngine) call(t *testing.T, token string) answer {
	t.Helper()
	return e.send(t, "GET", "/api/x", bearer(token))
}
