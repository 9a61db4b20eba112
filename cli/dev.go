package cli

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/config"
	"github.com/coinop/coinop/demo"
	"github.com/coinop/coinop/evm/devchain"
)

// devState is written to <data>/dev/chain.json so other commands (balance)
// can find the running dev chain.
type devState struct {
	RPC     string `json:"rpc"`
	Network string `json:"network"`
	Token   string `json:"token"`
	Payer   string `json:"payer"`
	Payee   string `json:"payee"`
	Settler string `json:"settler"`
	Gateway string `json:"gateway"`
}

var devConfig = template.Must(template.New("dev").Parse(`# coinop dev: generated for this run. The chain lives in memory; this file
# shows what a production config for the same setup looks like.
listen: "{{.Listen}}"
upstream: "{{.Upstream}}"
store: "{{.Store}}"
data_dir: "{{.Data}}"
unmatched: deny
pay_to: "{{.PayTo}}"
networks:
  - id: "{{.Network}}"
    rpc: "{{.RPC}}"
    settlement_key_file: "{{.SettlerKey}}"
    batch_settler: "{{.BatchSettler}}"
    receipt_timeout: 30s
    assets:
      - symbol: USDC
        address: "{{.Token}}"
        decimals: 6
        eip712_name: "{{.TokenName}}"
        eip712_version: "{{.TokenVersion}}"
        async_exposure: "0.05 USDC"
rails:                            # ways to pay; one 402 offers them all
  - name: usdc                    # x402 (PAYMENT-REQUIRED / PAYMENT-SIGNATURE); journaled with every payment through it
    kind: x402
  - name: usdc-mpp                # the IETF Payment scheme (WWW-Authenticate: Payment)
    kind: mpp
    method: evm
  - name: credits                 # prepaid credits: plans bought on usdc
    kind: credits
    low_balance: 100
    plans:
      - name: pack                # 1000 credits for 0.05 USDC: one transfer for 1000 calls
        credits: 1000
        accept: [{rail: usdc, price: "0.05 USDC"}]
      - name: hour                # unlimited requests for an hour (coinop curl --plan hour --max-amount 0.1)
        pass: 1h
        accept: [{rail: usdc, price: "0.1 USDC"}]
  - name: sats
    kind: l402
    dev: true                     # an in-process Lightning node: real BOLT11 invoices, paid by coinop curl
  - name: sats-mpp                # the Payment scheme's lightning method, on the same development node
    kind: mpp
    method: lightning
    dev: true
routes:
  - match: "GET /{$}"
    free: true
  - match: "GET /quote"
    accept:                       # 1 credit (0.00005 USDC) from a plan, or pay per request
      - rail: credits
        price: 1 credit
      - rail: usdc
        price: "0.001 USDC"
      - rail: usdc-mpp
        price: "0.001 USDC"
    description: "A quote of the day"
    mime_type: application/json
  - match: "GET /weather"
    accept:
      - rail: usdc
        price: "0.001 USDC"
      - rail: usdc-mpp
        price: "0.001 USDC"
    description: "Current weather"
    mime_type: application/json
  - match: "GET /report"
    accept:
      - rail: usdc
        price: "0.01 USDC"
      - rail: usdc-mpp
        price: "0.01 USDC"
    description: "A longer report"
    mime_type: application/json
    settlement: async             # served once verified; settled in the background
  - match: "GET /forecast"
    description: "A week's forecast"
    mime_type: application/json
    accept:                       # one 402, three dialects: x402 (USDC), L402 (Lightning), the Payment scheme (USDC and Lightning)
      - rail: usdc
        price: "0.002 USDC"
      - rail: sats
        price: "20 sat"
      - rail: usdc-mpp
        price: "0.002 USDC"
      - rail: sats-mpp
        price: "20 sat"
admin:
  listen: "{{.AdminListen}}"      # metrics, the payments API and the dashboard; loopback needs no token
`))

