package stack

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/dgramlab/dgramlab/wire"
)

// A NIC's edge: every packet its link delivers passes here before gVisor's
// NIC sees it.
//
// The edge first does what IP input would drop, itself, with a reason in
// the host's ledger: an unknown EtherType (wire.DropUnknownProtocol), an IP
// header that is not valid — version, lengths, header checksum, a source
// no host may send from (wire.DropBadHeader) — a unicast destination that
// is not this NIC's (wire.DropNotForUs: the host does not forward), and a
// multicast group nobody on the NIC joined (wire.DropNoMember).
//
// Then the lean path: a plain unicast UDP datagram for one of the NIC's own
// addresses (IPv4 without options or fragments, or IPv6 with UDP as its
// first next header), for a port one of the host's conns owns, goes
// straight to that conn: gVisor's NIC and IP input are skipped, and the
// counters they would have moved (the NIC's received packets and bytes,
// IP's PacketsReceived, ValidPacketsReceived and PacketsDelivered, UDP's
// PacketsReceived) are moved here. Everything else (ARP and NDP, ICMP,
// fragments, options, broadcast and multicast, datagrams nobody listens
// for, whose port unreachable gVisor sends) takes gVisor's full path.
//
// A host whose gVisor stack was handed out (Host.Stack) may have iptables
// rules or packet endpoints the edge cannot see: it always takes the full
// path after the checks above.
type nicEdge struct {
	stack.LinkEndpoint // the NIC's link, as given to AddNIC
	host               *Host
	id                 tcpip.NICID

	nic atomic.Pointer[dispatcherBox] // gVisor's NIC

	// csumOffload says the link validated checksums (its capabilities).
	csumOffload bool

	// addrs is the NIC's addresses, for the host's routeGen it was made in.
	addrs atomic.Pointer[edgeAddrs]

	// disabled is set when the host disabled the NIC (its device
	// vanished): what comes in is dropped, as gVisor's disabled NIC does.
	disabled atomic.Bool

	// counters the lean path moves for gVisor.
	nicRx, nicRxGlobal tcpip.NICPacketStats
	ip4, ip6, ipGlobal *tcpip.IPStats
}

// edgeAddrs is a snapshot of a NIC's unicast addresses and subnets.
type edgeAddrs struct {
	gen uint64
	v4  []edgeAddr4
	v6  []tcpip.Address
}

// edgeAddr4 is one of a NIC's IPv4 addresses with its subnet.
type edgeAddr4 struct {
	addr   tcpip.Address
	subnet tcpip.Subnet
}

var _ stack.NetworkDispatcher = (*edgeDispatcher)(nil)

// newNICEdge wraps ep, the link of NIC id.
func newNICEdge(h *Host, id tcpip.NICID, ep stack.LinkEndpoint) *nicEdge {
	return &nicEdge{
		LinkEndpoint: ep, host: h, id: id,
		csumOffload: ep.Capabilities()&stack.CapabilityRXChecksumOffload != 0,
	}
}

// Attach implements stack.LinkEndpoint: the link delivers to the edge,
// which hands on to d, gVisor's NIC.
func (e *nicEdge) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.nic.Store(nil)
		e.LinkEndpoint.Attach(nil)
		return
	}
	e.nic.Store(&dispatcherBox{d})
	e.LinkEndpoint.Attach(&edgeDispatcher{e})
}

// initCounters finds the counters the lean path moves; called once the NIC
// exists, before it is published.
func (e *nicEdge) initCounters() {
	s := e.host.s
	if info, ok := s.NICInfo()[e.id]; ok {
		e.nicRx = info.Stats.Rx
	}
	st := s.Stats()
	e.nicRxGlobal = st.NICs.Rx
	e.ipGlobal = &st.IP
	if ep, err := s.GetNetworkEndpoint(e.id, ipv4.ProtocolNumber); err == nil {
		if ps, ok := ep.Stats().(*ipv4.Stats); ok {
			e.ip4 = &ps.IP
		}
	}
	if ep, err := s.GetNetworkEndpoint(e.id, ipv6.ProtocolNumber); err == nil {
		if ps, ok := ep.Stats().(*ipv6.Stats); ok {
			e.ip6 = &ps.IP
		}
	}
}

// edgeDispatcher is what the link delivers to.
type edgeDispatcher struct{ e *nicEdge }

// DeliverLinkPacket implements stack.NetworkDispatcher.
func (d *edgeDispatcher) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if b := d.e.nic.Load(); b != nil {
		b.d.DeliverLinkPacket(proto, pkt)
	}
}

