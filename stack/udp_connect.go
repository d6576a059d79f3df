package stack

import (
	"net"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// carriedDatagram is a datagram read out of an endpoint that Disconnect
// replaced, waiting to be read from the conn.
type carriedDatagram struct {
	data []byte
	from tcpip.FullAddress
	cm   tcpip.ReceivableControlMessages
}

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
		if tcpipErr := c.ep.Disconnect(); tcpipErr != nil {
			return opError("connect", nil, nil, tcpipErr)
		}
		return nil
	}
	// gVisor would keep the port: replace the endpoint by an unbound copy.
	ep, tcpipErr := c.copyEndpoint(c.ep)
	if tcpipErr != nil {
		return opError("connect", nil, nil, tcpipErr)
	}
	c.drain(c.ep)
	c.ep.Close()
	c.ep = ep
	c.unbound = true
	c.carryMu.Lock()
	pending := len(c.carried) > 0 || c.carriedErr != nil
	c.carryMu.Unlock()
	if pending {
		c.wq.Notify(waiter.ReadableEvents)
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

// drain moves what old holds (its pending error, then its datagrams) to
// the carried queue.
func (c *UDPConn) drain(old tcpip.Endpoint) {
	c.carryMu.Lock()
	defer c.carryMu.Unlock()
	for {
		buf := make([]byte, 0x10000)
		w := tcpip.SliceWriter(buf)
		res, tcpipErr := old.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
		switch tcpipErr.(type) {
		case nil:
			c.carried = append(c.carried, carriedDatagram{
				data: buf[:res.Count:res.Count], from: res.RemoteAddr, cm: res.ControlMessages,
			})
		case *tcpip.ErrWouldBlock, *tcpip.ErrClosedForReceive:
			return
		default:
			c.carriedErr = tcpipErr
		}
	}
}

// readCarried returns what a replaced endpoint left, if anything.
func (c *UDPConn) readCarried(b []byte) (ok bool, n int, from netip.AddrPort, err error) {
	for {
		c.carryMu.Lock()
		if tcpipErr := c.carriedErr; tcpipErr != nil {
			c.carriedErr = nil
			c.carryMu.Unlock()
			return true, 0, netip.AddrPort{}, opError("read", nil, nil, tcpipErr)
		}
		if len(c.carried) == 0 {
			c.carryMu.Unlock()
			return false, 0, netip.AddrPort{}, nil
		}
		d := c.carried[0]
		c.carried[0] = carriedDatagram{}
		c.carried = c.carried[1:]
		c.carryMu.Unlock()
		// Not under carryMu: admit takes mcMu, toAddrPort the host's lock.
		if !c.admit(d.from.Addr, d.cm) {
			continue
		}
		return true, copy(b, d.data), c.toAddrPort(d.from), nil
	}
}

// takeCarriedErr returns and forgets the pending error a replaced endpoint
// left, for a write to report.
func (c *UDPConn) takeCarriedErr() tcpip.Error {
	c.carryMu.Lock()
	defer c.carryMu.Unlock()
	tcpipErr := c.carriedErr
	c.carriedErr = nil
	return tcpipErr
}
