package dgram

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Error is every error dgram returns or delivers. It carries Node's fields:
// a code (ERR_SOCKET_BAD_PORT, EADDRINUSE, ENOTFOUND, ...), Node's message
// text, and for system errors the negative libuv errno, the syscall, and the
// address and port involved. System errors unwrap to their syscall.Errno, so
// errors.Is(err, syscall.EMSGSIZE) works; errors.Is(err, ErrNotRunning) and
// the other sentinels below match by Code.
type Error struct {
	// Name is the JavaScript class Node would use: "Error", "TypeError",
	// "RangeError" or "SystemError".
	Name string
	// Code is Node's code: "ERR_..." for argument and state errors, the
	// errno name ("EMSGSIZE") for system errors, "ENOTFOUND" for lookups.
	Code string
	// Message is Node's message, e.g. "send EMSGSIZE 10.0.0.2:41234".
	Message string
	// Errno is libuv's negative errno for system and lookup errors, else 0.
	Errno int
	// Syscall is the failing call for system errors ("bind", "send",
	// "recvmsg", "getsockname", "getaddrinfo", ...).
	Syscall string
	// Address and Port are the destination or bind address as Node reports
	// them (Address "" and Port 0 when Node leaves them out).
	Address string
	Port    int
	// Hostname is the name that failed to resolve, for ENOTFOUND.
	Hostname string
	// Err is the cause: a syscall.Errno, a *net.DNSError, or nil.
	Err error
}

// Error returns Node's message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, dgram.ErrNotRunning) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code != "" && t.Code == e.Code
}

// Sentinels for errors.Is, one per Node code dgram can produce for a
// misuse of the API. Their Message is only a description.
var (
	// ErrBadType: CreateSocket with a type other than "udp4" or "udp6".
	ErrBadType = &Error{Code: "ERR_SOCKET_BAD_TYPE", Message: "bad socket type"}
	// ErrAlreadyBound: Bind on a socket that is binding or bound.
	ErrAlreadyBound = &Error{Code: "ERR_SOCKET_ALREADY_BOUND", Message: "socket is already bound"}
	// ErrNotRunning: a call on a closed socket.
	ErrNotRunning = &Error{Code: "ERR_SOCKET_DGRAM_NOT_RUNNING", Message: "socket is not running"}
	// ErrBadPort: a port outside 0..65535 (or 0 where a port is required).
	ErrBadPort = &Error{Code: "ERR_SOCKET_BAD_PORT", Message: "bad port"}
	// ErrOutOfBounds: an offset or length outside the buffer.
	ErrOutOfBounds = &Error{Code: "ERR_BUFFER_OUT_OF_BOUNDS", Message: "offset or length outside the buffer"}
	// ErrInvalidArgType: an argument of the wrong kind (a nil Network, a
	// nil buffer list entry, ...).
	ErrInvalidArgType = &Error{Code: "ERR_INVALID_ARG_TYPE", Message: "invalid argument"}
	// ErrIsConnected: Connect on a connected socket, or Send with an
	// address on one.
	ErrIsConnected = &Error{Code: "ERR_SOCKET_DGRAM_IS_CONNECTED", Message: "already connected"}
	// ErrNotConnected: Disconnect or RemoteAddress on an unconnected socket.
	ErrNotConnected = &Error{Code: "ERR_SOCKET_DGRAM_NOT_CONNECTED", Message: "not connected"}
)

func errBadType() error {
	return &Error{Name: "TypeError", Code: ErrBadType.Code, Message: "Bad socket type specified. Valid types are: udp4, udp6"}
}

func errAlreadyBound() error {
	return &Error{Name: "Error", Code: ErrAlreadyBound.Code, Message: "Socket is already bound"}
}

func errNotRunning() error {
	return &Error{Name: "Error", Code: ErrNotRunning.Code, Message: "Not running"}
}

func errIsConnected() error {
	return &Error{Name: "Error", Code: ErrIsConnected.Code, Message: "Already connected"}
}

func errNotConnected() error {
	return &Error{Name: "Error", Code: ErrNotConnected.Code, Message: "Not connected"}
}

// errBadPort is Node's validatePort error. allowZero selects the wording
// bind uses (">= 0") over the one send and connect use ("> 0").
func errBadPort(port int, allowZero bool) error {
	op := ">"
	if allowZero {
		op = ">="
	}
	return &Error{Name: "RangeError", Code: ErrBadPort.Code,
		Message: fmt.Sprintf("Port should be %s 0 and < 65536. Received type number (%d).", op, port)}
}

func errOutOfBounds(what string) error {
	return &Error{Name: "RangeError", Code: ErrOutOfBounds.Code, Message: strconv.Quote(what) + " is outside of buffer bounds"}
}

func errInvalidArg(name, want, got string) error {
	return &Error{Name: "TypeError", Code: ErrInvalidArgType.Code,
		Message: fmt.Sprintf("The %q argument must be %s. Received %s", name, want, got)}
}

// errnoException is Node's ErrnoException: "<syscall> <CODE>".
func errnoException(errno syscall.Errno, syscallName string) *Error {
	code, uv := uvError(errno)
	return &Error{Name: "Error", Code: code, Errno: uv, Syscall: syscallName,
		Message: syscallName + " " + code, Err: errno}
}

// exceptionWithHostPort is Node's ExceptionWithHostPort:
// "<syscall> <CODE> <address>:<port>", the port only when non-zero. address
// is what the caller passed ("" prints as "undefined", as in Node).
func exceptionWithHostPort(errno syscall.Errno, syscallName, address string, port int) *Error {
	e := errnoException(errno, syscallName)
	shown := address
	if shown == "" {
		shown = "undefined"
	}
	if port > 0 {
		e.Message += " " + shown + ":" + strconv.Itoa(port)
		e.Port = port
	} else {
		e.Message += " " + shown
	}
	e.Address = address
	return e
}

// errnoOf extracts the errno from a Network error; EIO when there is none.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	switch {
	case errors.Is(err, net.ErrClosed):
		return syscall.EBADF
	}
	return syscall.EIO
}

// lookupError is the error of a failed name resolution, as Node reports
// getaddrinfo failures.
func lookupError(host string, err error) *Error {
	code, uv := "ENOTFOUND", -3008
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsTimeout {
		code, uv = "EAI_AGAIN", -3001
	}
	return &Error{Name: "Error", Code: code, Errno: uv, Syscall: "getaddrinfo", Hostname: host,
		Message: "getaddrinfo " + code + " " + host, Err: err}
}
