package paywall

import "testing"

// The page reads an asset's symbol and decimals from an offer's price for
// people and its amount in atomic units; where the two do not tell, it
// says so (-1) rather than guess.
func TestPriceUnits(t *testing.T) {
	for _, tc := range []struct {
		name, price, amount string
		symbol              string
		decimals            int
	}{
		{"USDC", "0.001 USDC", "1000", "USDC", 6},
		{"whole units", "1 USDC", "1000000", "USDC", 6},
		{"tens", "10 USDC", "10000000", "USDC", 6},
		{"no decimals", "5 TOK", "5", "TOK", 0},
		{"fraction with digits", "1.5 USDC", "1500000", "USDC", 6},
		{"one decimal", "0.5 TOK", "5", "TOK", 1},
		{"not a power of ten apart", "2 USDC", "3000000", "USDC", -1},
		{"amount smaller than the price", "3 X", "1", "X", -1},
		{"no symbol", "1000", "1000", "", -1},
		{"amount not a number", "0.001 USDC", "abc", "USDC", -1},
		{"zero", "0 USDC", "0", "USDC", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			symbol, decimals := priceUnits(tc.price, tc.amount)
			if symbol != tc.symbol || decimals != tc.decimals {
				t.Errorf("priceUnits(%q, %q) = %q, %d; want %q, %d", tc.price, tc.amount, symbol, decimals, tc.symbol, tc.decimals)
			}
		})
	}
}

// The networks coinop knows (x402's, and the local chains) have a name for
// people; anything else is shown by its CAIP-2 id.
func TestNetworkName(t *testing.T) {
	for _, tc := range []struct{ caip2, want string }{
		{"eip155:8453", "Base"},
		{"eip155:84532", "Base Sepolia"},
		{"eip155:1337", "Local dev chain"},
		{"eip155:31337", "Anvil local chain"},
		{"eip155:424242", "eip155:424242"},
		{"eip155:x", "eip155:x"},
		{"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"},
	} {
		if got := networkName(tc.caip2); got != tc.want {
			t.Errorf("networkName(%q) = %q, want %q", tc.caip2, got, tc.want)
		}
	}
}
