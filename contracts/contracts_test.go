package contracts_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/core/vm"

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

func TestBatchSettlerABI(t *testing.T) {
	parsed, err := abi.JSON(strings.NewReader(contracts.BatchSettlerABI))
	if err != nil {
		t.Fatalf("parse ABI: %v", err)
	}
	const settle = "settle(address,(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)[])"
	if !hasMethod(parsed, settle) {
		t.Errorf("ABI lacks %s", settle)
	}
	if m := parsed.Methods["settle"]; len(m.Outputs) != 1 || m.Outputs[0].Type.String() != "bool[]" {
		t.Errorf("settle returns %v, want (bool[])", m.Outputs)
	}
	// The item's fields, in order, are transferWithAuthorization's arguments.
	token, err := abi.JSON(strings.NewReader(contracts.TokenABI))
	if err != nil {
		t.Fatal(err)
	}
	item := parsed.Methods["settle"].Inputs[1].Type.Elem
	var twa abi.Method
	for _, m := range token.Methods {
		if m.Sig == "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)" {
			twa = m
		}
	}
	if len(item.TupleRawNames) != len(twa.Inputs) {
		t.Fatalf("item has %d fields, transferWithAuthorization %d arguments", len(item.TupleRawNames), len(twa.Inputs))
	}
	for i, in := range twa.Inputs {
		if item.TupleRawNames[i] != in.Name || item.TupleElems[i].String() != in.Type.String() {
			t.Errorf("item field %d is %s %s, argument is %s %s", i, item.TupleElems[i], item.TupleRawNames[i], in.Type, in.Name)
		}
	}
	for _, ev := range []string{
		"ItemSettled(uint256,address,bytes32)",
		"ItemFailed(uint256,address,bytes32,bytes)",
	} {
		if !hasEvent(parsed, ev) {
			t.Errorf("ABI lacks event %s", ev)
		}
	}
	if _, ok := parsed.Errors["OutOfGas"]; !ok {
		t.Error("ABI lacks error OutOfGas")
	}
	// Stateless: settle is the only function, and nothing is payable.
	if len(parsed.Methods) != 1 || parsed.Constructor.Inputs != nil || parsed.HasReceive() || parsed.HasFallback() {
		t.Errorf("the settler exposes more than settle: %v", parsed.Methods)
	}
	if parsed.Methods["settle"].IsPayable() {
		t.Error("settle is payable")
	}
}

func TestBatchSettlerBytecode(t *testing.T) {
	code := contracts.BatchSettlerBytecode()
	if len(code) < 500 {
		t.Fatalf("creation code is %d bytes, want a compiled contract", len(code))
	}
	// Stateless and unable to hold or move value itself: no storage
	// writes, no code of other contracts run in its context, no ether out.
	forbidden := map[vm.OpCode]bool{vm.SSTORE: true, vm.TSTORE: true, vm.DELEGATECALL: true, vm.CALLCODE: true,
		vm.SELFDESTRUCT: true, vm.CREATE: true, vm.CREATE2: true}
	for pc := 0; pc < len(code); pc++ {
		op := vm.OpCode(code[pc])
		if forbidden[op] {
			t.Errorf("creation code has %s at %d", op, pc)
		}
		if op >= vm.PUSH1 && op <= vm.PUSH32 {
			pc += int(op - vm.PUSH0)
		}
	}
	code[0] ^= 0xff
	if again := contracts.BatchSettlerBytecode(); bytes.Equal(code, again) {
		t.Error("BatchSettlerBytecode returned shared memory")
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
