//go:build !linux

package regtest

import "syscall"

func dieWithParent(*syscall.SysProcAttr) {}
