package stack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
)

var _ net.Conn = (*UDPConn)(nil)

// DialUDP opens a UDP socket connected to raddr, like net.DialUDP: network
// is "udp", "udp4" or "udp6" ("udp" picks the family of raddr); a zero
// laddr binds the unspecified address and an ephemeral port. The conn
// sends to raddr with Write and receives only from it with Read.
func (h *Host) DialUDP(network string, laddr, raddr netip.AddrPort) (*UDPConn, error) {
	if !raddr.IsValid() || raddr.Port() == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: udpAddr(raddr), Err: os.NewSyscallError("connect", syscall.EDESTADDRREQ)}
	}
	if network == "udp" {
		network = "udp6"
		if raddr.Addr().Unmap().Is4() && (!laddr.IsValid() || laddr.Addr().Unmap().Is4()) {
			network = "udp4"
		}
	}
	if !laddr.IsValid() {
		unspecified := netip.IPv4Unspecified()
		if network == "udp6" {
			unspecified = netip.IPv6Unspecified()
		}
		laddr = netip.AddrPortFrom(unspecified, 0)
	}
	c, err := h.openUDP(network, laddr, false, false)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(raddr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Dial is like net.Dial for network "udp", "udp4" or "udp6" and an address
// "host:port" (host an IP literal or a name of the host's hosts table).
func (h *Host) Dial(network, address string) (net.Conn, error) {
	return h.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context for the name lookup, with the
// signature of net.Dialer.DialContext, for libraries that take a dial
// function.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errNilContext}
	}
	raddr, err := h.resolveAddrPortContext(ctx, network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	c, err := h.DialUDP(network, netip.AddrPort{}, raddr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Read implements net.Conn: it reads one datagram, from the connected
// peer once the conn is connected (see Connect and DialUDP).
func (c *UDPConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(b)
	return n, err
}

func udpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}
