package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/store/storetest"
)

// copyFixture copies the journal written by coinop before migration 0004
// (testdata/v2gen) to a file of the test's own.
func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/journal-v2.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// schema is the journal's schema as SQLite records it, and its migrations.
func schema(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master ORDER BY type, name`,
		`SELECT name FROM schema_migrations ORDER BY name`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

func TestMigrateJournalV2(t *testing.T) {
	path := copyFixture(t)
	s := open(t, path, sqlite.Options{})
	storetest.CheckFixture(t, s, "testdata/journal-v2.json")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	first := schema(t, path)
	for _, want := range []string{"0004_journal_v3.sql", "payment_events_no_update", "payment_events_no_delete", "payments_idempotency_key"} {
		if !strings.Contains(first, want) {
			t.Errorf("migrated schema lacks %s:\n%s", want, first)
		}
	}
	if strings.Contains(first, "payments_replay_key") || strings.Contains(first, "payments_v3") || strings.Contains(first, "events_v3") {
		t.Errorf("migrated schema keeps the old replay index or a temporary name:\n%s", first)
	}

	// Migrated twice: nothing changes.
	s = open(t, path, sqlite.Options{})
	storetest.CheckFixture(t, s, "testdata/journal-v2.json")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if again := schema(t, path); again != first {
		t.Errorf("schema after a second open =\n%s\nwant\n%s", again, first)
	}

	// History carried across is still append-only.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`UPDATE payment_events SET reason = 'rewritten' WHERE payment_id = 'pay-05'`,
		`DELETE FROM payment_events WHERE payment_id = 'pay-05'`,
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want append-only", q, err)
		}
	}
}

func TestLeases(t *testing.T) {
	storetest.RunLeases(t, func(t *testing.T) func(string, func() time.Time) storetest.Store {
		path := filepath.Join(t.TempDir(), "journal.db")
		return func(owner string, now func() time.Time) storetest.Store {
			s := open(t, path, sqlite.Options{Owner: owner, Now: now, Lease: storetest.LeaseTerm})
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}
