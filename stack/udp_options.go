package stack

import (
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Socket buffer limits, as Linux applies them to SO_RCVBUF and SO_SNDBUF:
// the value asked for is capped at net.core.rmem_max (wmem_max), then
// doubled, and never below the minimum.
const (
	// MaxSocketBuffer is the host's net.core.rmem_max and wmem_max: the
	// largest value SetReadBuffer and SetWriteBuffer honour (4 MiB, as on
	// the machines Node's behaviour was measured on).
	MaxSocketBuffer     = 4 << 20
	defaultSocketBuffer = 212992 // net.core.rmem_default and wmem_default
	minRecvBuffer       = 2304   // SOCK_MIN_RCVBUF
	minSendBuffer       = 4608   // SOCK_MIN_SNDBUF
)

// SetBroadcast sets SO_BROADCAST: without it, sending to a broadcast
// address fails with EACCES.
func (c *UDPConn) SetBroadcast(on bool) error {
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	c.ep.SocketOptions().SetBroadcast(on)
	return nil
}

// SetTTL sets the unicast TTL (IPv4) or hop limit (IPv6), 1..255, else
// EINVAL.
func (c *UDPConn) SetTTL(ttl int) error {
	if ttl < 1 || ttl > 255 {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	opt := tcpip.IPv4TTLOption
	if c.family == "udp6" {
		opt = tcpip.IPv6HopLimitOption
	}
	return c.setInt(opt, ttl)
}

// SetMulticastTTL sets the TTL (hop limit) of multicast datagrams, 0..255,
// else EINVAL. The default is 1: multicast stays on the local link.
func (c *UDPConn) SetMulticastTTL(ttl int) error {
	if ttl < 0 || ttl > 255 {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	return c.setInt(tcpip.MulticastTTLOption, ttl)
}

func (c *UDPConn) setInt(opt tcpip.SockOptInt, v int) error {
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	tcpipErr := c.ep.SetSockOptInt(opt, v)
	c.routesGen.Add(1) // cached routes carry the TTLs
	c.epMu.RUnlock()
	if tcpipErr != nil {
		return opError("set", c.LocalAddr(), nil, tcpipErr)
	}
	return nil
}

// SetMulticastLoopback sets whether multicast datagrams sent by this conn
// are also delivered to the sending host's own members of the group.
func (c *UDPConn) SetMulticastLoopback(on bool) error {
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	c.ep.SocketOptions().SetMulticastLoop(on)
	c.routesGen.Add(1) // routes are found with it
	return nil
}

// SetMulticastInterface chooses the interface multicast datagrams leave
// through, as IP_MULTICAST_IF and IPV6_MULTICAST_IF do on Linux. An IPv4
// iface names the interface by one of its addresses (0.0.0.0: the
// routing table decides again); an IPv6 iface names it by its zone, an
// interface name or index, and its address is ignored (no zone, or an
// unknown one: the routing table decides). On a "udp4" conn an IPv6 iface
// fails with ENOPROTOOPT; an IPv4 address that is not the host's fails with
// EADDRNOTAVAIL.
func (c *UDPConn) SetMulticastInterface(iface netip.Addr) error {
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	var tcpipErr tcpip.Error
	switch {
	case iface.Is4():
		opt := tcpip.MulticastInterfaceOption{}
		if !iface.IsUnspecified() {
			if !isUnicast4(iface) {
				return errnoError("set", c.LocalAddr(), nil, syscall.EADDRNOTAVAIL)
			}
			opt.InterfaceAddr = toTCPIPAddr(iface)
			if c.family == "udp6" {
				opt.InterfaceAddr = tcpip.AddrFrom16(iface.As16())
			}
		}
		tcpipErr = c.ep.SetSockOpt(&opt)
	case iface.Is6():
		if c.family == "udp4" {
			return errnoError("set", c.LocalAddr(), nil, syscall.ENOPROTOOPT)
		}
		tcpipErr = c.ep.SetSockOptInt(tcpip.IPv6MulticastInterfaceOption, int(c.host.zoneNIC(iface.Zone())))
	default:
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	if tcpipErr != nil {
		return opError("set", c.LocalAddr(), nil, tcpipErr)
	}
	return nil
}

// SetReadBuffer sets the receive buffer size (SO_RCVBUF) as Linux does: the
// value is capped at MaxSocketBuffer, then doubled, and never below 2304.
func (c *UDPConn) SetReadBuffer(bytes int) error {
	if bytes < 0 {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	c.ep.SocketOptions().SetReceiveBufferSize(int64(linuxBuffer(bytes, minRecvBuffer)), true)
	c.rx.limit.Store(c.ep.SocketOptions().GetReceiveBufferSize())
	return nil
}

// SetWriteBuffer sets the send buffer size (SO_SNDBUF) as Linux does:
// capped at MaxSocketBuffer, doubled, and never below 4608.
func (c *UDPConn) SetWriteBuffer(bytes int) error {
	if bytes < 0 {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	if c.isClosed() {
		return c.closedErr("set")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	c.ep.SocketOptions().SetSendBufferSize(int64(linuxBuffer(bytes, minSendBuffer)), true)
	return nil
}

func linuxBuffer(bytes, floor int) int {
	return max(2*min(bytes, MaxSocketBuffer), floor)
}

// ReadBufferSize returns the receive buffer size (as getsockopt SO_RCVBUF).
func (c *UDPConn) ReadBufferSize() (int, error) {
	if c.isClosed() {
		return 0, c.closedErr("get")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	return int(c.ep.SocketOptions().GetReceiveBufferSize()), nil
}

// WriteBufferSize returns the send buffer size (as getsockopt SO_SNDBUF).
func (c *UDPConn) WriteBufferSize() (int, error) {
	if c.isClosed() {
		return 0, c.closedErr("get")
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	return int(c.ep.SocketOptions().GetSendBufferSize()), nil
}
