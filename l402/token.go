package l402

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/macaroon.v2"
)

// Location is the location string of the macaroons coinop mints.
const Location = "coinop"

// terms are what a token's caveats say, for one service.
type terms struct {
	services   []string // services=name:tier,… (every occurrence)
	route      []string
	method     []string
	validUntil []int64
	amountMsat []int64
}

// caveatList writes the caveats minted for a token of service svc.
func caveatList(svc, route, method string, amountMsat int64, validUntil time.Time) []string {
	return []string{
		"services=" + svc + ":0",
		svc + "_route=" + route,
		svc + "_method=" + method,
		svc + "_amount_msat=" + strconv.FormatInt(amountMsat, 10),
		svc + "_valid_until=" + strconv.FormatInt(validUntil.Unix(), 10),
	}
}

// mint makes a token for id under rootKey with the caveats.
func mint(rootKey []byte, id Identifier, caveats []string) ([]byte, error) {
	m, err := macaroon.New(rootKey, id.MarshalBinary(), Location, macaroon.V2)
	if err != nil {
		return nil, err
	}
	for _, c := range caveats {
		if err := m.AddFirstPartyCaveat([]byte(c)); err != nil {
			return nil, err
		}
	}
	return m.MarshalBinary()
}

// token is a decoded macaroon with its identifier and terms.
type token struct {
	mac   *macaroon.Macaroon
	id    Identifier
	terms terms
}

// keyID is the root-key store's key for the token: the SHA-256 of its
// identifier, hex.
func (t *token) keyID() string {
	sum := sha256.Sum256(t.mac.Id())
	return hex.EncodeToString(sum[:])
}

// errBadCaveat is a caveat that is not condition=value, or whose value
// does not read.
var errBadCaveat = errors.New("l402: malformed caveat")

// decodeToken reads a V2 (or V1) binary macaroon, its identifier and the
// caveats of service svc. Nothing is verified: the caveats are only
// believed once the signature is (verifyToken).
func decodeToken(b []byte, svc string) (*token, error) {
	var m macaroon.Macaroon
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("l402: %w", err)
	}
	id, err := DecodeIdentifier(m.Id())
	if err != nil {
		return nil, err
	}
	t := &token{mac: &m, id: id}
	for _, c := range m.Caveats() {
		if c.VerificationId != nil || c.Location != "" {
			return nil, errBadCaveat // L402 has no third-party caveats
		}
		cond, val, ok := strings.Cut(string(c.Id), "=")
		if !ok || cond == "" {
			return nil, errBadCaveat
		}
		switch cond {
		case "services":
			for _, s := range strings.Split(val, ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(s), ":")
				t.terms.services = append(t.terms.services, name)
			}
			t.terms.services = append(t.terms.services, "\x00") // ends one occurrence
		case svc + "_route":
			t.terms.route = append(t.terms.route, val)
		case svc + "_method":
			t.terms.method = append(t.terms.method, val)
		case svc + "_valid_until":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, errBadCaveat
			}
			t.terms.validUntil = append(t.terms.validUntil, n)
		case svc + "_amount_msat":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return nil, errBadCaveat
			}
			t.terms.amountMsat = append(t.terms.amountMsat, n)
		default:
			// Caveats of other services or unknown conditions are the
			// holder's own attenuations for others: skipped (L402).
		}
	}
	return t, nil
}

// servesService reports whether every services caveat names svc.
func (tm *terms) servesService(svc string) bool {
	in := false
	for _, s := range tm.services {
		if s == "\x00" {
			if !in {
				return false
			}
			in = false
			continue
		}
		in = in || s == svc
	}
	return true
}

// verifySignature checks the macaroon's HMAC chain under rootKey.
func (t *token) verifySignature(rootKey []byte) error {
	_, err := t.mac.VerifySignature(rootKey, nil)
	return err
}
