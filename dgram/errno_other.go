//go:build !linux

package dgram

// uvNamesOS is empty: the errnos it holds on Linux are not in package
// syscall here, and uvError reports them as unknown.
var uvNamesOS []uvName
