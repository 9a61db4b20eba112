package l402_test

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

var schemas atomic.Int64

// TestPostgres runs the rail's journal tests on PostgreSQL ($PG_DSN, as
// scripts/test.sh starts one): the root keys and passes tables in a schema
// of the test's own. Without PG_DSN it skips, unless
// COINOP_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	dsn := os.Getenv("PG_DSN")
	if dsn == "" {
		if os.Getenv("COINOP_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PG_DSN is not set and COINOP_REQUIRE_POSTGRES=1")
		}
		t.Skip("PG_DSN is not set; start a server with scripts/postgres.sh start DIR")
	}
	sqlite := openJournal
	t.Cleanup(func() { openJournal = sqlite })
	openJournal = func(t *testing.T) journal {
		name := fmt.Sprintf("coinop_l402_%d_%d", os.Getpid(), schemas.Add(1))
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c, err := pgx.Connect(ctx, dsn); err == nil {
				c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
				c.Close(ctx)
			}
		})
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		j, err := postgres.Open(t.Context(), u.String())
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	for name, f := range map[string]func(*testing.T){
		"PerRequest": TestPerRequest, "Pass": TestPass, "ConcurrentDuplicates": TestConcurrentDuplicates,
		"Refusals": TestRefusals, "Reconcile": TestReconcile,
	} {
		t.Run(name, f)
	}
}
