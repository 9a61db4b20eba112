package contracts_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"

	"github.com/coinop/coinop/contracts"
)

func TestTokenABI(t *testing.T) {
	parsed, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		t.Fatalf("parse ABI: %v", err)
	}
	for _, sig := range []string{
		"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
		"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
		"receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
		"receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
		"cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
		"cancelAuthorization(address,bytes32,bytes)",
		"authorizationState(address,bytes32)",
		"balanceOf(address)",
		"mint(address,uint256)",
		"transfer(address,uint256)",
		"transferFrom(address,address,uint256)",
		"approve(address,uint256)",
		"allowance(address,address)",
		"decimals()",
		"version()",
		"DOMAIN_SEPARATOR()",
	} {
		if !hasMethod(parsed, sig) {
			t.Errorf("ABI lacks %s", sig)
		}
	}
	for _, ev := range []string{
		"Transfer(address,address,uint256)",
		"Approval(address,address,uint256)",
		"AuthorizationUsed(address,bytes32)",
		"AuthorizationCanceled(address,bytes32)",
	} {
		if !hasEvent(parsed, ev) {
			t.Errorf("ABI lacks event %s", ev)
		}
	}
	if n := len(parsed.Constructor.Inputs); n != 3 {
		t.Errorf("constructor takes %d arguments, want 3 (name, symbol, version)", n)
	}
}

func TestTokenBytecode(t *testing.T) {
	code := contracts.TokenBytecode()
	if len(code) < 1000 {
		t.Fatalf("creation code is %d bytes, want a compiled contract", len(code))
	}
	code[0] ^= 0xff
	if again := contracts.TokenBytecode(); bytes.Equal(code, again) {
		t.Error("TokenBytecode returned shared memory")
	}
}

func hasMethod(a abi.ABI, sig string) bool {
	for _, m := range a.Methods {
		if m.Sig == sig {
			return true
		}
	}
	return false
}

func hasEvent(a abi.ABI, sig string) bool {
	for _, e := range a.Events {
		if e.Sig == sig {
			return true
		}
	}
	return false
}
