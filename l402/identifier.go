package l402

import (
	"encoding/binary"
	"errors"

	"github.com/coinop/coinop/lightning"
)

// IdentifierLen is the length of a version 0 token identifier.
const IdentifierLen = 2 + 32 + 32

// Identifier is a macaroon identifier of L402 version 0: what the token
// commits to. Big-endian: version (2 bytes) ‖ payment hash (32) ‖ token
// ID (32).
type Identifier struct {
	Version     uint16
	PaymentHash lightning.Hash
	// TokenID is random per token: it names the token's holder across
	// requests without revealing the payment.
	TokenID [32]byte
}

// MarshalBinary writes the identifier.
func (id Identifier) MarshalBinary() []byte {
	b := make([]byte, IdentifierLen)
	binary.BigEndian.PutUint16(b, id.Version)
	copy(b[2:], id.PaymentHash[:])
	copy(b[34:], id.TokenID[:])
	return b
}

// errUnknownVersion is a well-formed identifier of another version.
var errUnknownVersion = errors.New("l402: unknown identifier version")

// DecodeIdentifier reads a version 0 identifier; another version or
// length is an error.
func DecodeIdentifier(b []byte) (Identifier, error) {
	var id Identifier
	if len(b) < 2 {
		return id, errors.New("l402: identifier too short")
	}
	id.Version = binary.BigEndian.Uint16(b)
	if id.Version != 0 {
		return id, errUnknownVersion
	}
	if len(b) != IdentifierLen {
		return id, errors.New("l402: version 0 identifier of wrong length")
	}
	copy(id.PaymentHash[:], b[2:34])
	copy(id.TokenID[:], b[34:])
	return id, nil
}
