package stack

import (
	"math"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Unconnected writes through cached routes.
//
// gVisor's UDP endpoint finds a route for every datagram an unconnected
// endpoint sends: stack.FindRoute builds a new stack.Route, whose link
// address is then looked up afresh. That is about six allocations and much
// of a write's time. A UDPConn instead keeps the routes to the unicast
// destinations it sends to, and writes such datagrams through the cached
// route itself: it builds the UDP header and its checksum, and hands the
// packet to the route's IP layer, which adds the IP header (a fresh IP ID
// with DF clear), fragments, resolves the link address and sends, exactly as
// it does for the endpoint. The route, source address, TTL, TOS and DF are
// the ones the endpoint would choose, computed the same way (see
// transport/internal/network.Endpoint.AcquireContextForWrite in gVisor).
//
// Connected writes take the fast path too, to the peer, from the address
// the connect chose. Writes the fast path does not mirror go through the
// endpoint as before: broadcast, multicast, unspecified and IPv4-mapped
// destinations, payloads over 65535 bytes, and writes with an address on
// a connected conn.
//
// A cache holds routes for the host's routing state and the conn's state
// at the time it was filled: it starts over when the host's routes,
// addresses or NICs change (Host.routeGen), or when the conn's TTL, bind
// or connection change (UDPConn.routesGen). A cached route that is no
// longer valid for sending (its NIC or source address went away behind the
// host's back) fails before anything is sent; it is dropped, and that write
// goes through the endpoint.

// maxCachedRoutes bounds the routes a conn caches; a full cache starts over.
const maxCachedRoutes = 64

// routeKey is a destination address and its zone (0: none).
type routeKey struct {
	addr tcpip.Address
	nic  tcpip.NICID
}

// sendRoute is a cached route with the header fields of the datagrams
// sent through it.
type sendRoute struct {
	r *stack.Route
	// bcast marks an outbound broadcast route: such writes are left to the
	// endpoint, which checks SO_BROADCAST.
	bcast bool
	ttl   uint8
	tos   uint8
	df    bool
}

// routeCache is a conn's cache of routes, with the endpoint's state they
// were found for; the conn's writeMu guards it.
type routeCache struct {
	valid            bool
	hostGen, connGen uint64 // the generations the cache was filled in
	// connected and local are the endpoint's state in those generations:
	// only the conn's own calls change it, and they change connGen.
	connected bool
	remote    tcpip.FullAddress // the peer, when connected
	local     tcpip.FullAddress // the bound address and port
	localErr  tcpip.Error       // what GetLocalAddress returned instead
	routes    map[routeKey]sendRoute
}

// flush releases every cached route and invalidates the cache.
func (rc *routeCache) flush() {
	rc.releaseRoutes()
	rc.valid = false
}

// releaseRoutes releases and forgets every cached route.
func (rc *routeCache) releaseRoutes() {
	for k, rt := range rc.routes {
		rt.r.Release()
		delete(rc.routes, k)
	}
}

// routeState returns the conn's route cache, started over first if the
// host or the conn changed since it was filled.
func (c *UDPConn) routeState() *routeCache {
	rc := &c.routes
	hostGen, connGen := c.host.routeGen.Load(), c.routesGen.Load()
	if rc.valid && rc.hostGen == hostGen && rc.connGen == connGen {
		return rc
	}
	rc.flush()
	var tcpipErr tcpip.Error
	rc.remote, tcpipErr = c.ep.GetRemoteAddress()
	rc.connected = tcpipErr == nil
	rc.local, rc.localErr = c.ep.GetLocalAddress()
	rc.hostGen, rc.connGen, rc.valid = hostGen, connGen, true
	return rc
}

// sendBuffer accounts, against the conn's SO_SNDBUF, for the datagrams
// sent through cached routes that the stack still holds (waiting for link
// address resolution, typically), as the endpoint does for its own.
type sendBuffer struct {
	mu      sync.Mutex
	inUse   int64
	limit   int64 // SO_SNDBUF at the last charge
	waiting bool  // a charge was refused: signal writable once there is room
	free    []*sendCharge
}

// sendCharge is what one datagram holds of its conn's send buffer until
// gVisor releases the packet. Charges are reused, each with its release
// method value, so that charging costs no allocation.
type sendCharge struct {
	c       *UDPConn
	n       int64
	release func()
}

// charge takes n bytes of the send buffer, or returns nil when it is full.
// Like Linux and gVisor, a datagram is accepted whenever any room is left.
func (c *UDPConn) charge(n int64) *sendCharge {
	limit := c.ep.SocketOptions().GetSendBufferSize()
	b := &c.snd
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = limit
	if b.inUse >= limit {
		b.waiting = true
		return nil
	}
	var ch *sendCharge
	if k := len(b.free); k > 0 {
		ch = b.free[k-1]
		b.free[k-1] = nil
		b.free = b.free[:k-1]
	} else {
		ch = &sendCharge{c: c}
		ch.release = ch.done
	}
	ch.n = n
	b.inUse += n
	return ch
}

// done gives the charge back; it runs when gVisor releases the packet, on
// whatever goroutine does that.
func (ch *sendCharge) done() {
	c := ch.c
	b := &c.snd
	b.mu.Lock()
	b.inUse -= ch.n
	b.free = append(b.free, ch)
	signal := b.waiting && b.inUse < b.limit
	if signal {
		b.waiting = false
	}
	b.mu.Unlock()
	if signal {
		c.wq.Notify(waiter.WritableEvents)
	}
}

// sendCached writes b to to through a cached route, if the fast path
// handles this write; handled is false when the endpoint must. c.writeMu
// and c.epMu (for reading) are held, and the endpoint is bound.
func (c *UDPConn) sendCached(b []byte, to *tcpip.FullAddress) (n int64, tcpipErr tcpip.Error, handled bool) {
	rc := c.routeState()
	if to == nil {
		// A connected write: to the peer, from the address connect chose.
		if !rc.connected {
			return 0, nil, false
		}
		c.wto = rc.remote
		to = &c.wto
	} else if rc.connected {
		return 0, nil, false
	}
	if c.proto == header.IPv6ProtocolNumber && header.IsV4MappedAddress(to.Addr) {
		// A dual-stack conn's IPv4 datagram: routed as IPv4, as the
		// endpoint does.
		if c.ep.SocketOptions().GetV6Only() {
			return 0, nil, false
		}
		c.wto = tcpip.FullAddress{NIC: to.NIC, Addr: tcpip.AddrFrom4Slice(to.Addr.AsSlice()[12:]), Port: to.Port}
		to = &c.wto
	}
	if !c.fastDestination(to) || len(b) > header.UDPMaximumPacketSize {
		return 0, nil, false
	}
	local := rc.local
	if rc.localErr != nil || (local.Addr.BitLen() != 0 && local.Addr.BitLen() != to.Addr.BitLen()) {
		return 0, nil, false // the endpoint has the error to give
	}
	n, tcpipErr, handled = c.sendRouted(b, to, local)
	if handled {
		c.countSend(tcpipErr)
	}
	return n, tcpipErr, handled
}

// sendRouted is sendCached once the write is known to be one it mirrors.
func (c *UDPConn) sendRouted(b []byte, to *tcpip.FullAddress, local tcpip.FullAddress) (int64, tcpip.Error, bool) {
	// A pending error goes to this write, as the endpoint's Write does.
	if tcpipErr := c.ep.LastError(); tcpipErr != nil {
		return 0, tcpipErr, true
	}
	key := routeKey{addr: to.Addr, nic: to.NIC}
	rt, tcpipErr := c.route(key, local) // c.routeState() was called
	if tcpipErr != nil {
		return 0, tcpipErr, true
	}
	if rt.bcast {
		return 0, nil, false
	}
	tcpipErr = c.transmit(rt, b, local.Port, to.Port)
	switch tcpipErr.(type) {
	case nil:
		c.host.udpStats.PacketsSent.Increment()
		return int64(len(b)), nil, true
	case *tcpip.ErrInvalidEndpointState:
		// The route is no longer valid for sending; nothing was sent.
		rt.r.Release()
		delete(c.routes.routes, key)
		return 0, nil, false
	default:
		c.host.udpStats.PacketSendErrors.Increment()
		return 0, tcpipErr, true
	}
}

// transmit sends b through rt from srcPort to dstPort: it charges the send
// buffer (ErrWouldBlock when it is full), builds the UDP header and hands
// the packet to the route's IP layer, or to the host's neighbour queue.
// c.epMu is held for reading.
func (c *UDPConn) transmit(rt sendRoute, b []byte, srcPort, dstPort uint16) tcpip.Error {
	reserve := header.UDPMinimumSize + int(rt.r.MaxHeaderLength())
	ch := c.charge(int64(reserve + len(b)))
	if ch == nil {
		return &tcpip.ErrWouldBlock{}
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: reserve,
		Payload:            buffer.MakeWithData(b),
		Mark:               c.ep.SocketOptions().GetMark(),
		OnRelease:          ch.release,
	})
	defer pkt.DecRef()
	c.encodeUDP(pkt, rt.r, srcPort, dstPort)
	tcpipErr := c.host.sendOrHold(rt.r, stack.NetworkHeaderParams{
		Protocol: udp.ProtocolNumber, TTL: rt.ttl, TOS: rt.tos, DF: rt.df,
	}, pkt)
	if _, ok := tcpipErr.(*tcpip.ErrNoBufferSpace); ok && !c.recvErr() {
		tcpipErr = nil // as Linux and the endpoint: ENOBUFS only with IP_RECVERR
	}
	return tcpipErr
}

