package l402_test

import (
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/store/postgres"
	"github.com/coinop/coinop/store/postgres/pgtest"
)

var schemas atomic.Int64

// TestPostgres runs the rail's journal tests on PostgreSQL ($PG_DSN, as
// scripts/test.sh starts one): the root keys and passes tables in a schema
// of the test's own. Without PG_DSN it skips, unless
// COINOP_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	pgtest.ServerDSN(t)
	sqlite := openJournal
	t.Cleanup(func() { openJournal = sqlite })
	openJournal = func(t *testing.T) journal {
		j, err := postgres.Open(t.Context(), pgtest.Schema(t, "coinop_l402"))
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
