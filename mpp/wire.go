// Package mpp implements the "Payment" HTTP authentication scheme
// (draft-ryan-httpauth-payment-01, the Machine Payments Protocol): its wire
// format (challenges in WWW-Authenticate, credentials in Authorization,
// receipts in Payment-Receipt, preferences in Accept-Payment), challenge ids
// bound to their parameters by an HMAC, and a coinop.Rail that speaks it
// for one payment method. Methods (evm, tempo, lightning) plug in through
// the Method interface; this package does no cryptography beyond the HMAC
// and no I/O.
package mpp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Header names.
const (
	HeaderWWWAuthenticate = "WWW-Authenticate"
	HeaderAuthorization   = "Authorization"
	HeaderReceipt         = "Payment-Receipt"
	HeaderAcceptPayment   = "Accept-Payment"
)

// Scheme is the authentication scheme's name.
const Scheme = "Payment"

// IntentCharge is the one-time payment intent.
const IntentCharge = "charge"

// Problem types (RFC 9457 "type") the draft defines.
const (
	ProblemPrefix             = "https://paymentauth.org/problems/"
	ProblemPaymentRequired    = ProblemPrefix + "payment-required"
	ProblemMalformed          = ProblemPrefix + "malformed-credential"
	ProblemInvalidChallenge   = ProblemPrefix + "invalid-challenge"
	ProblemVerificationFailed = ProblemPrefix + "verification-failed"
	ProblemExpired            = ProblemPrefix + "payment-expired"
	ProblemInsufficient       = ProblemPrefix + "payment-insufficient"
	ProblemMethodUnsupported  = ProblemPrefix + "method-unsupported"
	ProblemInvalidPayload     = ProblemPrefix + "invalid-payload"
)

// Limits on what a client sends. A credential carries one echoed challenge
// and a small payload; a request object is a few hundred bytes.
const (
	MaxCredential = 32 << 10
	MaxRequest    = 16 << 10
)

var b64 = base64.RawURLEncoding

// Challenge is one Payment challenge, as its auth-params say it. Request
// is the base64url (no padding) JCS JSON of the method's request object, as
// sent: the id binds these exact bytes.
type Challenge struct {
	ID          string `json:"id"`
	Realm       string `json:"realm"`
	Method      string `json:"method"`
	Intent      string `json:"intent"`
	Request     string `json:"request"`
	Expires     string `json:"expires,omitempty"` // RFC 3339
	Digest      string `json:"digest,omitempty"`  // RFC 9530 digest of the request body
	Description string `json:"description,omitempty"`
	Opaque      string `json:"opaque,omitempty"` // base64url, server-defined
}

// EncodeRequest returns the request parameter for a method's request
// object: base64url without padding of its JCS form.
func EncodeRequest(request any) (string, error) {
	b, err := Canonicalize(request)
	if err != nil {
		return "", err
	}
	if len(b) > MaxRequest {
		return "", fmt.Errorf("mpp: request is %d bytes, more than %d", len(b), MaxRequest)
	}
	return b64.EncodeToString(b), nil
}

// DecodeRequest decodes a request parameter into v.
func DecodeRequest(s string, v any) error {
	if len(s) > MaxRequest*4/3+4 {
		return errors.New("request parameter too large")
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return fmt.Errorf("request is not base64url without padding: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request is not JSON: %w", err)
	}
	return nil
}

// ID computes a challenge's id: HMAC-SHA256 under secret over
// realm|method|intent|request|expires|digest|opaque (absent parameters as
// empty slots), base64url without padding. It binds every parameter a
// client echoes, so a server that checks it knows it issued them.
func ID(secret []byte, c *Challenge) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strings.Join([]string{c.Realm, c.Method, c.Intent, c.Request, c.Expires, c.Digest, c.Opaque}, "|")))
	return b64.EncodeToString(mac.Sum(nil))
}

// Bound reports whether c's id is the one secret gives its parameters. A
// parameter holding "|" is never bound: it could shift the boundary
// between two slots of the HMAC input and pass another challenge's id.
func Bound(secret []byte, c *Challenge) bool {
	for _, f := range []string{c.Realm, c.Method, c.Intent, c.Request, c.Expires, c.Digest, c.Opaque} {
		if strings.Contains(f, "|") {
			return false
		}
	}
	return hmac.Equal([]byte(ID(secret, c)), []byte(c.ID))
}

