package mpp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize writes v as RFC 8785 (JCS) canonical JSON: object members
// sorted by the UTF-16 code units of their names, no insignificant
// whitespace, strings with the fewest escapes, numbers in ECMAScript form.
// v is what encoding/json would marshal (maps, slices, strings, numbers,
// bools, nil, json.Number, json.RawMessage and structs, the last two by
// round-tripping them through encoding/json first).
func Canonicalize(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := canon(&buf, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxDepth bounds the nesting of what Canonicalize writes: requests are
// shallow, and untrusted input must not exhaust the stack.
const maxDepth = 32

func canon(buf *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("jcs: nested deeper than %d", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		return canonString(buf, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("jcs: number %q: %w", x, err)
		}
		return canonNumber(buf, f)
	case float64:
		return canonNumber(buf, x)
	case int:
		return canonNumber(buf, float64(x))
	case int64:
		return canonNumber(buf, float64(x))
	case uint64:
		return canonNumber(buf, float64(x))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return utf16Less(keys[i], keys[j]) })
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := canonString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := canon(buf, x[k], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return canon(buf, m, depth)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := canon(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return canon(buf, a, depth)
	default:
		// Anything else goes through encoding/json and back as generic
		// values.
		raw, ok := v.(json.RawMessage)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("jcs: %w", err)
			}
			raw = b
		}
		g, err := decodeGeneric(raw)
		if err != nil {
			return err
		}
		return canon(buf, g, depth)
	}
	return nil
}

// decodeGeneric decodes JSON into generic values, keeping numbers as
// json.Number, and refuses duplicate object members, which JCS cannot
// represent.
func decodeGeneric(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("jcs: trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("jcs: nested deeper than %d", maxDepth)
	}
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("jcs: %w", err)
	}
	switch d := t.(type) {
	case json.Delim:
		switch d {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("jcs: %w", err)
				}
				k, _ := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("jcs: duplicate member %q", k)
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("jcs: %w", err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("jcs: %w", err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("jcs: unexpected %v", d)
	default:
		return t, nil
	}
}

// canonString writes s as JSON.stringify does: only '"', '\\' and control
// characters are escaped, with the short forms where they exist.
func canonString(buf *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("jcs: string is not valid UTF-8")
	}
	buf.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(buf, `\u%04x`, r)
			} else {
				buf.WriteRune(r)
			}
		}
	}
	buf.WriteByte('"')
	return nil
}

// canonNumber writes f in ECMAScript Number.prototype.toString form.
func canonNumber(buf *bytes.Buffer, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("jcs: %v has no JSON form", f)
	}
	if f == 0 {
		buf.WriteByte('0') // -0 too
		return nil
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		buf.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
		return nil
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	buf.WriteString(mant + "e" + string(sign) + exp)
	return nil
}

// utf16Less orders strings by their UTF-16 code units, as JCS sorts names.
func utf16Less(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}
