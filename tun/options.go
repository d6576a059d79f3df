package tun

import (
	"fmt"
	"net"
	"strings"
)

// MTU limits.
const (
	// MinMTU is the smallest MTU Open accepts: the IPv4 minimum (RFC 791).
	// IPv6 needs at least MinMTUIPv6; Open does not know the addresses
	// the host will use, so checking that is the caller's job.
	MinMTU = 68
	// MinMTUIPv6 is the IPv6 minimum link MTU (RFC 8200).
	MinMTUIPv6 = 1280
	// MaxMTU is the largest MTU a Linux TUN/TAP device takes.
	MaxMTU = 65535
	// MaxNameLen is the longest device name Linux takes (IFNAMSIZ - 1).
	MaxNameLen = 15
)

// devicePath is the TUN/TAP clone device water opens. Tests point it
// elsewhere to see the error for a system without the driver.
var devicePath = "/dev/net/tun"

// Options configure Open. The zero value attaches to an existing TUN device
// named by Name (so Name is required unless Create is set).
type Options struct {
	// Name is the device name, at most MaxNameLen bytes, without '/', ':'
	// or white space. With Create, empty lets the kernel choose ("tun0",
	// "tap0", ...); Device.Name reports it.
	Name string
	// TAP selects a TAP device (Ethernet frames, ARP with the kernel).
	// Default false: a TUN device (IP packets, no link header).
	TAP bool
	// Create creates a new device, removed again by Close; Open fails with
	// ErrExists if the name is taken. Default false: attach to an existing
	// persistent device (made with "ip tuntap add"), which Close leaves in
	// place.
	Create bool
	// MTU sets the device's MTU: the largest IP packet it carries (the
	// Ethernet header of a TAP frame is not counted). Default 0: keep the
	// device's MTU (1500 for a device Open creates). MinMTU..MaxMTU. A
	// device Open attached to gets its old MTU back on Close.
	MTU int
	// NICMTU is the MTU the attached NIC is told. Default 0: the device's
	// MTU. Set it larger to model a host whose MTU is wrong for its link:
	// its big frames are then dropped (wire.DropMTU) and counted, as the
	// kernel would not refuse them.
	NICMTU int
	// MAC is the userspace host's Ethernet address on a TAP device (the
	// kernel's end of the device has its own). Default: a locally
	// administered address derived from the device name. Ignored for TUN.
	MAC net.HardwareAddr
}

// Validate checks the options without touching the system. Open calls it;
// the error matches ErrInvalid.
func (o Options) Validate() error {
	invalid := func(format string, args ...any) error {
		return &Error{Op: o.op(), Name: o.Name, Kind: ErrInvalid, Err: fmt.Errorf(format, args...)}
	}
	if err := validName(o.Name, o.Create); err != nil {
		return &Error{Op: o.op(), Kind: ErrInvalid, Err: err}
	}
	if o.MTU != 0 && (o.MTU < MinMTU || o.MTU > MaxMTU) {
		return invalid("MTU %d is out of range %d..%d", o.MTU, MinMTU, MaxMTU)
	}
	if o.NICMTU != 0 && (o.NICMTU < MinMTU || o.NICMTU > MaxMTU) {
		return invalid("NIC MTU %d is out of range %d..%d", o.NICMTU, MinMTU, MaxMTU)
	}
	if o.TAP && o.MAC != nil && (len(o.MAC) != 6 || o.MAC[0]&1 != 0) {
		return invalid("MAC %v is not a 6-byte unicast address", o.MAC)
	}
	return nil
}

// validName checks a Linux interface name.
func validName(name string, create bool) error {
	switch {
	case name == "" && create:
		return nil
	case name == "":
		return fmt.Errorf("a device name is required to attach to a device")
	case len(name) > MaxNameLen:
		return fmt.Errorf("device name %q is %d bytes long, more than Linux's %d", name, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("device name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f\x00"):
		return fmt.Errorf("device name %q contains '/', ':', a NUL or white space", name)
	}
	return nil
}

// op names what Open does with these options.
func (o Options) op() string {
	if o.Create {
		return "create"
	}
	return "attach"
}

// kind names the device type.
func (o Options) kind() string {
	if o.TAP {
		return "tap"
	}
	return "tun"
}
