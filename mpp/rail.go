package mpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/coinop/coinop"
)

// Method is one payment method of the Payment scheme on the server side
// (evm, tempo, lightning), for one intent. Implementations must be safe for
// concurrent use.
type Method interface {
	// Name is the method's name on the wire ("evm").
	Name() string
	// Intent is the intent it serves ("charge").
	Intent() string
	// Request is the method's request object for ch. It must be
	// deterministic: a credential echoes it and the rail compares.
	Request(ch coinop.Charge) (map[string]any, error)
	// Offer describes ch in neutral words for the 402's body and page;
	// the rail fills Rail, Protocol, Header and Expires.
	Offer(ch coinop.Charge) coinop.Offer
	// Check decodes the credential's payload (c.Credential.Payload) and
	// makes every check that needs neither cryptography nor I/O. The
	// echoed challenge was issued by this rail (its id was checked) and,
	// for a fresh presentation, for this charge (its request was compared;
	// a payment restored from the journal has c.Charge rebuilt from the
	// journaled amount and resource). It returns the payment to journal,
	// with an ID derived from its replay key; it may keep state in c.State.
	Check(c *Checked) (*coinop.Payment, error)
	// Verify makes the expensive checks (signature, network).
	Verify(ctx context.Context, p *coinop.Payment, c *Checked) error
	// Settle collects p, recording through rec before anything is sent,
	// with the meaning of coinop.Rail.Settle. The rail adds the
	// Payment-Receipt header on success.
	Settle(ctx context.Context, p *coinop.Payment, c *Checked, rec coinop.Recorder) (*coinop.Receipt, error)
}

// Checked is a credential the rail has checked: its challenge was issued
// here for the charge being bought.
type Checked struct {
	Credential *Credential
	Charge     coinop.Charge
	// Now is the time of the check.
	Now time.Time
	// State is private to the method.
	State any
	// Late reports that the challenge had expired when the credential was
	// presented: only a LateTaker's checks see such a credential.
	Late bool
}

// LateTaker is implemented by methods whose money moves before the
// credential is presented (lightning: the invoice settles, then the payer
// learns the preimage): refusing a credential paid in time but presented
// after its challenge expired would keep money that bought nothing. A
// credential presented late goes on to the method's checks with
// Checked.Late set, and the method must refuse it unless the payment
// provably completed before the challenge expired.
type LateTaker interface {
	TakesLate() bool
}

// Issuer is implemented by methods whose request is made afresh for
// every challenge (lightning: a new invoice, so a new payment hash): Issue
// replaces Request when a challenge is issued, and an echoed request is
// judged by Matches instead of being compared with Request's. The
// challenge's id binds the issued request, so Matches sees only requests
// this rail issued; it says whether one still buys charge ch (its price).
type Issuer interface {
	Issue(ctx context.Context, ch coinop.Charge) (map[string]any, error)
	Matches(ch coinop.Charge, request string) error
}

// ProblemTyper is implemented by methods whose specification names
// problem types of its own for the scheme's refusals of a credential
// answering the method (lightning: expired-invoice for payment-expired):
// ProblemType maps a base type to the method's, or returns it unchanged.
type ProblemTyper interface {
	ProblemType(base string) string
}

// typed gives e the method's problem type (ProblemTyper).
func (r *Rail) typed(e *coinop.Error) *coinop.Error {
	if pt, ok := r.Method.(ProblemTyper); ok {
		e.Type = pt.ProblemType(e.Type)
	}
	return e
}

// Reverifier is implemented by methods whose credentials may be proven
// again without the network (see coinop.Reverifier).
type Reverifier interface {
	Reverify(p *coinop.Payment, c *Checked, prev *coinop.Payment, old *Credential) error
}

// Rail is the Payment scheme's coinop.Rail for one method: its 402 carries
// one WWW-Authenticate: Payment challenge, it reads Authorization: Payment
// credentials, and it answers a paid response with Payment-Receipt.
// Several Rails (one per method, network or asset) may serve one route:
// each adds its own challenge, and a credential goes to the rail whose
// challenge it echoes.
type Rail struct {
	// ID is the rail's name; "mpp-" and the method's name when empty.
	ID string
	// Method pays.
	Method Method
	// Secret keys the challenge ids' HMAC. Every gateway that may receive
	// a credential for a challenge must hold the same secret.
	Secret []byte
	// Realm is the protection space; when empty, the request's host.
	Realm string
	// Expires is how long a challenge stays payable. If zero, 5 minutes.
	Expires time.Duration
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// Rand is the source of the challenges' nonces. If nil, crypto/rand.
	Rand io.Reader
}

