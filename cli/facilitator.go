package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
	"github.com/coinop/coinop/facilitator"
	"github.com/coinop/coinop/gateway"
	"github.com/coinop/coinop/recovery"
	"github.com/coinop/coinop/x402"
)

// runFacilitator serves the x402 facilitator API for the given networks.
func runFacilitator(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("facilitator", env)
	var networks listFlag
	listen := fs.String("listen", "127.0.0.1:8403", "address to serve on")
	fs.Var(&networks, "network", "CAIP-2 id and JSON-RPC URL of a chain to serve, eip155:84532=http://127.0.0.1:8545 (repeatable)")
	keyFile := fs.String("settlement-key-file", "", "file holding the hex private key that pays gas for settlements")
	keyEnv := fs.String("settlement-key-env", "", "environment variable holding that key instead")
	storePath := fs.String("store", "", "payments journal: SQLite file or postgres:// URL; default <data>/facilitator.db")
	dataFlag := fs.String("data", "", "data dir; default $COINOP_DATA or ./.coinop")
	receiptTimeout := fs.Duration("receipt-timeout", 30*time.Second, "how long a settlement waits for its receipt before it is reported pending")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return &exitError{2, fmt.Errorf("unexpected argument %q", pos[0])}
	case len(networks) == 0:
		return &exitError{2, errors.New("no --network: name at least one chain, e.g. --network eip155:84532=http://127.0.0.1:8545")}
	}
	type network struct{ id, rpc string }
	var ns []network
	for _, n := range networks {
		id, rpc, ok := strings.Cut(n, "=")
		if !ok {
			return &exitError{2, fmt.Errorf("--network %q: want CAIP-2-ID=RPC-URL", n)}
		}
		if _, err := x402.ChainID(id); err != nil {
			return &exitError{2, fmt.Errorf("--network %q: %v", n, err)}
		}
		if u, err := url.Parse(rpc); err != nil || u.Host == "" || !strings.Contains(" http https ws wss ", " "+u.Scheme+" ") {
			return &exitError{2, fmt.Errorf("--network %q: %q is not an http(s) or ws(s) URL", n, rpc)}
		}
		ns = append(ns, network{id, rpc})
	}
	if *keyFile == "" && *keyEnv == "" {
		return &exitError{2, errors.New("no settlement key: the facilitator pays gas to settle; set --settlement-key-file or --settlement-key-env")}
	}
	key, err := gateway.SettlementKey(*keyFile, *keyEnv, env.getenv)
	if err != nil {
		return fmt.Errorf("settlement key: %w", err)
	}
	store := *storePath
	if store == "" {
		dir := dataDir(*dataFlag, env)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		store = filepath.Join(dir, "facilitator.db")
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))

	journal, err := gateway.OpenJournal(ctx, store)
	if err != nil {
		return err
	}
	defer journal.Close()
	var chains []*evm.Chain
	reconcilers := map[string]coinop.Reconciler{}
	for _, n := range ns {
		id, _ := x402.ChainID(n.id)
		cl, err := ethclient.DialContext(ctx, n.rpc)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.id, err)
		}
		defer cl.Close()
		ch, err := evm.NewChain(evm.ChainConfig{Network: n.id, ChainID: id, Backend: cl, SettlementKey: key, ReceiptTimeout: *receiptTimeout})
		if err != nil {
			return fmt.Errorf("network %s: %w", n.id, err)
		}
		// The chain id and the key's gas; the assets come with each
		// request, and the simulation judges them.
		pctx, cancel := context.WithTimeout(ctx, gateway.ProbeTimeout)
		for _, f := range ch.Probe(pctx, nil, common.Address{}) {
			switch {
			case f.Fatal():
				cancel()
				return fmt.Errorf("--network %s=%s: %v", n.id, n.rpc, f.Err)
			case f.Err != nil:
				log.Warn(f.Subject+": "+f.Err.Error(), "network", n.id)
			}
		}
		cancel()
		chains = append(chains, ch)
		reconcilers[n.id] = ch
	}
	h, err := facilitator.New(facilitator.Config{Chains: chains, Journal: journal, Logger: log, SettleTimeout: *receiptTimeout + 30*time.Second})
	if err != nil {
		return err
	}

	// Settlements a previous run left unfinished are finished from the
	// chain before new ones are taken.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	rep, err := recovery.Run(rctx, journal, reconcilers, time.Now(), log)
	cancel()
	if err != nil {
		log.Warn("recovery incomplete", "err", err)
	}
	if rep.Checked > 0 {
		log.Info("recovery", "checked", rep.Checked, "settled", rep.Settled, "failed", rep.Failed, "released", rep.Released, "pending", rep.Pending)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	var names []string
	for _, n := range ns {
		names = append(names, n.id+" via "+n.rpc)
	}
	fmt.Fprintf(env.Stdout, "coinop facilitator ready: http://%s\n  networks  %s\n  settles   from %s\n  journal   %s\n",
		ln.Addr(), strings.Join(names, ", "), crypto.PubkeyToAddress(key.PublicKey).Hex(), store)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}
