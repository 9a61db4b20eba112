// Command v2gen wrote journal-v2.db, journal-v2.json and
// ../../postgres/testdata/journal-v2.sql with the journal code of commit
// 84c9b5a (migrations 0001–0003), the last before migration 0004. It is kept
// to show how the fixtures were made; it builds only against that commit.
//
//	go run ./store/sqlite/testdata/v2gen store/sqlite/testdata store/postgres/testdata
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/store"
	"github.com/coinop/coinop/store/sqlite"

	_ "modernc.org/sqlite"
)

type record struct {
	Payment *coinop.Payment
	Events  []store.Event
}

func main() {
	dir, pgdir := os.Args[1], os.Args[2]
	path := filepath.Join(dir, "journal-v2.db")
	os.Remove(path)
	t := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { t = t.Add(1500 * time.Microsecond); return t }
	s, err := sqlite.OpenWith(path, sqlite.Options{Now: now})
	check(err)
	ctx := context.Background()
	var ids []string
	pay := func(n int, mode, idem string) *coinop.Payment {
		amount, _ := new(big.Int).SetString(fmt.Sprint(n*1000+1), 10)
		if n == 7 {
			amount, _ = new(big.Int).SetString("115792089237316195423570985008687907853269984665640564039457584007913129639935", 10)
		}
		p := &coinop.Payment{
			ID:             fmt.Sprintf("pay-%02d", n),
			Rail:           "x402-exact-evm",
			Network:        "eip155:84532",
			Asset:          "0x036cbd53842c5426634e7929541ec2318f3dcf7e",
			Payer:          fmt.Sprintf("0x%040x", 0xa0+n%3),
			PayTo:          "0x00000000000000000000000000000000000000b0",
			ReplayKey:      fmt.Sprintf("0x%064x", n),
			Amount:         amount,
			Resource:       fmt.Sprintf("GET https://api.example/items/%d", n),
			Mode:           mode,
			Payload:        fmt.Sprintf(`{"x402Version":1,"n":%d}`, n),
			IdempotencyKey: idem,
		}
		check(s.Reserve(ctx, p))
		ids = append(ids, p.ID)
		return p
	}
	hash := func(n int) string { return fmt.Sprintf("0x%064x", 0xf000+n) }
	raw := func(n int) string { return fmt.Sprintf("0x02f8%060x", n) }

	pay(1, "", "")                          // verified, sync
	p := pay(2, coinop.ModeAsync, "idem-2") // verified, served
	check(s.MarkServed(ctx, p.ID))
	p = pay(3, coinop.ModeSync, "") // settling, no tx yet
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	p = pay(4, coinop.ModeAsync, "idem-4") // settling, raw tx, served
	check(s.MarkServed(ctx, p.ID))
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	check(s.RecordTx(ctx, p.ID, hash(4), raw(4)))
	p = pay(5, coinop.ModeSync, "idem-5") // settled
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	check(s.RecordTx(ctx, p.ID, hash(5), raw(5)))
	check(s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, hash(5), "settled"))
	check(s.MarkServed(ctx, p.ID))
	p = pay(6, coinop.ModeSync, "") // failed after settling
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	check(s.RecordTx(ctx, p.ID, hash(6), raw(6)))
	check(s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateFailed, "", "transaction_reverted"))
	p = pay(7, coinop.ModeSync, "") // failed before settling, huge amount
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateFailed, "", "insufficient_funds"))
	p = pay(8, coinop.ModeSync, "idem-8") // released, keeps its key
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed"))
	p = pay(9, coinop.ModeSync, "idem-9") // released, then reserved again and settled
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateReleased, "", "upstream_failed"))
	p.Payload = `{"x402Version":1,"n":9,"retry":true}`
	check(s.Reserve(ctx, p))
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	check(s.RecordTx(ctx, p.ID, hash(9), raw(9)))
	check(s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, "", "settled"))
	p = pay(10, coinop.ModeAsync, "") // async settled, unreconcilable mark on the way
	check(s.MarkServed(ctx, p.ID))
	check(s.Transition(ctx, p.ID, coinop.StateVerified, coinop.StateSettling, "", ""))
	check(s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettling, "", "unreconcilable_no_rpc"))
	check(s.RecordTx(ctx, p.ID, hash(10), raw(10)))
	check(s.Transition(ctx, p.ID, coinop.StateSettling, coinop.StateSettled, "", "recovered"))

	var recs []record
	for _, id := range ids[:len(ids)-1] { // pay-09 appears once
		if len(recs) > 0 && recs[len(recs)-1].Payment.ID == id {
			continue
		}
		p, err := s.Get(ctx, id)
		check(err)
		ev, err := s.Events(ctx, id)
		check(err)
		recs = append(recs, record{p, ev})
	}
	p10, _ := s.Get(ctx, "pay-10")
	ev10, _ := s.Events(ctx, "pay-10")
	recs = append(recs, record{p10, ev10})
	check(s.Close())
	out, err := json.MarshalIndent(recs, "", "\t")
	check(err)
	check(os.WriteFile(filepath.Join(dir, "journal-v2.json"), append(out, '\n'), 0o644))
	check(os.WriteFile(filepath.Join(pgdir, "journal-v2.json"), append(out, '\n'), 0o644))
	check(writeSQL(path, filepath.Join(pgdir, "journal-v2.sql")))
}