var (
	_ coinop.Rail       = (*Rail)(nil)
	_ coinop.Restorer   = (*Rail)(nil)
	_ coinop.Reverifier = (*Rail)(nil)
)

// Name is the rail's name among the engine's rails.
func (r *Rail) Name() string {
	if r.ID != "" {
		return r.ID
	}
	return "mpp-" + r.Method.Name()
}

// Headers: the credential travels in Authorization; browsers may read
// the receipt (WWW-Authenticate is always exposed by the engine).
func (r *Rail) Headers() coinop.Headers {
	return coinop.Headers{Request: []string{HeaderAuthorization}, Expose: []string{HeaderReceipt}}
}

func (r *Rail) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rail) expires() time.Duration {
	if r.Expires > 0 {
		return r.Expires
	}
	return 5 * time.Minute
}

// realm is the realm for a request to resource URL u.
func (r *Rail) realm(u string) string {
	if r.Realm != "" {
		return r.Realm
	}
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		return pu.Host
	}
	return "coinop"
}

// problem is a refusal of the Payment scheme with its problem type.
func problem(k coinop.Kind, typ, reason, msg string) *coinop.Error {
	return &coinop.Error{Kind: k, Type: typ, Reason: reason, Message: msg}
}

// Reason codes of the Payment scheme's refusals.
const (
	ReasonMalformed        = "mpp_malformed_credential"
	ReasonInvalidChallenge = "mpp_invalid_challenge"
	ReasonExpired          = "mpp_challenge_expired"
	ReasonOtherChallenge   = "mpp_challenge_not_offered"
	ReasonRealm            = "mpp_realm_mismatch"
	ReasonInvalidPayload   = "mpp_invalid_payload"
)

// Challenge adds this rail's WWW-Authenticate: Payment challenge for ch and
// its offer. A request whose Accept-Payment does not want the method gets
// none; challenges of several Payment rails are kept in the order of its
// weights.
func (r *Rail) Challenge(ctx context.Context, c *coinop.Challenge, ch coinop.Charge) error {
	var prefs []Preference
	if c.Request != nil {
		if v := c.Request.Header.Values(HeaderAcceptPayment); len(v) > 0 {
			// An unreadable header is taken as no preference.
			prefs, _ = ParseAcceptPayment(v)
		}
	}
	if Weight(prefs, r.Method.Name(), r.Method.Intent()) <= 0 {
		return nil
	}
	chal, err := r.issue(ctx, ch)
	if err != nil {
		return err
	}
	c.Header.Add(HeaderWWWAuthenticate, chal.String())
	if len(prefs) > 0 {
		orderChallenges(c.Header, prefs)
	}
	o := r.Method.Offer(ch)
	o.Rail, o.Protocol, o.Header = r.Name(), "mpp", HeaderAuthorization
	o.Expires = int(r.expires() / time.Second)
	if o.HowTo == "" {
		o.HowTo = "Answer the WWW-Authenticate: Payment challenge with method=\"" + r.Method.Name() + "\" in an Authorization: Payment header. `coinop curl --prefer mpp URL` does this for you."
	}
	if o.Terms == nil {
		o.Terms = map[string]any{}
	}
	o.Terms["challenge"] = chal
	c.Offers = append(c.Offers, o)
	return nil
}