// recvErr reports whether IP_RECVERR (IPV6_RECVERR) is set.
func (c *UDPConn) recvErr() bool {
	if c.proto == header.IPv4ProtocolNumber {
		return c.ep.SocketOptions().GetIPv4RecvError()
	}
	return c.ep.SocketOptions().GetIPv6RecvError()
}

// fastDestination reports whether sendCached may handle a datagram to to:
// a unicast address the conn can send to (IPv4 from a dual-stack udp6
// conn too), and a port.
func (c *UDPConn) fastDestination(to *tcpip.FullAddress) bool {
	a := to.Addr
	if to.Port == 0 || a.Unspecified() {
		return false
	}
	switch a.BitLen() {
	case header.IPv4AddressSizeBits:
		// A udp6 conn's IPv4 destinations come unmapped (sendCached).
		return a != header.IPv4Broadcast && !header.IsV4MulticastAddress(a)
	case header.IPv6AddressSizeBits:
		return c.proto == header.IPv6ProtocolNumber && !header.IsV4MappedAddress(a) && !header.IsV6MulticastAddress(a)
	}
	return false
}

// route returns the cached route to key, finding it on a miss. The cache
// is up to date (routeState).
func (c *UDPConn) route(key routeKey, local tcpip.FullAddress) (sendRoute, tcpip.Error) {
	rc := &c.routes
	if rt, ok := rc.routes[key]; ok {
		return rt, nil
	}
	rt, tcpipErr := c.findRoute(key, local)
	if tcpipErr != nil {
		return sendRoute{}, tcpipErr
	}
	if len(rc.routes) >= maxCachedRoutes {
		rc.releaseRoutes()
	}
	if rc.routes == nil {
		rc.routes = make(map[routeKey]sendRoute)
	}
	rc.routes[key] = rt
	return rt, nil
}

