// Package tun attaches a virtual host to a real TUN (IP) or TAP (Ethernet)
// device, so that the host's sockets talk to the kernel and to real
// programs.
//
// Open opens a device with github.com/songgao/water, creating it or
// attaching to one made beforehand (ip tuntap add), and sets its MTU. The
// Device it returns is a gVisor link endpoint: give it to Host.AddNIC in
// package stack, optionally wrapped in a capture tap (raw IP for TUN,
// Ethernet for TAP):
//
//	dev, err := tun.Open(tun.Options{Name: "dgl0", Create: true, MTU: 1500})
//	if err != nil {
//		return err // says what is missing: CAP_NET_ADMIN, /dev/net/tun, the device...
//	}
//	host, _ := stack.NewHost(stack.HostOptions{Name: "userspace"})
//	defer host.Close() // removes the NIC, which closes the device
//	host.AddNIC(dev, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/24")}})
//	// then, on the kernel's side: ip addr add 10.99.0.1/24 dev dgl0; ip link set dgl0 up
//
// The Device enforces the device's MTU on every frame in both directions
// (the kernel does not check what userspace writes), and counts every
// frame it moves or drops, with a wire.DropReason (Counters, AddDropHook):
// nothing is lost silently on this side of the device. Frames the kernel drops
// because the host reads too slowly are counted by the kernel, as the
// device's tx_dropped ("ip -s link").
//
// When the device vanishes under a running host (ip link del), Done is
// closed and Err returns an error matching ErrGone. The host the Device is
// attached to watches it (see stack.StoppingLink): it disables the NIC and
// fails the conns bound to its addresses or to a wildcard address, whose
// calls then fail with errors matching net.ErrClosed and ENETDOWN (a dgram
// socket gets 'error' "recvmsg ENETDOWN"). Frames written afterwards are
// dropped as wire.DropLinkDown, and new sockets' sends fail with
// ENETUNREACH.
//
// Opening a device needs read and write access to /dev/net/tun and
// CAP_NET_ADMIN (or a device made for the user with "ip tuntap add ...
// user NAME"); without them Open fails with ErrPermission, saying which is
// missing. A device Open attached to gets back, on Close, the MTU it had. Open works in the network namespace of the calling OS
// thread, which lets tests keep devices out of the host's namespace (see
// package tuntest).
package tun
