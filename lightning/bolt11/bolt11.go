// Package bolt11 writes and reads BOLT11 Lightning invoices: the bech32
// string a payee hands a payer, signed by the payee's node key.
//
// Encode is what coinop's development node signs its invoices with; Decode
// is what a buyer reads an invoice with before paying it (the amount it
// asks, its payment hash) and verifies its signature. Only the fields
// coinop uses are read: payment hash, payment secret, description,
// expiry, final CLTV delta and payee key; others are skipped as BOLT11
// says a reader must.
package bolt11

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Networks' invoice prefixes (the human-readable part after "ln").
const (
	Mainnet = "bc"
	Testnet = "tb"
	Signet  = "tbs"
	Regtest = "bcrt"
)

// DefaultExpiry is an invoice's expiry when it names none (BOLT11).
const DefaultExpiry = time.Hour

// DefaultMinFinalCLTV is the final CLTV delta when an invoice names none.
const DefaultMinFinalCLTV = 18

// maxLength bounds the invoices Decode reads: far beyond any real one
// (a few hundred characters), small enough that garbage costs little.
const maxLength = 7089

// Invoice is a BOLT11 invoice's fields that coinop uses.
type Invoice struct {
	// Network is the currency prefix: Mainnet, Testnet, Signet, Regtest.
	Network string
	// AmountMsat is what the invoice asks, in millisatoshis; 0 when it
	// leaves the amount to the payer.
	AmountMsat int64
	Timestamp  time.Time // seconds precision
	Hash       [32]byte
	// PaymentSecret is the payment secret (BOLT11 field s), which payers
	// must send and which keeps intermediate nodes from probing.
	PaymentSecret [32]byte
	Description   string
	// Expiry is how long after Timestamp the invoice may be paid.
	Expiry       time.Duration
	MinFinalCLTV uint64
	// Payee is the compressed public key of the node that signed it.
	Payee [33]byte
}

// Expired reports whether the invoice can no longer be paid at now.
func (inv *Invoice) Expired(now time.Time) bool {
	return !now.Before(inv.Timestamp.Add(inv.Expiry))
}

// Field tags, as their bech32 characters' values.
const (
	tagHash     = 1  // p
	tagSecret   = 16 // s
	tagDesc     = 13 // d
	tagExpiry   = 6  // x
	tagCLTV     = 24 // c
	tagPayee    = 19 // n
	tagFeatures = 5  // 9
)

// features are the feature bits an invoice of coinop's sets: var_onion_optin
// (8) and payment_secret (14), both required, as 5-bit words.
var features = []byte{16, 8, 0}

// Encode writes inv as a BOLT11 invoice signed by key, which becomes the
// payee. Network must be one of the prefixes; the amount non-negative.
func Encode(inv *Invoice, key *secp256k1.PrivateKey) (string, error) {
	if !knownNetwork(inv.Network) {
		return "", fmt.Errorf("bolt11: unknown network %q", inv.Network)
	}
	if inv.AmountMsat < 0 {
		return "", errors.New("bolt11: negative amount")
	}
	hrp := "ln" + inv.Network + encodeAmount(inv.AmountMsat)
	ts := inv.Timestamp.Unix()
	if ts < 0 || ts >= 1<<35 {
		return "", errors.New("bolt11: timestamp out of range")
	}
	data := uintWords(uint64(ts), 7)
	data = appendField(data, tagHash, bytesToWords(inv.Hash[:]))
	data = appendField(data, tagSecret, bytesToWords(inv.PaymentSecret[:]))
	data = appendField(data, tagDesc, bytesToWords([]byte(inv.Description)))
	if inv.Expiry > 0 && inv.Expiry != DefaultExpiry {
		data = appendField(data, tagExpiry, minimalWords(uint64(inv.Expiry/time.Second)))
	}
	cltv := inv.MinFinalCLTV
	if cltv == 0 {
		cltv = DefaultMinFinalCLTV
	}
	data = appendField(data, tagCLTV, minimalWords(cltv))
	data = appendField(data, tagFeatures, features)
	digest := sigHash(hrp, data)
	sig := ecdsa.SignCompact(key, digest[:], true) // [27+4+recid] R S
	rs := append(append([]byte{}, sig[1:]...), sig[0]-27-4)
	data = append(data, bytesToWords(rs)...)
	copy(inv.Payee[:], key.PubKey().SerializeCompressed())
	return bech32Encode(hrp, data), nil
}

