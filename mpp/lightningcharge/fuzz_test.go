package lightningcharge_test

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/coinop/coinop/lightning"
	"github.com/coinop/coinop/mpp/lightningcharge"
)

// FuzzDecodePayload: a payload DecodePayload accepts is one JSON object
// whose preimage member is exactly the 64 lower-case hex digits of the
// preimage returned (so one preimage has one accepted spelling of its
// digits), and encoding that preimage gives a payload that decodes to it
// again.
func FuzzDecodePayload(f *testing.F) {
	var p lightning.Preimage
	p[31] = 0xab
	f.Add([]byte(lightningcharge.EncodePayload(p)))
	f.Add([]byte(`{"preimage":"` + hex.EncodeToString(make([]byte, 32)) + `"}`))
	f.Add([]byte(`{"preimage":"AB"}`))
	f.Add([]byte(`{"preimage":null}`))
	f.Add([]byte(`{"preimage":"00","preimage":"11"}`))
	f.Add([]byte(`{"preimage":"` + hex.EncodeToString(make([]byte, 32)) + `"} {}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		pre, err := lightningcharge.DecodePayload(payload)
		if err != nil {
			return
		}
		var pl lightningcharge.Payload
		if err := json.Unmarshal(payload, &pl); err != nil || pl.Preimage != pre.String() {
			t.Fatalf("payload %q accepted as preimage %s (its member: %q, %v)", payload, pre, pl.Preimage, err)
		}
		back, err := lightningcharge.DecodePayload(lightningcharge.EncodePayload(pre))
		if err != nil || back != pre {
			t.Fatalf("preimage %s: re-encoded payload decodes to %s, %v", pre, back, err)
		}
	})
}
