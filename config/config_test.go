package config_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/config"
)

var update = flag.Bool("update", false, "rewrite the expectations in testdata/*.txt")

const separator = "----------"

// readCase splits a golden file into its YAML input and its expectation.
func readCase(t testing.TB, path string) (input, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if rest, ok := strings.CutPrefix(text, separator+"\n"); ok {
		return "", rest
	}
	input, want, ok := strings.Cut(text, "\n"+separator+"\n")
	if !ok {
		t.Fatalf("%s: no %q line", path, separator)
	}
	return input + "\n", want
}

// TestGolden parses each testdata/*.txt input as coinop.yaml and compares
// the canonical form (valid input) or the error text (invalid input) with
// the expectation after the separator.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			input, want := readCase(t, file)
			var got string
			c, err := config.Parse("coinop.yaml", []byte(input))
			if err != nil {
				var e *config.Error
				if !errors.As(err, &e) {
					t.Fatalf("Parse error is %T, want *config.Error: %v", err, err)
				}
				got = err.Error() + "\n"
			} else {
				out, err := c.Canonical()
				if err != nil {
					t.Fatalf("Canonical: %v", err)
				}
				got = string(out)
				checkRoundTrip(t, c)
			}
			if *update {
				if err := os.WriteFile(file, []byte(input+separator+"\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// checkRoundTrip parses c's canonical form and compares the result with c.
func checkRoundTrip(t testing.TB, c *config.Config) {
	t.Helper()
	out, err := c.Canonical()
	if err != nil {
		t.Fatalf("Canonical: %v", err)
	}
	c2, err := config.Parse("canonical.yaml", out)
	if err != nil {
		t.Fatalf("parsing the canonical form: %v\n%s", err, out)
	}
	if !equal(c, c2) {
		t.Errorf("Parse(Canonical()) differs from the original:\n%#v\n%#v", c, c2)
	}
	out2, err := c2.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("canonical form is not stable:\n%s\nthen:\n%s", out, out2)
	}
}

// equal compares the exported fields of two configurations deeply, which
// includes each route's resolved values and each network's chain id. Where
// a configuration was read from is not part of it.
func equal(a, b *config.Config) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		if va.Type().Field(i).IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return reflect.DeepEqual(a.UpstreamURL(), b.UpstreamURL())
}

func TestResolved(t *testing.T) {
	input, _ := readCase(t, "testdata/full.txt")
	c, err := config.Parse("coinop.yaml", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Networks[1].ChainID(); got != 8453 {
		t.Errorf("ChainID = %d, want 8453", got)
	}
	for _, tt := range []struct {
		route                      int
		method, price, atomic      string
		network, asset, payTo, url string
	}{
		{0, "GET", "0.001 USDC", "1000", "eip155:84532", "USDC", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "http://127.0.0.1:8080"},
		{1, "POST", "0.25 EURC", "250000", "eip155:8453", "EURC", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "http://127.0.0.1:9090/v2"},
		{2, "", "2 USDC", "2000000", "eip155:8453", "USDC", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "http://127.0.0.1:8080"},
	} {
		r := c.Routes[tt.route].Resolved
		if len(r.Accept) != 1 {
			t.Errorf("routes[%d] accepts %d rails, want 1", tt.route, len(r.Accept))
			continue
		}
		a := r.Accept[0]
		x := a.Rail.Settings.(*config.X402Rail).Resolved
		if r.Method != tt.method || a.Price.String() != tt.price || a.Price.Amount.String() != tt.atomic ||
			x.Network.ID != tt.network || x.Asset.Symbol != tt.asset || x.PayTo != tt.payTo || r.Upstream.String() != tt.url {
			t.Errorf("routes[%d].Resolved = %q %v (%v) %q %q %q %v", tt.route, r.Method, a.Price, a.Price.Amount,
				x.Network.ID, x.Asset.Symbol, x.PayTo, r.Upstream)
		}
		if want := config.LegacyX402Name(x.Network.ID, x.Asset.Address, x.PayTo, c.Routes[tt.route].Resolved.Accept[0].Rail.Settings.(*config.X402Rail).MaxTimeout); a.Rail.Name != want {
			t.Errorf("routes[%d] rail %q, want %q", tt.route, a.Rail.Name, want)
		}
	}
	free := c.Routes[3]
	if !free.Free || free.Resolved.Accept != nil || free.Resolved.Upstream == nil {
		t.Errorf("free route resolved to %+v", free.Resolved)
	}
}

// A Config built in code validates without file names or line numbers and
// writes the same canonical form as the file it mirrors.
func TestBuiltInCode(t *testing.T) {
	c := &config.Config{
		Listen:    config.DefaultListen,
		Upstream:  "http://127.0.0.1:8080",
		Store:     "./.coinop/coinop.db",
		DataDir:   config.DefaultDataDir,
		Unmatched: config.DefaultUnmatched,
		PayTo:     "0x209693bc6afc0c5328ba36faf03c514ef312287c",
		Networks: []*config.Network{{
			ID:               "eip155:84532",
			RPC:              "http://127.0.0.1:8545",
			SettlementKeyEnv: "COINOP_SETTLEMENT_KEY",
			ReceiptTimeout:   config.DefaultReceiptTimeout,
			Assets: []*config.Asset{{
				Symbol: "USDC", Address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", Decimals: 6,
				EIP712Name: "USDC", EIP712Version: "2",
			}},
		}},
		Routes: []*config.Route{
			{Match: "GET /{item}", Price: "1000", MaxTimeout: time.Minute},
			{Match: "/health", Free: true},
		},
	}
	err := c.Validate()
	want := `routes[1].match: "/health" conflicts with routes[0] ("GET /{item}"): /health matches more methods than GET /{item}, but has a more specific path pattern`
	if err == nil || err.Error() != want {
		t.Fatalf("Validate:\n got %v\nwant %s", err, want)
	}
	var e *config.Error
	if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].File != "" || e.Problems[0].Line != 0 || e.Problems[0].Path != "routes[1].match" {
		t.Errorf("problems = %+v", e)
	}
	if c.Routes[0].Resolved.Accept != nil {
		t.Error("Resolved set by a failed Validate")
	}

	c.Routes[1].Match = "GET /health"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Routes[0].Resolved.Accept[0].Price.String(); got != "0.001 USDC" {
		t.Errorf("price = %s", got)
	}
	out, err := c.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Parse("coinop.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out2, _ := c2.Canonical()
	if !bytes.Equal(out, out2) {
		t.Errorf("canonical form changed on parsing:\n%s\n%s", out, out2)
	}
	if c.Routes[0].Price != "1000" || c.Routes[0].Network != "" {
		t.Error("Canonical modified the configuration")
	}
}

func TestDefaultsOnlyForAbsentKeys(t *testing.T) {
	const base = `
upstream: http://127.0.0.1:8080
pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:8545
    settlement_key_env: KEY
    assets:
      - symbol: GOLD
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: Gold
        eip712_version: "1"
        decimals: %s
routes:
  - match: /
    price: "%s"
`
	for _, tt := range []struct{ decimals, price, want string }{
		{"", "1.5 GOLD", "1500000"}, // null: the default, 6
		{"0", "15", "15"},
		{"2", "1.5 GOLD", "150"},
	} {
		c, err := config.Parse("coinop.yaml", []byte(fmt.Sprintf(base, tt.decimals, tt.price)))
		if err != nil {
			t.Errorf("decimals %q: %v", tt.decimals, err)
			continue
		}
		if got := c.Routes[0].Resolved.Accept[0].Price.Amount.String(); got != tt.want {
			t.Errorf("decimals %q: price %s = %s atomic units, want %s", tt.decimals, tt.price, got, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	input, _ := readCase(t, "testdata/minimal.txt")
	path := filepath.Join(t.TempDir(), "coinop.yaml")
	if err := os.WriteFile(path, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("listen: nowhere\n"+input[strings.Index(input, "upstream"):]), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":1: listen: ") {
		t.Errorf("Load: %v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// addGoldenSeeds seeds f with every golden input.
func addGoldenSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		input, _ := readCase(f, file)
		f.Add([]byte(input))
	}
}

func FuzzParse(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			var e *config.Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("Parse error %T with no problems: %v", err, err)
			}
			return
		}
		checkRoundTrip(t, c)
	})
}

func ExampleParse() {
	c, err := config.Parse("coinop.yaml", []byte(`
upstream: http://127.0.0.1:8080
pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:8545
    settlement_key_env: COINOP_SETTLEMENT_KEY
    assets:
      - symbol: USDC
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: USDC
        eip712_version: "2"
routes:
  - match: GET /weather
    price: 0.001 USDC
  - match: GET /health
    free: true
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range c.Routes {
		res := r.Resolved
		if r.Free {
			fmt.Printf("%s: free, proxied to %s\n", r.Match, res.Upstream)
			continue
		}
		for _, a := range res.Accept {
			x := a.Rail.Settings.(*config.X402Rail)
			fmt.Printf("%s: %s = %s atomic units on chain %d, to %s, valid for %s\n",
				r.Match, a.Price, a.Price.Amount, x.Resolved.Network.ChainID(), x.Resolved.PayTo, x.MaxTimeout)
		}
	}
	// Output:
	// GET /weather: 0.001 USDC = 1000 atomic units on chain 84532, to 0x209693Bc6afc0C5328bA36FaF03C514EF312287C, valid for 1m0s
	// GET /health: free, proxied to http://127.0.0.1:8080
}

func ExampleError() {
	_, err := config.Parse("coinop.yaml", []byte(`
upstream: http://127.0.0.1:8080
pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:8545
    settlement_key_env: COINOP_SETTLEMENT_KEY
    assets:
      - symbol: USDC
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: USDC
        eip712_version: "2"
routes:
  - match: GET /weather
    pryce: 0.001 USDC
`))
	fmt.Println(err)
	var e *config.Error
	if errors.As(err, &e) {
		fmt.Printf("%d problems; the first is at line %d\n", len(e.Problems), e.Problems[0].Line)
	}
	// Output:
	// coinop.yaml:14: routes[0]: no price: set price, or free: true
	// coinop.yaml:15: routes[0]: unknown field "pryce"; did you mean "price"?
	// 2 problems; the first is at line 14
}

// Rails built in code must carry their module's settings: a rail without
// them, or with another module's, is a problem, not a gateway that fails
// at its first request.
func TestRailSettingsBuiltInCode(t *testing.T) {
	input, _ := readCase(t, "testdata/rails.txt")
	for _, tt := range []struct {
		name     string
		settings config.RailSettings
		want     string
	}{
		{"none", nil, "rails[0]: settings are <nil>, want *config.X402Rail for kind x402"},
		{"x402", &config.X402Rail{Network: "eip155:84532", MaxTimeout: time.Minute}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("coinop.yaml", []byte(input))
			if err != nil {
				t.Fatal(err)
			}
			c.Rails[0].Settings = tt.settings
			err = c.Validate()
			if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9402": true, "[::1]:9402": true, "localhost:9402": true, "127.8.9.1:1": true,
		":9402": false, "0.0.0.0:9402": false, "[::]:9402": false, "10.0.0.5:9402": false,
		"example.com:9402": false, "garbage": false,
	} {
		if got := config.LoopbackListen(addr); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A file for a Go program that serves its own handlers (ParseEmbedded)
// needs no upstream, even for unmatched: free; coinop serve's Parse refuses
// the same file.
func TestEmbedded(t *testing.T) {
	file := []byte(`pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
unmatched: free
networks:
  - id: eip155:84532
    rpc: http://127.0.0.1:8545
    settlement_key_env: KEY
    assets:
      - symbol: USDC
        address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        eip712_name: USDC
        eip712_version: "2"
routes:
  - match: GET /weather
    price: 0.001 USDC
  - match: GET /other
    price: 0.001 USDC
    upstream: http://127.0.0.1:9090
`)
	c, err := config.ParseEmbedded("coinop.yaml", file)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded || c.Routes[0].Resolved.Upstream != nil || c.Routes[1].Resolved.Upstream.String() != "http://127.0.0.1:9090" || c.UpstreamURL() != nil {
		t.Fatalf("resolved %+v %+v", c.Routes[0].Resolved, c.Routes[1].Resolved)
	}
	_, err = config.Parse("coinop.yaml", file)
	for _, want := range []string{`coinop.yaml:2: unmatched: "free" proxies unmatched requests to the top-level upstream, which is not set`, "routes[0].upstream: none"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse: %v, want %q", err, want)
		}
	}
}
