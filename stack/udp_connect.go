package stack

import (
	"net"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/dgramlab/dgramlab/wire"
)

// Connect sets the conn's default peer and makes it receive only from it;
// an ICMP port-unreachable answer then makes the next read or write fail
// with ECONNREFUSED, as on Linux. A conn whose port Disconnect gave back is
// bound to a new ephemeral port first.
func (c *UDPConn) Connect(addr netip.AddrPort) error {
	if c.isClosed() {
		return c.closedErr("connect")
	}
	raddr := net.UDPAddrFromAddrPort(addr)
	if !addr.Addr().IsValid() {
		return errnoError("connect", c.LocalAddr(), raddr, syscall.EINVAL)
	}
	full, errno := c.host.fullAddr(c.family, addr, false)
	if errno != 0 {
		return errnoError("connect", c.LocalAddr(), raddr, errno)
	}
	if err := c.rlockBound("connect", raddr); err != nil {
		return err
	}
	if a := addr.Addr().Unmap(); a.Is4() && !c.ep.SocketOptions().GetBroadcast() &&
		(a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || c.host.s.IsSubnetBroadcast(0, ipv4.ProtocolNumber, toTCPIPAddr(a))) {
		// Linux refuses to connect to a broadcast address without
		// SO_BROADCAST; gVisor only refuses the writes.
		c.epMu.RUnlock()
		return errnoError("connect", c.LocalAddr(), raddr, syscall.EACCES)
	}
	tcpipErr := c.ep.Connect(full)
	c.registerLocked()
	c.routesGen.Add(1)
	c.epMu.RUnlock()
	if tcpipErr != nil {
		return opError("connect", c.LocalAddr(), raddr, tcpipErr)
	}
	return nil
}

// Disconnect undoes Connect, like connect(2) with AF_UNSPEC on Linux:
// the conn receives from anyone again, and it forgets what its bind did not
// fix. A local address bound as unspecified goes back to unspecified, and a
// port the stack chose (the conn was opened with port 0) is given back:
// LocalAddrPort then reports port 0, nothing is received, and the next
// write or Connect binds a new ephemeral port. Datagrams already received,
// and a pending error, are kept for the next read. Disconnecting a conn that
// is not connected does nothing.
func (c *UDPConn) Disconnect() error {
	if c.isClosed() {
		return c.closedErr("connect")
	}
	// The memberships are copied to a new endpoint below: mcMu first, the
	// order JoinGroup takes them in.
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	c.epMu.Lock()
	defer c.epMu.Unlock()
	if c.unbound {
		return nil
	}
	if _, tcpipErr := c.ep.GetRemoteAddress(); tcpipErr != nil {
		return nil // not connected
	}
	c.routesGen.Add(1)
	if c.bindAddr.Port != 0 {
		// gVisor goes back to the bound address and port, as Linux does
		// for a port that bind fixed.
		tcpipErr := c.ep.Disconnect()
		c.registerLocked()
		if tcpipErr != nil {
			return opError("connect", nil, nil, tcpipErr)
		}
		return nil
	}
	// gVisor would keep the port: replace the endpoint by an unbound copy.
	ep, tcpipErr := c.copyEndpoint(c.ep)
	if tcpipErr != nil {
		return opError("connect", nil, nil, tcpipErr)
	}
	// The old endpoint goes first, then its registration: a datagram that
	// comes in meanwhile still reaches the conn's queue, as if it had come
	// before the Disconnect.
	c.carry(c.ep)
	c.keepStrays(c.ep)
	c.ep.Close()
	c.ep = ep
	c.unbound = true
	c.registerLocked()
	if c.hasCarried.Load() {
		c.wq.Notify(waiter.EventErr)
	}
	return nil
}

// rlockBound read-locks c.epMu with the endpoint bound, binding it to
// bindAddr first if Disconnect left it unbound. The caller unlocks.
func (c *UDPConn) rlockBound(op string, raddr net.Addr) error {
	return c.rlockBoundLazy(op, func() net.Addr { return raddr })
}

