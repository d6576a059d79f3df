package tun

import (
	"os"
	"syscall"
	"unsafe"
)

// gone reports whether errno says the device is no longer there. Linux
// answers EBADFD once a TUN/TAP device is deleted.
func gone(errno syscall.Errno) bool {
	switch errno {
	case syscall.EBADFD, syscall.ENODEV, syscall.ENXIO, syscall.EBADF:
		return true
	}
	return false
}

// probe asks the device behind f whether it is still there, with an ioctl
// that does not go through Go's poller: an errno when it is gone, 0 when
// it answers. A read can report the poller's "not pollable" (epoll said
// EPOLLERR) instead of the errno when the device vanishes under it.
func probe(f *os.File) syscall.Errno {
	rc, err := f.SyscallConn()
	if err != nil {
		return syscall.EBADF
	}
	var errno syscall.Errno
	var ifr [40]byte // struct ifreq
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TUNGETIFF, uintptr(unsafe.Pointer(&ifr[0])))
	}); err != nil {
		return syscall.EBADF
	}
	return errno
}
