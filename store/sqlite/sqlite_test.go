package sqlite_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lifecycle"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/store/storetest"
)

var _ storetest.Store = (*sqlite.Store)(nil)

func open(t testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenWith(path, opts)
	if err != nil {
		t.Fatalf("OpenWith(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "journal.db"), sqlite.Options{})
	})
}

func TestInjectedClock(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	s := open(t, filepath.Join(t.TempDir(), "journal.db"), sqlite.Options{Now: func() time.Time { return now }})
	defer s.Close()

	p := storetest.Payment(1)
	if err := s.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if !p.Created.Equal(now) || !p.Updated.Equal(now) {
		t.Errorf("times after Reserve = (%v, %v), want %v", p.Created, p.Updated, now)
	}
	now = now.Add(time.Minute)
	if err := s.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "0xabc", ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(p.Created) || !got.Updated.Equal(now) || got.Created.Location() != time.UTC {
		t.Errorf("times after Transition = (%v, %v), want (%v, %v) in UTC", got.Created, got.Updated, p.Created, now)
	}
	events, err := s.Events(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || !events[0].At.Equal(p.Created) || !events[1].At.Equal(now) {
		t.Errorf("events = %+v, want at %v and %v", events, p.Created, now)
	}

	now = now.Add(time.Minute)
	if err := s.MarkServed(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Get(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	if !got.Served.Equal(now) || !got.Updated.Equal(now) || got.Served.Location() != time.UTC {
		t.Errorf("after MarkServed: served %v updated %v, want %v in UTC", got.Served, got.Updated, now)
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dirs", "journal.db")
	storetest.RunReopen(t, func(t *testing.T) storetest.Store { return open(t, path, sqlite.Options{}) })
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	first := open(t, path, sqlite.Options{})
	if err := first.Reserve(t.Context(), storetest.Payment(1)); err != nil {
		t.Fatal(err)
	}
	// Open again while the first store is still open, then after it closed.
	check := func(s *sqlite.Store) {
		t.Helper()
		if _, err := s.Get(t.Context(), storetest.Payment(1).ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	check(open(t, path, sqlite.Options{}))
	check(first)
	check(open(t, path, sqlite.Options{}))
	check(open(t, path, sqlite.Options{}))

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied, files int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	files = len(matches)
	if files == 0 || applied != files {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", applied, files)
	}
}

// TestMigrationFromFirstSchema opens a journal written under the first
// migration alone: its payments read as sync, without payload or key, not
// served, without a raw transaction, and can be served, keyed and given
// one from then on.
func TestMigrationFromFirstSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	ddl, err := os.ReadFile("migrations/0001_payments.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
		string(ddl),
		`INSERT INTO schema_migrations (name, applied_at) VALUES ('0001_payments.sql', 1)`,
		`INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, created_at, updated_at)
		 VALUES ('old', 'x402-exact-evm', 'eip155:84532', '0xa', '0xb', '0xc', '0x1', '5', 'https://api.example/', 'settled', 1, 1)`,
		`INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, created_at, updated_at)
		 VALUES ('owed', 'x402-exact-evm', 'eip155:84532', '0xa', '0xb', '0xc', '0x2', '5', 'https://api.example/', 'settling', '0xfeed', 1, 1)`,
		`INSERT INTO payment_events (payment_id, from_state, to_state, at) VALUES ('old', '', 'verified', 1)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, path, sqlite.Options{})
	defer s.Close()
	ctx := t.Context()
	got, err := s.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != coinop.ModeSync || got.Payload != "" || got.IdempotencyKey != "" || !got.Served.IsZero() {
		t.Errorf("migrated payment: mode %q payload %q key %q served %v; want sync, none, none, zero",
			got.Mode, got.Payload, got.IdempotencyKey, got.Served)
	}
	if err := s.MarkServed(ctx, "old"); err != nil {
		t.Errorf("MarkServed on a migrated payment: %v", err)
	}
	storetest.CheckMigratedSettling(t, s, "owed")
	p := storetest.Payment(1)
	p.Payer, p.IdempotencyKey = "0xb", "purchase"
	if err := s.Reserve(ctx, p); err != nil {
		t.Fatal(err)
	}
	p = storetest.Payment(2)
	p.Payer, p.IdempotencyKey = "0xb", "purchase"
	if err := s.Reserve(ctx, p); coinop.AsError(err).Reason != "idempotency_key_used" {
		t.Errorf("Reserve with a used key after migration = %v, want idempotency_key_used", err)
	}
}

func TestJournalSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	s := open(t, path, sqlite.Options{})
	if err := s.Reserve(t.Context(), storetest.Payment(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// History is append-only, even to someone with the file.
	for _, stmt := range []string{`UPDATE payment_events SET reason = 'x'`, `DELETE FROM payment_events`} {
		if _, err := db.Exec(stmt); err == nil {
			t.Errorf("%s succeeded, want it refused", stmt)
		}
	}
	// "No idempotency key" is NULL, so that keyless payments never collide;
	// the schema refuses '' and unknown modes.
	var keyless int
	if err := db.QueryRow(`SELECT count(*) FROM payments WHERE idempotency_key IS NULL`).Scan(&keyless); err != nil || keyless != 1 {
		t.Errorf("payments without a key = %d, %v; want 1 stored as NULL", keyless, err)
	}
	for _, stmt := range []string{`UPDATE payments SET idempotency_key = ''`, `UPDATE payments SET mode = 'later'`} {
		if _, err := db.Exec(stmt); err == nil {
			t.Errorf("%s succeeded, want it refused", stmt)
		}
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "journal.db"), sqlite.Options{})
	s.Close()
	if err := s.Ping(t.Context()); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Ping after Close = %v, want KindUnavailable", err)
	}
	if err := s.Reserve(t.Context(), storetest.Payment(1)); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Reserve after Close = %v, want KindUnavailable", err)
	}
	if _, err := s.Get(t.Context(), "x"); errors.Is(err, store.ErrNotFound) || coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Get after Close = %v, want KindUnavailable", err)
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := sqlite.Open(path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// BenchmarkReserve measures one durable (fsync'd) reservation of a new key.
func BenchmarkReserve(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "journal.db"), sqlite.Options{})
	defer s.Close()
	ctx := b.Context()
	n := 0
	for b.Loop() {
		n++
		if err := s.Reserve(ctx, storetest.Payment(n)); err != nil {
			b.Fatal(err)
		}
	}
}

// The cap is the journal's: two handles on one file stand for a restart
// (and for two processes, which SQLite's write lock serializes).
func TestExposure(t *testing.T) {
	storetest.RunExposure(t, func(t *testing.T) func() storetest.Exposer {
		path := filepath.Join(t.TempDir(), "journal.db")
		return func() storetest.Exposer {
			s := open(t, path, sqlite.Options{})
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

var _ lifecycle.Exposure = (*sqlite.Store)(nil)
