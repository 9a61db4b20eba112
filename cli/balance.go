package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/evm"
)

func runBalance(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("balance", env)
	rpcURL := fs.String("rpc", "", "chain JSON-RPC URL (default: the running dev chain)")
	token := fs.String("token", "", "token address (default: the dev chain's USDC)")
	decimals := fs.Int("decimals", 6, "token decimals")
	symbol := fs.String("symbol", "USDC", "token symbol for display")
	wallet := fs.String("wallet", "", "show the balance of this key file's address")
	dataFlag := fs.String("data", "", "data dir; default $COINOP_DATA or ./.coinop")
	var ln payFlags
	fs.StringVar(&ln.lnd, "lnd", "", "also show this lnd's Lightning balance (REST URL); default: the running coinop dev node's, if any")
	fs.StringVar(&ln.lndMacaroon, "lnd-macaroon", "", "a macaroon of that lnd that may read its balance")
	fs.StringVar(&ln.lndTLSCert, "lnd-tlscert", "", "that lnd's tls.cert")
	addrs, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	ln.silent = true
	if err := lightningBalance(ctx, &ln, dataDir(*dataFlag, env), env); err != nil {
		return err
	}
	if ln.lnd != "" && len(addrs) == 0 && *wallet == "" {
		return nil // only the Lightning balance was asked for
	}
	type row struct{ label, addr string }
	var rows []row
	for _, a := range addrs {
		rows = append(rows, row{"", a})
	}
	data := dataDir(*dataFlag, env)
	if *wallet != "" || env.getenv("COINOP_WALLET_KEY") != "" {
		k, source, err := loadWallet(*wallet, data, env)
		if err != nil {
			return err
		}
		rows = append(rows, row{source, k.Address().Hex()})
	}
	if *rpcURL == "" || *token == "" || len(rows) == 0 {
		b, err := os.ReadFile(filepath.Join(data, "dev", "chain.json"))
		if err != nil {
			return errors.New("no chain given: pass --rpc and --token, or run `coinop dev` first")
		}
		var st devState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("dev state: %w", err)
		}
		if *rpcURL == "" {
			*rpcURL = st.RPC
		}
		if *token == "" {
			*token = st.Token
		}
		if len(rows) == 0 {
			rows = []row{{"dev payer", st.Payer}, {"dev payee", st.Payee}}
		}
	}
	if !common.IsHexAddress(*token) {
		return &exitError{2, fmt.Errorf("--token %q is not an address", *token)}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := ethclient.DialContext(ctx, *rpcURL)
	if err != nil {
		return err
	}
	defer cl.Close()
	id, err := cl.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("chain %s: %w", *rpcURL, err)
	}
	chain, err := evm.NewChain(evm.ChainConfig{ChainID: id.Uint64(), Backend: cl})
	if err != nil {
		return err
	}
	for _, r := range rows {
		if !common.IsHexAddress(r.addr) {
			return &exitError{2, fmt.Errorf("%q is not an address", r.addr)}
		}
		bal, err := chain.BalanceOf(ctx, common.HexToAddress(*token), common.HexToAddress(r.addr))
		if err != nil {
			return fmt.Errorf("balanceOf %s: %w", r.addr, err)
		}
		line := fmt.Sprintf("%s  %s %s  (%s atomic)", common.HexToAddress(r.addr).Hex(), coinop.FormatUnits(bal, *decimals), *symbol, bal)
		if r.label != "" {
			line += "  " + r.label
		}
		fmt.Fprintln(env.Stdout, line)
	}
	return nil
}

// lightningBalance writes the channel balance of --lnd, or of the
// development node of a running `coinop dev` when there is one.
func lightningBalance(ctx context.Context, ln *payFlags, data string, env Env) error {
	if ln.lnd == "" {
		if _, err := devLightningNode(data); err != nil {
			return nil // no node to show
		}
	}
	payer, err := ln.lightningPayer(data, env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := payer.Balance(ctx)
	if err != nil {
		if ln.lnd == "" {
			fmt.Fprintf(env.Stderr, "coinop balance: the dev Lightning node does not answer (is coinop dev running?): %v\n", err)
			return nil
		}
		return fmt.Errorf("lightning balance: %w", err)
	}
	label := ln.lnd
	if label == "" {
		label = "dev Lightning node"
	}
	fmt.Fprintf(env.Stdout, "lightning  %s sat spendable, %s sat receivable  (%s)\n",
		coinop.FormatUnits(big.NewInt(b.LocalMsat), 3), coinop.FormatUnits(big.NewInt(b.RemoteMsat), 3), label)
	return nil
}
