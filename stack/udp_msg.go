package stack

import (
	"net"
	"net/netip"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The rest of *net.UDPConn's methods: ReadFromUDP, WriteToUDP, and the
// message forms with control messages in Linux's encoding (cmsg.go).

// msgTrunc is Linux's MSG_TRUNC, which recvmsg sets in its flags when the
// datagram was longer than the buffer.
const msgTrunc = 0x20

// SetControlMessage turns on (or off) the control messages in flags for
// the conn's ReadMsgUDP and ReadMsgUDPAddrPort: what a Linux socket gives
// with IP_PKTINFO, IP_RECVTTL and IP_RECVTOS (udp4) or IPV6_RECVPKTINFO,
// IPV6_RECVHOPLIMIT and IPV6_RECVTCLASS (udp6). The messages are in
// Linux's bytes, which ipv4.ControlMessage.Parse and
// ipv6.ControlMessage.Parse of golang.org/x/net read. (x/net's own
// SetControlMessage needs the conn's file descriptor, which a virtual
// conn does not have: call this one instead.)
func (c *UDPConn) SetControlMessage(flags ControlFlags, on bool) error {
	if c.isClosed() {
		return c.closedErr("set")
	}
	for {
		old := c.ctlFlags.Load()
		next := old | uint32(flags)
		if !on {
			next = old &^ uint32(flags)
		}
		if c.ctlFlags.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// ReadFromUDP is like ReadFromUDPAddrPort, with a *net.UDPAddr.
func (c *UDPConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, ap, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, udpAddrWithZone(ap), nil
}

// ReadMsgUDP is like ReadMsgUDPAddrPort, with a *net.UDPAddr.
func (c *UDPConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	var ap netip.AddrPort
	n, oobn, flags, ap, err = c.ReadMsgUDPAddrPort(b, oob)
	if err == nil {
		addr = udpAddrWithZone(ap)
	}
	return n, oobn, flags, addr, err
}

// ReadMsgUDPAddrPort reads one datagram into b and its control messages
// (those SetControlMessage turned on) into oob, as recvmsg does: flags has
// MSG_TRUNC (0x20) when the datagram was longer than b, and MSG_CTRUNC
// (0x8) when its control messages did not fit in oob. It waits as
// ReadFromUDPAddrPort does.
func (c *UDPConn) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	var m rxMsg
	for {
		n, addr, err = c.tryReadMeta(b, &m)
		if err != errWouldBlock {
			break
		}
		if err = c.waitRead(); err != nil {
			return 0, 0, 0, netip.AddrPort{}, err
		}
	}
	if err != nil {
		return 0, 0, 0, netip.AddrPort{}, err
	}
	if m.size > len(b) {
		flags |= msgTrunc
	}
	if cf := ControlFlags(c.ctlFlags.Load()); cf != 0 && m.ok {
		meta := rxMeta{dst: fromTCPIPAddr(m.dst), ifindex: int32(m.nic), ttl: m.ttl, tos: m.tos, specDst: c.specDst(m.nic, m.dst)}
		var cflags int
		oobn, cflags = putControl(oob, cf, c.family == "udp6", &meta)
		flags |= cflags
	}
	return n, oobn, flags, addr, nil
}

// specDst is IP_PKTINFO's ipi_spec_dst for a datagram to dst that came in
// through nic: dst itself when it is unicast, else the NIC's first IPv4
// address (Linux's fib_compute_spec_dst, for a host that does not route).
func (c *UDPConn) specDst(nic tcpip.NICID, dst tcpip.Address) netip.Addr {
	if dst.Len() != 4 || (dst != header.IPv4Broadcast && !header.IsV4MulticastAddress(dst) && !c.host.s.IsSubnetBroadcast(nic, header.IPv4ProtocolNumber, dst)) {
		return netip.Addr{}
	}
	if n := c.host.nicFor(nic); n != nil {
		for _, p := range n.Addresses() {
			if p.Addr().Is4() {
				return p.Addr()
			}
		}
	}
	return netip.Addr{}
}

// WriteToUDP is like WriteToUDPAddrPort, with a *net.UDPAddr.
func (c *UDPConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return c.WriteTo(b, nil)
	}
	return c.WriteTo(b, addr)
}

// WriteMsgUDP is like WriteMsgUDPAddrPort, with a *net.UDPAddr; a nil addr
// writes to the connected peer.
func (c *UDPConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	var ap netip.AddrPort
	if addr != nil {
		if addr.Port < 0 || addr.Port > 0xffff {
			return 0, 0, errnoError("write", c.LocalAddr(), addr, syscall.EINVAL)
		}
		ap = addr.AddrPort()
		if addr.Zone != "" {
			ap = netip.AddrPortFrom(ap.Addr().WithZone(addr.Zone), ap.Port())
		}
	}
	return c.WriteMsgUDPAddrPort(b, oob, ap)
}

// WriteMsgUDPAddrPort sends b to addr (or, when addr is the zero AddrPort,
// to the connected peer) with the control messages in oob, as sendmsg
// does: IP_PKTINFO or IPV6_PKTINFO (the source address and interface),
// IP_TTL or IPV6_HOPLIMIT, IP_TOS or IPV6_TCLASS, in Linux's encoding (as
// ipv4.ControlMessage.Marshal and ipv6.ControlMessage.Marshal write them).
// A message Linux does not know fails with EINVAL; a source address that
// is not the host's with ENETUNREACH (IPv4) or EINVAL (IPv6), an interface
// it does not have with ENODEV. With control messages the destination must
// be a unicast address (broadcast and multicast ones: EOPNOTSUPP).
func (c *UDPConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	to := addr
	if !to.IsValid() {
		to = c.RemoteAddrPort()
		if !to.IsValid() {
			return 0, 0, errnoError("write", c.LocalAddr(), nil, syscall.EDESTADDRREQ)
		}
	}
	if len(oob) == 0 {
		if !addr.IsValid() {
			n, err = c.Write(b)
		} else {
			n, err = c.WriteToUDPAddrPort(b, addr)
		}
		return n, 0, err
	}
	raddr := net.UDPAddrFromAddrPort(to)
	sm, err := parseSendControl(oob, sendPathFor(c.family == "udp6", to.Addr()))
	if err != nil {
		return 0, 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: raddr, Err: err}
	}
	if sm == (sendMeta{}) {
		n, err = c.WriteToUDPAddrPort(b, to)
		return n, len(oob), err
	}
	if to.Port() == 0 {
		return 0, 0, errnoError("write", c.LocalAddr(), raddr, syscall.EINVAL)
	}
	full, errno := c.host.fullAddr(c.family, to, false)
	if errno != 0 {
		return 0, 0, errnoError("write", c.LocalAddr(), raddr, errno)
	}
	n, err = c.writeMeta(b, full, sm, raddr)
	if err != nil {
		return 0, 0, err
	}
	return n, len(oob), nil
}

