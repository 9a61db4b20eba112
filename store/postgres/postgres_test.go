package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lifecycle"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/postgres"
	"github.com/coinop/coinop/store/postgres/pgtest"
	"github.com/coinop/coinop/store/storetest"
)

var _ storetest.Store = (*postgres.Store)(nil)

// serverDSN is the test server's DSN (pgtest.ServerDSN).
func serverDSN(t testing.TB) string { return pgtest.ServerDSN(t) }

// freshSchema is a DSN on an empty schema of the test's own, dropped when t
// ends: every test gets a journal of its own.
func freshSchema(t testing.TB) string { return pgtest.Schema(t, "coinop_test") }

// connect opens a plain connection, for looking under the store.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func open(t testing.TB, dsn string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenWith(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("OpenWith: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	serverDSN(t) // skip once, not in every subtest
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, freshSchema(t), postgres.Options{})
	})
}

func TestInjectedClock(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	stored := func() time.Time { return now.Truncate(time.Microsecond) }
	s := open(t, freshSchema(t), postgres.Options{Now: func() time.Time { return now }})
	defer s.Close()

	p := storetest.Payment(1)
	if err := s.Reserve(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if !p.Created.Equal(stored()) || !p.Updated.Equal(stored()) || p.Created.Location() != time.UTC {
		t.Errorf("times after Reserve = (%v, %v), want %v in UTC", p.Created, p.Updated, stored())
	}
	now = now.Add(time.Minute)
	if err := s.Transition(t.Context(), p.ID, coinop.StateVerified, coinop.StateSettling, "0xabc", ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(p.Created) || !got.Updated.Equal(stored()) || got.Created.Location() != time.UTC {
		t.Errorf("times after Transition = (%v, %v), want (%v, %v) in UTC", got.Created, got.Updated, p.Created, stored())
	}
	events, err := s.Events(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || !events[0].At.Equal(p.Created) || !events[1].At.Equal(stored()) {
		t.Errorf("events = %+v, want at %v and %v", events, p.Created, stored())
	}

	now = now.Add(time.Minute)
	if err := s.MarkServed(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Get(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	if !got.Served.Equal(stored()) || !got.Updated.Equal(stored()) || got.Served.Location() != time.UTC {
		t.Errorf("after MarkServed: served %v updated %v, want %v in UTC", got.Served, got.Updated, stored())
	}
}

func TestSurvivesReopen(t *testing.T) {
	dsn := freshSchema(t)
	storetest.RunReopen(t, func(t *testing.T) storetest.Store { return open(t, dsn, postgres.Options{}) })
}

// TestMigrationsConcurrent starts several instances on one empty database at
// once, as a fleet of gateways would: each must open, and the schema must be
// migrated exactly once.
func TestMigrationsConcurrent(t *testing.T) {
	dsn := freshSchema(t)
	const instances = 8
	stores := make([]*postgres.Store, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		if err := stores[i].Ping(t.Context()); err != nil {
			t.Errorf("Ping %d: %v", i, err)
		}
		stores[i].Close()
	}
	// And once more, after they all closed.
	open(t, dsn, postgres.Options{}).Close()

	var applied int
	if err := connect(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || applied != len(files) {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", applied, len(files))
	}
}

// race runs f 100 times concurrently, alternating between two stores on one
// database (two pools, as two gateway processes would have), and returns
// the errors.
func race(a, b *postgres.Store, f func(s *postgres.Store, i int) error) []error {
	errs := make([]error, 100)
	var wg sync.WaitGroup
	for i := range errs {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() { errs[i] = f(s, i) })
	}
	wg.Wait()
	return errs
}

// winners counts the nil errors and fails on any error not of kind k.
func winners(t *testing.T, errs []error, k coinop.Kind) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		switch {
		case err == nil:
			n++
		case coinop.KindOf(err) != k:
			t.Errorf("error = %v (kind %s), want kind %s", err, coinop.KindOf(err), k)
		}
	}
	return n
}

func TestTwoInstances(t *testing.T) {
	dsn := freshSchema(t)
	a := open(t, dsn, postgres.Options{})
	defer a.Close()
	b := open(t, dsn, postgres.Options{})
	defer b.Close()
	ctx := t.Context()
	p := storetest.Payment(1)

	// Several keys: a lost race shows only now and then.
	for key := 1; key <= 10; key++ {
		errs := race(a, b, func(s *postgres.Store, _ int) error { return s.Reserve(ctx, storetest.Payment(key)) })
		if n := winners(t, errs, coinop.KindReplayed); n != 1 {
			t.Fatalf("%d concurrent reserves of key %d succeeded, want 1", n, key)
		}
	}

	if err := a.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed"); err != nil {
		t.Fatal(err)
	}
	errs := race(a, b, func(s *postgres.Store, _ int) error { return s.Reserve(ctx, storetest.Payment(1)) })
	if n := winners(t, errs, coinop.KindReplayed); n != 1 {
		t.Fatalf("%d concurrent reserves of a released payment succeeded, want 1", n)
	}

	errs = race(a, b, func(s *postgres.Store, i int) error {
		return s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, fmt.Sprintf("0x%x", i), "")
	})
	if n := winners(t, errs, coinop.KindInFlight); n != 1 {
		t.Fatalf("%d concurrent transitions succeeded, want 1", n)
	}

	events, err := b.Events(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, e := range events {
		path = append(path, string(e.From)+"→"+string(e.To))
	}
	if got, want := strings.Join(path, " "), "→verified verified→released released→verified verified→settling"; got != want {
		t.Errorf("history = %s, want %s", got, want)
	}
}

// TestTwoInstancesIdempotencyKey races distinct payments with one idempotency
// key, then the serving of the winner, across two stores.
func TestTwoInstancesIdempotencyKey(t *testing.T) {
	dsn := freshSchema(t)
	a := open(t, dsn, postgres.Options{})
	defer a.Close()
	b := open(t, dsn, postgres.Options{})
	defer b.Close()
	ctx := t.Context()

	// Several keys: a lost race shows only now and then.
	for round := range 10 {
		key := fmt.Sprintf("purchase-%d", round)
		errs := race(a, b, func(s *postgres.Store, i int) error {
			p := storetest.Payment(1000*round + i) // a nonce of its own
			p.IdempotencyKey = key
			return s.Reserve(ctx, p)
		})
		if n := winners(t, errs, coinop.KindReplayed); n != 1 {
			t.Fatalf("%d concurrent reserves with idempotency key %s succeeded, want 1", n, key)
		}
		for _, err := range errs {
			if err != nil && coinop.AsError(err).Reason != "idempotency_key_used" {
				t.Errorf("Reserve error = %v, want reason idempotency_key_used", err)
			}
		}
		p, err := b.ByIdempotencyKey(ctx, storetest.Payment(0).Payer, key)
		if err != nil {
			t.Fatal(err)
		}
		errs = race(a, b, func(s *postgres.Store, _ int) error { return s.MarkServed(ctx, p.ID) })
		if n := winners(t, errs, coinop.KindReplayed); n != 1 {
			t.Fatalf("%d concurrent MarkServed calls succeeded, want 1", n)
		}
		// Released, the payment gives the key up to exactly one of the others.
		if err := a.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed"); err != nil {
			t.Fatal(err)
		}
		errs = race(a, b, func(s *postgres.Store, i int) error {
			p := storetest.Payment(1000*round + 100 + i)
			p.IdempotencyKey = key
			return s.Reserve(ctx, p)
		})
		if n := winners(t, errs, coinop.KindReplayed); n != 1 {
			t.Fatalf("%d concurrent reserves of a released idempotency key succeeded, want 1", n)
		}
	}
}

// TestMigrationFromFirstSchema opens a journal written under the first
// migration alone: its payments read as sync, without payload or key, not
// served, without a raw transaction, and can be served, keyed and given
// one from then on.
func TestMigrationFromFirstSchema(t *testing.T) {
	dsn := freshSchema(t)
	conn := connect(t, dsn)
	ddl, err := os.ReadFile("migrations/0001_payments.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL)`,
		string(ddl),
		`INSERT INTO schema_migrations (name, applied_at) VALUES ('0001_payments.sql', now())`,
		`INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, created_at, updated_at)
		 VALUES ('old', 'x402-exact-evm', 'eip155:84532', '0xa', '0xb', '0xc', '0x1', 5, 'https://api.example/', 'settled', now(), now())`,
		`INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, created_at, updated_at)
		 VALUES ('owed', 'x402-exact-evm', 'eip155:84532', '0xa', '0xb', '0xc', '0x2', 5, 'https://api.example/', 'settling', '0xfeed', now(), now())`,
		`INSERT INTO payment_events (payment_id, from_state, to_state, at) VALUES ('old', '', 'verified', now())`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, dsn, postgres.Options{})
	defer s.Close()
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

// TestIdempotencyKeyNeverEmpty: "no key" is NULL, so that keyless payments
// never collide; the schema refuses an empty key, and an unknown mode, even
// from someone with the database.
func TestIdempotencyKeyNeverEmpty(t *testing.T) {
	dsn := freshSchema(t)
	s := open(t, dsn, postgres.Options{})
	defer s.Close()
	for n := 1; n <= 2; n++ {
		if err := s.Reserve(t.Context(), storetest.Payment(n)); err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, dsn)
	var keyless int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM payments WHERE idempotency_key IS NULL`).Scan(&keyless); err != nil || keyless != 2 {
		t.Errorf("payments without a key = %d, %v; want 2 stored as NULL", keyless, err)
	}
	if _, err := conn.Exec(t.Context(), `UPDATE payments SET idempotency_key = ''`); err == nil {
		t.Error("storing an empty idempotency key succeeded, want it refused")
	}
	if _, err := conn.Exec(t.Context(), `UPDATE payments SET mode = 'later'`); err == nil {
		t.Error("storing an unknown mode succeeded, want it refused")
	}
}

func TestEventsAppendOnly(t *testing.T) {
	dsn := freshSchema(t)
	s := open(t, dsn, postgres.Options{})
	defer s.Close()
	if err := s.Reserve(t.Context(), storetest.Payment(1)); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	for _, stmt := range []string{
		`UPDATE payment_events SET reason = 'x'`,
		`DELETE FROM payment_events`,
		`TRUNCATE payment_events`,
		`TRUNCATE payments CASCADE`,
		`DELETE FROM payments`,
	} {
		if _, err := conn.Exec(t.Context(), stmt); err == nil {
			t.Errorf("%s succeeded, want it refused", stmt)
		}
	}
	if events, err := s.Events(t.Context(), storetest.Payment(1).ID); err != nil || len(events) != 1 {
		t.Errorf("events = %d, %v; want 1", len(events), err)
	}
}

// TestRefusedValue: a value PostgreSQL cannot store is the caller's fault,
// not an outage, and leaves nothing behind.
func TestRefusedValue(t *testing.T) {
	s := open(t, freshSchema(t), postgres.Options{})
	defer s.Close()
	p := storetest.Payment(1)
	p.Resource = "https://api.example/\x00"
	if err := s.Reserve(t.Context(), p); coinop.KindOf(err) != coinop.KindInternal {
		t.Errorf("Reserve with a NUL byte = %v, want KindInternal", err)
	}
	if _, err := s.Get(t.Context(), p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after refused Reserve = %v, want ErrNotFound", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := open(t, freshSchema(t), postgres.Options{})
	s.Close()
	if err := s.Ping(t.Context()); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Ping after Close = %v, want KindUnavailable", err)
	}
	if err := s.Reserve(t.Context(), storetest.Payment(1)); coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Reserve after Close = %v, want KindUnavailable", err)
	}
	if err := s.Transition(t.Context(), "x", coinop.StateVerified, coinop.StateSettling, "", ""); errors.Is(err, store.ErrNotFound) || coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Transition after Close = %v, want KindUnavailable", err)
	}
	if _, err := s.Get(t.Context(), "x"); errors.Is(err, store.ErrNotFound) || coinop.KindOf(err) != coinop.KindUnavailable {
		t.Errorf("Get after Close = %v, want KindUnavailable", err)
	}
}

func TestOpenRefusesAsynchronousCommit(t *testing.T) {
	dsn := pgtest.WithParam(t, freshSchema(t), "synchronous_commit", "off")
	if s, err := postgres.Open(t.Context(), dsn); err == nil {
		s.Close()
		t.Error("Open with synchronous_commit=off succeeded")
	}
}

func TestOpenUnreachable(t *testing.T) {
	// A port that was free a moment ago: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if s, err := postgres.Open(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable"); err == nil {
		s.Close()
		t.Errorf("Open(%s) succeeded with nothing listening", addr)
	}
}

// BenchmarkReserve measures one durable reservation of a new key (one
// round trip, one WAL flush).
func BenchmarkReserve(b *testing.B) {
	s := open(b, freshSchema(b), postgres.Options{})
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

func TestMigrateJournalV2(t *testing.T) {
	dsn := freshSchema(t)
	script, err := os.ReadFile("testdata/journal-v2.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(t.Context(), string(script)); err != nil {
		t.Fatalf("journal-v2.sql: %v", err)
	}
	for range 2 { // migrated twice: nothing changes
		s := open(t, dsn, postgres.Options{})
		storetest.CheckFixture(t, s, "testdata/journal-v2.json")
		s.Close()
	}
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations WHERE name = '0004_journal_v3.sql'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("0004 recorded %d times (%v), want once", n, err)
	}
	for _, q := range []string{
		`UPDATE payment_events SET reason = 'rewritten' WHERE payment_id = 'pay-05'`,
		`DELETE FROM payment_events WHERE payment_id = 'pay-05'`,
		`TRUNCATE payment_events`,
	} {
		if _, err := conn.Exec(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want append-only", q, err)
		}
	}
}

func TestLeases(t *testing.T) {
	storetest.RunLeases(t, func(t *testing.T) func(string, func() time.Time) storetest.Store {
		dsn := freshSchema(t)
		return func(owner string, now func() time.Time) storetest.Store {
			s := open(t, dsn, postgres.Options{Owner: owner, Now: now, Lease: storetest.LeaseTerm})
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

// The cap is the journal's: two handles on one schema stand for two
// gateway instances, or one restarted.
func TestExposure(t *testing.T) {
	serverDSN(t)
	storetest.RunExposure(t, func(t *testing.T) func() storetest.Exposer {
		dsn := freshSchema(t)
		return func() storetest.Exposer {
			s := open(t, dsn, postgres.Options{})
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

var _ lifecycle.Exposure = (*postgres.Store)(nil)
