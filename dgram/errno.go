package dgram

import (
	"strconv"
	"strings"
	"syscall"
)

// uvError returns the code and errno that Node reports for a system error:
// libuv's name for it (the Linux name: "EADDRINUSE") and the negated errno
// (-98). Aliases take libuv's spelling: EWOULDBLOCK is "EAGAIN", EOPNOTSUPP
// is "ENOTSUP". An errno libuv has no name for (EINPROGRESS, for one) is
// reported as Node reports it: code "Unknown system error -115", errno -115.
//
// libuv's errno values are the negated system ones on Unix; on Windows they
// differ from Node's.
func uvError(errno syscall.Errno) (code string, uvErrno int) {
	uvErrno = -int(errno)
	if name, ok := uvNames[errno]; ok {
		return name, uvErrno
	}
	return unknownPrefix + strconv.Itoa(uvErrno), uvErrno
}

// uvMessage returns libuv's uv_strerror text for a code ("EADDRINUSE" gives
// "address already in use"), as Node puts it in a SystemError's info. The
// code uvError gives an errno libuv does not know is its own message, as in
// libuv; any other unknown code gives "unknown error", libuv's text for
// UNKNOWN.
func uvMessage(code string) string {
	if msg, ok := uvMessages[code]; ok {
		return msg
	}
	if strings.HasPrefix(code, unknownPrefix) {
		return code
	}
	return uvMessages["UNKNOWN"]
}

// unknownPrefix starts libuv's name (and message) for an errno it has no
// name for.
const unknownPrefix = "Unknown system error "

// uvName is one entry of libuv's errno map.
type uvName struct {
	errno syscall.Errno
	code  string
}

// uvNames maps the errnos libuv names to their names: uvNamesOS, then
// uvNamesUnix. It is built from lists rather than written as a map literal
// because some systems give two names one number.
var uvNames = func() map[syscall.Errno]string {
	m := make(map[syscall.Errno]string, len(uvNamesOS)+len(uvNamesUnix))
	for _, list := range [][]uvName{uvNamesOS, uvNamesUnix} {
		for _, n := range list {
			if _, dup := m[n.errno]; !dup {
				m[n.errno] = n.code
			}
		}
	}
	return m
}()

