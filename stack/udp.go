package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/dgramlab/dgramlab/wire"
)

// UDPConn is a UDP socket on a Host. It implements net.PacketConn, with
// the netip.AddrPort methods of *net.UDPConn, and the socket options the
// dgram package needs (the optional interfaces dgram.ConnectConn,
// OptionConn, MulticastConn, BufferConn and PollConn): Connect and
// Disconnect with Linux's semantics, TTLs, multicast groups (any-source and
// source-specific), buffer sizes, and a non-consuming WaitReadable.
//
// Errors are *net.OpError values like package net's: errors.Is(err,
// net.ErrClosed) after Close, errors.Is(err, syscall.EADDRINUSE) and so on
// for what Linux would report, and a timeout (os.ErrDeadlineExceeded) when
// a deadline passes.
//
// A UDPConn is safe for concurrent use. IPv4 datagrams larger than the path
// MTU are fragmented with DF clear and a unique IP ID per datagram, as
// Linux does. Its buffers start at Linux's default sizes (212992 bytes).
type UDPConn struct {
	host   *Host
	family string // "udp4" or "udp6"
	proto  tcpip.NetworkProtocolNumber
	wq     waiter.Queue
	closed chan struct{}
	once   sync.Once
	// down is set when the conn was closed because its network went away
	// (see fail); its errors then say so.
	down atomic.Pointer[netDownError]
	// failing is set just before the host fails the conn because the
	// device of its NIC vanished (see watchLink): a send that fails
	// meanwhile reports that.
	failing atomic.Pointer[netDownError]
	// userClosed is set by the user's first Close of a conn the network
	// closed.
	userClosed atomic.Bool

	// epMu guards the endpoint, which Disconnect may replace (see
	// udp_connect.go). Every call on ep holds it for reading; waits do
	// not hold it.
	epMu sync.RWMutex
	ep   tcpip.Endpoint
	// bindAddr is the address the conn was opened with; its port is 0 when
	// the stack chose the port, which Disconnect then gives back, as Linux
	// does.
	bindAddr tcpip.FullAddress
	// unbound is set while the endpoint is not bound to any port (after
	// such a Disconnect): the next write or Connect binds it to bindAddr.
	unbound bool

	// rx is the conn's receive queue (udp_rcv.go), fed by the host's
	// dispatcher (udp_demux.go).
	rx rxQueue
	// ctlFlags are the ControlFlags SetControlMessage turned on.
	ctlFlags atomic.Uint32

	// carryMu guards the pending error a replaced endpoint left behind,
	// served before the new endpoint's; hasCarried says there is one.
	carryMu    sync.Mutex
	carriedErr tcpip.Error
	hasCarried atomic.Bool

	// mcMu guards the multicast memberships (multicast.go).
	mcMu   sync.Mutex
	groups map[groupKey]*membership
	// ssm is set once a source-specific membership exists: reads then
	// filter datagrams by source.
	ssm atomic.Bool

	readMu    sync.Mutex
	rbuf      tcpip.SliceWriter // guarded by readMu
	rentry    waiter.Entry
	rch       chan struct{}
	rdeadline *deadline

	writeMu   sync.Mutex
	routes    routeCache // guarded by writeMu (udp_send.go)
	wentry    waiter.Entry
	wch       chan struct{}
	wbuf      bytes.Reader
	wto       tcpip.FullAddress
	wdeadline *deadline

	// routesGen counts the changes to the conn that invalidate its cached
	// routes: bind, connect, TTL (see udp_send.go).
	routesGen atomic.Uint64
	// snd accounts for the datagrams sent through cached routes.
	snd sendBuffer
}

var _ net.PacketConn = (*UDPConn)(nil)

