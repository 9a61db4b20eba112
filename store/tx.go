package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/coinop/coinop"
)

// Tx is a transaction scope over a journal (Atomically): the journal's
// writes, and statements on a rail's own tables (a credit ledger), that
// commit together or not at all.
//
// Rails write portable SQL: placeholders are always '?', which a
// PostgreSQL journal rewrites to $1, $2, … (Rebind) before running the
// statement; a '?' must therefore not appear inside a string literal or an
// identifier. Times and amounts are passed as the rail stores them (a rail
// that must run on both backends keeps to text and integers).
//
// A method of Tx that returns an error dooms the transaction: Atomically
// rolls it back and returns that error, whatever fn returns, because a
// PostgreSQL transaction cannot go on after a failed statement and a
// journal write must never commit half of what its caller meant.
type Tx interface {
	Reserve(ctx context.Context, p *coinop.Payment) error
	Transition(ctx context.Context, id string, from, to coinop.State, reference, reason string) error
	MarkServed(ctx context.Context, id string) error
	RecordTx(ctx context.Context, id, reference, prepared string) error
	// Exec runs a statement on the rail's tables and returns the number of
	// rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryRow runs a query expected to return at most one row and scans
	// its columns into dest; no row is an error wrapping ErrNotFound.
	QueryRow(ctx context.Context, query string, args []any, dest ...any) error
}

// Rebind rewrites query's '?' placeholders as PostgreSQL's $1, $2, ….
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RailMigration is the name under which a journal records a rail's
// migration name (Migrate) in its migrations table, apart from its own.
func RailMigration(name string) string { return "rail:" + name }
