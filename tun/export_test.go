package tun

import "syscall"

// SetDevicePath points Open at another clone device and returns a function
// that restores it.
func SetDevicePath(p string) (restore func()) {
	old := devicePath
	devicePath = p
	return func() { devicePath = old }
}

// Probe asks d's device whether it is still there (see probe).
func Probe(d *Device) syscall.Errno { return probe(d.file) }

// OpenError is openError, for tests of the hints it gives.
func OpenError(op string, opts Options, err error) *Error { return openError(op, opts.Name, opts, err) }

// CloneOpenError is cloneOpenError, for tests of its hints.
func CloneOpenError(err error) *Error { return cloneOpenError("create", "dgl0", err) }