// DeliverNetworkPacket implements stack.NetworkDispatcher. It runs on the
// goroutine the link delivers on; pkt stays the caller's.
func (d *edgeDispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	e := d.e
	b := e.nic.Load()
	if b == nil {
		return
	}
	if e.disabled.Load() {
		e.drop(wire.DropLinkDown, pkt)
		return
	}
	switch proto {
	case ipv4.ProtocolNumber:
		if e.input4(pkt) {
			return
		}
	case ipv6.ProtocolNumber:
		if e.input6(pkt) {
			return
		}
	case arp.ProtocolNumber:
	default:
		e.drop(wire.DropUnknownProtocol, pkt)
		return
	}
	b.d.DeliverNetworkPacket(proto, pkt)
}

// drop counts and reports an inbound packet the edge drops; the packet's
// data is the IP packet.
func (e *nicEdge) drop(reason wire.DropReason, pkt *stack.PacketBuffer) {
	h := e.host
	h.drops.add(reason, 1)
	n := h.nicFor(e.id)
	if n == nil || !n.reporters.active() {
		return
	}
	v := pkt.Data().ToBuffer()
	defer v.Release()
	n.reporters.report(v.Flatten(), wire.Inbound, reason)
}

// snapshot returns the NIC's addresses, made again when the host's
// addresses changed.
func (e *nicEdge) snapshot() *edgeAddrs {
	gen := e.host.routeGen.Load()
	if a := e.addrs.Load(); a != nil && a.gen == gen {
		return a
	}
	a := &edgeAddrs{gen: gen}
	for _, pa := range e.host.s.AllAddresses()[e.id] {
		addr := pa.AddressWithPrefix
		switch addr.Address.Len() {
		case 4:
			if addr.Address != header.IPv4Broadcast {
				a.v4 = append(a.v4, edgeAddr4{addr: addr.Address, subnet: addr.Subnet()})
			}
		case 16:
			a.v6 = append(a.v6, addr.Address)
		}
	}
	e.addrs.Store(a)
	return a
}

// lean reports whether the host's own input (the lean path, and its
// reassembly) may be used at all.
func (e *nicEdge) lean() bool { return !e.host.exposed.Load() }

