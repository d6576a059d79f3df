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

// The optional capabilities below extend Conn. dgram uses each one the conn
// has; a method whose capability is missing fails with ENOTSUP (Node's
// "ENOTSUP"). Both *stack.UDPConn and the conns of [System] have them all.
// Like Conn's, their errors must unwrap to the syscall.Errno Linux would
// give.

// ConnectConn is a conn that can have a default peer (Node's connect).
type ConnectConn interface {
	// Connect sets the default peer (connect(2)): Write sends to it and
	// only its datagrams are received. An ICMP port unreachable answer then
	// makes the next read or write fail with ECONNREFUSED.
	Connect(addr netip.AddrPort) error
	// Disconnect undoes Connect with Linux's semantics: a local address or
	// port that bind did not fix is forgotten (LocalAddrPort reports port
	// 0 until the next write binds a new one).
	Disconnect() error
	// Write sends b to the connected peer.
	Write(b []byte) (int, error)
	// LocalAddrPort is the current local address (it changes with Connect
	// and Disconnect); RemoteAddrPort the peer, or the zero AddrPort.
	LocalAddrPort() netip.AddrPort
	RemoteAddrPort() netip.AddrPort
}

// OptionConn is a conn whose IP options can be set.
type OptionConn interface {
	// SetTTL sets the unicast TTL or hop limit, 1..255, else EINVAL.
	SetTTL(ttl int) error
	// SetMulticastTTL sets the multicast TTL or hop limit, 0..255, else
	// EINVAL.
	SetMulticastTTL(ttl int) error
	// SetMulticastLoopback sets IP_MULTICAST_LOOP (IPV6_MULTICAST_LOOP).
	SetMulticastLoopback(on bool) error
}

// MulticastConn is a conn that can join multicast groups. An interface is
// named by an address, as libuv names it: an IPv4 address of the
// interface, or for IPv6 any address whose zone is the interface's name
// (only the zone counts). An invalid (zero) interface lets the system
// choose by route.
type MulticastConn interface {
	// SetMulticastInterface sets IP_MULTICAST_IF (IPV6_MULTICAST_IF for
	// an IPv6 iface).
	SetMulticastInterface(iface netip.Addr) error
	// JoinGroup and LeaveGroup are IP_ADD_MEMBERSHIP and
	// IP_DROP_MEMBERSHIP (IPV6_JOIN_GROUP and IPV6_LEAVE_GROUP).
	JoinGroup(group, iface netip.Addr) error
	LeaveGroup(group, iface netip.Addr) error
	// JoinSourceSpecificGroup and LeaveSourceSpecificGroup are
	// IP_ADD_SOURCE_MEMBERSHIP and IP_DROP_SOURCE_MEMBERSHIP
	// (MCAST_JOIN_SOURCE_GROUP and MCAST_LEAVE_SOURCE_GROUP).
	JoinSourceSpecificGroup(group, source, iface netip.Addr) error
	LeaveSourceSpecificGroup(group, source, iface netip.Addr) error
}

// BufferConn is a conn whose socket buffers can be sized, with Linux's
// semantics: the size set is doubled, and the getters report what the
// system keeps.
type BufferConn interface {
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
	ReadBufferSize() (int, error)
	WriteBufferSize() (int, error)
}

// PollConn is a conn that can be read the way libuv reads: wait until
// something is there, then read without blocking. dgram uses it so that a
// pending socket error (ECONNREFUSED) goes to a send issued before the loop
// has handled the read, as in Node, rather than to whichever of the reader
// and the sender reaches the socket first.
type PollConn interface {
	// WaitReadable blocks until a datagram or a pending error is there,
	// or the conn is closed (an error matching net.ErrClosed). It consumes
	// nothing.
	WaitReadable() error
	// TryReadFromUDPAddrPort is ReadFromUDPAddrPort that fails with an
	// error matching syscall.EAGAIN instead of blocking.
	TryReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
}

// NotifyConn is a PollConn that calls a function when it may have become
// readable (a datagram or a pending error arrived), so that the loop can
// read it itself, as libuv reads a file descriptor, with no goroutine per
// socket. Virtual hosts' conns are NotifyConns.
type NotifyConn interface {
	PollConn
	// NotifyReadable registers fn; stop unregisters it. fn runs on the
	// network's goroutine and must only signal: it may not block or call
	// back into the conn.
	NotifyReadable(fn func()) (stop func())
}
