package mpp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/mpp"
)

// BenchmarkChallenge is the cost of one rail's Payment challenge on a 402:
// JCS request, nonce, HMAC id, header.
func BenchmarkChallenge(b *testing.B) {
	r := &mpp.Rail{Method: &fakeMethod{name: "alpha"}, Secret: []byte("s"), Now: time.Now}
	ch := coinop.Charge{Price: price(5), Resource: coinop.Resource{URL: "http://x/a"}}
	for b.Loop() {
		if err := r.Challenge(context.Background(), &coinop.Challenge{Header: http.Header{}}, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspect is the cost of the stateless checks of one credential:
// parse, HMAC, realm, expiry, request equality, the method's decode.
func BenchmarkInspect(b *testing.B) {
	r := &mpp.Rail{Method: &fakeMethod{name: "alpha"}, Secret: []byte("s"), Now: time.Now}
	ch := coinop.Charge{Price: price(5), Resource: coinop.Resource{URL: "http://x/a"}}
	c := &coinop.Challenge{Header: http.Header{}}
	if err := r.Challenge(context.Background(), c, ch); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://x/a", nil)
	req.Header.Set("Authorization", credentialFor(challengesOf(c.Header)[0], "n1"))
	for b.Loop() {
		if _, err := r.Inspect(req, ch); err != nil {
			b.Fatal(err)
		}
	}
}
