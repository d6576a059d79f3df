//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has used, user and system,
// every thread included (getrusage RUSAGE_SELF). Work the kernel does in
// softirq context, such as loopback delivery when ksoftirqd runs it, may
// be charged to another process or to none.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// getsockoptRcvbuf returns a kernel socket's SO_RCVBUF.
func getsockoptRcvbuf(fd uintptr) (int, error) {
	return syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
}
