package dgram

import "syscall"

// uvNamesOS is the part of libuv's errno map whose constants package syscall
// does not define on every Unix (so errno_other.go leaves them out).
var uvNamesOS = []uvName{
	{syscall.EUNATCH, "EUNATCH"},
	{syscall.ENODATA, "ENODATA"},
	{syscall.ENONET, "ENONET"},
	{syscall.EREMOTEIO, "EREMOTEIO"},
}
