package stack

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// A UDPConn's reads, from its own receive queue (udp_rcv.go), and its
// registration in the host's demux table (udp_demux.go).

// ReadFrom implements net.PacketConn. The address is a *net.UDPAddr.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromUDPAddrPort reads one datagram into b, blocking until one
// arrives, the read deadline passes or the conn is closed. A datagram
// longer than b is truncated to len(b), as on Linux. On a dual-stack "udp6"
// conn, IPv4 peers are reported as IPv4-mapped addresses. A pending error
// (ECONNREFUSED after an ICMP port unreachable answered a connected conn)
// is returned once, by this read or by the next write, whichever comes
// first.
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		n, from, err := c.tryRead(b)
		if err != errWouldBlock {
			return n, from, err
		}
		if err := c.waitRead(); err != nil {
			return 0, netip.AddrPort{}, err
		}
	}
}

// waitRead waits until the conn may be readable; it fails when the conn
// closes or the read deadline passes. c.readMu is held.
func (c *UDPConn) waitRead() error {
	select {
	case <-c.rch:
		return nil
	case <-c.closed:
		return c.closedErr("read")
	case <-c.rdeadline.wait():
		return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.ErrDeadlineExceeded}
	}
}

// NotifyReadable calls fn whenever the conn may have become readable (a
// datagram or a pending error arrived), on the goroutine that delivered it,
// until stop is called. fn must not block or call back into the conn.
func (c *UDPConn) NotifyReadable(fn func()) (stop func()) {
	e := waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.EventErr, func(waiter.EventMask) { fn() })
	c.wq.EventRegister(&e)
	var once sync.Once
	return func() { once.Do(func() { c.wq.EventUnregister(&e) }) }
}

// errWouldBlock is what a read that would block returns: one shared value,
// since readers meet it all the time.
var errWouldBlock = &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", syscall.EAGAIN)}

// TryReadFromUDPAddrPort is ReadFromUDPAddrPort without the wait: when
// there is nothing to read it fails at once with an error matching
// syscall.EAGAIN.
func (c *UDPConn) TryReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.tryRead(b)
}

// WaitReadable blocks until a read would not block (a datagram or a
// pending error is there) or the conn is closed (it then returns an error
// matching net.ErrClosed). It consumes nothing: the datagram or error is
// left for the next read, or the error for a write made meanwhile.
func (c *UDPConn) WaitReadable() error {
	for {
		if c.isClosed() {
			return c.closedErr("read")
		}
		if c.readable() {
			return nil
		}
		select {
		case <-c.rch:
		case <-c.closed:
		}
	}
}

// readable reports whether a read would return at once.
func (c *UDPConn) readable() bool {
	if c.hasCarried.Load() || c.rx.len() > 0 {
		return true
	}
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	return c.ep.Readiness(waiter.ReadableEvents|waiter.EventErr) != 0
}

// tryRead reads one datagram or error without waiting; c.readMu is held.
// A pending error comes first, as from gVisor's endpoint and Linux's
// sock_error: one a replaced endpoint left, then the endpoint's own. A
// datagram longer than b is truncated; an empty b takes the datagram and
// returns 0 with its sender, as recvfrom does.
func (c *UDPConn) tryRead(b []byte) (int, netip.AddrPort, error) {
	return c.tryReadMeta(b, nil)
}

// rxMsg is what a read learns about the datagram it returns besides its
// bytes, for ReadMsgUDP: ok is false when nothing is known but its sender.
type rxMsg struct {
	ok       bool
	size     int // the datagram's length, which b may have truncated
	dst      tcpip.Address
	nic      tcpip.NICID
	ttl, tos uint8
}

// tryReadMeta is tryRead that also fills m, if not nil.
func (c *UDPConn) tryReadMeta(b []byte, m *rxMsg) (int, netip.AddrPort, error) {
	if c.isClosed() {
		return 0, netip.AddrPort{}, c.closedErr("read")
	}
	if c.hasCarried.Load() {
		if tcpipErr := c.takeCarriedErr(); tcpipErr != nil {
			return 0, netip.AddrPort{}, opError("read", nil, nil, tcpipErr)
		}
	}
	// The endpoint has the pending error, if any; its own queue is empty
	// but for a datagram that came in while the conn changed its binding
	// (see discardStrays).
	c.rbuf = b // a field: a local's address would escape, one allocation a read
	c.epMu.RLock()
	res, tcpipErr := c.ep.Read(&c.rbuf, tcpip.ReadOptions{NeedRemoteAddr: true})
	c.epMu.RUnlock()
	c.rbuf = nil
	switch tcpipErr.(type) {
	case nil:
		if m != nil {
			*m = rxMsg{size: res.Total}
		}
		return res.Count, c.toAddrPort(res.RemoteAddr), nil
	case *tcpip.ErrWouldBlock:
	case *tcpip.ErrClosedForReceive:
		return 0, netip.AddrPort{}, c.closedErr("read")
	default:
		return 0, netip.AddrPort{}, opError("read", c.LocalAddr(), nil, tcpipErr)
	}
	d, ok := c.rx.pop()
	if !ok {
		if c.isClosed() {
			return 0, netip.AddrPort{}, c.closedErr("read")
		}
		return 0, netip.AddrPort{}, errWouldBlock
	}
	n := copy(b, (*d.buf)[:d.n])
	putPayload(d.buf)
	if m != nil {
		*m = rxMsg{ok: true, size: d.n, dst: d.dst, nic: d.from.NIC, ttl: d.ttl, tos: d.tos}
	}
	return n, c.toAddrPort(d.from), nil
}

// registerLocked puts the endpoint's current binding in the host's demux
// table, as gVisor's endpoint has registered it in gVisor's demuxer (see
// udp_demux.go): under its endpoint ID, for IPv4 when its addresses are
// IPv4 ones, else for IPv6, and for IPv4 too when a dual-stack conn is
// bound to the wildcard address and not connected. A conn that is closed,
// or unbound by Disconnect, is taken out. c.epMu is held.
func (c *UDPConn) registerLocked() {
	info, ok := c.ep.Info().(*stack.TransportEndpointInfo)
	if c.unbound || c.isClosed() || !ok || info.ID.LocalPort == 0 {
		c.host.udp.set(c, nil)
		return
	}
	id := info.ID
	var regs []demuxReg
	switch {
	case c.proto == ipv4.ProtocolNumber || id.LocalAddress.Len() == 4 || id.RemoteAddress.Len() == 4:
		regs = []demuxReg{{ipv4.ProtocolNumber, id}}
	case id.LocalAddress.Len() == 0 && id.RemotePort == 0 && !c.ep.SocketOptions().GetV6Only():
		regs = []demuxReg{{ipv6.ProtocolNumber, id}, {ipv4.ProtocolNumber, id}}
	default:
		regs = []demuxReg{{ipv6.ProtocolNumber, id}}
	}
	c.host.udp.set(c, regs)
}
