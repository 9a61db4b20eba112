package storetest

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
)

// CheckFixture checks that s, a journal migrated from one written by an
// earlier version of coinop, reads back every field of every payment and
// event that version wrote. path is the JSON the earlier version produced
// from its own Get and Events (store/sqlite/testdata/v2gen): a list of
// {"Payment": …, "Events": [{"PaymentID", "From", "To", "Tx", "Reason",
// "At"}]}.
func CheckFixture(t *testing.T, s Store, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Payment coinop.Payment
		Events  []struct {
			PaymentID, Tx, Reason string
			From, To              coinop.State
			At                    time.Time
		}
	}
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s holds no payments", path)
	}
	var all []string
	for _, r := range recs {
		want := &r.Payment
		all = append(all, want.ID)
		got := get(t, s, want.ID)
		samePayment(t, got, want)
		if got.Prepared != want.Prepared {
			t.Errorf("payment %s Prepared = %q, want %q", want.ID, got.Prepared, want.Prepared)
		}
		var wantEvents []store.Event
		for _, e := range r.Events {
			wantEvents = append(wantEvents, store.Event{PaymentID: e.PaymentID, From: e.From, To: e.To,
				Reference: e.Tx, Reason: e.Reason, At: e.At})
		}
		gotEvents := events(t, s, want.ID)
		if !slices.EqualFunc(gotEvents, wantEvents, func(g, w store.Event) bool {
			return g.PaymentID == w.PaymentID && g.From == w.From && g.To == w.To &&
				g.Reference == w.Reference && g.Reason == w.Reason && g.At.Equal(w.At)
		}) {
			t.Errorf("payment %s events =\n%+v\nwant\n%+v", want.ID, gotEvents, wantEvents)
		}
	}
	listed, err := s.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(listed)
	slices.Sort(got)
	slices.Sort(all)
	if !slices.Equal(got, all) {
		t.Errorf("journal lists %q, want exactly %q", got, all)
	}
}
