package x402

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxHeaderLen bounds an encoded header we are willing to decode. Real
// payloads are under 2 KiB; anything far larger is garbage or an attack.
const MaxHeaderLen = 16 << 10

// EncodeHeader returns v as standard, padded base64 of its JSON encoding.
func EncodeHeader(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeHeader decodes a base64 JSON header value into v. It accepts standard
// base64 with or without padding (some clients drop it) and nothing else.
func DecodeHeader(s string, v any) error {
	if len(s) > MaxHeaderLen {
		return fmt.Errorf("header is %d bytes, more than %d", len(s), MaxHeaderLen)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if b, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return fmt.Errorf("header is not base64: %w", err)
		}
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("header is not JSON: %w", err)
		}
		return fmt.Errorf("header JSON does not match the x402 schema: %w", err)
	}
	return nil
}
