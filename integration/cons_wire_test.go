package integration

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The conservation test's wire format: what identifies a datagram, and how
// the test finds which datagram a frame, a dropped packet or a delivered
// payload belongs to.
//
// Every datagram's payload starts with its identity, written three times
// (consCopies), each copy with its own CRC: a corrupted frame has at most
// a bit or two flipped (one per impairment stage on its path), so one copy
// at least reads back intact. A copy is: magic 0xC0 0x5E, kind, 0, sender
// (uint16), seq (uint32), 0, 0, CRC-32 of the 12 bytes before it.

const (
	consCopy    = 16
	consCopies  = 3
	consHdrSize = consCopy * consCopies // the smallest payload
)

// dgID names a datagram: its sender (a socket's index, or consInjector)
// and its sequence number.
type dgID struct {
	sender uint16
	seq    uint32
}

// consInjector is the sender of the datagrams the test injects as frames.
const consInjector = 0xffff

func putConsPayload(b []byte, kind byte, id dgID) {
	for i := range consCopies {
		c := b[i*consCopy : (i+1)*consCopy]
		c[0], c[1], c[2], c[3] = 0xc0, 0x5e, kind, 0
		binary.BigEndian.PutUint16(c[4:], id.sender)
		binary.BigEndian.PutUint32(c[6:], id.seq)
		c[10], c[11] = 0, 0
		binary.BigEndian.PutUint32(c[12:], crc32.ChecksumIEEE(c[:12]))
	}
	x := uint32(id.sender)<<20 ^ id.seq*2654435761
	for i := consHdrSize; i < len(b); i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
}

// readConsPayload returns the identity a payload carries, if one copy of
// it reads back intact.
func readConsPayload(b []byte) (id dgID, ok bool) {
	for i := range consCopies {
		if len(b) < (i+1)*consCopy {
			return dgID{}, false
		}
		c := b[i*consCopy : (i+1)*consCopy]
		if c[0] != 0xc0 || c[1] != 0x5e || binary.BigEndian.Uint32(c[12:]) != crc32.ChecksumIEEE(c[:12]) {
			continue
		}
		return dgID{sender: binary.BigEndian.Uint16(c[4:]), seq: binary.BigEndian.Uint32(c[6:])}, true
	}
	return dgID{}, false
}

// ipInfo is what the test reads from an IPv4 packet.
type ipInfo struct {
	src, dst netip.Addr
	id       uint16
	proto    uint8
	frag     bool // a fragment: MF set or a non-zero offset
	offset   int  // fragment offset, bytes
	payload  []byte
}

// fragKey names the fragments of one datagram.
type fragKey struct {
	src, dst netip.Addr
	id       uint16
}

// parseIPv4 reads an IPv4 packet's header, without trusting it: ok is
// false for anything that is not a plausible IPv4 packet.
func parseIPv4(b []byte) (ipInfo, bool) {
	if len(b) < header.IPv4MinimumSize || b[0]>>4 != 4 {
		return ipInfo{}, false
	}
	ip := header.IPv4(b)
	ihl := int(ip.HeaderLength())
	if ihl < header.IPv4MinimumSize || ihl > len(b) {
		return ipInfo{}, false
	}
	end := min(int(ip.TotalLength()), len(b))
	if end < ihl {
		end = ihl
	}
	return ipInfo{
		src:     netip.AddrFrom4(ip.SourceAddress().As4()),
		dst:     netip.AddrFrom4(ip.DestinationAddress().As4()),
		id:      ip.ID(),
		proto:   ip.Protocol(),
		frag:    ip.More() || ip.FragmentOffset() != 0,
		offset:  int(ip.FragmentOffset()),
		payload: b[ihl:end],
	}, true
}

// payloadID reads the identity of the datagram an IPv4 packet carries in
// its UDP payload (a whole datagram, or the first fragment of one).
func payloadID(b []byte) (dgID, bool) {
	ip, ok := parseIPv4(b)
	if !ok || ip.proto != uint8(header.UDPProtocolNumber) || ip.offset != 0 || len(ip.payload) < header.UDPMinimumSize {
		return dgID{}, false
	}
	return readConsPayload(ip.payload[header.UDPMinimumSize:])
}

// hamming returns the number of bits a and b (of equal length) differ in,
// stopping once it passes limit.
func hamming(a, b []byte, limit int) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n += bits.OnesCount8(a[i] ^ b[i])
			if n > limit {
				return n
			}
		}
	}
	return n
}

// Frames the injector builds.

// ethFrame returns an Ethernet frame around payload.
func ethFrame(dst, src tcpip.LinkAddress, etherType uint16, payload []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: dst, Type: tcpip.NetworkProtocolNumber(etherType)})
	copy(b[header.EthernetMinimumSize:], payload)
	return b
}

// udp4Packet returns an IPv4 UDP packet with correct checksums.
func udp4Packet(src, dst netip.Addr, sport, dport uint16, ipID uint16, payload []byte) []byte {
	total := header.IPv4MinimumSize + header.UDPMinimumSize + len(payload)
	b := make([]byte, total)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(total), ID: ipID, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(b[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(header.UDPMinimumSize + len(payload))})
	copy(u.Payload(), payload)
	setUDP4Checksum(b)
	return b
}

// setUDP4Checksum recomputes the UDP checksum of an IPv4 UDP packet.
func setUDP4Checksum(b []byte) {
	ip := header.IPv4(b)
	u := header.UDP(b[ip.HeaderLength():])
	u.SetChecksum(0)
	length := uint16(len(u))
	xsum := u.CalculateChecksum(checksum.Combine(
		header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), length),
		checksum.Checksum(u.Payload(), 0)))
	if xsum != 0xffff {
		xsum = ^xsum
	}
	u.SetChecksum(xsum)
}

// setIPv4Checksum recomputes the header checksum of an IPv4 packet.
func setIPv4Checksum(b []byte) {
	ip := header.IPv4(b)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
}
