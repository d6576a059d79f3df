//go:build linux && !386

package dgram

import (
	"net/netip"
	"syscall"
	"unsafe"
)

// WaitReadable blocks until a read would not block (a datagram is queued or
// the socket has a pending error, POLLIN or POLLERR) or the conn is closed
// (an error matching net.ErrClosed). It consumes nothing: a pending error
// is left for the next read or write, whichever comes first.
func (c *sysConn) WaitReadable() error {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool { return pollNow(int(fd)) })
}

// pollNow reports whether fd is readable or has an error, without waiting.
func pollNow(fd int) bool {
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(fd), events: 0x1 /* POLLIN */}
	var zero syscall.Timespec
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	// Any error: report readable, and let the read say what it is.
	return errno != 0 || n > 0
}

// TryReadFromUDPAddrPort is ReadFromUDPAddrPort without the wait: with
// nothing to read it fails at once with an error that unwraps to
// syscall.EAGAIN.
func (c *sysConn) TryReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	var (
		n    int
		from netip.AddrPort
	)
	err := c.control("read", nil, func(fd int) (string, error) {
		var sa syscall.Sockaddr
		var err error
		n, sa, err = syscall.Recvfrom(fd, b, syscall.MSG_DONTWAIT)
		if err != nil {
			n = 0
			return "recvfrom", err
		}
		from = fromSockaddr(sa)
		return "", nil
	})
	return n, from, err
}