// ListenUDP opens a UDP socket bound to laddr, like net.ListenUDP: network
// is "udp", "udp4" or "udp6"; an unspecified address binds all interfaces
// and port 0 picks an ephemeral port. A "udp6" socket is dual-stack.
func (h *Host) ListenUDP(network string, laddr netip.AddrPort) (*UDPConn, error) {
	if network == "udp" {
		network = "udp6"
		if laddr.Addr().Is4() {
			network = "udp4"
		}
	}
	return h.openUDP(network, laddr, false, false)
}

// ListenPacket is like net.ListenPacket for network "udp", "udp4" or
// "udp6" and an address "host:port" (host may be empty, an IP literal or a
// name from the host's hosts table).
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	ap, err := h.resolveAddrPort(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	c, err := h.ListenUDP(network, ap)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ResolveUDPAddr is like net.ResolveUDPAddr, with the host's hosts table.
func (h *Host) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	ap, err := h.resolveAddrPort(network, address)
	if err != nil {
		return nil, err
	}
	return net.UDPAddrFromAddrPort(ap), nil
}

func (h *Host) resolveAddrPort(network, address string) (netip.AddrPort, error) {
	return h.resolveAddrPortContext(context.Background(), network, address)
}

func (h *Host) resolveAddrPortContext(ctx context.Context, network, address string) (netip.AddrPort, error) {
	var lookupNet string
	switch network {
	case "udp":
		lookupNet = "ip"
	case "udp4":
		lookupNet = "ip4"
	case "udp6":
		lookupNet = "ip6"
	default:
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "invalid port", Addr: address}
	}
	if host == "" {
		return netip.AddrPortFrom(netip.Addr{}, uint16(port)), nil
	}
	addrs, err := h.LookupNetIP(ctx, lookupNet, host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addrs[0], uint16(port)), nil
}

// OpenUDP implements dgram.Network: it opens a UDP socket of family network
// ("udp4" or "udp6") bound to laddr, with SO_REUSEADDR and IPV6_V6ONLY as
// given.
func (h *Host) OpenUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (net.PacketConn, error) {
	c, err := h.openUDP(network, laddr, reuseAddr, ipv6Only)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (h *Host) openUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (*UDPConn, error) {
	ua := net.UDPAddrFromAddrPort(laddr)
	var proto tcpip.NetworkProtocolNumber
	switch network {
	case "udp4":
		proto = ipv4.ProtocolNumber
	case "udp6":
		proto = ipv6.ProtocolNumber
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Addr: ua, Err: net.UnknownNetworkError(network)}
	}
	full, errno := h.fullAddr(network, laddr, true)
	if errno != 0 {
		return nil, errnoError("listen", nil, ua, errno)
	}
	c := &UDPConn{host: h, family: network, proto: proto, closed: make(chan struct{}), bindAddr: full,
		rdeadline: newDeadline(), wdeadline: newDeadline()}
	ep, tcpipErr := h.s.NewEndpoint(udp.ProtocolNumber, proto, &c.wq)
	if tcpipErr != nil {
		return nil, opError("listen", nil, ua, tcpipErr)
	}
	c.ep = ep
	// DF clear and unique IP IDs: gVisor's default gives every fragment
	// DF=1 and ID 0, which lets two datagrams' fragments mix.
	ep.SetSockOptInt(tcpip.MTUDiscoverOption, int(tcpip.PMTUDiscoveryDont))
	ep.SocketOptions().SetReuseAddress(reuseAddr)
	// Linux's defaults (net.core.rmem_default and wmem_default).
	ep.SocketOptions().SetReceiveBufferSize(defaultSocketBuffer, false)
	ep.SocketOptions().SetSendBufferSize(defaultSocketBuffer, false)
	if proto == ipv6.ProtocolNumber {
		ep.SocketOptions().SetV6Only(ipv6Only)
	}
	if tcpipErr := ep.Bind(full); tcpipErr != nil {
		ep.Close()
		return nil, opError("listen", nil, ua, tcpipErr)
	}
	c.rx.limit.Store(defaultSocketBuffer)
	if err := h.track(c); err != nil {
		ep.Close()
		return nil, closedError("listen", ua)
	}
	c.registerLocked() // nobody else has c yet
	// A pending error (ICMP port unreachable on a connected conn) wakes
	// readers too: it is what their next read returns.
	c.rentry, c.rch = waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventErr)
	c.wentry, c.wch = waiter.NewChannelEntry(waiter.WritableEvents)
	c.wq.EventRegister(&c.rentry)
	c.wq.EventRegister(&c.wentry)
	return c, nil
}

