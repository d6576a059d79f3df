package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/dgramlab/dgramlab/wire"
)

// The host's own UDP delivery.
//
// Each IPv4 and IPv6 network endpoint of a host is made with a transport
// dispatcher of ours (udpDispatcher) in front of the NIC's: gVisor's IP
// layer (header checks, reassembly, routing, ICMP) runs as before, and hands
// every UDP datagram for the host to the dispatcher. The dispatcher checks
// the UDP length and checksum first (a corrupted datagram is dropped and
// counted as such, never answered with a port unreachable), then looks the
// datagram up in the host's own demux table and copies it into the receive
// queue of each UDPConn it is for (udp_rcv.go). What no UDPConn of ours
// owns goes on to gVisor's transport demuxer, which answers unicast with an
// ICMP port unreachable, or delivers to endpoints made on Host.Stack()
// directly.
//
// A UDPConn's gVisor endpoint stays bound and connected as before, for port
// reservation, SO_REUSEADDR's rules, options, sending, and the ICMP errors
// about its datagrams (which gVisor's demuxer routes to it). The table
// below mirrors the registrations those endpoints make in gVisor's demuxer
// (transport_demuxer.go in gVisor: an ID per network protocol, looked up
// exact first, then without the local address, then without the remote
// part, then by port alone; the most recent endpoint of a SO_REUSEADDR
// group takes unicast; broadcast and multicast go to every match), so the
// conn that gets a datagram is the one gVisor would have given it to.

// demuxKey names one registration: a network protocol and a port.
type demuxKey struct {
	proto tcpip.NetworkProtocolNumber
	port  uint16
}

// demuxEntry is the conns registered under one endpoint ID, oldest first.
type demuxEntry struct {
	id    stack.TransportEndpointID
	conns []*UDPConn
}

// udpDemux is a host's table of the UDPConns that receive datagrams.
type udpDemux struct {
	mu    sync.RWMutex
	ports map[demuxKey][]*demuxEntry
	// regs holds each conn's current registrations, to remove them.
	regs map[*UDPConn][]demuxReg
}

// demuxReg is one registration of a conn.
type demuxReg struct {
	proto tcpip.NetworkProtocolNumber
	id    stack.TransportEndpointID
}

func newUDPDemux() *udpDemux {
	return &udpDemux{ports: make(map[demuxKey][]*demuxEntry), regs: make(map[*UDPConn][]demuxReg)}
}

// set replaces c's registrations by regs (none: c receives nothing).
func (d *udpDemux) set(c *UDPConn, regs []demuxReg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.regs[c] {
		d.removeLocked(c, r)
	}
	if len(regs) == 0 {
		delete(d.regs, c)
		return
	}
	d.regs[c] = regs
	for _, r := range regs {
		k := demuxKey{r.proto, r.id.LocalPort}
		entries := d.ports[k]
		var e *demuxEntry
		for _, x := range entries {
			if x.id == r.id {
				e = x
				break
			}
		}
		if e == nil {
			e = &demuxEntry{id: r.id}
			d.ports[k] = append(entries, e)
		}
		e.conns = append(e.conns, c)
	}
}

func (d *udpDemux) removeLocked(c *UDPConn, r demuxReg) {
	k := demuxKey{r.proto, r.id.LocalPort}
	entries := d.ports[k]
	for i, e := range entries {
		if e.id != r.id {
			continue
		}
		for j, x := range e.conns {
			if x == c {
				e.conns = append(e.conns[:j:j], e.conns[j+1:]...)
				break
			}
		}
		if len(e.conns) == 0 {
			entries = append(entries[:i:i], entries[i+1:]...)
		}
		break
	}
	if len(entries) == 0 {
		delete(d.ports, k)
	} else {
		d.ports[k] = entries
	}
}

// matchRank says how well a registration's ID matches a datagram's, as
// gVisor's demuxer ranks them: 0 the same ID, 1 the same but for the local
// address, 2 the local part only, 3 the port alone; -1 no match. (A
// datagram's addresses are never the zero tcpip.Address.)
func matchRank(reg, pkt stack.TransportEndpointID) int {
	var zero tcpip.Address
	switch {
	case reg.LocalPort != pkt.LocalPort:
		return -1
	case reg == pkt:
		return 0
	case reg.LocalAddress == zero && reg.RemotePort == pkt.RemotePort && reg.RemoteAddress == pkt.RemoteAddress:
		return 1
	case reg.RemotePort != 0 || reg.RemoteAddress != zero:
		return -1
	case reg.LocalAddress == pkt.LocalAddress:
		return 2
	case reg.LocalAddress == zero:
		return 3
	}
	return -1
}

// unicast returns the conn a unicast datagram with ID id is for: the best
// match's most recent conn, or nil.
func (d *udpDemux) unicast(proto tcpip.NetworkProtocolNumber, id stack.TransportEndpointID) *UDPConn {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var best *demuxEntry
	bestRank := 4
	for _, e := range d.ports[demuxKey{proto, id.LocalPort}] {
		if r := matchRank(e.id, id); r >= 0 && r < bestRank {
			best, bestRank = e, r
		}
	}
	if best == nil {
		return nil
	}
	return best.conns[len(best.conns)-1]
}

// group appends to out the conns a broadcast or multicast datagram with ID
// id is for: every match's every conn, best match first, oldest conn
// first.
func (d *udpDemux) group(proto tcpip.NetworkProtocolNumber, id stack.TransportEndpointID, out []*UDPConn) []*UDPConn {
	d.mu.RLock()
	defer d.mu.RUnlock()
	entries := d.ports[demuxKey{proto, id.LocalPort}]
	for rank := 0; rank < 4; rank++ {
		for _, e := range entries {
			if matchRank(e.id, id) == rank {
				out = append(out, e.conns...)
			}
		}
	}
	return out
}

