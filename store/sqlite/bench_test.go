package sqlite_test

import (
	"database/sql"
	"fmt"
	"math/big"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/store/sqlite"
	"github.com/coinop/coinop/store/storetest"
)

// BenchmarkReserveParallel is the journal under concurrent payments: 16 ×
// GOMAXPROCS goroutines reserving at once. The writer commits the
// reservations queued together in one transaction, one fsync, so the time
// per payment shrinks with concurrency; compare with BenchmarkReserve.
func BenchmarkReserveParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "journal.db"), sqlite.Options{})
	defer s.Close()
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS goroutines, like concurrent requests
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Reserve(ctx, storetest.Payment(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGroupCommit measures what group commit would buy the journal:
// rows like a reservation's, written with the journal's settings (WAL,
// synchronous=FULL) in transactions of 1, 8 or 32 rows, so that one fsync
// covers a whole group. ns/row is the cost per payment. Each row is still durable when its
// transaction's COMMIT returns.
func BenchmarkGroupCommit(b *testing.B) {
	for _, group := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("rows=%d", group), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "group.db")
			db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec(`CREATE TABLE payments (id TEXT PRIMARY KEY, network TEXT, asset TEXT, payer TEXT, nonce TEXT,
				amount TEXT, state TEXT, created_at INTEGER, UNIQUE (network, asset, payer, nonce)) STRICT`); err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for range group {
					n++
					if _, err := tx.Exec(`INSERT INTO payments VALUES (?, 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e',
						'0x3333333333333333333333333333333333333333', ?, '1000', 'verified', ?)`,
						fmt.Sprintf("pay-%d", n), fmt.Sprintf("0x%064x", n), n); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/row")
		})
	}
}

// BenchmarkOweWithin is the async cap's decision with a payer already
// owing 0 or 1,000 payments: the running total makes it the same cost
// either way (a sum over the payments made it grow with what is owed).
func BenchmarkOweWithin(b *testing.B) {
	for _, owing := range []int{0, 1000} {
		b.Run(fmt.Sprintf("owing=%d", owing), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "journal.db"), sqlite.Options{})
			defer s.Close()
			ctx := b.Context()
			limit := new(big.Int).Lsh(big.NewInt(1), 250)
			owe := func(n int) {
				p := storetest.Payment(n)
				if err := s.Reserve(ctx, p); err != nil {
					b.Fatal(err)
				}
				if async, err := s.OweWithin(ctx, p.ID, limit); err != nil || !async {
					b.Fatalf("OweWithin: async=%v %v", async, err)
				}
			}
			for i := range owing {
				owe(i)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				owe(owing + i)
			}
		})
	}
}
