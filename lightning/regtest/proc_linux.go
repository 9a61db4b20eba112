package regtest

import "syscall"

// dieWithParent has the kernel kill the child if the test binary dies
// first, so no daemon outlives a crashed test.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