// writeMeta sends b to to as sm asks: through a route found for its source
// and interface, with its TTL and TOS.
func (c *UDPConn) writeMeta(b []byte, to tcpip.FullAddress, sm sendMeta, raddr net.Addr) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return 0, c.closedErr("write")
	}
	if tcpipErr := c.takeCarriedErr(); tcpipErr != nil {
		return 0, opError("write", c.LocalAddr(), raddr, tcpipErr)
	}
	if err := c.rlockBound("write", raddr); err != nil {
		return 0, err
	}
	defer c.epMu.RUnlock()
	if tcpipErr := c.ep.LastError(); tcpipErr != nil {
		return 0, opError("write", c.LocalAddr(), raddr, tcpipErr)
	}
	proto := header.IPv4ProtocolNumber
	if to.Addr.Len() == 16 {
		proto = header.IPv6ProtocolNumber
	}
	dst := to.Addr
	if proto == header.IPv4ProtocolNumber && (dst == header.IPv4Broadcast || header.IsV4MulticastAddress(dst)) ||
		header.IsV6MulticastAddress(dst) || dst.Unspecified() {
		return 0, errnoError("write", c.LocalAddr(), raddr, syscall.EOPNOTSUPP)
	}
	if len(b) > maxPayload(c.family) {
		return 0, errnoError("write", c.LocalAddr(), raddr, syscall.EMSGSIZE)
	}
	local, tcpipErr := c.ep.GetLocalAddress()
	if tcpipErr != nil {
		return 0, opError("write", c.LocalAddr(), raddr, tcpipErr)
	}
	nic := to.NIC
	if sm.ifindex != 0 {
		id := tcpip.NICID(sm.ifindex)
		if c.host.nicFor(id) == nil {
			return 0, errnoError("write", c.LocalAddr(), raddr, syscall.ENODEV)
		}
		if nic != 0 && nic != id && proto == header.IPv6ProtocolNumber {
			return 0, errnoError("write", c.LocalAddr(), raddr, syscall.EINVAL)
		}
		nic = id
	}
	if nic == 0 {
		nic = c.bindAddr.NIC
	}
	src := local.Addr
	if sm.src.IsValid() {
		src = toTCPIPAddr(sm.src.Unmap())
		if proto == header.IPv6ProtocolNumber {
			src = toTCPIPAddr(sm.src)
		}
		if src.Unspecified() {
			src = tcpip.Address{}
		} else if c.host.s.CheckLocalAddress(0, proto, src) == 0 {
			errno := syscall.ENETUNREACH
			if proto == header.IPv6ProtocolNumber {
				errno = syscall.EINVAL
			}
			return 0, errnoError("write", c.LocalAddr(), raddr, errno)
		}
	}
	if src.Len() != 0 && src.Len() != dst.Len() {
		src = tcpip.Address{}
	}
	r, tcpipErr := c.host.s.FindRoute(nic, src, dst, proto, c.ep.SocketOptions().GetMulticastLoop())
	if tcpipErr != nil {
		return 0, opError("write", c.LocalAddr(), raddr, tcpipErr)
	}
	defer r.Release()
	if r.IsOutboundBroadcast() && !c.ep.SocketOptions().GetBroadcast() {
		return 0, errnoError("write", c.LocalAddr(), raddr, syscall.EACCES)
	}
	rt := c.routeFields(r)
	if sm.hasTTL {
		rt.ttl = sm.ttl
	}
	if sm.hasTOS {
		rt.tos = sm.tos
	}
	for {
		tcpipErr = c.transmit(rt, b, local.Port, to.Port)
		if _, ok := tcpipErr.(*tcpip.ErrWouldBlock); !ok {
			break
		}
		c.epMu.RUnlock()
		select {
		case <-c.wch:
		case <-c.closed:
			c.epMu.RLock()
			return 0, c.closedErr("write")
		case <-c.wdeadline.wait():
			c.epMu.RLock()
			return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Err: os.ErrDeadlineExceeded}
		}
		c.epMu.RLock()
	}
	c.countSend(tcpipErr)
	if tcpipErr != nil {
		c.host.udpStats.PacketSendErrors.Increment()
		return 0, opError("write", c.LocalAddr(), raddr, tcpipErr)
	}
	c.host.udpStats.PacketsSent.Increment()
	return len(b), nil
}

// udpAddrWithZone returns ap as a *net.UDPAddr, keeping its zone.
func udpAddrWithZone(ap netip.AddrPort) *net.UDPAddr {
	a := net.UDPAddrFromAddrPort(ap)
	a.Zone = ap.Addr().Zone()
	return a
}
