package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/admin"
)

func get(t *testing.T, h http.Handler, path, auth string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if rec.Header().Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", path, err, rec.Body)
		}
	}
	return rec.Code, body
}

func TestReadiness(t *testing.T) {
	var chainDown bool
	h := admin.Handler(admin.Config{
		Checks: map[string]admin.Check{
			"journal": func(context.Context) error { return nil },
			"chain eip155:1": func(context.Context) error {
				if chainDown {
					return coinop.Errorf(coinop.KindUnavailable, "chain_unavailable", "the node does not answer")
				}
				return nil
			},
			"slow": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		},
		CheckTimeout: 50 * time.Millisecond,
		Metrics:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("m 1\n")) }),
	})
	if code, _ := get(t, h, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	code, body := get(t, h, "/readyz", "")
	if code != http.StatusServiceUnavailable || len(body["failing"].([]any)) != 1 || body["failing"].([]any)[0] != "slow" {
		t.Fatalf("readyz with a check past its timeout: %d %v", code, body)
	}
	chainDown = true
	code, body = get(t, h, "/readyz", "")
	if code != http.StatusServiceUnavailable || len(body["failing"].([]any)) != 2 {
		t.Fatalf("readyz with the chain down: %d %v", code, body)
	}
	if got := body["checks"].(map[string]any)["chain eip155:1"]; got != "the node does not answer" {
		t.Fatalf("chain check says %v", got)
	}
	if code, _ := get(t, h, "/metrics", ""); code != http.StatusOK {
		t.Fatalf("metrics %d", code)
	}
}

func TestToken(t *testing.T) {
	h := admin.Handler(admin.Config{Token: "s3cret", Checks: map[string]admin.Check{"ok": func(context.Context) error { return nil }}})
	for _, c := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer s3cret", 200}, {"bearer s3cret", 401}, {"Bearer s3cret ", 401}} {
		if code, _ := get(t, h, "/readyz", c.auth); code != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.auth, code, c.want)
		}
	}
}
