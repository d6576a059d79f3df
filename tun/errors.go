package tun

import (
	"errors"
	"strings"
)

// Sentinel errors. Every error Open returns is an *Error that matches one of
// them with errors.Is, and also the system's errno when there is one
// (errors.Is(err, syscall.EPERM), errors.Is(err, os.ErrPermission), ...).
var (
	// ErrInvalid: the options are wrong (a device name that is empty or
	// too long, an MTU out of range). Nothing was opened.
	ErrInvalid = errors.New("invalid options")
	// ErrUnsupported: the system has no TUN/TAP driver (/dev/net/tun is
	// missing), or this is not Linux.
	ErrUnsupported = errors.New("TUN/TAP not available")
	// ErrPermission: the process lacks CAP_NET_ADMIN (or access to
	// /dev/net/tun, or ownership of the device).
	ErrPermission = errors.New("permission denied")
	// ErrNotFound: attaching to a device that does not exist.
	ErrNotFound = errors.New("no such device")
	// ErrExists: creating a device whose name is taken.
	ErrExists = errors.New("device exists")
	// ErrWrongType: attaching to a device that is not a TUN (or not a
	// TAP) device, e.g. a TAP device in TUN mode, or "lo".
	ErrWrongType = errors.New("wrong device type")
	// ErrBusy: the device is already attached to another file descriptor
	// (another process, or another Device of this one).
	ErrBusy = errors.New("device busy")
	// ErrGone: the device vanished under a running Device (ip link del):
	// Device.Err returns it.
	ErrGone = errors.New("device vanished")
	// ErrFailed: reading the device failed for another reason; the
	// Device stopped. Device.Err returns it.
	ErrFailed = errors.New("device failed")
)

// Error is the error of a TUN/TAP operation.
type Error struct {
	// Op is what failed: "open", "attach", "create", "set MTU", "read",
	// "write".
	Op string
	// Name is the device name ("" when the kernel was to choose it).
	Name string
	// Kind is one of the sentinel errors above.
	Kind error
	// Err is the underlying error (usually a syscall.Errno), or nil.
	Err error
	// Hint says what to do about it, or is empty.
	Hint string
}

// Error returns "tun: OP NAME: KIND: ERR (HINT)", without ERR when it
// says the same as KIND.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tun: ")
	b.WriteString(e.Op)
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Err != nil && e.Err.Error() != e.Kind.Error() {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
