package lifecycle

import (
	"context"
	"testing"
	"time"
)

// A duplicate waits for the holder and then holds the key itself; past the
// wait, or once its request is gone, it is refused.
func TestInflightClaim(t *testing.T) {
	var f inflight
	ctx := context.Background()
	release, ok := f.claim(ctx, "k", time.Second)
	if !ok {
		t.Fatal("first claim refused")
	}
	if _, ok := f.claim(ctx, "k", 10*time.Millisecond); ok {
		t.Fatal("a held key was claimed again")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := f.claim(cctx, "k", time.Minute); ok {
		t.Fatal("a claim went on after its request was gone")
	}
	got := make(chan func())
	go func() {
		r, ok := f.claim(ctx, "k", time.Minute)
		if !ok {
			r = nil
		}
		got <- r
	}()
	release()
	second := <-got
	if second == nil {
		t.Fatal("the waiting duplicate was refused after the holder finished")
	}
	if _, ok := f.claim(ctx, "k", 10*time.Millisecond); ok {
		t.Fatal("the waiter's claim did not hold")
	}
	second()
	if r, ok := f.claim(ctx, "other", 0); !ok {
		t.Fatal("an unrelated key was refused")
	} else {
		r()
	}
}
