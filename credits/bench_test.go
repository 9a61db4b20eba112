package credits_test

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkCharge is one credits charge through the engine, over loopback
// HTTP, in front of a handler that answers at once, on a SQLite journal:
// the reservation, the debit with its journal record, the settled and
// served marks.
func BenchmarkCharge(b *testing.B) {
	// A cost of 0 credits runs every step of a charge (the debit's
	// statement included) without running the balance out.
	e := newShopEngine(b, openSQLite(b), 0, time.Now, goods)
	rc := e.buy(b, "pack", "")
	h := bearer(rc.Token)
	for b.Loop() {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/x", nil)
		req.Header = h.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
}
