//go:build !linux

package bench

import "syscall"

// childAttr: elsewhere than Linux, a spawned provider keeps the bench's
// process group and has no parent-death signal.
func childAttr() *syscall.SysProcAttr { return nil }
