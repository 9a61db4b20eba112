package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/storetest"
)

// writerPrepared is how many statements the writer keeps prepared; it is
// read through the writer so that it sees the writer's own map.
func writerPrepared(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.write(t.Context(), "count", func(context.Context, *wtx) error {
		n = len(s.ws.prepared)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStatementsPreparedOnce: the journal's statements are prepared after
// their first use and reused after that, and what they write is what a
// statement compiled each time wrote.
func TestStatementsPreparedOnce(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	ctx := t.Context()
	pay := func(i int) {
		p := storetest.Payment(i)
		if err := s.Reserve(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkServed(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, fmt.Sprintf("0x%064x", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	pay(1)
	after1 := writerPrepared(t, s)
	if after1 == 0 {
		t.Fatal("no statement was kept prepared")
	}
	for i := 2; i <= 20; i++ {
		pay(i)
	}
	if n := writerPrepared(t, s); n != after1 {
		t.Errorf("%d statements prepared after 20 payments, %d after the first", n, after1)
	}
	for i := 1; i <= 20; i++ {
		p, err := s.Get(ctx, storetest.Payment(i).ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != coinop.StateSettled || p.Served.IsZero() || p.Reference != fmt.Sprintf("0x%064x", i) {
			t.Errorf("payment %d: %s served %v reference %q", i, p.State, p.Served, p.Reference)
		}
		events, err := s.Events(ctx, p.ID)
		if err != nil || len(events) != 4 {
			t.Errorf("payment %d: %d events, %v", i, len(events), err)
		}
	}
	// A replay is still refused through the prepared statements.
	if err := s.Reserve(ctx, storetest.Payment(3)); coinop.KindOf(err) != coinop.KindReplayed {
		t.Errorf("a replayed payment: %v", err)
	}
}

// TestStatementCacheBounded: texts a caller builds per call (a rail's own
// statements) run correctly, prepared up to the cache's bound and
// unprepared beyond it; DDL and multi-statement texts are never kept.
func TestStatementCacheBounded(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "journal.db"))
	ctx := t.Context()
	if err := s.Migrate(ctx, "cache-test", `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX kv_v ON kv (v)`); err != nil {
		t.Fatal(err)
	}
	const n = 3 * maxStatements
	for i := range n {
		// A literal in the text makes every statement a new one.
		if err := s.Atomically(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO kv (k, v) VALUES (%d, ?)`, i), fmt.Sprint(i))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := writerPrepared(t, s); got > maxStatements {
		t.Errorf("%d statements prepared, more than the bound %d", got, maxStatements)
	}
	var count, sum int
	if err := s.Atomically(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*), sum(k) FROM kv`, nil, &count, &sum)
	}); err != nil {
		t.Fatal(err)
	}
	if count != n || sum != n*(n-1)/2 {
		t.Errorf("%d rows summing to %d, want %d and %d", count, sum, n, n*(n-1)/2)
	}
	if err := s.write(ctx, "look", func(context.Context, *wtx) error {
		for q := range s.ws.prepared {
			if !cacheable(q) {
				t.Errorf("kept prepared: %q", q)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCacheable(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                            true,
		"\n\t\tupdate payments SET state = ?": true,
		"INSERT INTO kv VALUES (?)":           true,
		"SAVEPOINT write":                     true,
		"RELEASE write":                       true,
		"ROLLBACK TO write; RELEASE write":    false,
		"CREATE TABLE t (a)":                  false,
		"SELECT 1; DROP TABLE payments":       false,
		"":                                    false,
		"PRAGMA user_version":                 false,
	} {
		if got := cacheable(q); got != want {
			t.Errorf("cacheable(%q) = %v, want %v", q, got, want)
		}
	}
}
