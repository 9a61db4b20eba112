// Package client pays for HTTP requests: Transport is an http.RoundTripper
// that answers a 402 by asking its Methods (x402, and any other dialect)
// what the 402 offers, choosing the first option its spending Policy
// allows in the buyer's order of preference, paying it and retrying once.
//
// The package links neither go-ethereum nor any SQL driver.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/eip3009"
	"github.com/coinop/coinop/x402"
)

// Transport is an http.RoundTripper that pays 402 answers. It is safe for
// concurrent use.
type Transport struct {
	// Base performs the requests. If nil, http.DefaultTransport.
	Base http.RoundTripper
	// Methods are the dialects the Transport pays in. If nil, one X402
	// with Key, Now and Rand.
	Methods []Method
	// Prefer lists method names in the buyer's order of preference: the
	// options of a method it lists come before those of one it does not,
	// which keep the order of Methods.
	Prefer []string
	// Key signs x402 authorizations when Methods is nil.
	Key *eip3009.Key
	// Policy limits spending.
	Policy Policy
	// Now and Rand are the clock and randomness of the default X402
	// method. If nil, time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	// OnPayment, if set, is called after each payment is made and before
	// the paid request is sent.
	OnPayment func(Payment)

	once    sync.Once
	ordered []Method
	spent   ledger
}

// Spent is the total paid so far in unit (a Price.Unit).
func (t *Transport) Spent(unit string) *big.Int { return t.spent.total(unit) }

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// methods are t's methods in the buyer's order of preference.
func (t *Transport) methods() []Method {
	t.once.Do(func() {
		ms := t.Methods
		if ms == nil {
			ms = []Method{&X402{Key: t.Key, Now: t.Now, Rand: t.Rand}}
		}
		rank := func(m Method) int {
			if i := slices.Index(t.Prefer, m.Name()); i >= 0 {
				return i
			}
			return len(t.Prefer)
		}
		t.ordered = slices.Clone(ms)
		slices.SortStableFunc(t.ordered, func(a, b Method) int { return rank(a) - rank(b) })
	})
	return t.ordered
}

// RoundTrip sends req; on a 402 it pays and retries once. A request that
// already carries a payment header (PAYMENT-SIGNATURE, X-PAYMENT, or an
// Authorization in a payment scheme) is never paid again. A request body
// is replayed through req.GetBody; without GetBody a 402 is returned as
// is, as is a 402 in no dialect the Transport speaks.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if carriesPayment(req.Header) {
		return t.base().RoundTrip(req)
	}
	sent, reuser := t.reuse(req)
	resp, err := t.base().RoundTrip(sent)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusPaymentRequired {
		if o, ok := reuser.(Observer); ok {
			o.Observe(sent, resp, nil)
		}
		return resp, nil
	}
	if reuser != nil {
		reuser.Forget(sent, resp)
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil
	}
	ch, err := challenge(req, resp)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	opt, cred, err := t.pay(req.Context(), ch)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if opt == nil {
		return resp, nil
	}
	resp.Body.Close()
	retry, err := paidRequest(req, cred)
	if err != nil {
		return nil, err
	}
	if t.OnPayment != nil {
		t.OnPayment(cred.Payment)
	}
	// A paid request whose response was lost (connection reset, gateway
	// restart) is retried with the same credential, never a new payment:
	// the server answers a settled-but-unserved payment without charging
	// again, and a used one with 402, so a retry cannot pay twice.
	for attempt := 0; ; attempt++ {
		resp, err := t.base().RoundTrip(retry)
		if err == nil {
			if o, ok := t.method(opt.Method).(Observer); ok {
				o.Observe(retry, resp, cred)
			}
			return resp, nil
		}
		if attempt == len(paidRetryDelays) || req.Context().Err() != nil {
			return nil, err
		}
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(paidRetryDelays[attempt]):
		}
		if retry, err = paidRequest(req, cred); err != nil {
			return nil, err
		}
	}
}

// paidRetryDelays are the waits before resending a paid request whose
// response did not arrive.
var paidRetryDelays = [...]time.Duration{200 * time.Millisecond, time.Second}

// paidRequest is req again, with its body replayed and the credential's
// headers set.
func paidRequest(req *http.Request, cred *Credential) (*http.Request, error) {
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("replay request body: %w", err)
		}
		retry.Body = body
	}
	for name, values := range cred.Header {
		retry.Header[name] = slices.Clone(values)
	}
	return retry, nil
}