// udpProtocol wraps gVisor's IPv4 or IPv6 protocol so that its network
// endpoints hand UDP datagrams to the host's dispatcher. The multicast
// forwarding methods, which gVisor finds by type assertion, are kept.
type udpProtocol struct {
	stack.MulticastForwardingNetworkProtocol
	host *Host
}

// NewEndpoint implements stack.NetworkProtocol: the endpoint gVisor's
// protocol makes, with the host's dispatcher in front of the NIC's.
func (p *udpProtocol) NewEndpoint(nic stack.NetworkInterface, d stack.TransportDispatcher) stack.NetworkEndpoint {
	return p.MulticastForwardingNetworkProtocol.NewEndpoint(nic, &udpDispatcher{TransportDispatcher: d, host: p.host})
}

// wrapProtocol returns a factory for the protocol f makes, wrapped for h.
func (h *Host) wrapProtocol(f stack.NetworkProtocolFactory) stack.NetworkProtocolFactory {
	return func(s *stack.Stack) stack.NetworkProtocol {
		return &udpProtocol{MulticastForwardingNetworkProtocol: f(s).(stack.MulticastForwardingNetworkProtocol), host: h}
	}
}

// udpDispatcher is a network endpoint's transport dispatcher: UDP for the
// host's conns is delivered here, everything else by the NIC's dispatcher
// it embeds.
type udpDispatcher struct {
	stack.TransportDispatcher
	host *Host
}

// DeliverTransportPacket implements stack.TransportDispatcher. It runs on
// the goroutine that delivered the frame; pkt stays the caller's.
func (d *udpDispatcher) DeliverTransportPacket(proto tcpip.TransportProtocolNumber, pkt *stack.PacketBuffer) stack.TransportPacketDisposition {
	if proto != udp.ProtocolNumber {
		res := d.TransportDispatcher.DeliverTransportPacket(proto, pkt)
		if res == stack.TransportPacketProtocolUnreachable {
			// A transport the host does not have (gVisor answers with an
			// ICMP protocol unreachable).
			d.host.dropPacket(pkt.NICID, wire.Inbound, wire.DropUnknownProtocol, pkt)
		}
		return res
	}
	h := d.host
	hdr := header.UDP(pkt.TransportHeader().Slice())
	if len(hdr) < header.UDPMinimumSize {
		return d.TransportDispatcher.DeliverTransportPacket(proto, pkt) // gVisor counts it malformed
	}
	var src, dst tcpip.Address
	var tos, ttl uint8
	if pkt.NetworkProtocolNumber == ipv4.ProtocolNumber {
		ip := header.IPv4(pkt.NetworkHeader().Slice())
		src, dst, ttl = ip.SourceAddress(), ip.DestinationAddress(), ip.TTL()
		tos, _ = ip.TOS()
	} else {
		ip := header.IPv6(pkt.NetworkHeader().Slice())
		src, dst, ttl = ip.SourceAddress(), ip.DestinationAddress(), ip.HopLimit()
		tos, _ = ip.TOS()
	}
	size := pkt.Data().Size()
	lengthValid, csumValid := header.UDPValid(hdr, func() uint16 { return pkt.Data().Checksum() },
		uint16(size), pkt.NetworkProtocolNumber, src, dst, pkt.RXChecksumValidated)
	if !lengthValid {
		h.udpStats.MalformedPacketsReceived.Increment()
		h.dropPacket(pkt.NICID, wire.Inbound, wire.DropBadLength, pkt)
		return stack.TransportPacketHandled
	}
	if !csumValid {
		h.udpStats.ChecksumErrors.Increment()
		h.dropPacket(pkt.NICID, wire.Inbound, wire.DropBadChecksum, pkt)
		return stack.TransportPacketHandled
	}
	id := stack.TransportEndpointID{
		LocalPort: hdr.DestinationPort(), LocalAddress: dst,
		RemotePort: hdr.SourcePort(), RemoteAddress: src,
	}
	all := pkt.NetworkPacketInfo.LocalAddressBroadcast || header.IsV4MulticastAddress(dst) || header.IsV6MulticastAddress(dst)
	rx := rxDatagram{
		from:  tcpip.FullAddress{NIC: pkt.NICID, Addr: src, Port: id.RemotePort},
		dst:   dst,
		port:  id.LocalPort,
		proto: pkt.NetworkProtocolNumber,
		tos:   tos,
		ttl:   ttl,
	}
	if !all {
		if c := h.udp.unicast(pkt.NetworkProtocolNumber, id); c != nil {
			h.udpStats.PacketsReceived.Increment()
			c.deliver(&rx, pkt)
			return stack.TransportPacketHandled
		}
	} else {
		var buf [8]*UDPConn
		if conns := h.udp.group(pkt.NetworkProtocolNumber, id, buf[:0]); len(conns) > 0 {
			for _, c := range conns {
				h.udpStats.PacketsReceived.Increment()
				c.deliver(&rx, pkt)
			}
			return stack.TransportPacketHandled
		}
	}
	// No conn of ours: gVisor's demuxer answers it (a port unreachable for
	// unicast) or gives it to an endpoint made on the gVisor stack.
	res := d.TransportDispatcher.DeliverTransportPacket(proto, pkt)
	if res == stack.TransportPacketDestinationPortUnreachable {
		h.dropPacket(pkt.NICID, wire.Inbound, wire.DropNoListener, pkt)
	}
	return res
}