// fullAddr converts an address for an endpoint of family network. For
// "udp6" an IPv4 address is used in its IPv4-mapped form only when local is
// false (sending from a dual-stack socket); binding needs the mapped form
// spelt out, as on Linux.
func (h *Host) fullAddr(network string, ap netip.AddrPort, local bool) (tcpip.FullAddress, syscall.Errno) {
	a := ap.Addr()
	full := tcpip.FullAddress{Port: ap.Port()}
	if !a.IsValid() {
		return full, 0
	}
	switch network {
	case "udp4":
		if a.Is6() && !a.Is4In6() {
			return full, syscall.EINVAL
		}
		a = a.Unmap()
	case "udp6":
		if a.Is4() {
			if local {
				return full, syscall.EINVAL
			}
			a = netip.AddrFrom16(a.As16())
		}
	}
	if z := a.Zone(); z != "" {
		n := h.NIC(z)
		if n == nil {
			if id, err := strconv.Atoi(z); err == nil {
				n = h.nicByID(tcpip.NICID(id))
			}
		}
		if n == nil {
			return full, syscall.EINVAL // as Linux for an unknown scope
		}
		full.NIC = n.id
	} else if local && a.Is6() && a.IsLinkLocalUnicast() {
		return full, syscall.EINVAL // Linux needs a scope to bind fe80::/10
	}
	if !a.IsUnspecified() || !local {
		full.Addr = toTCPIPAddr(a)
	}
	return full, 0
}

// toAddrPort converts a peer's address as Linux reports it to a socket of
// this conn's family.
func (c *UDPConn) toAddrPort(full tcpip.FullAddress) netip.AddrPort {
	a := fromTCPIPAddr(full.Addr)
	if c.family == "udp6" && a.Is4() {
		a = netip.AddrFrom16(a.As16())
	}
	if a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) && full.NIC != 0 {
		if n := c.host.nicByID(full.NIC); n != nil {
			a = a.WithZone(n.name)
		}
	}
	return netip.AddrPortFrom(a, full.Port)
}

// LocalAddr returns the bound address as a *net.UDPAddr.
func (c *UDPConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(c.LocalAddrPort())
}

// LocalAddrPort returns the bound address; the unspecified address of the
// conn's family when bound to all interfaces. Once connected it is the
// address the conn sends from; after a Disconnect that gave back a port
// the stack had chosen, the port is 0 until a write or Connect binds a new
// one, as on Linux.
func (c *UDPConn) LocalAddrPort() netip.AddrPort {
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	full := c.bindAddr
	if !c.unbound {
		var tcpipErr tcpip.Error
		if full, tcpipErr = c.ep.GetLocalAddress(); tcpipErr != nil {
			return netip.AddrPort{}
		}
	}
	if full.Addr.Len() == 0 {
		if c.family == "udp4" {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), full.Port)
		}
		return netip.AddrPortFrom(netip.IPv6Unspecified(), full.Port)
	}
	return c.toAddrPort(full)
}

// RemoteAddrPort returns the connected peer, or the zero AddrPort.
func (c *UDPConn) RemoteAddrPort() netip.AddrPort {
	c.epMu.RLock()
	defer c.epMu.RUnlock()
	if c.unbound {
		return netip.AddrPort{}
	}
	full, tcpipErr := c.ep.GetRemoteAddress()
	if tcpipErr != nil {
		return netip.AddrPort{}
	}
	return c.toAddrPort(full)
}

