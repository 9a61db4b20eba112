package config

import (
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/sha3"
)

// checkAddress accepts an EVM address: "0x" and 40 hex digits, in one case
// or with a valid EIP-55 checksum, and not the zero address.
func checkAddress(s string) error {
	body, ok := strings.CutPrefix(s, "0x")
	if !ok || len(body) != 40 {
		return fmt.Errorf("%q is not an address: want 0x followed by 40 hex digits", s)
	}
	if _, err := hex.DecodeString(body); err != nil {
		return fmt.Errorf("%q is not an address: want 0x followed by 40 hex digits", s)
	}
	if strings.Trim(body, "0") == "" {
		return fmt.Errorf("%q is the zero address", s)
	}
	// Mixed case carries a checksum. A mismatch usually means a mistyped
	// digit, so the message must not invite pasting the "fixed" form
	// without checking the address itself.
	if body != strings.ToLower(body) && body != strings.ToUpper(body) {
		if want := checksumAddress(s); want != s {
			return fmt.Errorf("%q fails its EIP-55 checksum (mistyped?); if the address is right, its checksummed form is %q", s, want)
		}
	}
	return nil
}

// checksumAddress writes a valid address in EIP-55 mixed case: a letter is
// upper case when the matching nibble of keccak256(lower-case hex) is >= 8.
func checksumAddress(s string) string {
	body := strings.ToLower(strings.TrimPrefix(s, "0x"))
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(body))
	sum := h.Sum(nil)
	out := []byte(body)
	for i, c := range out {
		nibble := sum[i/2] >> 4
		if i%2 == 1 {
			nibble = sum[i/2] & 0x0f
		}
		if c >= 'a' && c <= 'f' && nibble >= 8 {
			out[i] = c - 'a' + 'A'
		}
	}
	return "0x" + string(out)
}
