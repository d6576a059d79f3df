//go:build !linux

package tun

// Open fails with ErrUnsupported: dgramlab's TUN/TAP support is for Linux.
func Open(opts Options) (*Device, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return nil, &Error{Op: opts.op(), Name: opts.Name, Kind: ErrUnsupported, Hint: "dgramlab supports TUN/TAP devices on Linux only"}
}
