package dgram

import (
	"context"
	"net"
	"net/netip"
)

// Network is where sockets live: a virtual host (*stack.Host satisfies it) or
// the operating system's own sockets ([System]).
//
// The interface uses only standard-library types so that implementations in
// other packages satisfy it without importing dgram.
//
// Errors from OpenUDP must unwrap (errors.As) to a syscall.Errno that says what
// the kernel would have said (EADDRINUSE, EADDRNOTAVAIL, EINVAL, ...); dgram
// turns it into Node's error code and message.
type Network interface {
	// OpenUDP creates a UDP endpoint of family network ("udp4" or "udp6")
	// bound to laddr (an unspecified address means all interfaces, port 0 an
	// ephemeral port). reuseAddr is SO_REUSEADDR; ipv6Only is IPV6_V6ONLY for
	// "udp6" (otherwise a "udp6" endpoint is dual-stack and sees IPv4 peers as
	// ::ffff:a.b.c.d).
	//
	// The returned conn must also implement [Conn]'s extra methods.
	OpenUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (net.PacketConn, error)

	// LookupNetIP resolves host for network "ip4" or "ip6", with the
	// semantics of (*net.Resolver).LookupNetIP. A name that does not exist
	// returns a *net.DNSError with IsNotFound set.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Conn is what dgram needs from the net.PacketConn that [Network.OpenUDP]
// returns. *net.UDPConn has every method but SetBroadcast.
type Conn interface {
	net.PacketConn
	// ReadFromUDPAddrPort reads one datagram; IPv4 peers of a dual-stack
	// "udp6" endpoint are returned as IPv4-mapped IPv6 addresses.
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	// WriteToUDPAddrPort sends one datagram to addr.
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	// SetBroadcast sets SO_BROADCAST.
	SetBroadcast(on bool) error
}