// issue makes a fresh challenge for ch: a random nonce in opaque keeps
// every challenge, and so every credential, distinct.
func (r *Rail) issue(ctx context.Context, ch coinop.Charge) (*Challenge, error) {
	var req map[string]any
	var err error
	if is, ok := r.Method.(Issuer); ok {
		req, err = is.Issue(ctx, ch)
	} else {
		req, err = r.Method.Request(ch)
	}
	if err != nil {
		return nil, err
	}
	enc, err := EncodeRequest(req)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	src := r.Rand
	if src == nil {
		src = rand.Reader
	}
	if _, err := io.ReadFull(src, nonce[:]); err != nil {
		return nil, err
	}
	opaque, err := EncodeRequest(map[string]any{"n": hex.EncodeToString(nonce[:])})
	if err != nil {
		return nil, err
	}
	chal := &Challenge{
		Realm: r.realm(ch.Resource.URL), Method: r.Method.Name(), Intent: r.Method.Intent(),
		Request: enc, Expires: r.now().Add(r.expires()).UTC().Format(time.RFC3339), Opaque: opaque,
		Description: ch.Resource.Description,
	}
	chal.ID = ID(r.Secret, chal)
	return chal, nil
}

// orderChallenges sorts the Payment challenges among h's WWW-Authenticate
// values by prefs' weights (stable), leaving other schemes' values where
// they are.
func orderChallenges(h http.Header, prefs []Preference) {
	vals := h.Values(HeaderWWWAuthenticate)
	var slots []int
	var pay []string
	for i, v := range vals {
		if cs, err := ParseChallenges([]string{v}); err == nil && len(cs) == 1 {
			slots = append(slots, i)
			pay = append(pay, v)
		}
	}
	weight := func(v string) float64 {
		cs, _ := ParseChallenges([]string{v})
		return Weight(prefs, cs[0].Method, cs[0].Intent)
	}
	sort.SliceStable(pay, func(i, j int) bool { return weight(pay[i]) > weight(pay[j]) })
	out := append([]string(nil), vals...)
	for k, i := range slots {
		out[i] = pay[k]
	}
	h[http.CanonicalHeaderKey(HeaderWWWAuthenticate)] = out
}

// Inspect reads an Authorization: Payment credential and checks, in
// order: its form, that it answers this rail's method, that this rail
// issued its challenge (the id's HMAC) for this realm, that the challenge
// has not expired, and that its request is the one this charge asks for
// now; then the method's own cheap checks.
func (r *Rail) Inspect(req *http.Request, ch coinop.Charge) (*coinop.Payment, error) {
	h, err := FindCredential(req.Header.Values(HeaderAuthorization))
	if err != nil {
		return nil, problem(coinop.KindMalformed, ProblemMalformed, ReasonMalformed, err.Error())
	}
	if h == "" {
		return nil, nil
	}
	c, err := r.check(h, ch, true)
	if err != nil {
		return nil, err
	}
	p, err := r.Method.Check(c)
	if err != nil {
		return nil, err
	}
	p.Resource = ch.Resource.URL
	p.Payload = h
	p.Credential = c
	return p, nil
}

// check decodes credential h and proves its challenge was issued here for
// ch. live adds the checks of a fresh presentation: expiry and the
// request's equality with what ch asks now (a restored payment proves only
// its origin).
func (r *Rail) check(h string, ch coinop.Charge, live bool) (*Checked, error) {
	cred, err := ParseCredential(h)
	if err != nil {
		return nil, problem(coinop.KindMalformed, ProblemMalformed, ReasonMalformed, err.Error())
	}
	chal := &cred.Challenge
	if chal.Method != r.Method.Name() || chal.Intent != r.Method.Intent() {
		e := problem(coinop.KindRejected, ProblemMethodUnsupported, ReasonOtherChallenge, "method "+chal.Method+" intent "+chal.Intent+" is not offered by this rail")
		e.OtherOffer = true
		return nil, e
	}
	if !Bound(r.Secret, chal) {
		// Another rail of the same method may have issued it.
		e := problem(coinop.KindRejected, ProblemInvalidChallenge, ReasonInvalidChallenge, "the echoed challenge was not issued here, or was altered")
		e.OtherOffer = true
		return nil, r.typed(e)
	}
	now := r.now()
	if live {
		if want := r.realm(ch.Resource.URL); chal.Realm != want {
			return nil, r.typed(problem(coinop.KindRejected, ProblemInvalidChallenge, ReasonRealm, "the challenge is for realm "+chal.Realm+", not "+want))
		}
		exp, ok, err := chal.ExpiresAt()
		if err != nil || !ok {
			return nil, r.typed(problem(coinop.KindRejected, ProblemInvalidChallenge, ReasonInvalidChallenge, "the challenge has no valid expires"))
		}
		late := !now.Before(exp)
		if lt, ok := r.Method.(LateTaker); late && (!ok || !lt.TakesLate()) {
			return nil, r.typed(problem(coinop.KindRejected, ProblemExpired, ReasonExpired, "the challenge expired at "+chal.Expires+"; pay the fresh one"))
		}
		if is, ok := r.Method.(Issuer); ok {
			if err := is.Matches(ch, chal.Request); err != nil {
				e := problem(coinop.KindRejected, ProblemInvalidChallenge, ReasonInvalidChallenge, "the challenge asks for another payment than this request costs now ("+err.Error()+"); pay the fresh one")
				e.OtherOffer = true
				return nil, r.typed(e)
			}
			return &Checked{Credential: cred, Charge: ch, Now: now, Late: late}, nil
		}
		want, err := r.Method.Request(ch)
		if err != nil {
			return nil, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
		}
		enc, err := EncodeRequest(want)
		if err != nil {
			return nil, coinop.Wrap(coinop.KindInternal, coinop.ReasonInternal, err, "internal error")
		}
		if enc != chal.Request {
			e := problem(coinop.KindRejected, ProblemInvalidChallenge, ReasonInvalidChallenge, "the challenge asks for another payment than this request costs now; pay the fresh one")
			e.OtherOffer = true
			return nil, r.typed(e)
		}
		return &Checked{Credential: cred, Charge: ch, Now: now, Late: late}, nil
	}
	return &Checked{Credential: cred, Charge: ch, Now: now}, nil
}