func runDev(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("dev", env)
	listen := fs.String("listen", "127.0.0.1:8402", "gateway address")
	rpcListen := fs.String("rpc-listen", "127.0.0.1:8545", "embedded chain's JSON-RPC address (loopback only)")
	dataFlag := fs.String("data", "", "data dir; default $COINOP_DATA or ./.coinop")
	chainID := fs.Uint64("chain-id", devchain.DefaultChainID, "embedded chain's id")
	adminFlag := fs.String("admin-listen", "", "admin listener (dashboard, metrics, payments API); default: loopback, the gateway's port + 1000, or a free port when the gateway's is")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	// Absolute: the config written below is read by other commands from
	// other directories, and its relative paths would be relative to it.
	data, err := filepath.Abs(dataDir(*dataFlag, env))
	if err != nil {
		return err
	}
	dir := filepath.Join(data, "dev")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// It holds keys: the owner's alone, even if it existed before.
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	payer, err := devPayerKey(filepath.Join(dir, "payer.key"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))

	chain, err := devchain.Start(ctx, devchain.Config{Listen: *rpcListen, ChainID: *chainID, Payer: payer})
	if err != nil {
		return fmt.Errorf("embedded chain: %w", err)
	}
	defer chain.Close()
	settlerKey := filepath.Join(dir, "settler.key")
	if err := writeKey(settlerKey, chain.Settler); err != nil {
		return err
	}

	upstreamLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upstream := &http.Server{Handler: demo.Handler(time.Now), ReadHeaderTimeout: 10 * time.Second}
	go upstream.Serve(upstreamLn)
	defer upstream.Close()

	// The chain is new on every run, so last run's journal describes a chain
	// that no longer exists.
	store := filepath.Join(dir, "coinop.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(store + suffix)
	}
	gatewayLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	gatewayURL := "http://" + gatewayLn.Addr().String()
	adminListen, err := devAdminListen(*adminFlag, *listen, gatewayLn.Addr())
	if err != nil {
		gatewayLn.Close()
		return err
	}
	cfgPath := filepath.Join(dir, "coinop.yaml")
	var text strings.Builder
	err = devConfig.Execute(&text, map[string]any{
		"Listen": gatewayLn.Addr().String(), "Upstream": "http://" + upstreamLn.Addr().String(),
		"Store": store, "Data": data, "PayTo": addr(chain.Payee), "Network": fmt.Sprintf("eip155:%d", chain.ChainID),
		"RPC": chain.RPCURL, "SettlerKey": settlerKey, "Token": chain.Token.Hex(), "BatchSettler": chain.BatchSettler.Hex(),
		"TokenName": devchain.TokenName, "TokenVersion": devchain.TokenVersion,
		"AdminListen": adminListen,
	})
	if err != nil {
		return err
	}
	if err := writePrivate(cfgPath, []byte(text.String())); err != nil {
		return err
	}
	cfg, err := config.Parse(cfgPath, []byte(text.String()))
	if err != nil {
		return err
	}
	state := devState{
		RPC: chain.RPCURL, Network: fmt.Sprintf("eip155:%d", chain.ChainID), Token: chain.Token.Hex(),
		Payer: addr(chain.Payer), Payee: addr(chain.Payee), Settler: addr(chain.Settler), Gateway: gatewayURL,
	}
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := writePrivate(filepath.Join(dir, "chain.json"), b); err != nil {
		return err
	}

	return serveGateway(ctx, cfg, log, env, gatewayLn, nil, func(url string) {
		fmt.Fprintf(env.Stdout, `coinop dev ready: gateway %s
  chain    %s (%s, JSON-RPC %s)
  token    USDC %s
  payer    %s (key in %s, 1000 USDC)
  payee    %s
  config   %s
  admin    http://%s/ (dashboard; /metrics, /payments, /revenue)

Try it:
  curl -i %s/weather                                        # 402: what to pay
  go run ./cmd/coinop curl -i %s/weather                    # pays 0.001 USDC
  curl -H "PAYMENT-SIGNATURE: $(go run ./cmd/coinop sign %s/weather)" %s/weather
  go run ./cmd/coinop curl --prefer l402 -i %s/forecast     # pays 20 sat over Lightning (L402)
  go run ./cmd/coinop curl --prefer mpp -H 'Accept-Payment: lightning/charge' -i %s/forecast   # 20 sat, the Payment scheme
  go run ./cmd/coinop balance                               # payer and payee balances
  go run ./cmd/coinop curl -i %s/quote                      # buys the credits pack once, then spends 1 credit a call
  go run ./cmd/coinop credits                               # the credits you hold, per gateway
`, url, state.Network, "in memory", chain.RPCURL, state.Token, state.Payer, filepath.Join(dir, "payer.key"), state.Payee, cfgPath, adminListen, url, url, url, url, url, url, url)
	})
}

// devAdminListen is the dev admin listener's address: flag when set, else
// on loopback at the gateway's port + 1000 (8402: 9402), or at a port that
// was free a moment ago when the gateway's was chosen by the system (":0",
// as tests run it), so that several dev gateways can run at once.
func devAdminListen(flag, listen string, gateway net.Addr) (string, error) {
	if flag != "" {
		return flag, nil
	}
	port := gateway.(*net.TCPAddr).Port + 1000
	if _, p, _ := net.SplitHostPort(listen); p != "0" && port <= 65535 {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("admin listen: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// devPayerKey keeps the payer's key across runs, so the wallet a user
// knows stays the same; a new key is created on first use.
func devPayerKey(path string) (*ecdsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"))
		if err != nil {
			return nil, fmt.Errorf("%s: not a hex private key", path)
		}
		// The wallet commands refuse a key others may read; this one is
		// ours to fix.
		return k, os.Chmod(path, 0o600)
	}
	k, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	return k, writeKey(path, k)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	return writePrivate(path, []byte("0x"+hex.EncodeToString(crypto.FromECDSA(k))+"\n"))
}

// writePrivate writes a file only its owner may read or write (0600),
// whatever the umask and whatever the mode of a file it replaces: dev
// writes keys, and a config and chain state that name them.
func writePrivate(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

func addr(k *ecdsa.PrivateKey) string { return crypto.PubkeyToAddress(k.PublicKey).Hex() }