// uvNamesUnix is libuv's UV_ERRNO_MAP restricted to system errnos, as Node
// v20's util.getSystemErrorMap() lists it on Linux, less the few that only
// some systems define (uvNamesOS has those).
var uvNamesUnix = []uvName{
	{syscall.EPERM, "EPERM"},
	{syscall.ENOENT, "ENOENT"},
	{syscall.ESRCH, "ESRCH"},
	{syscall.EINTR, "EINTR"},
	{syscall.EIO, "EIO"},
	{syscall.ENXIO, "ENXIO"},
	{syscall.E2BIG, "E2BIG"},
	{syscall.EBADF, "EBADF"},
	{syscall.EAGAIN, "EAGAIN"},
	{syscall.ENOMEM, "ENOMEM"},
	{syscall.EACCES, "EACCES"},
	{syscall.EFAULT, "EFAULT"},
	{syscall.EBUSY, "EBUSY"},
	{syscall.EEXIST, "EEXIST"},
	{syscall.EXDEV, "EXDEV"},
	{syscall.ENODEV, "ENODEV"},
	{syscall.ENOTDIR, "ENOTDIR"},
	{syscall.EISDIR, "EISDIR"},
	{syscall.EINVAL, "EINVAL"},
	{syscall.ENFILE, "ENFILE"},
	{syscall.EMFILE, "EMFILE"},
	{syscall.ENOTTY, "ENOTTY"},
	{syscall.ETXTBSY, "ETXTBSY"},
	{syscall.EFBIG, "EFBIG"},
	{syscall.ENOSPC, "ENOSPC"},
	{syscall.ESPIPE, "ESPIPE"},
	{syscall.EROFS, "EROFS"},
	{syscall.EMLINK, "EMLINK"},
	{syscall.EPIPE, "EPIPE"},
	{syscall.ERANGE, "ERANGE"},
	{syscall.ENAMETOOLONG, "ENAMETOOLONG"},
	{syscall.ENOSYS, "ENOSYS"},
	{syscall.ENOTEMPTY, "ENOTEMPTY"},
	{syscall.ELOOP, "ELOOP"},
	{syscall.EPROTO, "EPROTO"},
	{syscall.EOVERFLOW, "EOVERFLOW"},
	{syscall.EILSEQ, "EILSEQ"},
	{syscall.ENOTSOCK, "ENOTSOCK"},
	{syscall.EDESTADDRREQ, "EDESTADDRREQ"},
	{syscall.EMSGSIZE, "EMSGSIZE"},
	{syscall.EPROTOTYPE, "EPROTOTYPE"},
	{syscall.ENOPROTOOPT, "ENOPROTOOPT"},
	{syscall.EPROTONOSUPPORT, "EPROTONOSUPPORT"},
	{syscall.ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"},
	{syscall.ENOTSUP, "ENOTSUP"},
	{syscall.EAFNOSUPPORT, "EAFNOSUPPORT"},
	{syscall.EADDRINUSE, "EADDRINUSE"},
	{syscall.EADDRNOTAVAIL, "EADDRNOTAVAIL"},
	{syscall.ENETDOWN, "ENETDOWN"},
	{syscall.ENETUNREACH, "ENETUNREACH"},
	{syscall.ECONNABORTED, "ECONNABORTED"},
	{syscall.ECONNRESET, "ECONNRESET"},
	{syscall.ENOBUFS, "ENOBUFS"},
	{syscall.EISCONN, "EISCONN"},
	{syscall.ENOTCONN, "ENOTCONN"},
	{syscall.ESHUTDOWN, "ESHUTDOWN"},
	{syscall.ETIMEDOUT, "ETIMEDOUT"},
	{syscall.ECONNREFUSED, "ECONNREFUSED"},
	{syscall.EHOSTDOWN, "EHOSTDOWN"},
	{syscall.EHOSTUNREACH, "EHOSTUNREACH"},
	{syscall.EALREADY, "EALREADY"},
	{syscall.ECANCELED, "ECANCELED"},
}

// uvMessages is libuv's uv_strerror text for every code it names, the
// getaddrinfo (EAI_*) and libuv-only ones included, as Node v20 prints them
// (util.getSystemErrorMap()).
var uvMessages = map[string]string{
	"EPERM":           "operation not permitted",
	"ENOENT":          "no such file or directory",
	"ESRCH":           "no such process",
	"EINTR":           "interrupted system call",
	"EIO":             "i/o error",
	"ENXIO":           "no such device or address",
	"E2BIG":           "argument list too long",
	"EBADF":           "bad file descriptor",
	"EAGAIN":          "resource temporarily unavailable",
	"ENOMEM":          "not enough memory",
	"EACCES":          "permission denied",
	"EFAULT":          "bad address in system call argument",
	"EBUSY":           "resource busy or locked",
	"EEXIST":          "file already exists",
	"EXDEV":           "cross-device link not permitted",
	"ENODEV":          "no such device",
	"ENOTDIR":         "not a directory",
	"EISDIR":          "illegal operation on a directory",
	"EINVAL":          "invalid argument",
	"ENFILE":          "file table overflow",
	"EMFILE":          "too many open files",
	"ENOTTY":          "inappropriate ioctl for device",
	"ETXTBSY":         "text file is busy",
	"EFBIG":           "file too large",
	"ENOSPC":          "no space left on device",
	"ESPIPE":          "invalid seek",
	"EROFS":           "read-only file system",
	"EMLINK":          "too many links",
	"EPIPE":           "broken pipe",
	"ERANGE":          "result too large",
	"ENAMETOOLONG":    "name too long",
	"ENOSYS":          "function not implemented",
	"ENOTEMPTY":       "directory not empty",
	"ELOOP":           "too many symbolic links encountered",
	"EUNATCH":         "protocol driver not attached",
	"ENODATA":         "no data available",
	"ENONET":          "machine is not on the network",
	"EPROTO":          "protocol error",
	"EOVERFLOW":       "value too large for defined data type",
	"EILSEQ":          "illegal byte sequence",
	"ENOTSOCK":        "socket operation on non-socket",
	"EDESTADDRREQ":    "destination address required",
	"EMSGSIZE":        "message too long",
	"EPROTOTYPE":      "protocol wrong type for socket",
	"ENOPROTOOPT":     "protocol not available",
	"EPROTONOSUPPORT": "protocol not supported",
	"ESOCKTNOSUPPORT": "socket type not supported",
	"ENOTSUP":         "operation not supported on socket",
	"EAFNOSUPPORT":    "address family not supported",
	"EADDRINUSE":      "address already in use",
	"EADDRNOTAVAIL":   "address not available",
	"ENETDOWN":        "network is down",
	"ENETUNREACH":     "network is unreachable",
	"ECONNABORTED":    "software caused connection abort",
	"ECONNRESET":      "connection reset by peer",
	"ENOBUFS":         "no buffer space available",
	"EISCONN":         "socket is already connected",
	"ENOTCONN":        "socket is not connected",
	"ESHUTDOWN":       "cannot send after transport endpoint shutdown",
	"ETIMEDOUT":       "connection timed out",
	"ECONNREFUSED":    "connection refused",
	"EHOSTDOWN":       "host is down",
	"EHOSTUNREACH":    "host is unreachable",
	"EALREADY":        "connection already in progress",
	"EREMOTEIO":       "remote I/O error",
	"ECANCELED":       "operation canceled",
	"EAI_ADDRFAMILY":  "address family not supported",
	"EAI_AGAIN":       "temporary failure",
	"EAI_BADFLAGS":    "bad ai_flags value",
	"EAI_CANCELED":    "request canceled",
	"EAI_FAIL":        "permanent failure",
	"EAI_FAMILY":      "ai_family not supported",
	"EAI_MEMORY":      "out of memory",
	"EAI_NODATA":      "no address",
	"EAI_NONAME":      "unknown node or service",
	"EAI_OVERFLOW":    "argument buffer overflow",
	"EAI_SERVICE":     "service not available for socket type",
	"EAI_SOCKTYPE":    "socket type not supported",
	"EAI_BADHINTS":    "invalid value for hints",
	"EAI_PROTOCOL":    "resolved protocol is unknown",
	"EFTYPE":          "inappropriate file type or format",
	"ECHARSET":        "invalid Unicode character",
	"UNKNOWN":         "unknown error",
	"EOF":             "end of file",
}
