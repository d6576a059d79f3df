package stack

import (
	"errors"
	"net"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// This file is the only place where a tcpip.Error becomes an error.

// errnoOf maps a gVisor error to the errno Linux returns in the same
// situation. Errors with no Linux equivalent map to EINVAL.
func errnoOf(tcpipErr tcpip.Error) syscall.Errno {
	switch tcpipErr.(type) {
	case *tcpip.ErrPortInUse:
		return syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrBroadcastDisabled:
		return syscall.EACCES
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrNetworkUnreachable:
		return syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrHostDown:
		return syscall.EHOSTDOWN
	case *tcpip.ErrWouldBlock:
		return syscall.EAGAIN
	case *tcpip.ErrNoBufferSpace:
		return syscall.ENOBUFS
	case *tcpip.ErrAlreadyConnected:
		return syscall.EISCONN
	case *tcpip.ErrNotConnected:
		return syscall.ENOTCONN
	case *tcpip.ErrDestinationRequired:
		return syscall.EDESTADDRREQ
	case *tcpip.ErrAddressFamilyNotSupported:
		return syscall.EAFNOSUPPORT
	case *tcpip.ErrUnknownProtocolOption:
		return syscall.ENOPROTOOPT
	case *tcpip.ErrUnknownDevice, *tcpip.ErrUnknownNICID:
		return syscall.ENODEV
	case *tcpip.ErrNotSupported:
		return syscall.EOPNOTSUPP
	case *tcpip.ErrNotPermitted:
		return syscall.EPERM
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrClosedForSend, *tcpip.ErrAborted:
		return syscall.EPIPE
	case *tcpip.ErrNoPortAvailable:
		return syscall.EAGAIN
	case *tcpip.ErrBadBuffer:
		return syscall.EFAULT
	case *tcpip.ErrDuplicateAddress, *tcpip.ErrDuplicateNICID:
		return syscall.EEXIST
	case *tcpip.ErrEndpointBusy:
		return syscall.EBUSY
	case *tcpip.ErrAlreadyConnecting:
		return syscall.EALREADY
	default:
		return syscall.EINVAL
	}
}

// opError wraps a gVisor error the way package net wraps a system call
// error, so callers can use errors.Is(err, syscall.EADDRINUSE) and friends.
func opError(op string, laddr, raddr net.Addr, tcpipErr tcpip.Error) error {
	var err error
	switch tcpipErr.(type) {
	case *tcpip.ErrClosedForReceive:
		err = net.ErrClosed
	default:
		err = os.NewSyscallError(syscallName(op), errnoOf(tcpipErr))
	}
	return &net.OpError{Op: op, Net: "udp", Source: laddr, Addr: raddr, Err: err}
}

// syscallName names the Linux system call behind a net.OpError op.
func syscallName(op string) string {
	switch op {
	case "write":
		return "sendto"
	case "read":
		return "recvfrom"
	case "listen", "bind":
		return "bind"
	case "dial", "connect":
		return "connect"
	default:
		return "setsockopt"
	}
}

// closedError is the error of any operation on a closed conn or host.
func closedError(op string, laddr net.Addr) error {
	return &net.OpError{Op: op, Net: "udp", Source: laddr, Err: net.ErrClosed}
}

// netDownError is why a conn was closed under its user: the network it
// was on went away (its host was closed, or the device of the NIC it used
// vanished). Errors built on it match both net.ErrClosed (the conn is
// closed: read loops that stop on net.ErrClosed stop) and syscall.ENETDOWN
// (why: errors.As finds the errno, which the dgram package reports as
// ENETDOWN).
type netDownError struct{ why string }

func (e *netDownError) Error() string { return "network is down: " + e.why }

func (e *netDownError) Unwrap() []error { return []error{syscall.ENETDOWN, net.ErrClosed} }

// errnoError wraps a plain errno (for checks done by dgramlab itself rather
// than by gVisor) like opError does.
func errnoError(op string, laddr, raddr net.Addr, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "udp", Source: laddr, Addr: raddr, Err: os.NewSyscallError(syscallName(op), errno)}
}

// ErrHostClosed is returned by Host methods called after Host.Close.
var ErrHostClosed = errors.New("stack: host closed")

// ErrInvalidAddress is wrapped by the errors of Host.AddNIC, NIC.AddAddress
// and CheckNICAddress for a prefix a NIC cannot have.
var ErrInvalidAddress = errors.New("stack: invalid NIC address")

// errNilContext is what a call given a nil context fails with.
var errNilContext = errors.New("stack: nil context")
