package l402

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/coinop/coinop/lightning"
)

// Credential is a parsed `Authorization: L402 <macaroons>:<preimage>`.
type Credential struct {
	// Scheme is the scheme word as sent: "L402" or "LSAT", any case.
	Scheme string
	// Macaroons are the tokens, base64-decoded (V2 binary macaroons).
	Macaroons [][]byte
	Preimage  lightning.Preimage
}

// Errors of ParseAuthorization, each with its reason.
var (
	errMalformed = errors.New("l402: malformed credential")
	errAmbiguous = errors.New("l402: several different L402 credentials")
)

// maxCredential bounds one credential's length: far beyond a real one
// (a few hundred bytes per macaroon), small enough that garbage is cheap.
const maxCredential = 16 << 10

// ParseAuthorization finds the L402 credential in h's Authorization
// headers: nil and no error when none has the L402 or LSAT scheme (the
// request pays some other way, or not at all). Unlike parsers that take
// the last header, several Authorization headers carrying L402 are
// accepted only when they say the same thing (as a client sending both an
// LSAT and an L402 form does); otherwise the request is ambiguous.
//
// The scheme is matched without regard to case (RFC 9110), one or more
// spaces may follow it, macaroons are comma-separated standard base64
// (padded or not; URL-safe accepted), and the preimage is 64 hex digits
// of either case.
func ParseAuthorization(h http.Header) (*Credential, error) {
	var found *Credential
	for _, v := range h.Values("Authorization") {
		c, err := parseOne(v)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		if found != nil && !sameCredential(found, c) {
			return nil, errAmbiguous
		}
		if found == nil {
			found = c
		}
	}
	return found, nil
}

func parseOne(v string) (*Credential, error) {
	v = strings.TrimSpace(v)
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "L402") && !strings.EqualFold(scheme, "LSAT") {
		return nil, nil
	}
	if len(v) > maxCredential {
		return nil, errMalformed
	}
	rest = strings.TrimLeft(rest, " ")
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return nil, errMalformed
	}
	macs, pre := rest[:i], rest[i+1:]
	c := &Credential{Scheme: scheme}
	if len(pre) != 64 {
		return nil, errMalformed
	}
	if _, err := hex.Decode(c.Preimage[:], []byte(pre)); err != nil {
		return nil, errMalformed
	}
	for _, m := range strings.Split(macs, ",") {
		m = strings.TrimSpace(m)
		b, err := decodeBase64(m)
		if err != nil || len(b) == 0 {
			return nil, errMalformed
		}
		c.Macaroons = append(c.Macaroons, b)
	}
	return c, nil
}

// decodeBase64 reads standard or URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func sameCredential(a, b *Credential) bool {
	if a.Preimage != b.Preimage || len(a.Macaroons) != len(b.Macaroons) {
		return false
	}
	for i := range a.Macaroons {
		if string(a.Macaroons[i]) != string(b.Macaroons[i]) {
			return false
		}
	}
	return true
}

// FormatAuthorization writes the credential a client sends: scheme
// "L402", macaroons in standard padded base64, the preimage in lower-case
// hex.
func FormatAuthorization(macaroons [][]byte, preimage lightning.Preimage) string {
	parts := make([]string, len(macaroons))
	for i, m := range macaroons {
		parts[i] = base64.StdEncoding.EncodeToString(m)
	}
	return "L402 " + strings.Join(parts, ",") + ":" + preimage.String()
}

// Challenge is one L402 challenge: a token and the invoice that pays it.
type Challenge struct {
	Scheme  string // "L402" or "LSAT"
	Version string // "0" for the current form; "" for the macaroon= form
	Token   []byte // the macaroon, binary
	Invoice string // BOLT11
}

// ChallengeHeaders are the WWW-Authenticate values a 402 carries for one
// token: the current form (version="0", token=) with the older macaroon=
// parameter beside it for clients of bLIP-0026, then the LSAT form for
// clients from before the rename.
func ChallengeHeaders(token []byte, invoice string) []string {
	t := base64.StdEncoding.EncodeToString(token)
	return []string{
		`L402 version="0", token="` + t + `", macaroon="` + t + `", invoice="` + invoice + `"`,
		`LSAT macaroon="` + t + `", invoice="` + invoice + `"`,
	}
}

// ParseChallenges reads the L402 and LSAT challenges of WWW-Authenticate
// values, each of which may hold several challenges joined by ", " (as
// fetch-style clients join them). Challenges of other schemes are
// skipped; token= is preferred over macaroon= when both are given.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		for _, ch := range splitChallenges(v) {
			if !strings.EqualFold(ch.scheme, "L402") && !strings.EqualFold(ch.scheme, "LSAT") {
				continue
			}
			tok := ch.params["token"]
			if tok == "" {
				tok = ch.params["macaroon"]
			}
			b, err := decodeBase64(tok)
			if err != nil || len(b) == 0 || ch.params["invoice"] == "" {
				continue
			}
			out = append(out, Challenge{Scheme: ch.scheme, Version: ch.params["version"], Token: b, Invoice: ch.params["invoice"]})
		}
	}
	return out
}

type rawChallenge struct {
	scheme string
	params map[string]string
}

// splitChallenges parses `scheme k="v", k=v, scheme2 k="v"`: a word
// followed by a space and a parameter starts a new challenge.
func splitChallenges(s string) []rawChallenge {
	var out []rawChallenge
	var cur *rawChallenge
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == ',' || s[i] == '\t') {
			i++
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '=' && s[j] != ',' {
			j++
		}
		word := s[i:j]
		if word == "" {
			if j >= len(s) {
				break
			}
			i = j + 1 // a stray '=': not a challenge's start, nor a parameter
			continue
		}
		if j >= len(s) || s[j] != '=' {
			out = append(out, rawChallenge{scheme: word, params: map[string]string{}})
			cur = &out[len(out)-1]
			i = j
			continue
		}
		// A parameter: word=value, value a token or a quoted string.
		k := strings.ToLower(word)
		j++
		var val string
		if j < len(s) && s[j] == '"' {
			var b strings.Builder
			j++
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			j++ // the closing quote
			val = b.String()
		} else {
			e := j
			for e < len(s) && s[e] != ',' && s[e] != ' ' {
				e++
			}
			// A token68 value may end in '=' padding: keep it.
			val = s[j:e]
			j = e
		}
		if cur != nil {
			if _, dup := cur.params[k]; !dup {
				cur.params[k] = val
			}
		}
		i = j
	}
	return out
}
