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
	// Info is the system error behind a "SystemError"
	// (ERR_SOCKET_BUFFER_SIZE), as Node's err.info; nil otherwise.
	Info *SystemErrorInfo
	// Err is the cause: a syscall.Errno, a *net.DNSError, the error a
	// custom lookup returned, or nil.
	Err error
}

// SystemErrorInfo is the info of a Node SystemError: the libuv error a
// failed call returned.
type SystemErrorInfo struct {
	Errno   int    // libuv's negative errno, e.g. -9
	Code    string // e.g. "EBADF"
	Message string // libuv's text, e.g. "bad file descriptor"
	Syscall string // e.g. "uv_recv_buffer_size"
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
	// ErrMissingArgs: AddMembership or DropMembership without a group.
	ErrMissingArgs = &Error{Code: "ERR_MISSING_ARGS", Message: "missing argument"}
	// ErrOutOfRange: SocketOptions with a buffer size outside 0..2^32-1.
	ErrOutOfRange = &Error{Code: "ERR_OUT_OF_RANGE", Message: "option out of range"}
	// ErrBadBufferSize: a buffer size outside 0..2^32-1 given to
	// SetRecvBufferSize or SetSendBufferSize.
	ErrBadBufferSize = &Error{Code: "ERR_SOCKET_BAD_BUFFER_SIZE", Message: "bad buffer size"}
	// ErrBufferSize: getting or setting a buffer size failed in the
	// network (EBADF before the socket is bound).
	ErrBufferSize = &Error{Code: "ERR_SOCKET_BUFFER_SIZE", Message: "could not get or set buffer size"}
)

func errMissingArgs(name string) error {
	return &Error{Name: "TypeError", Code: ErrMissingArgs.Code, Message: fmt.Sprintf("The %q argument must be specified", name)}
}

// errOptionRange is Node's ERR_OUT_OF_RANGE for a buffer size option.
func errOptionRange(name string, v int) error {
	return &Error{Name: "RangeError", Code: ErrOutOfRange.Code,
		Message: fmt.Sprintf("The value of %q is out of range. It must be >= 0 && <= 4294967295. Received %s", "options."+name, nodeNumber(v))}
}

// nodeNumber formats v as Node's ERR_OUT_OF_RANGE does: with "_" between
// groups of three digits when |v| > 2^32.
func nodeNumber(v int) string {
	s := strconv.Itoa(v)
	if v64 := int64(v); v64 <= 1<<32 && v64 >= -(1<<32) {
		return s
	}
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, '_')
		}
		out = append(out, s[i])
	}
	return sign + string(out)
}

func errBadBufferSize() error {
	return &Error{Name: "TypeError", Code: ErrBadBufferSize.Code, Message: "Buffer size must be a positive integer"}
}

// errBufferSize is Node's ERR_SOCKET_BUFFER_SIZE SystemError; call is
// "uv_recv_buffer_size" or "uv_send_buffer_size".
func errBufferSize(errno syscall.Errno, call string) error {
	code, uv := uvError(errno)
	msg := uvMessage(code)
	return &Error{Name: "SystemError", Code: ErrBufferSize.Code, Errno: uv, Syscall: call,
		Message: fmt.Sprintf("Could not get or set buffer size: %s returned %s (%s)", call, code, msg),
		Info:    &SystemErrorInfo{Errno: uv, Code: code, Message: msg, Syscall: call}, Err: errno}
}

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

// errNoPort is errBadPort for a send that gives no port (port 0 and no
// address: Node's send(buf) on a socket that is not connected).
func errNoPort() error {
	return &Error{Name: "RangeError", Code: ErrBadPort.Code,
		Message: "Port should be > 0 and < 65536. Received undefined."}
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
// "<syscall> <CODE> <address>:<port>" when port is non-zero, else
// "<syscall> <CODE> <address>", or just "<syscall> <CODE>" without an
// address. address is what the caller passed to send ("" is Node's
// undefined, which prints as "undefined" before a port).
func exceptionWithHostPort(errno syscall.Errno, syscallName, address string, port int) *Error {
	shown := address
	if shown == "" {
		shown = "undefined"
	}
	return hostPortError(errno, syscallName, address, shown, port)
}

// connectException is ExceptionWithHostPort for connect, whose omitted
// address is Node's "" (so "connect EACCES :20800").
func connectException(errno syscall.Errno, address string, port int) *Error {
	return hostPortError(errno, "connect", address, address, port)
}

func hostPortError(errno syscall.Errno, syscallName, address, shown string, port int) *Error {
	e := errnoException(errno, syscallName)
	switch {
	case port > 0:
		e.Message += " " + shown + ":" + strconv.Itoa(port)
		e.Port = port
	case address != "":
		e.Message += " " + address
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
// getaddrinfo failures. An *Error (from a custom lookup) is passed on as it
// is, as Node passes on what a custom lookup reports.
func lookupError(host string, err error) *Error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	code, uv := "ENOTFOUND", -3008
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsTimeout {
		code, uv = "EAI_AGAIN", -3001
	}
	return &Error{Name: "Error", Code: code, Errno: uv, Syscall: "getaddrinfo", Hostname: host,
		Message: "getaddrinfo " + code + " " + host, Err: err}
}
