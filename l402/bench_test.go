package l402_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/l402"
	"github.com/coinop/coinop/lightning/devnode"
	"github.com/coinop/coinop/store/sqlite"
)

// benchRail is a rail on the development node and a SQLite journal, with
// one paid token for a charge of GET /weather.
func benchRail(b *testing.B) (*l402.Rail, coinop.Charge, *http.Request) {
	b.Helper()
	n, err := devnode.New(devnode.Config{})
	if err != nil {
		b.Fatal(err)
	}
	j, err := sqlite.Open(filepath.Join(b.TempDir(), "journal.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	rail, err := l402.New(b.Context(), l402.Config{Name: "sats", Node: n, Store: j, Network: "regtest"})
	if err != nil {
		b.Fatal(err)
	}
	ch := coinop.Charge{Price: price, Route: "GET /weather", Resource: coinop.Resource{URL: "http://x/weather", Method: "GET"}}
	c := &coinop.Challenge{Header: http.Header{}}
	if err := rail.Challenge(b.Context(), c, ch); err != nil {
		b.Fatal(err)
	}
	chs := l402.ParseChallenges(c.Header.Values("WWW-Authenticate"))
	p, err := n.PayInvoice(b.Context(), chs[0].Invoice, 0)
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://x/weather", nil)
	req.Header.Set("Authorization", l402.FormatAuthorization([][]byte{chs[0].Token}, p.Preimage))
	return rail, ch, req
}

// BenchmarkChallenge: an invoice from the development node (a secp256k1
// signature), a token minted and its root key journaled.
func BenchmarkChallenge(b *testing.B) {
	rail, ch, _ := benchRail(b)
	for b.Loop() {
		if err := rail.Challenge(b.Context(), &coinop.Challenge{Header: http.Header{}}, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspect: the header parsed, the macaroon decoded, its caveats
// checked and the preimage hashed: what any request costs before I/O.
func BenchmarkInspect(b *testing.B) {
	rail, ch, req := benchRail(b)
	for b.Loop() {
		if _, err := rail.Inspect(req, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: the root key read from the journal, the HMAC chain
// verified, the invoice looked up on the (in-process) node.
func BenchmarkVerify(b *testing.B) {
	rail, ch, req := benchRail(b)
	p, err := rail.Inspect(req, ch)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := rail.Verify(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
}
