//go:build !linux

package anvil

import (
	"os"
	"syscall"
)

var terminate os.Signal = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