// findRoute finds the route the endpoint would use to send to key, as its
// AcquireContextForWrite does for a bound, unconnected endpoint and a
// unicast destination: the destination's zone, else the bound device, else
// the bound address's NIC; the bound address as source unless it is a
// broadcast or multicast address.
func (c *UDPConn) findRoute(key routeKey, local tcpip.FullAddress) (sendRoute, tcpip.Error) {
	ops := c.ep.SocketOptions()
	proto := header.IPv6ProtocolNumber
	if key.addr.Len() == header.IPv4AddressSize {
		proto = header.IPv4ProtocolNumber
	}
	nic := key.nic
	if nic == 0 {
		nic = tcpip.NICID(ops.GetBindToDevice())
	}
	if bound := c.bindAddr.NIC; bound != 0 {
		if nic != 0 && nic != bound {
			return sendRoute{}, &tcpip.ErrHostUnreachable{}
		}
		nic = bound
	}
	if nic == 0 {
		nic = local.NIC
	}
	src := local.Addr
	if src == header.IPv4Broadcast || header.IsV4MulticastAddress(src) || header.IsV6MulticastAddress(src) ||
		c.host.s.IsSubnetBroadcast(nic, proto, src) {
		src = tcpip.Address{}
	}
	r, tcpipErr := c.host.s.FindRoute(nic, src, key.addr, proto, ops.GetMulticastLoop())
	if tcpipErr != nil {
		return sendRoute{}, tcpipErr
	}
	return c.routeFields(r), nil
}

