// Package siwx reads x402's sign-in-with-x proofs (the SIGN-IN-WITH-X
// header of @x402/extensions): a CAIP-122 / EIP-4361 (Sign-In with
// Ethereum) message signed by a wallet with EIP-191, by which a wallet
// that paid before proves who it is. It covers EVM wallets (eip155 chains,
// eip191 signatures); it links no chain library.
package siwx

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coinop/coinop/eip3009"
)

// Header is the request header that carries a proof; Extension the key of
// the x402 PAYMENT-REQUIRED extension that asks for one.
const (
	Header    = "SIGN-IN-WITH-X"
	Extension = "sign-in-with-x"
)

// maxHeader bounds a proof before it is decoded.
const maxHeader = 8 << 10

// Payload is a proof as the header carries it (base64 JSON).
type Payload struct {
	Domain          string   `json:"domain"`
	Address         string   `json:"address"`
	Statement       *string  `json:"statement,omitempty"`
	URI             string   `json:"uri"`
	Version         string   `json:"version"`
	ChainID         string   `json:"chainId"`
	Type            string   `json:"type"`
	Nonce           string   `json:"nonce"`
	IssuedAt        string   `json:"issuedAt"`
	ExpirationTime  string   `json:"expirationTime,omitempty"`
	NotBefore       string   `json:"notBefore,omitempty"`
	RequestID       *string  `json:"requestId,omitempty"`
	Resources       []string `json:"resources,omitempty"`
	SignatureScheme string   `json:"signatureScheme,omitempty"`
	Signature       string   `json:"signature"`
}

var (
	chainRE = regexp.MustCompile(`^eip155:([1-9][0-9]{0,18})$`)
	nonceRE = regexp.MustCompile(`^[A-Za-z0-9]{8,128}$`)
)

// Parse decodes a SIGN-IN-WITH-X header and checks its form: the required
// fields, an eip155 chain and an eip191 signature, an alphanumeric nonce,
// a hex address; no cryptography (see Signer).
func Parse(header string) (*Payload, error) {
	if len(header) > maxHeader {
		return nil, errors.New("the proof is too large")
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return nil, errors.New("the proof is not base64")
	}
	var p Payload
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&p); err != nil {
		return nil, errors.New("the proof is not JSON")
	}
	switch {
	case p.Domain == "" || p.URI == "" || p.Version == "" || p.IssuedAt == "" || p.Signature == "":
		return nil, errors.New("the proof lacks a required field (domain, uri, version, issuedAt, signature)")
	case !chainRE.MatchString(p.ChainID):
		return nil, fmt.Errorf("the proof's chainId %q is not an eip155 chain", p.ChainID)
	case p.Type != "eip191":
		return nil, fmt.Errorf("the proof's type %q is not eip191", p.Type)
	case !nonceRE.MatchString(p.Nonce):
		return nil, errors.New("the proof's nonce is not 8 to 128 letters and digits")
	}
	if _, err := eip3009.ParseAddress(p.Address); err != nil {
		return nil, errors.New("the proof's address is not an address")
	}
	for _, s := range append([]string{p.Domain, p.URI, p.Version, p.IssuedAt, p.ExpirationTime, p.NotBefore}, p.Resources...) {
		if strings.ContainsAny(s, "\r\n") {
			return nil, errors.New("a field of the proof spans lines")
		}
	}
	if p.Statement != nil && strings.ContainsAny(*p.Statement, "\r\n") || p.RequestID != nil && strings.ContainsAny(*p.RequestID, "\r\n") {
		return nil, errors.New("a field of the proof spans lines")
	}
	return &p, nil
}

// Chain is the proof's numeric chain ID.
func (p *Payload) Chain() uint64 {
	m := chainRE.FindStringSubmatch(p.ChainID)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// Message is the EIP-4361 message the wallet signed, as the official
// client writes it (@signinwithethereum/siwe's prepareMessage), with the
// address in its EIP-55 form.
func (p *Payload) Message() string {
	a, _ := eip3009.ParseAddress(p.Address)
	head := p.Domain + " wants you to sign in with your Ethereum account:\n" + a.Hex()
	if p.Statement == nil {
		head += "\n\n"
	} else {
		head += "\n\n" + *p.Statement + "\n"
	}
	fields := []string{
		"URI: " + p.URI,
		"Version: " + p.Version,
		"Chain ID: " + strconv.FormatUint(p.Chain(), 10),
		"Nonce: " + p.Nonce,
		"Issued At: " + p.IssuedAt,
	}
	if p.ExpirationTime != "" {
		fields = append(fields, "Expiration Time: "+p.ExpirationTime)
	}
	if p.NotBefore != "" {
		fields = append(fields, "Not Before: "+p.NotBefore)
	}
	if p.RequestID != nil {
		fields = append(fields, "Request ID: "+*p.RequestID)
	}
	if p.Resources != nil {
		rs := "Resources:"
		for _, r := range p.Resources {
			rs += "\n- " + r
		}
		fields = append(fields, rs)
	}
	return head + "\n" + strings.Join(fields, "\n")
}

// Signer recovers the address that signed the message (EIP-191
// personal_sign) and checks it is the proof's own: its lower-case hex.
func (p *Payload) Signer() (string, error) {
	sig, err := eip3009.ParseSignature(p.Signature)
	if err != nil {
		return "", errors.New("the proof's signature is malformed")
	}
	msg := p.Message()
	digest := eip3009.Keccak256([]byte("\x19Ethereum Signed Message:\n" + strconv.Itoa(len(msg)) + msg))
	got, err := eip3009.Recover(digest, sig)
	if err != nil {
		return "", errors.New("the proof's signature does not verify")
	}
	want, _ := eip3009.ParseAddress(p.Address)
	if got != want {
		return "", errors.New("the proof is signed by another wallet")
	}
	return strings.ToLower(got.Hex()), nil
}

// Info is what a server asks to be signed, in a 402.
type Info struct {
	Domain, URI, Statement, Nonce, IssuedAt, ExpirationTime string
	// Chains are the CAIP-2 chains a wallet may sign in on.
	Chains []string
}

// Declaration is the x402 extension that asks for a proof, as
// @x402/extensions' server writes it: info, supportedChains, schema.
func (in Info) Declaration() map[string]any {
	info := map[string]any{"domain": in.Domain, "uri": in.URI, "version": "1", "nonce": in.Nonce, "issuedAt": in.IssuedAt,
		"resources": []string{in.URI}}
	if in.Statement != "" {
		info["statement"] = in.Statement
	}
	if in.ExpirationTime != "" {
		info["expirationTime"] = in.ExpirationTime
	}
	chains := []map[string]string{}
	for _, c := range in.Chains {
		chains = append(chains, map[string]string{"chainId": c, "type": "eip191"})
	}
	str := map[string]string{"type": "string"}
	return map[string]any{"info": info, "supportedChains": chains, "schema": map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
		"properties": map[string]any{"domain": str, "address": str, "statement": str, "uri": str, "version": str, "chainId": str,
			"type": str, "nonce": str, "issuedAt": str, "expirationTime": str, "notBefore": str, "requestId": str,
			"resources": map[string]any{"type": "array", "items": str}, "signature": str},
		"required": []string{"domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt", "signature"},
	}}
}
