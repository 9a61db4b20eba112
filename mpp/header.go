package mpp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ParseChallenges returns the Payment challenges among WWW-Authenticate
// header values, in order. A value may carry several challenges of any
// schemes (RFC 9110 §11.6.1); other schemes are skipped. A malformed
// Payment challenge is an error; a malformed challenge of another scheme
// ends the parse of its value.
func ParseChallenges(values []string) ([]Challenge, error) {
	var out []Challenge
	for _, v := range values {
		p := &authParser{s: v}
		for {
			scheme, params, err := p.next()
			if err != nil {
				if strings.EqualFold(scheme, Scheme) {
					return nil, err
				}
				break
			}
			if scheme == "" {
				break
			}
			if !strings.EqualFold(scheme, Scheme) {
				continue
			}
			c, err := challengeFrom(params)
			if err != nil {
				return nil, err
			}
			out = append(out, *c)
		}
	}
	return out, nil
}

func challengeFrom(params map[string]string) (*Challenge, error) {
	c := &Challenge{}
	for k, v := range params {
		switch k {
		case "id":
			c.ID = v
		case "realm":
			c.Realm = v
		case "method":
			c.Method = v
		case "intent":
			c.Intent = v
		case "request":
			c.Request = v
		case "expires":
			c.Expires = v
		case "digest":
			c.Digest = v
		case "description":
			c.Description = v
		case "opaque":
			c.Opaque = v
		}
		// Unknown parameters are ignored (the draft lets servers add
		// them); "header" among them: we pay in Authorization only.
	}
	if _, ok := params["header"]; ok && !strings.EqualFold(params["header"], HeaderAuthorization) {
		return nil, fmt.Errorf("challenge asks for the credential in %q; only Authorization is supported", params["header"])
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// authParser reads challenges from one WWW-Authenticate value.
type authParser struct {
	s string
	i int
}

func (p *authParser) skip(set string) {
	for p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *authParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// next reads one challenge: its scheme and parameters. scheme is "" at the
// end of the value.
func (p *authParser) next() (scheme string, params map[string]string, err error) {
	p.skip(" \t,")
	if p.i >= len(p.s) {
		return "", nil, nil
	}
	scheme = p.token()
	if scheme == "" {
		return "?", nil, fmt.Errorf("auth-scheme expected at %q", p.s[p.i:])
	}
	params = map[string]string{}
	first := true
	for {
		if !first {
			p.skip(" \t")
			if p.i >= len(p.s) {
				return scheme, params, nil
			}
			if p.s[p.i] != ',' {
				return scheme, params, fmt.Errorf("comma expected at %q", p.s[p.i:])
			}
			p.skip(" \t,")
		} else {
			p.skip(" \t")
		}
		save := p.i
		name := p.token()
		p.skip(" \t")
		if name == "" || p.i >= len(p.s) || p.s[p.i] != '=' {
			if first && name != "" && !strings.EqualFold(scheme, Scheme) {
				// A token68 of another scheme ("Basic dG9r="): skip it.
				p.skip("=")
				first = false
				continue
			}
			// Another challenge starts here, or the value ends.
			p.i = save
			return scheme, params, nil
		}
		first = false
		p.i++ // '='
		p.skip(" \t")
		var value string
		var err error
		if p.i < len(p.s) && p.s[p.i] == '"' {
			value, err = p.quoted()
			if err != nil {
				return scheme, params, err
			}
		} else {
			value = p.token()
		}
		if !utf8.ValidString(value) {
			return scheme, params, fmt.Errorf("parameter %s is not valid UTF-8", name)
		}
		key := strings.ToLower(name)
		if _, dup := params[key]; dup {
			return scheme, params, fmt.Errorf("parameter %s appears twice", key)
		}
		params[key] = value
	}
}

// quoted reads a quoted-string, undoing \-escapes and mppx's \uXXXX.
func (p *authParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	var pending []uint16
	flush := func() {
		if len(pending) > 0 {
			b.WriteString(string(utf16.Decode(pending)))
			pending = nil
		}
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			flush()
			return b.String(), nil
		case c == '\\':
			if p.i >= len(p.s) {
				return "", errors.New("unterminated quoted-string")
			}
			e := p.s[p.i]
			p.i++
			if e == 'u' && p.i+4 <= len(p.s) {
				if n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 16); err == nil {
					pending = append(pending, uint16(n))
					p.i += 4
					continue
				}
			}
			flush()
			b.WriteByte(e)
		case c == '\r' || c == '\n':
			return "", errors.New("line break in a quoted-string")
		default:
			flush()
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated quoted-string")
}

// Preference is one entry of an Accept-Payment header: a method and an
// intent ("*" for any) and its weight.
type Preference struct {
	Method, Intent string
	Q              float64
}

// ParseAcceptPayment parses Accept-Payment values: `method/intent[;q=w]`,
// comma-separated, "*" for any method or intent. Entries it cannot read are
// an error: a client that sends the header means it.
func ParseAcceptPayment(values []string) ([]Preference, error) {
	var out []Preference
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			rangeStr, params, _ := strings.Cut(part, ";")
			m, in, ok := strings.Cut(strings.TrimSpace(rangeStr), "/")
			m, in = strings.TrimSpace(m), strings.TrimSpace(in)
			if !ok || !(m == "*" || isToken(m)) || !(in == "*" || isToken(in)) {
				return nil, fmt.Errorf("Accept-Payment entry %q is not method/intent", part)
			}
			pref := Preference{Method: m, Intent: in, Q: 1}
			for _, prm := range strings.Split(params, ";") {
				prm = strings.TrimSpace(prm)
				if prm == "" {
					continue
				}
				k, val, _ := strings.Cut(prm, "=")
				if strings.TrimSpace(k) != "q" {
					continue
				}
				q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || q < 0 || q > 1 || math.IsNaN(q) {
					return nil, fmt.Errorf("Accept-Payment weight %q is not between 0 and 1", val)
				}
				pref.Q = q
			}
			out = append(out, pref)
		}
	}
	return out, nil
}

// Weight is how much prefs want method/intent: the weight of the most
// specific matching entry (the first among equals); 0 when none matches.
// With no preferences every method is wanted (weight 1).
func Weight(prefs []Preference, method, intent string) float64 {
	if len(prefs) == 0 {
		return 1
	}
	best, bestSpec := 0.0, -1
	for _, p := range prefs {
		if (p.Method != "*" && p.Method != method) || (p.Intent != "*" && p.Intent != intent) {
			continue
		}
		spec := 0
		if p.Method != "*" {
			spec++
		}
		if p.Intent != "*" {
			spec++
		}
		if spec > bestSpec {
			best, bestSpec = p.Q, spec
		}
	}
	return best
}