// RemoteAddr returns the connected peer as a *net.UDPAddr, or nil when not
// connected.
func (c *UDPConn) RemoteAddr() net.Addr {
	ap := c.RemoteAddrPort()
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// WriteTo implements net.PacketConn. addr must be a *net.UDPAddr (or any
// net.Addr whose String is "ip:port"); any other address is an error.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil {
			return 0, errnoError("write", c.LocalAddr(), nil, syscall.EDESTADDRREQ)
		}
		if a.Port < 0 || a.Port > 0xffff {
			// AddrPort would wrap it into another port.
			return 0, errnoError("write", c.LocalAddr(), a, syscall.EINVAL)
		}
		ap = a.AddrPort()
		if a.Zone != "" {
			ap = netip.AddrPortFrom(ap.Addr().WithZone(a.Zone), ap.Port())
		}
	case nil:
		return 0, errnoError("write", c.LocalAddr(), nil, syscall.EDESTADDRREQ)
	default:
		var err error
		ap, err = netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: &net.AddrError{Err: "not a UDP address", Addr: addr.String()}}
		}
	}
	return c.WriteToUDPAddrPort(b, ap)
}

// WriteToUDPAddrPort sends b as one datagram to addr. An IPv4 address on a
// dual-stack "udp6" conn is sent as IPv4.
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return 0, errnoError("write", c.LocalAddr(), net.UDPAddrFromAddrPort(addr), syscall.EINVAL)
	}
	full, errno := c.host.fullAddr(c.family, addr, false)
	if errno != 0 {
		return 0, errnoError("write", c.LocalAddr(), net.UDPAddrFromAddrPort(addr), errno)
	}
	return c.write(b, &full, addr)
}

// Write sends b to the connected peer.
func (c *UDPConn) Write(b []byte) (int, error) {
	return c.write(b, nil, netip.AddrPort{})
}

func (c *UDPConn) write(b []byte, to *tcpip.FullAddress, addr netip.AddrPort) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		// Checked under writeMu: close flushes the route cache holding it,
		// and nothing may fill it again afterwards.
		return 0, c.closedErr("write")
	}
	// raddr is only for errors: built when one happens.
	raddr := func() net.Addr { return udpAddr(addr) }
	if tcpipErr := c.takeCarriedErr(); tcpipErr != nil {
		return 0, opError("write", c.LocalAddr(), raddr(), tcpipErr)
	}
	opts := tcpip.WriteOptions{}
	if to != nil {
		c.wto = *to
		opts.To = &c.wto
	}
	for {
		if err := c.rlockBoundLazy("write", raddr); err != nil {
			return 0, err
		}
		var wto *tcpip.FullAddress
		if to != nil {
			wto = &c.wto
		}
		n, tcpipErr, handled := c.sendCached(b, wto)
		if !handled {
			c.wbuf.Reset(b)
			n, tcpipErr = c.ep.Write(&c.wbuf, opts)
		}
		c.epMu.RUnlock()
		switch tcpipErr.(type) {
		case nil:
			c.wbuf.Reset(nil)
			return int(n), nil
		case *tcpip.ErrWouldBlock:
			select {
			case <-c.wch:
			case <-c.closed:
				return 0, c.closedErr("write")
			case <-c.wdeadline.wait():
				return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Err: os.ErrDeadlineExceeded}
			}
		case *tcpip.ErrClosedForSend:
			return 0, c.closedErr("write")
		default:
			if why := c.failing.Load(); why != nil {
				return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: raddr(), Err: why}
			}
			return 0, opError("write", c.LocalAddr(), raddr(), tcpipErr)
		}
	}
}

// SetDeadline implements net.PacketConn.
func (c *UDPConn) SetDeadline(t time.Time) error {
	c.rdeadline.set(t)
	c.wdeadline.set(t)
	return nil
}

// SetReadDeadline implements net.PacketConn.
func (c *UDPConn) SetReadDeadline(t time.Time) error {
	c.rdeadline.set(t)
	return nil
}

