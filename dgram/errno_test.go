//go:build linux

package dgram

import (
	"syscall"
	"testing"
)

// nodeErrnoMap is what Node v20.20.2 on Linux (x86_64) printed for
// util.getSystemErrorMap(): [-errno, name, message] for every system errno
// libuv names.
var nodeErrnoMap = []struct {
	uvErrno int
	code    string
	message string
}{
	{-1, "EPERM", "operation not permitted"},
	{-2, "ENOENT", "no such file or directory"},
	{-3, "ESRCH", "no such process"},
	{-4, "EINTR", "interrupted system call"},
	{-5, "EIO", "i/o error"},
	{-6, "ENXIO", "no such device or address"},
	{-7, "E2BIG", "argument list too long"},
	{-9, "EBADF", "bad file descriptor"},
	{-11, "EAGAIN", "resource temporarily unavailable"},
	{-12, "ENOMEM", "not enough memory"},
	{-13, "EACCES", "permission denied"},
	{-14, "EFAULT", "bad address in system call argument"},
	{-16, "EBUSY", "resource busy or locked"},
	{-17, "EEXIST", "file already exists"},
	{-18, "EXDEV", "cross-device link not permitted"},
	{-19, "ENODEV", "no such device"},
	{-20, "ENOTDIR", "not a directory"},
	{-21, "EISDIR", "illegal operation on a directory"},
	{-22, "EINVAL", "invalid argument"},
	{-23, "ENFILE", "file table overflow"},
	{-24, "EMFILE", "too many open files"},
	{-25, "ENOTTY", "inappropriate ioctl for device"},
	{-26, "ETXTBSY", "text file is busy"},
	{-27, "EFBIG", "file too large"},
	{-28, "ENOSPC", "no space left on device"},
	{-29, "ESPIPE", "invalid seek"},
	{-30, "EROFS", "read-only file system"},
	{-31, "EMLINK", "too many links"},
	{-32, "EPIPE", "broken pipe"},
	{-34, "ERANGE", "result too large"},
	{-36, "ENAMETOOLONG", "name too long"},
	{-38, "ENOSYS", "function not implemented"},
	{-39, "ENOTEMPTY", "directory not empty"},
	{-40, "ELOOP", "too many symbolic links encountered"},
	{-49, "EUNATCH", "protocol driver not attached"},
	{-61, "ENODATA", "no data available"},
	{-64, "ENONET", "machine is not on the network"},
	{-71, "EPROTO", "protocol error"},
	{-75, "EOVERFLOW", "value too large for defined data type"},
	{-84, "EILSEQ", "illegal byte sequence"},
	{-88, "ENOTSOCK", "socket operation on non-socket"},
	{-89, "EDESTADDRREQ", "destination address required"},
	{-90, "EMSGSIZE", "message too long"},
	{-91, "EPROTOTYPE", "protocol wrong type for socket"},
	{-92, "ENOPROTOOPT", "protocol not available"},
	{-93, "EPROTONOSUPPORT", "protocol not supported"},
	{-94, "ESOCKTNOSUPPORT", "socket type not supported"},
	{-95, "ENOTSUP", "operation not supported on socket"},
	{-97, "EAFNOSUPPORT", "address family not supported"},
	{-98, "EADDRINUSE", "address already in use"},
	{-99, "EADDRNOTAVAIL", "address not available"},
	{-100, "ENETDOWN", "network is down"},
	{-101, "ENETUNREACH", "network is unreachable"},
	{-103, "ECONNABORTED", "software caused connection abort"},
	{-104, "ECONNRESET", "connection reset by peer"},
	{-105, "ENOBUFS", "no buffer space available"},
	{-106, "EISCONN", "socket is already connected"},
	{-107, "ENOTCONN", "socket is not connected"},
	{-108, "ESHUTDOWN", "cannot send after transport endpoint shutdown"},
	{-110, "ETIMEDOUT", "connection timed out"},
	{-111, "ECONNREFUSED", "connection refused"},
	{-112, "EHOSTDOWN", "host is down"},
	{-113, "EHOSTUNREACH", "host is unreachable"},
	{-114, "EALREADY", "connection already in progress"},
	{-121, "EREMOTEIO", "remote I/O error"},
	{-125, "ECANCELED", "operation canceled"},
}

// nodeOtherCodes is the rest of that map: libuv's own and getaddrinfo codes,
// which are no errno but have messages.
var nodeOtherCodes = []struct {
	uvErrno int
	code    string
	message string
}{
	{-3000, "EAI_ADDRFAMILY", "address family not supported"},
	{-3001, "EAI_AGAIN", "temporary failure"},
	{-3002, "EAI_BADFLAGS", "bad ai_flags value"},
	{-3003, "EAI_CANCELED", "request canceled"},
	{-3004, "EAI_FAIL", "permanent failure"},
	{-3005, "EAI_FAMILY", "ai_family not supported"},
	{-3006, "EAI_MEMORY", "out of memory"},
	{-3007, "EAI_NODATA", "no address"},
	{-3008, "EAI_NONAME", "unknown node or service"},
	{-3009, "EAI_OVERFLOW", "argument buffer overflow"},
	{-3010, "EAI_SERVICE", "service not available for socket type"},
	{-3011, "EAI_SOCKTYPE", "socket type not supported"},
	{-3013, "EAI_BADHINTS", "invalid value for hints"},
	{-3014, "EAI_PROTOCOL", "resolved protocol is unknown"},
	{-4028, "EFTYPE", "inappropriate file type or format"},
	{-4080, "ECHARSET", "invalid Unicode character"},
	{-4094, "UNKNOWN", "unknown error"},
	{-4095, "EOF", "end of file"},
}

