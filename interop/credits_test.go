package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// The official TypeScript client pays once for a credits plan, then signs
// in with sign-in-with-x (@x402/extensions 2.27.0) and is recognized: each
// call is charged to the account its wallet bought, with no other payment.
func TestOfficialClientSignsInToCredits(t *testing.T) {
	w := newWorld(t, 31337)
	if _, err := os.Stat("node_modules/@x402/extensions/package.json"); err != nil {
		if os.Getenv("COINOP_CI") == "1" {
			t.Fatal("@x402/extensions is not installed; run scripts/deps/interop.sh")
		}
		t.Skip("@x402/extensions is not installed")
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "data") }))
	t.Cleanup(upstream.Close)
	_, base := w.serveGateway(upstream.URL, "", "", fmt.Sprintf(`rails:
  - name: usdc
    kind: x402
  - name: credits
    kind: credits
    sign_in_with_x: true
    plans:
      - name: pack
        credits: 100
        accept: [{rail: usdc, price: "%d"}]
routes:
  - match: GET /api/
    accept: [{rail: credits, price: "7"}, {rail: usdc, price: "%d"}]
`, 2*price, price))

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "credits-siwx.mjs")
	cmd.Env = append(os.Environ(), "PLAN_URL="+base+"/.well-known/coinop/plans/pack", "URL="+base+"/api/x",
		"PAYER_KEY="+hexKey(w.payer), "NETWORK="+w.network, "TOKEN="+w.c.Token.Hex(), fmt.Sprint("MAX_AMOUNT=", 2*price), "CALLS=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node credits-siwx.mjs: %v\n%s%s", err, out, stderr.String())
	}
	var o struct {
		Purchase int    `json:"purchase"`
		Plan     string `json:"plan"`
		Calls    []struct {
			Status  int    `json:"status"`
			Body    string `json:"body"`
			Balance string `json:"balance"`
		} `json:"calls"`
		Replay struct {
			Declared bool `json:"siwxDeclared"`
		} `json:"replay"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &o); err != nil {
		t.Fatalf("node printed %q: %v\n%s", out, err, stderr.String())
	}
	if o.Purchase != 200 || o.Plan != "pack" || !o.Replay.Declared || len(o.Calls) != 3 {
		t.Fatalf("outcome %+v\n%s", o, stderr.String())
	}
	for i, c := range o.Calls {
		if want := fmt.Sprint(100 - 7*(i+1)); c.Status != 200 || c.Body != "data" || c.Balance != want {
			t.Errorf("signed-in call %d: %d %q balance %q, want 200 and %s", i+1, c.Status, c.Body, c.Balance, want)
		}
	}
	// One on-chain payment (the plan), nothing per call.
	if got := w.balance(w.payee); got != 2*price {
		t.Errorf("payee holds %d, want %d (the plan only)", got, 2*price)
	}
}
