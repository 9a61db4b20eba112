package eip3009

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"runtime"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Key is a secp256k1 private key that signs authorizations.
type Key struct {
	priv *secp256k1.PrivateKey
	addr Address
}

// NewKey wraps a 32-byte private key.
func NewKey(b []byte) (*Key, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("private key is %d bytes, want 32", len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		return nil, errors.New("private key is out of range")
	}
	priv := secp256k1.NewPrivateKey(&s)
	return &Key{priv: priv, addr: PubkeyAddress(priv.PubKey())}, nil
}

// ParseKey reads a hex private key, with or without 0x, surrounding space allowed.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("private key is not hex")
	}
	return NewKey(b)
}

// LoadKey reads a hex private key file. Errors never include the file's
// content.
//
// A file that its group or others may read or write is refused, as ssh
// refuses such identity files: whoever can read a private key can spend
// what it holds (a wallet) or sign as it (a settlement key), and one that
// others may write can be swapped for theirs. The error says how to fix
// the mode. Windows has no such modes and is not checked.
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if m := fi.Mode().Perm(); m&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: the key file may be accessed by others (mode %04o); run chmod 600 %s", path, m, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Address is the key's account address.
func (k *Key) Address() Address { return k.addr }

// Bytes returns the 32-byte private key. Handle with care.
func (k *Key) Bytes() []byte { b := k.priv.Key.Bytes(); return b[:] }

// Sign signs a 32-byte digest and returns r‖s‖v with v in {27, 28} and a
// low s, the form EIP-3009 contracts and x402 expect.
func (k *Key) Sign(digest [32]byte) [65]byte {
	compact := ecdsa.SignCompact(k.priv, digest[:], false) // [27+recid] ‖ r ‖ s
	var sig [65]byte
	copy(sig[:64], compact[1:])
	sig[64] = compact[0]
	return sig
}

// PubkeyAddress is keccak256(X‖Y)[12:].
func PubkeyAddress(pub *secp256k1.PublicKey) Address {
	u := pub.SerializeUncompressed()
	h := Keccak256(u[1:])
	var a Address
	copy(a[:], h[12:])
	return a
}

var halfN = new(big.Int).Rsh(secp256k1.S256().N, 1)

// Errors from Recover.
var (
	ErrSignatureLength = errors.New("signature must be 65 bytes")
	ErrHighS           = errors.New("signature s value is in the upper half of the curve order")
	ErrRecoveryID      = errors.New("signature v must be 27 or 28")
)

// CheckSignature validates the r‖s‖v form: 65 bytes, v in {27, 28} (0 and 1
// are accepted too), low s. It returns the normalized recovery id (0 or 1).
func CheckSignature(sig []byte) (byte, error) {
	if len(sig) != 65 {
		return 0, ErrSignatureLength
	}
	v := sig[64]
	if v >= 27 {
		v -= 27
	}
	if v > 1 {
		return 0, ErrRecoveryID
	}
	s := new(big.Int).SetBytes(sig[32:64])
	if s.Sign() == 0 || s.Cmp(halfN) > 0 {
		return 0, ErrHighS
	}
	return v, nil
}

// Recover returns the address that signed digest. It rejects high-s and
// malformed signatures, as EIP-3009 tokens do on chain.
func Recover(digest [32]byte, sig []byte) (Address, error) {
	v, err := CheckSignature(sig)
	if err != nil {
		return Address{}, err
	}
	var compact [65]byte
	compact[0] = 27 + v
	copy(compact[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(compact[:], digest[:])
	if err != nil {
		return Address{}, err
	}
	return PubkeyAddress(pub), nil
}