// input4 checks an IPv4 packet and takes the lean path for it if it can;
// it reports whether it dealt with the packet (dropped or delivered).
func (e *nicEdge) input4(pkt *stack.PacketBuffer) bool {
	size := pkt.Data().Size()
	hdr, ok := pkt.Data().PullUp(min(size, header.IPv4MinimumSize+header.UDPMinimumSize))
	if !ok || size < header.IPv4MinimumSize {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	ip := header.IPv4(hdr)
	ihl := int(ip.HeaderLength())
	total := int(ip.TotalLength())
	if header.IPVersion(hdr) != header.IPv4Version || ihl < header.IPv4MinimumSize || total < ihl || total > size {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	if ihl > header.IPv4MinimumSize {
		full, ok := pkt.Data().PullUp(ihl)
		if !ok {
			e.drop(wire.DropBadHeader, pkt)
			return true
		}
		ip = header.IPv4(full)
	}
	if !e.csumOffload && checksum.Checksum(ip[:ihl], 0) != 0xffff {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	if src == header.IPv4Broadcast || header.IsV4MulticastAddress(src) || header.IsV4LoopbackAddress(src) {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	if header.IsV4MulticastAddress(dst) {
		if in, _ := e.host.s.IsInGroup(e.id, dst); !in {
			e.drop(wire.DropNoMember, pkt)
			return true
		}
		if (ip.More() || ip.FragmentOffset() != 0) && e.lean() {
			return e.reassemble4(pkt, total)
		}
		return false
	}
	a := e.snapshot()
	ours, bcast := false, dst == header.IPv4Broadcast
	for _, p := range a.v4 {
		if p.addr == src || p.subnet.IsBroadcast(src) {
			e.drop(wire.DropBadHeader, pkt) // our own address, or a broadcast one, as source
			return true
		}
		ours = ours || p.addr == dst
		bcast = bcast || p.subnet.IsBroadcast(dst)
	}
	if !ours && !bcast {
		e.drop(wire.DropNotForUs, pkt)
		return true
	}
	if (ip.More() || ip.FragmentOffset() != 0) && e.lean() {
		return e.reassemble4(pkt, total)
	}
	if !ours || !e.lean() || ihl != header.IPv4MinimumSize || ip.More() || ip.FragmentOffset() != 0 ||
		ip.TransportProtocol() != udp.ProtocolNumber || total < header.IPv4MinimumSize+header.UDPMinimumSize {
		return false
	}
	u := header.UDP(hdr[header.IPv4MinimumSize:])
	if int(u.Length()) != total-header.IPv4MinimumSize {
		return false // gVisor's path trims or counts it
	}
	tos, _ := ip.TOS()
	return e.lean4or6(pkt, ipv4.ProtocolNumber, header.IPv4MinimumSize, total, u, src, dst, tos, ip.TTL())
}

// input6 is input4 for IPv6.
func (e *nicEdge) input6(pkt *stack.PacketBuffer) bool {
	size := pkt.Data().Size()
	hdr, ok := pkt.Data().PullUp(min(size, header.IPv6MinimumSize+header.UDPMinimumSize))
	if !ok || size < header.IPv6MinimumSize {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	ip := header.IPv6(hdr)
	total := header.IPv6MinimumSize + int(ip.PayloadLength())
	if header.IPVersion(hdr) != header.IPv6Version || total > size {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	if header.IsV6MulticastAddress(src) || src == header.IPv6Loopback || header.IsV4MappedAddress(src) || header.IsV4MappedAddress(dst) {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	if header.IsV6MulticastAddress(dst) {
		if in, _ := e.host.s.IsInGroup(e.id, dst); !in {
			e.drop(wire.DropNoMember, pkt)
			return true
		}
		if ip.NextHeader() != uint8(udp.ProtocolNumber) && e.lean() {
			if done, handled := e.reassemble6(pkt, total); handled {
				return done
			}
		}
		return false
	}
	a := e.snapshot()
	ours := false
	for _, x := range a.v6 {
		if x == src && src != header.IPv6Any {
			e.drop(wire.DropBadHeader, pkt)
			return true
		}
		if x == dst {
			ours = true
		}
	}
	if !ours {
		e.drop(wire.DropNotForUs, pkt)
		return true
	}
	if ip.NextHeader() != uint8(udp.ProtocolNumber) && e.lean() {
		if done, handled := e.reassemble6(pkt, total); handled {
			return done
		}
		// reassemble6 pulled the packet up whole: hdr may be stale.
		if hdr, ok = pkt.Data().PullUp(min(size, header.IPv6MinimumSize+header.UDPMinimumSize)); !ok {
			return false
		}
		ip = header.IPv6(hdr)
	}
	if !e.lean() || ip.TransportProtocol() != udp.ProtocolNumber || total < header.IPv6MinimumSize+header.UDPMinimumSize || src == header.IPv6Any {
		return false
	}
	u := header.UDP(hdr[header.IPv6MinimumSize:])
	if int(u.Length()) != total-header.IPv6MinimumSize || u.Checksum() == 0 {
		return false // gVisor's path trims or counts it
	}
	tos, _ := ip.TOS()
	return e.lean4or6(pkt, ipv6.ProtocolNumber, header.IPv6MinimumSize, total, u, src, dst, tos, ip.HopLimit())
}

// lean4or6 takes the lean path for a plain unicast UDP datagram of total
// bytes whose IP header of hdrLen bytes input4 or input6 checked: to the
// conn whose port it is, if one is, with the counters gVisor would move.
// It reports false, leaving pkt as it was, when no conn is.
func (e *nicEdge) lean4or6(pkt *stack.PacketBuffer, proto tcpip.NetworkProtocolNumber, hdrLen, total int, u header.UDP, src, dst tcpip.Address, tos, ttl uint8) bool {
	id := stack.TransportEndpointID{LocalPort: u.DestinationPort(), LocalAddress: dst, RemotePort: u.SourcePort(), RemoteAddress: src}
	c := e.host.udp.unicast(proto, id)
	if c == nil {
		return false // nobody listens: gVisor answers
	}
	rx := rxDatagram{from: tcpip.FullAddress{NIC: e.id, Addr: src, Port: id.RemotePort}, dst: dst, port: id.LocalPort,
		proto: proto, tos: tos, ttl: ttl}
	if total < pkt.Data().Size() {
		pkt.Data().CapLength(total)
	}
	ipStats := e.ip4
	if proto == ipv6.ProtocolNumber {
		ipStats = e.ip6
	}
	e.count(pkt, ipStats)
	pkt.NICID = e.id
	pkt.NetworkProtocolNumber = proto
	pkt.TransportProtocolNumber = udp.ProtocolNumber
	pkt.NetworkHeader().Consume(hdrLen)
	pkt.TransportHeader().Consume(header.UDPMinimumSize)
	e.deliverUDP(c, &rx, pkt, u, src, dst)
	return true
}

// count moves the counters gVisor's NIC and IP input would have moved for
// a packet delivered locally.
func (e *nicEdge) count(pkt *stack.PacketBuffer, ip *tcpip.IPStats) {
	n := uint64(pkt.Data().Size())
	for _, s := range [...]tcpip.NICPacketStats{e.nicRx, e.nicRxGlobal} {
		if s.Packets != nil {
			s.Packets.Increment()
			s.Bytes.IncrementBy(n)
		}
	}
	for _, s := range [...]*tcpip.IPStats{ip, e.ipGlobal} {
		if s != nil {
			s.PacketsReceived.Increment()
			s.ValidPacketsReceived.Increment()
			s.PacketsDelivered.Increment()
		}
	}
}

// deliverUDP checks the UDP checksum of a datagram the lean path took and
// delivers it to c, as the host's dispatcher does.
func (e *nicEdge) deliverUDP(c *UDPConn, rx *rxDatagram, pkt *stack.PacketBuffer, u header.UDP, src, dst tcpip.Address) {
	h := e.host
	lengthValid, csumValid := header.UDPValid(u, func() uint16 { return pkt.Data().Checksum() },
		uint16(pkt.Data().Size()), pkt.NetworkProtocolNumber, src, dst, e.csumOffload)
	switch {
	case !lengthValid:
		h.udpStats.MalformedPacketsReceived.Increment()
		h.dropPacket(e.id, wire.Inbound, wire.DropBadLength, pkt)
	case !csumValid:
		h.udpStats.ChecksumErrors.Increment()
		h.dropPacket(e.id, wire.Inbound, wire.DropBadChecksum, pkt)
	default:
		h.udpStats.PacketsReceived.Increment()
		c.deliver(rx, pkt)
	}
}

// reassemble4 gives an IPv4 fragment for the host, total bytes long, to
// the host's reassembler and, when it completes a datagram, delivers the
// whole packet as if it had come in so; it reports that it dealt with the
// fragment.
func (e *nicEdge) reassemble4(pkt *stack.PacketBuffer, total int) bool {
	// The packet pulled up whole: slices of it taken before may no longer
	// be its bytes.
	packet := pullPacket(pkt, total)
	if packet == nil {
		e.drop(wire.DropBadHeader, pkt)
		return true
	}
	hdr := header.IPv4(packet)
	ihl := int(hdr.HeaderLength())
	key := fragKey{nic: e.id, src: fromTCPIPAddr(hdr.SourceAddress()), dst: fromTCPIPAddr(hdr.DestinationAddress()),
		proto: hdr.Protocol(), id: uint32(hdr.ID())}
	whole, _ := e.host.reasm4.add(key, fragment{packet: packet, hdrLen: ihl, dataStart: ihl, dataEnd: total,
		offset: int(hdr.FragmentOffset()), more: hdr.More()})
	if whole != nil {
		e.deliverWhole(ipv4.ProtocolNumber, whole)
	}
	return true
}

// reassemble6 is reassemble4 for IPv6: it walks the extension headers
// that precede a Fragment header (hop-by-hop, routing, destination
// options). handled is false for a packet without a Fragment header there,
// which takes its usual path.
func (e *nicEdge) reassemble6(pkt *stack.PacketBuffer, total int) (done, handled bool) {
	packet := pullPacket(pkt, total)
	if packet == nil {
		return false, false
	}
	nh, off := packet[6], header.IPv6MinimumSize
	for i := 0; i < 8; i++ {
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+8 > len(packet) {
				return false, false
			}
			nh, off = packet[off], off+(int(packet[off+1])+1)*8
		case 44: // fragment
			if off+header.IPv6FragmentHeaderSize > len(packet) {
				e.drop(wire.DropBadHeader, pkt)
				return true, true
			}
			f := header.IPv6Fragment(packet[off:])
			ip := header.IPv6(packet)
			key := fragKey{nic: e.id, src: fromTCPIPAddr(ip.SourceAddress()), dst: fromTCPIPAddr(ip.DestinationAddress()), id: f.ID()}
			whole, _ := e.host.reasm6.add(key, fragment{packet: packet, hdrLen: off, dataStart: off + header.IPv6FragmentHeaderSize,
				dataEnd: total, offset: int(f.FragmentOffset()) * 8, more: f.More(), nextHeader: f.NextHeader()})
			if whole != nil {
				e.deliverWhole(ipv6.ProtocolNumber, whole)
			}
			return true, true
		default:
			return false, false
		}
	}
	return false, false
}

// pullPacket returns pkt's first n bytes of data (the IP packet),
// contiguous, or nil if it has fewer.
func pullPacket(pkt *stack.PacketBuffer, n int) []byte {
	b, ok := pkt.Data().PullUp(n)
	if !ok {
		return nil
	}
	return b
}

// deliverWhole delivers a reassembled packet as if the link had: the lean
// path or gVisor's NIC.
func (e *nicEdge) deliverWhole(proto tcpip.NetworkProtocolNumber, packet []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(packet)})
	defer pkt.DecRef()
	(&edgeDispatcher{e}).DeliverNetworkPacket(proto, pkt)
}
