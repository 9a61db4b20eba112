package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/coinop/coinop"
)

// crashHook parses COINOP_CRASH_AT="<step>:<n>" and returns a paywall step
// hook that kills this process with SIGKILL at the n-th time a payment
// reaches that step ("reserved", "tx_recorded", "tx_sent", "settled",
// "served"). It exists for crash-recovery tests: a kill leaves the journal
// exactly as a power cut would. An empty spec returns nil.
func crashHook(spec string) (func(string, *coinop.Payment), error) {
	if spec == "" {
		return nil, nil
	}
	step, nth, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if !ok || err != nil || n < 1 {
		return nil, fmt.Errorf("COINOP_CRASH_AT=%q: want <step>:<n>", spec)
	}
	var count atomic.Int64
	return func(s string, _ *coinop.Payment) {
		if s == step && count.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
	}, nil
}
