//go:build unix

package adversarial_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeaderNameFolding sends, through the gateway to PHP's built-in server,
// the headers the gateway owns or removes under names that differ from
// theirs only by "_" for "-" or by case. CGI-style servers (PHP, WSGI)
// expose headers as HTTP_* variables with "-" turned into "_", so
// X-Coinop_Payer is HTTP_X_COINOP_PAYER to the application, the variable
// that tells it who paid; X-Original_URL is HTTP_X_ORIGINAL_URL, which
// frameworks read as the path to act on. None may reach the upstream.
func TestHeaderNameFolding(t *testing.T) {
	root := t.TempDir()
	script := `<?php
foreach (['HTTP_X_COINOP_PAYER', 'HTTP_X_COINOP_PAYMENT', 'HTTP_PAYMENT_SIGNATURE', 'HTTP_X_PAYMENT', 'HTTP_X_ORIGINAL_URL', 'HTTP_X_HTTP_METHOD_OVERRIDE'] as $k) {
	if (isset($_SERVER[$k])) { echo "$k=", $_SERVER[$k], "\n"; }
}
echo "ok\n";
`
	if err := os.WriteFile(filepath.Join(root, "env.php"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startDevChain(t)
	gw := startGateway(t, dev, startPHP(t, root), routing{
		unmatched: "deny",
		routes:    "  - match: GET /env.php\n    free: true\n  - match: /files/\n    price: 0.01 USDC\n",
	})
	for _, h := range []string{
		"X-Coinop_Payer: 0x1111111111111111111111111111111111111111",
		"x-coinop_payer: 0x1111111111111111111111111111111111111111",
		"X_Coinop_Payer: 0x1111111111111111111111111111111111111111",
		"X-Coinop_Payment: forged",
		"Payment_Signature: e30=",
		"X_Payment: e30=",
		"X-Original_URL: /files/secret.txt",
		"X_Original_Url: /files/secret.txt",
		"X-HTTP-Method_Override: POST",
		"X_HTTP_METHOD_OVERRIDE: POST",
	} {
		t.Run(h, func(t *testing.T) {
			a := sendRaw(gw, "GET", "/env.php", h)
			if a.Err != nil || a.Status != 200 || !strings.HasSuffix(a.Body, "ok\n") {
				t.Fatalf("%d %q %v", a.Status, a.Body, a.Err)
			}
			if a.Body != "ok\n" {
				t.Errorf("the upstream saw %q", strings.TrimSuffix(a.Body, "ok\n"))
			}
		})
	}
}
