//go:build !linux

package tun

import (
	"os"
	"syscall"
)

// gone reports whether errno says the device is no longer there. Open
// fails on other systems, so there is never a device to lose.
func gone(errno syscall.Errno) bool { return errno == syscall.EBADF }

// probe has no device to ask on other systems.
func probe(*os.File) syscall.Errno { return 0 }
