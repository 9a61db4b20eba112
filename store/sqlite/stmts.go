package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"sync"
)

// maxStatements bounds each statement cache: a caller building SQL text per
// call (a rail's own statements go through Tx.Exec) must not grow it
// without end. Statements beyond it run unprepared, as before.
const maxStatements = 128

// cacheable reports whether query may be kept prepared: one statement
// (SQLite prepares the first statement of a text only) that reads or
// writes rows. DDL and multi-statement texts run unprepared.
func cacheable(query string) bool {
	if strings.Contains(query, ";") {
		return false
	}
	q := strings.TrimSpace(query)
	if len(q) < 7 {
		return false
	}
	switch strings.ToUpper(q[:6]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "SAVEPO", "RELEAS":
		return true
	}
	return false
}

// writerStatements are the writer connection's prepared statements. SQLite
// spends most of a small write's CPU compiling its SQL; a statement
// compiled once is bound to its arguments and stepped after that.
//
// Only the writer goroutine uses it, so it has no lock. A statement seen
// for the first time inside a transaction runs unprepared and is prepared
// after the group commits (prepareWanted): the writer's only connection is
// busy with the transaction until then, and database/sql would wait for a
// free one.
type writerStatements struct {
	db       *sql.DB
	prepared map[string]*sql.Stmt
	wanted   []string
	refused  map[string]bool // texts SQLite would not prepare alone
}

func newWriterStatements(db *sql.DB) *writerStatements {
	return &writerStatements{db: db, prepared: map[string]*sql.Stmt{}, refused: map[string]bool{}}
}

// lookup returns query's prepared statement, or nil after noting that it is
// wanted.
func (c *writerStatements) lookup(query string) *sql.Stmt {
	if st := c.prepared[query]; st != nil {
		return st
	}
	if !c.refused[query] && len(c.prepared)+len(c.wanted) < maxStatements && cacheable(query) && !slices.Contains(c.wanted, query) {
		c.wanted = append(c.wanted, query)
	}
	return nil
}

// prepareWanted prepares the statements noted since the last call. It is
// called by the writer between groups, when no transaction holds the
// connection.
func (c *writerStatements) prepareWanted(ctx context.Context) {
	for _, q := range c.wanted {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			// A text SQLite will not prepare on its own (it names a table a
			// later migration creates, say): it keeps running unprepared.
			c.refused[q] = true
			continue
		}
		c.prepared[q] = st
	}
	clear(c.wanted)
	c.wanted = c.wanted[:0]
}

func (c *writerStatements) close() {
	for _, st := range c.prepared {
		st.Close()
	}
	clear(c.prepared)
}

// wtx is the writer's transaction: *sql.Tx's statement methods, through the
// writer's prepared statements.
type wtx struct {
	tx    *sql.Tx
	stmts *writerStatements
}

func (w *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := w.stmts.lookup(query); st != nil {
		return w.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return w.tx.ExecContext(ctx, query, args...)
}

func (w *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := w.stmts.lookup(query); st != nil {
		return w.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, query, args...)
}

func (w *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := w.stmts.lookup(query); st != nil {
		return w.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return w.tx.QueryContext(ctx, query, args...)
}

// readerStatements are the read-only pool's prepared statements, shared by
// every reader: a *sql.Stmt of the pool prepares itself on each connection
// it runs on, once. Lookups of prepared statements share a read lock; a
// statement is prepared outside any lock (it may wait for a connection).
type readerStatements struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func (c *readerStatements) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, n := c.m[query], len(c.m)
	c.mu.RUnlock()
	if st != nil || n >= maxStatements || !cacheable(query) {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[query]; prev != nil || len(c.m) >= maxStatements {
		st.Close() // prepared meanwhile by another reader, or no room left
		return prev
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st
}

func (c *readerStatements) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c *readerStatements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

func (c *readerStatements) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	clear(c.m)
}