func appendField(data []byte, tag byte, words []byte) []byte {
	return append(append(data, tag, byte(len(words)>>5), byte(len(words)&31)), words...)
}

// Decode reads a BOLT11 invoice and verifies its signature: by the key in
// its n field when it has one, else the key the signature recovers to
// becomes Payee. Upper- and lower-case invoices are read alike; mixed
// case is refused, as bech32 says.
func Decode(s string) (*Invoice, error) {
	if len(s) > maxLength {
		return nil, errors.New("bolt11: invoice too long")
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "lightning:"), "LIGHTNING:")
	hrp, data, err := bech32Decode(s)
	if err != nil {
		return nil, err
	}
	inv := &Invoice{Expiry: DefaultExpiry, MinFinalCLTV: DefaultMinFinalCLTV}
	if err := parseHRP(hrp, inv); err != nil {
		return nil, err
	}
	if len(data) < 7+104 {
		return nil, errors.New("bolt11: too short")
	}
	sigWords := data[len(data)-104:]
	signed := data[:len(data)-104]
	inv.Timestamp = time.Unix(int64(wordsToUint(signed[:7])), 0).UTC()
	var haveHash, haveSecret, havePayee bool
	for f := signed[7:]; len(f) > 0; {
		if len(f) < 3 {
			return nil, errors.New("bolt11: truncated field")
		}
		tag, n := f[0], int(f[1])<<5|int(f[2])
		if len(f) < 3+n {
			return nil, errors.New("bolt11: field longer than the invoice")
		}
		w := f[3 : 3+n]
		f = f[3+n:]
		switch tag {
		case tagHash:
			if n == 52 && !haveHash {
				copy(inv.Hash[:], wordsToBytes(w))
				haveHash = true
			}
		case tagSecret:
			if n == 52 && !haveSecret {
				copy(inv.PaymentSecret[:], wordsToBytes(w))
				haveSecret = true
			}
		case tagDesc:
			inv.Description = string(wordsToBytes(w))
		case tagExpiry:
			if n > 7 {
				return nil, errors.New("bolt11: expiry out of range")
			}
			inv.Expiry = time.Duration(wordsToUint(w)) * time.Second
		case tagCLTV:
			if n > 12 {
				return nil, errors.New("bolt11: final CLTV delta out of range")
			}
			inv.MinFinalCLTV = wordsToUint(w)
		case tagPayee:
			if n == 53 {
				copy(inv.Payee[:], wordsToBytes(w))
				havePayee = true
			}
		}
	}
	if !haveHash {
		return nil, errors.New("bolt11: no payment hash")
	}
	sig := wordsToBytes(sigWords)
	if len(sig) != 65 || sig[64] > 3 {
		return nil, errors.New("bolt11: malformed signature")
	}
	digest := sigHash(hrp, signed)
	compact := append([]byte{27 + 4 + sig[64]}, sig[:64]...)
	pub, _, err := ecdsa.RecoverCompact(compact, digest[:])
	if err != nil {
		return nil, fmt.Errorf("bolt11: bad signature: %w", err)
	}
	got := pub.SerializeCompressed()
	if havePayee && string(got) != string(inv.Payee[:]) {
		return nil, errors.New("bolt11: signature is not the payee's")
	}
	copy(inv.Payee[:], got)
	return inv, nil
}

// NetworkOf is the network prefix of invoice s (Mainnet, Regtest, …),
// read from its human-readable part alone: nothing is verified.
func NetworkOf(s string) (string, error) {
	s = strings.ToLower(s)
	pos := strings.LastIndexByte(s, '1')
	if pos < 0 {
		return "", errors.New("bolt11: not bech32")
	}
	var inv Invoice
	if err := parseHRP(s[:pos], &inv); err != nil {
		return "", err
	}
	return inv.Network, nil
}

// Prefixes are the network prefixes by network name.
var Prefixes = map[string]string{"mainnet": Mainnet, "testnet": Testnet, "signet": Signet, "regtest": Regtest}

func sigHash(hrp string, data []byte) [32]byte {
	msg := append([]byte(hrp), wordsToBytesPadded(data)...)
	return sha256.Sum256(msg)
}

func knownNetwork(n string) bool {
	switch n {
	case Mainnet, Testnet, Signet, Regtest:
		return true
	}
	return false
}