func TestUVErrorMatchesNode(t *testing.T) {
	for _, want := range nodeErrnoMap {
		code, uv := uvError(syscall.Errno(-want.uvErrno))
		if code != want.code || uv != want.uvErrno {
			t.Errorf("uvError(%d) = %q, %d, want %q, %d", -want.uvErrno, code, uv, want.code, want.uvErrno)
		}
		if msg := uvMessage(want.code); msg != want.message {
			t.Errorf("uvMessage(%q) = %q, want %q", want.code, msg, want.message)
		}
	}
	for _, want := range nodeOtherCodes {
		if msg := uvMessage(want.code); msg != want.message {
			t.Errorf("uvMessage(%q) = %q, want %q", want.code, msg, want.message)
		}
	}
	if n := len(uvNames); n != len(nodeErrnoMap) {
		t.Errorf("len(uvNames) = %d, want %d (one per errno Node names)", n, len(nodeErrnoMap))
	}
}

// TestUVErrorSocketErrnos checks the errnos a UDP socket meets, by their Go
// names, aliases included.
func TestUVErrorSocketErrnos(t *testing.T) {
	for _, tc := range []struct {
		errno   syscall.Errno
		code    string
		uvErrno int
		message string
	}{
		{syscall.EADDRINUSE, "EADDRINUSE", -98, "address already in use"},
		{syscall.EADDRNOTAVAIL, "EADDRNOTAVAIL", -99, "address not available"},
		{syscall.EMSGSIZE, "EMSGSIZE", -90, "message too long"},
		{syscall.EACCES, "EACCES", -13, "permission denied"},
		{syscall.EBADF, "EBADF", -9, "bad file descriptor"},
		{syscall.EINVAL, "EINVAL", -22, "invalid argument"},
		{syscall.ECONNREFUSED, "ECONNREFUSED", -111, "connection refused"},
		{syscall.EISCONN, "EISCONN", -106, "socket is already connected"},
		{syscall.ENOTCONN, "ENOTCONN", -107, "socket is not connected"},
		{syscall.ENETUNREACH, "ENETUNREACH", -101, "network is unreachable"},
		{syscall.EHOSTUNREACH, "EHOSTUNREACH", -113, "host is unreachable"},
		{syscall.EHOSTDOWN, "EHOSTDOWN", -112, "host is down"},
		{syscall.ENONET, "ENONET", -64, "machine is not on the network"},
		{syscall.ENOPROTOOPT, "ENOPROTOOPT", -92, "protocol not available"},
		{syscall.ENODEV, "ENODEV", -19, "no such device"},
		{syscall.ENOBUFS, "ENOBUFS", -105, "no buffer space available"},
		{syscall.ENOMEM, "ENOMEM", -12, "not enough memory"},
		{syscall.EAGAIN, "EAGAIN", -11, "resource temporarily unavailable"},
		{syscall.EWOULDBLOCK, "EAGAIN", -11, "resource temporarily unavailable"},
		{syscall.EOPNOTSUPP, "ENOTSUP", -95, "operation not supported on socket"},
		{syscall.ENOTSUP, "ENOTSUP", -95, "operation not supported on socket"},
		{syscall.EPERM, "EPERM", -1, "operation not permitted"},
		{syscall.EAFNOSUPPORT, "EAFNOSUPPORT", -97, "address family not supported"},
		{syscall.EDESTADDRREQ, "EDESTADDRREQ", -89, "destination address required"},
		{syscall.EPIPE, "EPIPE", -32, "broken pipe"},
		{syscall.ECONNRESET, "ECONNRESET", -104, "connection reset by peer"},
		{syscall.ETIMEDOUT, "ETIMEDOUT", -110, "connection timed out"},
		{syscall.EFAULT, "EFAULT", -14, "bad address in system call argument"},
		{syscall.EEXIST, "EEXIST", -17, "file already exists"},
		{syscall.ENOENT, "ENOENT", -2, "no such file or directory"},
		{syscall.EBUSY, "EBUSY", -16, "resource busy or locked"},
		{syscall.EALREADY, "EALREADY", -114, "connection already in progress"},
		{syscall.ENOSYS, "ENOSYS", -38, "function not implemented"},
		{syscall.EMFILE, "EMFILE", -24, "too many open files"},
		{syscall.ENFILE, "ENFILE", -23, "file table overflow"},
		{syscall.ENOTSOCK, "ENOTSOCK", -88, "socket operation on non-socket"},
		{syscall.EINTR, "EINTR", -4, "interrupted system call"},
		{syscall.EIO, "EIO", -5, "i/o error"},
		// Node v20 (util._errnoException, util.getSystemErrorName) names
		// errnos libuv does not know like this; EINPROGRESS is one.
		{syscall.EINPROGRESS, "Unknown system error -115", -115, "Unknown system error -115"},
		{syscall.EDEADLK, "Unknown system error -35", -35, "Unknown system error -35"},
		{syscall.Errno(133), "Unknown system error -133", -133, "Unknown system error -133"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			code, uv := uvError(tc.errno)
			if code != tc.code || uv != tc.uvErrno {
				t.Errorf("uvError(%s) = %q, %d, want %q, %d", tc.errno, code, uv, tc.code, tc.uvErrno)
			}
			if msg := uvMessage(code); msg != tc.message {
				t.Errorf("uvMessage(%q) = %q, want %q", code, msg, tc.message)
			}
		})
	}
}

func TestUVMessageUnknownCode(t *testing.T) {
	for _, code := range []string{"UNKNOWN", "ENOTFOUND", "", "EWOULDBLOCK"} {
		if got := uvMessage(code); got != "unknown error" {
			t.Errorf("uvMessage(%q) = %q, want %q", code, got, "unknown error")
		}
	}
}