// reuse offers req to each Reuser in order of preference: the first that
// adds a held credential to a copy of req gets it sent.
func (t *Transport) reuse(req *http.Request) (*http.Request, Reuser) {
	if req.Header.Get("Authorization") != "" {
		return req, nil
	}
	for _, m := range t.methods() {
		r, ok := m.(Reuser)
		if !ok {
			continue
		}
		clone := req.Clone(req.Context())
		if r.Reuse(clone) {
			return clone, r
		}
	}
	return req, nil
}

func (t *Transport) method(name string) Method {
	for _, m := range t.methods() {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// paymentSchemes are the Authorization schemes that carry a payment.
var paymentSchemes = []string{"L402", "LSAT", "Payment"}

func carriesPayment(h http.Header) bool {
	if h.Get(x402.HeaderPaymentSignature) != "" || h.Get(x402.HeaderXPayment) != "" {
		return true
	}
	for _, v := range h.Values("Authorization") {
		scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		if contains(paymentSchemes, scheme) {
			return true
		}
	}
	return false
}

// challenge reads the 402 resp to req, leaving resp.Body readable.
func challenge(req *http.Request, resp *http.Response) (*Challenge, error) {
	body, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	return &Challenge{Request: req, Response: resp, Body: body}, nil
}

// readBody reads up to 1 MiB of resp.Body and puts it back, readable again.
func readBody(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if err != nil {
		return nil, fmt.Errorf("read the 402: %w", err)
	}
	return body, nil
}

// Pay reads the offers of a 402 response to url and pays the first option
// the policy allows, without sending anything: the Payment's Header and
// Value are the credential. resp.Body, if still open, stays readable.
func (t *Transport) Pay(url string, resp *http.Response) (*Payment, error) {
	req := resp.Request
	if req == nil {
		var err error
		if req, err = http.NewRequest(http.MethodGet, url, nil); err != nil {
			return nil, err
		}
	}
	// A body the caller has closed or could not read leaves the headers,
	// where v2 terms are.
	body, _ := readBody(resp)
	opt, cred, err := t.pay(req.Context(), &Challenge{Request: req, Response: resp, Body: body})
	if err != nil {
		return nil, err
	}
	if opt == nil {
		return nil, errors.New("the 402 offers no way to pay that this client speaks")
	}
	p := cred.Payment
	p.URL = url
	return &p, nil
}

// pay collects every method's options for ch and pays the first the policy
// allows. No option at all is (nil, nil, nil).
func (t *Transport) pay(ctx context.Context, ch *Challenge) (*Option, *Credential, error) {
	var opts []Option
	var refusals []string
	for _, m := range t.methods() {
		o, err := m.Options(ctx, ch)
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("%s: %v", m.Name(), err))
			continue
		}
		opts = append(opts, o...)
	}
	if len(opts) == 0 && len(refusals) == 0 {
		return nil, nil, nil
	}
	var failed error
	for _, o := range opts {
		if o.Header != "" && ch.Request.Header.Get(o.Header) != "" {
			refusals = append(refusals, fmt.Sprintf("%s: the request already carries %s", o.About, o.Header))
			continue
		}
		if err := t.Policy.check(o); err != nil {
			refusals = append(refusals, err.Error())
			continue
		}
		if err := t.Policy.book(&t.spent, o); err != nil {
			refusals = append(refusals, err.Error())
			continue
		}
		cred, err := o.Pay(ctx)
		if err != nil {
			if errors.Is(err, ErrMaybeSpent) {
				return nil, nil, err
			}
			unbook(&t.spent, o)
			if failed == nil {
				failed = err
			}
			continue
		}
		p := &cred.Payment
		p.URL, p.Method, p.Price, p.About = ch.Request.URL.String(), o.Method, o.Price, o.About
		if p.Header == "" {
			for name, v := range cred.Header {
				p.Header, p.Value = name, strings.Join(v, ", ")
				break
			}
		}
		return &o, cred, nil
	}
	if failed != nil {
		return nil, nil, failed
	}
	if len(refusals) == 0 {
		return nil, nil, coinop.Errorf(coinop.KindPolicy, "policy_refused", "the 402 offers no way to pay")
	}
	return nil, nil, coinop.Errorf(coinop.KindPolicy, "policy_refused", "no offer is acceptable: %s", strings.Join(refusals, "; "))
}
