package tun

// SetDevicePath points Open at another clone device and returns a function
// that restores it.
func SetDevicePath(p string) (restore func()) {
	old := devicePath
	devicePath = p
	return func() { devicePath = old }
}
