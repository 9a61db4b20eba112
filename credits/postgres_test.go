package credits_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/store/postgres"
)

// pgSchema returns a DSN on a fresh schema of $PG_DSN (scripts/postgres.sh
// starts a server), dropped when t ends; it skips without PG_DSN, and fails
// under COINOP_CI=1 or COINOP_REQUIRE_POSTGRES=1.
func pgSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("PG_DSN")
	if dsn == "" {
		if os.Getenv("COINOP_CI") == "1" || os.Getenv("COINOP_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PG_DSN is not set")
		}
		t.Skip("PG_DSN is not set; start a server with scripts/postgres.sh start DIR")
	}
	name := fmt.Sprintf("credits_test_%d_%d", os.Getpid(), schemaN.Add(1))
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`)
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("PG_DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

var schemaN atomic.Int64

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenWith(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A balance covering K requests, hit by 10·K concurrent requests split
// across two engines (two instances) on one PostgreSQL: exactly K served,
// the rest 402 with the plans, the ledger drained and clean in the eyes of
// both instances.
func TestConcurrentChargesTwoInstancesPostgres(t *testing.T) {
	dsn := pgSchema(t)
	a := newShopEngine(t, openPG(t, dsn), 10, time.Now, goods)
	b := newShopEngine(t, openPG(t, dsn), 10, time.Now, goods)
	rc := a.buy(t, "pack", "") // 100 credits at 10 each: K = 10
	const k = 10
	served := hammer(t, []string{a.srv.URL, b.srv.URL}, rc.Token, 10*k)
	if served != k {
		t.Errorf("%d served across two instances, want exactly %d", served, k)
	}
	checkDrained(t, a.ledger, k)
	checkDrained(t, b.ledger, k)
}
