package coinop

import (
	"fmt"
	"math/big"
	"strings"
)

// Price is an amount of one asset, held in atomic units (the token's
// smallest unit: 1 USDC = 1,000,000 atomic units at 6 decimals).
type Price struct {
	// Amount is the number of atomic units; never negative.
	Amount *big.Int
	// Symbol names the asset for people, e.g. "USDC". It carries no weight
	// in verification: rails match assets by address.
	Symbol string
	// Decimals is how many decimal places separate atomic units from whole
	// units (6 for USDC).
	Decimals int
}

// ParsePrice reads a price written for people or for machines:
//
//	"0.001 USDC"  -> 1000 atomic units at 6 decimals
//	"1000"        -> 1000 atomic units
//
// The symbol, when present, must equal symbol (case-insensitive); a human
// amount with more decimal places than decimals is an error, never rounded.
func ParsePrice(s, symbol string, decimals int) (Price, error) {
	fields := strings.Fields(s)
	switch len(fields) {
	case 1:
		v, ok := new(big.Int).SetString(fields[0], 10)
		if !ok || strings.ContainsAny(fields[0], "+-") {
			return Price{}, fmt.Errorf("price %q: want atomic units (digits only) or an amount and a symbol such as \"0.001 %s\"", s, symbol)
		}
		return Price{Amount: v, Symbol: symbol, Decimals: decimals}, nil
	case 2:
		if !strings.EqualFold(fields[1], symbol) {
			return Price{}, fmt.Errorf("price %q: asset is %s, not %s", s, symbol, fields[1])
		}
		v, err := ParseUnits(fields[0], decimals)
		if err != nil {
			return Price{}, fmt.Errorf("price %q: %w", s, err)
		}
		return Price{Amount: v, Symbol: symbol, Decimals: decimals}, nil
	default:
		return Price{}, fmt.Errorf("price %q: want \"<amount> %s\" or atomic units", s, symbol)
	}
}

// ParseUnits converts a decimal string such as "0.001" into atomic units at
// the given number of decimals. It rejects signs, exponents and precision
// finer than one atomic unit.
func ParseUnits(s string, decimals int) (*big.Int, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || !digits(whole) || !digits(frac) {
		return nil, fmt.Errorf("%q is not a decimal amount", s)
	}
	if len(frac) > decimals {
		return nil, fmt.Errorf("%q has more than %d decimal places", s, decimals)
	}
	v, _ := new(big.Int).SetString(whole+frac+strings.Repeat("0", decimals-len(frac)), 10)
	if v == nil {
		v = new(big.Int)
	}
	return v, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatUnits writes atomic units as a decimal string with trailing zeros
// removed: FormatUnits(1000, 6) == "0.001".
func FormatUnits(v *big.Int, decimals int) string {
	if v == nil {
		return "0"
	}
	s := v.String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	whole, frac := s[:len(s)-decimals], strings.TrimRight(s[len(s)-decimals:], "0")
	if neg {
		whole = "-" + whole
	}
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

// String writes the price for people: "0.001 USDC".
func (p Price) String() string {
	if p.Symbol == "" {
		return FormatUnits(p.Amount, p.Decimals)
	}
	return FormatUnits(p.Amount, p.Decimals) + " " + p.Symbol
}