// String writes c as a WWW-Authenticate challenge: `Payment id="…", …`.
// Values are quoted strings; characters a header cannot carry (control
// characters, code points above U+00FF) are escaped as \uXXXX, as mppx
// writes them.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(Scheme)
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		sep = ", "
		b.WriteString(name)
		b.WriteString(`="`)
		for _, r := range value {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r < 0x20 || r == 0x7f || r > 0xff:
				if r > 0xffff {
					for _, u := range utf16Pair(r) {
						fmt.Fprintf(&b, `\u%04x`, u)
					}
				} else {
					fmt.Fprintf(&b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	param("id", c.ID)
	param("realm", c.Realm)
	param("method", c.Method)
	param("intent", c.Intent)
	param("request", c.Request)
	if c.Description != "" {
		param("description", c.Description)
	}
	if c.Digest != "" {
		param("digest", c.Digest)
	}
	if c.Expires != "" {
		param("expires", c.Expires)
	}
	if c.Opaque != "" {
		param("opaque", c.Opaque)
	}
	return b.String()
}

// utf16Pair returns the surrogate pair of r (> U+FFFF) as two runes.
func utf16Pair(r rune) []rune {
	r -= 0x10000
	return []rune{0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff}
}

// ExpiresAt parses c.Expires; ok is false when it is absent.
func (c *Challenge) ExpiresAt() (t time.Time, ok bool, err error) {
	if c.Expires == "" {
		return time.Time{}, false, nil
	}
	t, err = time.Parse(time.RFC3339Nano, c.Expires)
	if err != nil {
		return time.Time{}, true, fmt.Errorf("expires %q is not an RFC 3339 time", c.Expires)
	}
	return t, true, nil
}

// validate checks what every challenge must have.
func (c *Challenge) validate() error {
	switch {
	case c.ID == "":
		return errors.New("challenge has no id")
	case c.Realm == "":
		return errors.New("challenge has no realm")
	case !isMethodName(c.Method):
		return fmt.Errorf("challenge method %q is not a lower-case token", c.Method)
	case !isToken(c.Intent):
		return fmt.Errorf("challenge intent %q is not a token", c.Intent)
	case c.Request == "":
		return errors.New("challenge has no request")
	case len(c.Request) > MaxRequest*4/3+4:
		return errors.New("challenge request is too large")
	}
	if _, _, err := c.ExpiresAt(); err != nil {
		return err
	}
	return nil
}

func isMethodName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Credential is a decoded Authorization: Payment credential: the challenge
// it answers, echoed, who pays (optional, a DID), and the method's payload.
type Credential struct {
	Challenge Challenge       `json:"challenge"`
	Source    string          `json:"source,omitempty"`
	Payload   json.RawMessage `json:"payload"`
}

// Encode writes c as an Authorization header value: "Payment " and the
// base64url (no padding) JSON of c.
func (c *Credential) Encode() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return Scheme + " " + b64.EncodeToString(b), nil
}

// ParseCredential decodes an Authorization header value strictly: the
// scheme word (any case), one space, one base64url token without padding,
// of a JSON object with exactly the members of Credential (the challenge's
// too), a valid echoed challenge and a payload.
func ParseCredential(h string) (*Credential, error) {
	if len(h) > MaxCredential {
		return nil, fmt.Errorf("credential is %d bytes, more than %d", len(h), MaxCredential)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, Scheme) {
		return nil, errors.New("not a Payment credential")
	}
	if token == "" || strings.ContainsAny(token, " \t,=") {
		return nil, errors.New("the credential must be one base64url token without padding")
	}
	raw, err := b64.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("the credential is not base64url without padding: %w", err)
	}
	if _, err := decodeGeneric(raw); err != nil {
		return nil, fmt.Errorf("the credential is not JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Credential
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("the credential is not a Payment credential object: %w", err)
	}
	if err := c.Challenge.validate(); err != nil {
		return nil, err
	}
	if len(c.Payload) == 0 || string(c.Payload) == "null" {
		return nil, errors.New("the credential has no payload")
	}
	return &c, nil
}

// FindCredential returns the Payment credential among a request's
// Authorization header values: "" when there is none. Two of them are an
// error: which one pays would be ambiguous.
func FindCredential(values []string) (string, error) {
	found := ""
	for _, v := range values {
		scheme, _, _ := strings.Cut(strings.TrimLeft(v, " \t"), " ")
		if !strings.EqualFold(scheme, Scheme) {
			continue
		}
		if found != "" {
			return "", errors.New("more than one Payment credential")
		}
		found = strings.TrimLeft(v, " \t")
	}
	return found, nil
}

// Receipt is what a Payment-Receipt header says after a paid response.
type Receipt struct {
	Status    string `json:"status"` // always "success"
	Method    string `json:"method"`
	Timestamp string `json:"timestamp"` // RFC 3339
	Reference string `json:"reference"` // the method's settlement reference (a transaction hash)
	// ChallengeID is the id of the challenge the credential answered.
	ChallengeID string `json:"challengeId,omitempty"`
}

// Encode writes r as a Payment-Receipt value: base64url (no padding) JSON.
func (r *Receipt) Encode() string {
	b, _ := json.Marshal(r)
	return b64.EncodeToString(b)
}

// ParseReceipt decodes a Payment-Receipt value. Members beyond Receipt's
// (mppx adds externalId, subscriptionId) are allowed.
func ParseReceipt(s string) (*Receipt, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("receipt is not base64url without padding: %w", err)
	}
	var r Receipt
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("receipt is not JSON: %w", err)
	}
	if r.Status != "success" || r.Method == "" || r.Reference == "" {
		return nil, fmt.Errorf("receipt lacks status success, method or reference")
	}
	return &r, nil
}

// BodyDigest is the RFC 9530 digest of a request body for a challenge's
// digest parameter: "sha-256=:<base64>:".
func BodyDigest(body []byte) string {
	h := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(h[:]) + ":"
}

// DigestMatches reports whether digest (RFC 9530 "sha-256=:…:", or the
// unframed "sha-256=…" mppx writes) is body's.
func DigestMatches(digest string, body []byte) bool {
	v, ok := strings.CutPrefix(digest, "sha-256=")
	if !ok {
		return false
	}
	if strings.HasPrefix(v, ":") && strings.HasSuffix(v, ":") && len(v) >= 2 {
		v = v[1 : len(v)-1]
	}
	h := sha256.Sum256(body)
	return hmac.Equal([]byte(v), []byte(base64.StdEncoding.EncodeToString(h[:])))
}