// SetWriteDeadline implements net.PacketConn.
func (c *UDPConn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.set(t)
	return nil
}

func (c *UDPConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close closes the conn; blocked reads and writes return net.ErrClosed.
// Closing twice returns an error wrapping net.ErrClosed. The conn's
// multicast memberships end with it.
//
// The host closes a conn by itself when the network under it goes away:
// when the host is closed, or when the device of the NIC the conn uses
// vanishes (see Host.AddNIC). The conn's calls then fail with an error
// that matches both net.ErrClosed and syscall.ENETDOWN; Close still
// returns nil the first time the user calls it.
func (c *UDPConn) Close() error {
	if c.close(nil) {
		return nil
	}
	if c.down.Load() != nil && c.userClosed.CompareAndSwap(false, true) {
		return nil // the network closed it; this is the user's first Close
	}
	return closedError("close", nil)
}

// fail closes the conn because the network under it went away.
func (c *UDPConn) fail(why *netDownError) { c.close(why) }

// closedErr is the error of op on the closed conn.
func (c *UDPConn) closedErr(op string) error {
	if why := c.down.Load(); why != nil {
		return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Err: why}
	}
	return closedError(op, c.LocalAddr())
}

// close closes the conn, for why when the network failed it, and reports
// whether this call closed it. It wakes the functions registered with
// NotifyReadable, so that a reader that waits for them sees the end.
func (c *UDPConn) close(why *netDownError) bool {
	first := false
	c.once.Do(func() {
		first = true
		if why != nil {
			c.down.Store(why)
		}
		close(c.closed)
		c.wq.EventUnregister(&c.rentry)
		c.wq.EventUnregister(&c.wentry)
		c.epMu.Lock()
		// The endpoint first: datagrams for c that arrive from here on
		// either still reach c's queue (counted as closed-unread below or
		// in deliver) or find no listener, as c's port is free.
		c.host.drops.add(wire.DropClosedUnread, c.discardStrays(c.ep))
		c.ep.Close()
		c.host.udp.set(c, nil)
		c.host.dropUnread(c.discardUnreadLocked())
		c.epMu.Unlock()
		c.rdeadline.stop()
		c.wdeadline.stop()
		c.host.untrack(c)
		// A write still running holds writeMu; later ones fail as closed.
		c.writeMu.Lock()
		c.routes.flush()
		c.writeMu.Unlock()
	})
	return first
}

// discardUnreadLocked empties the conn's receive queue for good and
// returns the datagrams it held, so that closing a conn loses none
// uncounted; a datagram a delivery still brings is counted as it comes
// (see deliver). c.epMu is held.
func (c *UDPConn) discardUnreadLocked() []rxDatagram {
	c.carryMu.Lock()
	c.carriedErr = nil
	c.hasCarried.Store(false)
	c.carryMu.Unlock()
	return c.rx.close()
}

// discardStrays empties ep's own queue and returns how many datagrams it
// held. The host's dispatcher leaves it empty but for a datagram that
// gVisor's demuxer matched while the conn changed its binding, before the
// host's table followed (reads take those too).
func (c *UDPConn) discardStrays(ep tcpip.Endpoint) uint64 {
	var n uint64
	for {
		_, tcpipErr := ep.Read(io.Discard, tcpip.ReadOptions{})
		switch tcpipErr.(type) {
		case nil:
			n++
		case *tcpip.ErrWouldBlock, *tcpip.ErrClosedForReceive:
			return n
		default:
			// A pending socket error (ECONNREFUSED...): taken, go on.
		}
	}
}

// String describes the conn for logs.
func (c *UDPConn) String() string {
	return fmt.Sprintf("%s %s %v", c.host.name, c.family, c.LocalAddrPort())
}

// maxPayload is the largest UDP payload of each family.
func maxPayload(family string) int {
	if family == "udp4" {
		return 0xffff - header.IPv4MinimumSize - header.UDPMinimumSize
	}
	return 0xffff - header.UDPMinimumSize
}
