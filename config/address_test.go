package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/config"
)

// withPayTo is a valid configuration paying to addr.
func withPayTo(addr string) *config.Config {
	return &config.Config{
		Listen: config.DefaultListen, Upstream: "http://127.0.0.1:8080", Store: "coinop.db",
		DataDir: config.DefaultDataDir, Unmatched: config.UnmatchedDeny, PayTo: addr,
		Networks: []*config.Network{{
			ID: "eip155:84532", RPC: "http://127.0.0.1:8545", SettlementKeyEnv: "KEY",
			ReceiptTimeout: time.Second,
			Assets: []*config.Asset{{
				Symbol: "USDC", Address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", Decimals: 6,
				EIP712Name: "USDC", EIP712Version: "2",
			}},
		}},
		Routes: []*config.Route{{Match: "/", Price: "1", MaxTimeout: time.Minute}},
	}
}

// The test vectors of EIP-55: accepted as written, and produced from lower case.
func TestChecksum(t *testing.T) {
	for _, want := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
		"0x52908400098527886E0F7030069857D2E4169EE7",
		"0x8617E340B3D01FA5F11F306F4090FD50E238070D",
		"0xde709f2102306220921060314715629080e2fb77",
		"0x27b1fdb04752bbc536007a920d24acb045561c26",
	} {
		for _, in := range []string{want, strings.ToLower(want)} {
			c := withPayTo(in)
			if err := c.Validate(); err != nil {
				t.Errorf("pay_to %s: %v", in, err)
				continue
			}
			if got := c.Routes[0].Resolved.Accept[0].Rail.Settings.(*config.X402Rail).Resolved.PayTo; got != want {
				t.Errorf("pay_to %s resolved to %s, want %s", in, got, want)
			}
		}
	}
}

func TestBadAddress(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed", `pay_to: "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed" fails its EIP-55 checksum (mistyped?); if the address is right, its checksummed form is "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"`},
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", `pay_to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe" is not an address: want 0x followed by 40 hex digits`},
		{"5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00", `pay_to: "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00" is not an address: want 0x followed by 40 hex digits`},
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", `pay_to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg" is not an address: want 0x followed by 40 hex digits`},
		{"0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", `pay_to: "0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED" is not an address: want 0x followed by 40 hex digits`},
		{"0x0000000000000000000000000000000000000000", `pay_to: "0x0000000000000000000000000000000000000000" is the zero address`},
	} {
		err := withPayTo(tt.addr).Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("pay_to %s:\n got %v\nwant %s", tt.addr, err, tt.want)
		}
	}
}
