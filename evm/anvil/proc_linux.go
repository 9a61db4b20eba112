package anvil

import (
	"os"
	"syscall"
)

// terminate asks anvil to stop.
var terminate os.Signal = syscall.SIGTERM

// sysProcAttr has the kernel kill anvil when the process that started it
// dies, so a test binary killed on timeout leaves no node behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
