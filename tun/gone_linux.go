package tun

import "syscall"

// gone reports whether errno says the device is no longer there. Linux
// answers EBADFD once a TUN/TAP device is deleted.
func gone(errno syscall.Errno) bool {
	switch errno {
	case syscall.EBADFD, syscall.ENODEV, syscall.ENXIO, syscall.EBADF:
		return true
	}
	return false
}