// parseHRP reads "ln" + network + amount.
func parseHRP(hrp string, inv *Invoice) error {
	rest, ok := strings.CutPrefix(hrp, "ln")
	if !ok {
		return errors.New("bolt11: not a Lightning invoice (no ln prefix)")
	}
	for _, n := range []string{Regtest, Signet, Mainnet, Testnet} { // longest first
		if a, ok := strings.CutPrefix(rest, n); ok && (a == "" || a[0] >= '0' && a[0] <= '9') {
			inv.Network = n
			amt, err := decodeAmount(a)
			if err != nil {
				return err
			}
			inv.AmountMsat = amt
			return nil
		}
	}
	return fmt.Errorf("bolt11: unknown network in %q", hrp)
}

// Millisatoshis per unit of each amount multiplier; pico is a tenth.
const (
	msatPerBTC   = 100_000_000_000
	msatPerMilli = 100_000_000
	msatPerMicro = 100_000
	msatPerNano  = 100
)

func encodeAmount(msat int64) string {
	switch {
	case msat == 0:
		return ""
	case msat%msatPerMilli == 0:
		return strconv.FormatInt(msat/msatPerMilli, 10) + "m"
	case msat%msatPerMicro == 0:
		return strconv.FormatInt(msat/msatPerMicro, 10) + "u"
	case msat%msatPerNano == 0:
		return strconv.FormatInt(msat/msatPerNano, 10) + "n"
	}
	return strconv.FormatInt(msat*10, 10) + "p"
}

func decodeAmount(a string) (int64, error) {
	if a == "" {
		return 0, nil
	}
	mult, num := a[len(a)-1], a[:len(a)-1]
	if mult >= '0' && mult <= '9' {
		mult, num = 0, a
	}
	if num == "" || len(num) > 15 || num[0] == '0' {
		return 0, fmt.Errorf("bolt11: bad amount %q", a)
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, fmt.Errorf("bolt11: bad amount %q", a)
		}
	}
	v, _ := strconv.ParseInt(num, 10, 64) // at most 15 digits
	var msat int64
	switch mult {
	case 0:
		msat = v * msatPerBTC
		if v > 21_000_000 {
			return 0, fmt.Errorf("bolt11: amount %q beyond all bitcoin", a)
		}
	case 'm':
		msat = v * msatPerMilli
	case 'u':
		msat = v * msatPerMicro
	case 'n':
		msat = v * msatPerNano
	case 'p':
		if v%10 != 0 {
			return 0, fmt.Errorf("bolt11: amount %q is a fraction of a millisatoshi", a)
		}
		msat = v / 10
	default:
		return 0, fmt.Errorf("bolt11: bad amount multiplier in %q", a)
	}
	if msat > 21_000_000*msatPerBTC {
		return 0, fmt.Errorf("bolt11: amount %q beyond all bitcoin", a)
	}
	return msat, nil
}

// uintWords writes v as exactly n big-endian 5-bit words.
func uintWords(v uint64, n int) []byte {
	w := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		w[i] = byte(v & 31)
		v >>= 5
	}
	return w
}

// minimalWords writes v in as few big-endian 5-bit words as it needs.
func minimalWords(v uint64) []byte {
	n := 1
	for x := v >> 5; x > 0; x >>= 5 {
		n++
	}
	return uintWords(v, n)
}

func wordsToUint(w []byte) uint64 {
	var v uint64
	for _, x := range w {
		v = v<<5 | uint64(x)
	}
	return v
}

// bytesToWords regroups bytes into 5-bit words, the last padded with zeros.
func bytesToWords(b []byte) []byte {
	var out []byte
	var acc uint32
	bits := 0
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>uint(bits)&31))
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<uint(5-bits)&31))
	}
	return out
}

// wordsToBytes regroups 5-bit words into bytes, dropping the padding bits.
func wordsToBytes(w []byte) []byte { return wordsToBytesPadded(w)[:len(w)*5/8] }

// wordsToBytesPadded is wordsToBytes keeping a last partial byte, padded
// with zeros: what BOLT11 signs.
func wordsToBytesPadded(w []byte) []byte {
	var out []byte
	var acc uint32
	bits := 0
	for _, x := range w {
		acc = acc<<5 | uint32(x)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>uint(bits)))
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<uint(8-bits)))
	}
	return out
}
