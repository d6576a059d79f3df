//go:build !unix

package main

import (
	"errors"
	"time"
)

// processCPU is not available here: the CPU columns show "-".
func processCPU() (time.Duration, bool) { return 0, false }

// getsockoptRcvbuf is not available here.
func getsockoptRcvbuf(uintptr) (int, error) {
	return 0, errors.New("SO_RCVBUF cannot be read on this system")
}