// rlockBoundLazy is rlockBound with the address for errors built only if
// one happens.
func (c *UDPConn) rlockBoundLazy(op string, raddr func() net.Addr) error {
	for {
		c.epMu.RLock()
		if !c.unbound {
			return nil
		}
		c.epMu.RUnlock()
		c.epMu.Lock()
		if c.unbound {
			if tcpipErr := c.ep.Bind(c.bindAddr); tcpipErr != nil {
				c.epMu.Unlock()
				return opError(op, nil, raddr(), tcpipErr)
			}
			c.unbound = false
			c.registerLocked()
			c.routesGen.Add(1)
		}
		c.epMu.Unlock()
	}
}

// copyEndpoint returns a new, unbound endpoint with old's options and the
// conn's multicast memberships; c.mcMu is held.
func (c *UDPConn) copyEndpoint(old tcpip.Endpoint) (tcpip.Endpoint, tcpip.Error) {
	ep, tcpipErr := c.host.s.NewEndpoint(udp.ProtocolNumber, c.proto, &c.wq)
	if tcpipErr != nil {
		return nil, tcpipErr
	}
	oo, no := old.SocketOptions(), ep.SocketOptions()
	no.SetReuseAddress(oo.GetReuseAddress())
	if c.proto == ipv6.ProtocolNumber {
		no.SetV6Only(oo.GetV6Only())
	}
	no.SetBroadcast(oo.GetBroadcast())
	no.SetMulticastLoop(oo.GetMulticastLoop())
	no.SetReceivePacketInfo(oo.GetReceivePacketInfo())
	no.SetIPv6ReceivePacketInfo(oo.GetIPv6ReceivePacketInfo())
	no.SetReceiveBufferSize(oo.GetReceiveBufferSize(), true)
	no.SetSendBufferSize(oo.GetSendBufferSize(), true)
	for _, opt := range []tcpip.SockOptInt{tcpip.MTUDiscoverOption, tcpip.IPv4TTLOption, tcpip.IPv6HopLimitOption,
		tcpip.MulticastTTLOption, tcpip.IPv6MulticastInterfaceOption} {
		if v, tcpipErr := old.GetSockOptInt(opt); tcpipErr == nil {
			ep.SetSockOptInt(opt, v)
		}
	}
	var mif tcpip.MulticastInterfaceOption
	if old.GetSockOpt(&mif) == nil {
		ep.SetSockOpt(&mif)
	}
	for k := range c.groups {
		ep.SetSockOpt(&tcpip.AddMembershipOption{NIC: k.nic, MulticastAddr: toTCPIPAddr(k.group)})
	}
	return ep, nil
}

// carry keeps the pending error of old, an endpoint Disconnect replaces,
// for the next read or write. (The conn's datagrams are in its own queue,
// which the endpoint does not hold.)
func (c *UDPConn) carry(old tcpip.Endpoint) {
	tcpipErr := old.LastError()
	if tcpipErr == nil {
		return
	}
	c.carryMu.Lock()
	c.carriedErr = tcpipErr
	c.hasCarried.Store(true)
	c.carryMu.Unlock()
}

// keepStrays moves the datagrams old's own queue holds (see
// discardStrays) to the conn's queue.
func (c *UDPConn) keepStrays(old tcpip.Endpoint) {
	for {
		buf := getPayload(header.UDPMaximumSize)
		w := tcpip.SliceWriter(*buf)
		res, tcpipErr := old.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
		if tcpipErr != nil {
			putPayload(buf)
			return
		}
		small := getPayload(res.Count)
		copy(*small, (*buf)[:res.Count])
		putPayload(buf)
		if !c.rx.push(rxDatagram{buf: small, n: res.Count, from: res.RemoteAddr, cost: rcvTruesize(res.Count)}) {
			c.host.drops.add(wire.DropClosedUnread, 1)
		}
	}
}

// takeCarriedErr returns and forgets the pending error a replaced endpoint
// left, for a write to report.
func (c *UDPConn) takeCarriedErr() tcpip.Error {
	c.carryMu.Lock()
	defer c.carryMu.Unlock()
	tcpipErr := c.carriedErr
	c.carriedErr = nil
	c.hasCarried.Store(false)
	return tcpipErr
}
