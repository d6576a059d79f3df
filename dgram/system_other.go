//go:build !linux || 386

package dgram

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

// OpenUDP implements Network. Kernel sockets are only supported on Linux
// (not 386): here it always fails with an error that unwraps to ENOSYS.
func (systemNetwork) OpenUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (net.PacketConn, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(laddr),
		Err: fmt.Errorf("dgram.System on %s/%s: %w", runtime.GOOS, runtime.GOARCH, syscall.ENOSYS)}
}