// writeSQL writes the PostgreSQL fixture: migrations 0001–0003 as today's
// code applies them, then the SQLite journal's rows, value for value.
func writeSQL(dbPath, out string) error {
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var b strings.Builder
	b.WriteString("-- A PostgreSQL journal as written by coinop before migration 0004\n")
	b.WriteString("-- (made by store/sqlite/testdata/v2gen from journal-v2.db).\n\n")
	b.WriteString("CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL);\n\n")
	for _, m := range []string{"0001_payments.sql", "0002_payment_mode_payload_idempotency_served.sql", "0003_payment_raw_tx.sql"} {
		ddl, err := os.ReadFile(filepath.Join("store/postgres/migrations", m))
		if err != nil {
			return err
		}
		b.Write(ddl)
		fmt.Fprintf(&b, "\nINSERT INTO schema_migrations VALUES ('%s', '2026-11-30T11:00:00Z');\n\n", m)
	}
	ts := func(n int64) string { return "'" + time.Unix(0, n).UTC().Format(time.RFC3339Nano) + "'" }
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	rows, err := db.Query(`SELECT id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason,
		created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx FROM payments ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v [19]sql.NullString
		var created, updated int64
		var served sql.NullInt64
		if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
			&created, &updated, &v[14], &v[15], &v[16], &served, &v[18]); err != nil {
			return err
		}
		idem, srv := "NULL", "NULL"
		if v[16].Valid {
			idem = q(v[16].String)
		}
		if served.Valid {
			srv = ts(served.Int64)
		}
		fmt.Fprintf(&b, "INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)\n\tVALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);\n",
			q(v[0].String), q(v[1].String), q(v[2].String), q(v[3].String), q(v[4].String), q(v[5].String), q(v[6].String),
			v[7].String, q(v[8].String), q(v[9].String), q(v[10].String), q(v[11].String), ts(created), ts(updated),
			q(v[14].String), q(v[15].String), idem, srv, q(v[18].String))
	}
	rows.Close()
	b.WriteString("\n")
	ev, err := db.Query(`SELECT payment_id, from_state, to_state, tx, reason, at FROM payment_events ORDER BY seq`)
	if err != nil {
		return err
	}
	for ev.Next() {
		var id, from, to, tx, reason string
		var at int64
		if err := ev.Scan(&id, &from, &to, &tx, &reason, &at); err != nil {
			return err
		}
		fmt.Fprintf(&b, "INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES (%s, %s, %s, %s, %s, %s);\n",
			q(id), q(from), q(to), q(tx), q(reason), ts(at))
	}
	ev.Close()
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
