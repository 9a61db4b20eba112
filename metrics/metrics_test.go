package metrics_test

import (
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/metrics"
)

// scrape reads the handler's exposition and parses it as Prometheus text.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	out := map[string]*dto{}
	for name, f := range families {
		d := &dto{values: map[string]float64{}}
		for _, mt := range f.GetMetric() {
			key := ""
			for _, l := range mt.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			switch {
			case mt.Counter != nil:
				d.values[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				d.values[key] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				d.values[key] = float64(mt.Histogram.GetSampleCount())
			}
		}
		out[name] = d
	}
	return out
}

type dto struct{ values map[string]float64 }

// TestCountsWhatHappened: payment steps, revenue, refusals and requests
// reach the exposition with the values reported.
func TestCountsWhatHappened(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	owed := 3
	m := metrics.New(func() time.Time { return clock }, func() int { return owed })
	for i, amount := range []int64{1000, 2500} {
		p := &coinop.Payment{ID: string(rune('a' + i)), Rail: "usdc", Route: "GET /weather", Network: "eip155:1", Asset: "0xa0", Amount: big.NewInt(amount)}
		p.Created = clock // as the journal records it at the reservation
		m.Step("reserved", p)
		clock = clock.Add(200 * time.Millisecond)
		m.Step("settled", p)
		m.Step("served", p)
	}
	m.Step("tx_sent", &coinop.Payment{ID: "x", Rail: "usdc"}) // not counted
	m.Refused(httptest.NewRequest("GET", "/weather", nil), "GET /weather", coinop.Errorf(coinop.KindPaymentRequired, coinop.ReasonPaymentRequired, "pay"))
	m.Refused(httptest.NewRequest("GET", "/weather", nil), "GET /weather", coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "used"))
	m.Request("GET /weather", 402, 3*time.Millisecond)
	m.Request("GET /weather", 200, 40*time.Millisecond)
	m.Request("", 404, time.Millisecond)

	got := scrape(t, m)
	want := map[string]map[string]float64{
		"coinop_payments_total": {
			"rail=usdc,route=GET /weather,step=reserved,": 2,
			"rail=usdc,route=GET /weather,step=settled,":  2,
			"rail=usdc,route=GET /weather,step=served,":   2,
		},
		"coinop_revenue_atomic_total": {"asset=0xa0,network=eip155:1,rail=usdc,": 3500},
		"coinop_settlement_seconds":   {"mode=sync,rail=usdc,": 2},
		"coinop_refusals_total": {
			"reason=payment_required,route=GET /weather,status=402,": 1,
			"reason=payment_replayed,route=GET /weather,status=402,": 1,
		},
		"coinop_requests_total": {
			"route=GET /weather,status=402,": 1, "route=GET /weather,status=200,": 1, "route=,status=404,": 1,
		},
		"coinop_settlements_owed": {"": 3},
	}
	for name, series := range want {
		f, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if len(f.values) != len(series) {
			t.Errorf("%s has %d series, want %d: %v", name, len(f.values), len(series), f.values)
		}
		for k, v := range series {
			if f.values[k] != v {
				t.Errorf("%s{%s} = %v, want %v", name, k, f.values[k], v)
			}
		}
	}
}

// TestErrors: a request refused because the journal is unavailable counts
// as a journal error, and requests to a node are counted by outcome (an
// HTTP error status and no answer at all are failures).
func TestErrors(t *testing.T) {
	m := metrics.New(nil, nil)
	r := httptest.NewRequest("GET", "/weather", nil)
	m.Refused(r, "GET /weather", coinop.Errorf(coinop.KindUnavailable, coinop.ReasonStoreUnavailable, "down"))
	m.Refused(r, "GET /weather", coinop.Errorf(coinop.KindPaymentRequired, coinop.ReasonPaymentRequired, "pay"))
	m.JournalError("probe")

	var fail bool
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}
	}))
	hc := &http.Client{Transport: m.RPC("eip155:1", nil)}
	for _, f := range []bool{false, false, true} {
		fail = f
		resp, err := hc.Get(node.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	node.Close()
	if _, err := hc.Get(node.URL); err == nil {
		t.Fatal("a closed node answered")
	}

	got := scrape(t, m)
	for _, c := range []struct {
		name, key string
		want      float64
	}{
		{"coinop_journal_errors_total", "where=request,", 1},
		{"coinop_journal_errors_total", "where=probe,", 1},
		{"coinop_rpc_requests_total", "network=eip155:1,outcome=ok,", 2},
		{"coinop_rpc_requests_total", "network=eip155:1,outcome=error,", 2},
	} {
		if f := got[c.name]; f == nil || f.values[c.key] != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.key, f, c.want)
		}
	}
}