// routeFields returns r with the header fields the endpoint would send
// unicast datagrams through it with: the TTL or hop limit (gVisor's
// network.Endpoint.calculateTTL), the TOS or traffic class, and DF.
func (c *UDPConn) routeFields(r *stack.Route) sendRoute {
	rt := sendRoute{r: r, bcast: r.IsOutboundBroadcast()}
	ttlOpt, tosOpt, useDefault := tcpip.IPv4TTLOption, tcpip.IPv4TOSOption, tcpip.UseDefaultIPv4TTL
	if r.NetProto() == header.IPv6ProtocolNumber {
		ttlOpt, tosOpt, useDefault = tcpip.IPv6HopLimitOption, tcpip.IPv6TrafficClassOption, tcpip.UseDefaultIPv6HopLimit
	}
	if v, tcpipErr := c.ep.GetSockOptInt(ttlOpt); tcpipErr == nil && v != useDefault {
		rt.ttl = uint8(v)
	} else {
		rt.ttl = r.DefaultTTL()
	}
	if v, tcpipErr := c.ep.GetSockOptInt(tosOpt); tcpipErr == nil {
		rt.tos = uint8(v)
	}
	if v, tcpipErr := c.ep.GetSockOptInt(tcpip.MTUDiscoverOption); tcpipErr == nil {
		switch tcpip.PMTUDStrategy(v) {
		case tcpip.PMTUDiscoveryWant, tcpip.PMTUDiscoveryDo, tcpip.PMTUDiscoveryProbe:
			rt.df = true
		}
	}
	return rt
}

// encodeUDP pushes the UDP header onto pkt, with its checksum unless the
// route's NIC offloads it, as the endpoint does.
func (c *UDPConn) encodeUDP(pkt *stack.PacketBuffer, r *stack.Route, srcPort, dstPort uint16) {
	u := header.UDP(pkt.TransportHeader().Push(header.UDPMinimumSize))
	pkt.TransportProtocolNumber = udp.ProtocolNumber
	length := uint16(pkt.Size())
	u.Encode(&header.UDPFields{SrcPort: srcPort, DstPort: dstPort, Length: length})
	// UDP over IPv4 may go without a checksum (SO_NO_CHECK); over IPv6 never.
	if !r.RequiresTXTransportChecksum() ||
		c.ep.SocketOptions().GetNoChecksum() && r.NetProto() == header.IPv4ProtocolNumber {
		return
	}
	xsum := u.CalculateChecksum(checksum.Combine(
		header.PseudoHeaderChecksum(udp.ProtocolNumber, r.LocalAddress(), r.RemoteAddress(), length),
		pkt.Data().Checksum(),
	))
	// A sum of all ones goes as is: zero would mean "no checksum".
	if xsum != math.MaxUint16 {
		xsum = ^xsum
	}
	u.SetChecksum(xsum)
}

// countSend counts a write in the endpoint's statistics, as its Write does.
func (c *UDPConn) countSend(tcpipErr tcpip.Error) {
	stats, ok := c.ep.Stats().(*tcpip.TransportEndpointStats)
	if !ok {
		return
	}
	switch tcpipErr.(type) {
	case nil:
		stats.PacketsSent.Increment()
	case *tcpip.ErrMessageTooLong, *tcpip.ErrInvalidOptionValue:
		stats.WriteErrors.InvalidArgs.Increment()
	case *tcpip.ErrClosedForSend:
		stats.WriteErrors.WriteClosed.Increment()
	case *tcpip.ErrInvalidEndpointState:
		stats.WriteErrors.InvalidEndpointState.Increment()
	case *tcpip.ErrHostUnreachable, *tcpip.ErrBroadcastDisabled, *tcpip.ErrNetworkUnreachable:
		stats.SendErrors.NoRoute.Increment()
	default:
		stats.SendErrors.SendToNetworkFailed.Increment()
	}
}
