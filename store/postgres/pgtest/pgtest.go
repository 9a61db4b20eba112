// Package pgtest gives tests a PostgreSQL database of their own on the test
// server ($PG_DSN; scripts/test.sh and scripts/postgres.sh start one): a
// fresh schema per call, dropped when the test ends. Without PG_DSN a test
// is skipped, or fails when COINOP_REQUIRE_POSTGRES=1 or COINOP_CI=1 say a
// run must not silently skip PostgreSQL.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerDSN is $PG_DSN, the test server's; t is skipped (or failed, see the
// package comment) without it.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("PG_DSN")
	if dsn == "" {
		if os.Getenv("COINOP_REQUIRE_POSTGRES") == "1" || os.Getenv("COINOP_CI") == "1" {
			t.Fatal("PG_DSN is not set, and this run must not skip PostgreSQL")
		}
		t.Skip("PG_DSN is not set; start a server with scripts/postgres.sh start DIR")
	}
	return dsn
}

var schemas atomic.Int64

// Schema creates an empty schema named after prefix, dropped when t ends,
// and returns a DSN whose search_path selects it.
func Schema(t testing.TB, prefix string) string {
	t.Helper()
	dsn := ServerDSN(t)
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), schemas.Add(1))
	ident := pgx.Identifier{name}.Sanitize()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE SCHEMA `+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is cancelled by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+ident+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return WithParam(t, dsn, "search_path", name)
}

// WithParam adds a connection parameter to a URL or key=value DSN.
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("PG_DSN: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