// Verify runs the method's expensive checks.
func (r *Rail) Verify(ctx context.Context, p *coinop.Payment) error {
	c, err := checkedOf(p)
	if err != nil {
		return err
	}
	return r.Method.Verify(ctx, p, c)
}

// Settle runs the method's settlement and adds Payment-Receipt on success.
func (r *Rail) Settle(ctx context.Context, p *coinop.Payment, rec coinop.Recorder) (*coinop.Receipt, error) {
	c, err := checkedOf(p)
	if err != nil {
		return nil, err
	}
	rc, err := r.Method.Settle(ctx, p, c, rec)
	if rc != nil && rc.Success && err == nil {
		if rc.Header == nil {
			rc.Header = http.Header{}
		}
		receipt := Receipt{Status: "success", Method: r.Method.Name(), Timestamp: r.now().UTC().Format(time.RFC3339), Reference: rc.Reference, ChallengeID: c.Credential.Challenge.ID}
		rc.Header.Set(HeaderReceipt, receipt.Encode())
	}
	return rc, err
}

// Restore rebuilds a journaled payment's credential from its Payload. The
// challenge's id must still be this rail's (same secret); its expiry is not
// checked again, the method's checks run again.
func (r *Rail) Restore(p *coinop.Payment) error {
	ch := coinop.Charge{Price: coinop.Price{Amount: p.Amount}, Resource: coinop.Resource{URL: p.Resource}}
	c, err := r.check(p.Payload, ch, false)
	if err != nil {
		return err
	}
	got, err := r.Method.Check(c)
	if err != nil {
		return err
	}
	if got.ID != p.ID {
		return coinop.Errorf(coinop.KindInternal, ReasonInvalidPayload, "journaled credential does not belong to payment %s", p.ID)
	}
	p.Credential = c
	return nil
}

// Reverify proves that p, presented again, is prev's credential, through
// the method when it can (Reverifier); otherwise a retry is a replay.
func (r *Rail) Reverify(p, prev *coinop.Payment) error {
	replayed := coinop.Errorf(coinop.KindReplayed, coinop.ReasonReplayed, "this payment was already used")
	rv, ok := r.Method.(Reverifier)
	if !ok {
		return replayed
	}
	c, err := checkedOf(p)
	if err != nil {
		return err
	}
	old, err := ParseCredential(strings.TrimSpace(prev.Payload))
	if err != nil {
		return replayed
	}
	return rv.Reverify(p, c, prev, old)
}

func checkedOf(p *coinop.Payment) (*Checked, error) {
	c, ok := p.Credential.(*Checked)
	if !ok {
		return nil, coinop.Errorf(coinop.KindInternal, coinop.ReasonInternal, "payment was not inspected by the Payment rail")
	}
	return c, nil
}
