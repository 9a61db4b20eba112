package coinop_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanPackages keeps the engine, the middleware, the wire format and the
// client free of go-ethereum and SQL drivers: those arrive injected. config
// too: rail modules read and check their blocks there, and build rails in
// the gateway. The Lightning packages and the L402 rail likewise: the
// journal reaches the rail as an interface.
func TestLeanPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := []string{"github.com/ethereum/go-ethereum", "modernc.org/sqlite", "github.com/jackc/pgx", "database/sql", "github.com/mattn/go-sqlite3"}
	for _, pkg := range []string{".", "./lifecycle", "./paywall", "./client", "./x402", "./eip3009", "./x402/facilitated", "./config", "./fwdauth", "./credits", "./freetier", "./siwx",
		"./lightning", "./lightning/bolt11", "./lightning/lnd", "./lightning/devnode", "./l402",
		"./mpp", "./mpp/evmcharge", "./mpp/tempocharge", "./mpp/lightningcharge", "./mpp/mppclient"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}
