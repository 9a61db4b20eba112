package eip3009

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// FieldError names the authorization field that failed to parse.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "authorization." + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ParseAuthorization reads an authorization as x402 writes it: addresses and
// the nonce as 0x hex, numbers as decimal strings. Every number must fit a
// uint256. It checks format only, never meaning.
func ParseAuthorization(from, to, value, validAfter, validBefore, nonce string) (*Authorization, error) {
	var a Authorization
	var err error
	if a.From, err = ParseAddress(from); err != nil {
		return nil, &FieldError{"from", err}
	}
	if a.To, err = ParseAddress(to); err != nil {
		return nil, &FieldError{"to", err}
	}
	for _, f := range []struct {
		name string
		s    string
		dst  **big.Int
	}{{"value", value, &a.Value}, {"validAfter", validAfter, &a.ValidAfter}, {"validBefore", validBefore, &a.ValidBefore}} {
		if f.s == "" || len(f.s) > 78 || !isDigits(f.s) {
			return nil, &FieldError{f.name, fmt.Errorf("%q is not a decimal integer", trim(f.s))}
		}
		*f.dst, _ = new(big.Int).SetString(f.s, 10)
	}
	if err := a.Valid(); err != nil {
		return nil, &FieldError{"value", err}
	}
	if a.Nonce, err = ParseBytes32(nonce); err != nil {
		return nil, &FieldError{"nonce", err}
	}
	return &a, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// trim shortens untrusted text quoted back in an error.
func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// ParseSignature reads a 0x-prefixed hex signature and checks its r‖s‖v
// form (see CheckSignature).
func ParseSignature(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		return nil, errors.New("signature is not 0x-prefixed hex")
	}
	sig, err := hex.DecodeString(h)
	if err != nil {
		return nil, errors.New("signature is not hex")
	}
	if _, err := CheckSignature(sig); err != nil {
		return nil, err
	}
	return sig, nil
}
