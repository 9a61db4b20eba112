package credits_test

import (
	"strings"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/credits"
)

// FuzzParseToken: a presented token is taken only in its one canonical
// form, its hash is HashToken's, and a refusal is a malformed-token error
// that never echoes the token.
func FuzzParseToken(f *testing.F) {
	f.Add("cop_" + strings.Repeat("A", 43))
	f.Add("cop_" + strings.Repeat("_", 42) + "B")
	f.Add("cop_")
	f.Add("Bearer cop_x")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := credits.ParseToken(s)
		if err != nil {
			e := coinop.AsError(err)
			if e.Kind != coinop.KindMalformed || e.Reason != credits.ReasonTokenMalformed || (len(s) > 4 && strings.Contains(e.Error(), s)) {
				t.Fatalf("refusal of %q: %v", s, err)
			}
			return
		}
		if h != credits.HashToken(s) || !strings.HasPrefix(s, "cop_") || len(s) != 47 || strings.ContainsAny(s, "+/= \r\n") {
			t.Fatalf("took %q as %s", s, h)
		}
	})
}
