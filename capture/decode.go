package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Info is what Decode finds in a frame: link, network and transport
// addressing, and IP fragmentation. Fields a frame does not carry are zero.
type Info struct {
	// SrcMAC and DstMAC are the Ethernet addresses; nil on raw IP links.
	SrcMAC, DstMAC net.HardwareAddr
	// EtherType is the Ethernet type (IPv4, IPv6, ARP...); on raw IP links
	// it is derived from the IP version.
	EtherType layers.EthernetType
	// IPVersion is 4 or 6, or 0 for a frame that is not IP.
	IPVersion int
	// SrcIP and DstIP are the IP addresses; invalid for non-IP frames.
	SrcIP, DstIP netip.Addr
	// Proto is the transport protocol, after any IPv6 extension headers.
	Proto layers.IPProtocol
	// Frag describes IP fragmentation; its zero value means "not a
	// fragment".
	Frag FragInfo
	// SrcPort and DstPort are the UDP or TCP ports. They are zero when the
	// frame carries no transport header (non-first fragments included).
	SrcPort, DstPort uint16
	// UDPLen is the UDP header's length field (header plus payload) when
	// the frame carries a UDP header, even in a first fragment, where it is
	// the length of the whole datagram. Zero otherwise.
	UDPLen int
	// IPLen is the IP packet's length (header plus payload) from its own
	// header; zero for non-IP frames.
	IPLen int
	// Err says why decoding stopped early (a truncated or malformed
	// header); nil when every header present was decoded.
	Err error

	// ipPayloadLen is the number of IP payload bytes the frame carries,
	// after any IPv6 extension headers (for a fragment, its data); zero
	// for a frame that is not IP.
	ipPayloadLen int

	// fragSum hashes a fragment's payload, to tell a duplicate fragment
	// from a datagram that reuses an identification.
	fragSum uint64
}

// FragInfo describes one IP fragment.
type FragInfo struct {
	// ID is the IPv4 identification or the IPv6 fragment header's
	// identification.
	ID uint32
	// Offset is the fragment's offset in bytes in the original payload.
	Offset int
	// More is the "more fragments" flag.
	More bool
	// Len is the number of payload bytes this fragment carries.
	Len int
}

// IsFragment reports whether the packet is part of a fragmented datagram.
func (f FragInfo) IsFragment() bool { return f.More || f.Offset > 0 }

// First reports whether f is the first fragment of a datagram.
func (f FragInfo) First() bool { return f.More && f.Offset == 0 }

// Middle reports whether f is neither the first nor the last fragment.
func (f FragInfo) Middle() bool { return f.More && f.Offset > 0 }

// Last reports whether f is the last fragment of a fragmented datagram.
func (f FragInfo) Last() bool { return !f.More && f.Offset > 0 }

// HasUDP reports whether the frame carries a UDP header.
func (i Info) HasUDP() bool { return i.UDPLen != 0 }

// UDPPayloadLen returns the UDP payload size from the UDP header, or -1 if
// the frame carries no UDP header.
func (i Info) UDPPayloadLen() int {
	if i.UDPLen == 0 {
		return -1
	}
	return i.UDPLen - 8
}

// Broadcast reports whether the frame goes to ff:ff:ff:ff:ff:ff or to the
// IPv4 limited broadcast address 255.255.255.255.
func (i Info) Broadcast() bool {
	return isBroadcastMAC(i.DstMAC) || i.DstIP == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// Multicast reports whether the frame goes to a multicast group: a group
// MAC address other than broadcast, or a multicast IP address.
func (i Info) Multicast() bool {
	if len(i.DstMAC) == 6 && i.DstMAC[0]&1 == 1 && !isBroadcastMAC(i.DstMAC) {
		return true
	}
	return i.DstIP.IsMulticast()
}

func isBroadcastMAC(mac net.HardwareAddr) bool {
	if len(mac) != 6 {
		return false
	}
	for _, b := range mac {
		if b != 0xff {
			return false
		}
	}
	return true
}

// Info decodes the frame. See Decode.
func (f Frame) Info() Info { return Decode(f.LinkType, f.Data) }

// Decode decodes the Ethernet (layers.LinkTypeEthernet), raw IP
// (layers.LinkTypeRaw, LinkTypeIPv4, LinkTypeIPv6) or Linux cooked
// (LinkTypeLinuxSLL, LinkTypeLinuxSLL2, from tcpdump -i any) frame in data
// with gopacket's layers. It never panics; a malformed header stops decoding and
// is reported in Info.Err. The returned Info does not alias data.
func Decode(linkType layers.LinkType, data []byte) Info {
	var info Info
	var d decoder
	info.Err = d.decode(&info, linkType, data)
	return info
}

var errNotIP = errors.New("not an IP packet")

type decoder struct {
	eth  layers.Ethernet
	sll  layers.LinuxSLL
	sll2 layers.LinuxSLL2
	ip4  layers.IPv4
	ip6  layers.IPv6
	frag layers.IPv6Fragment
}

func (d *decoder) decode(info *Info, linkType layers.LinkType, data []byte) error {
	switch linkType {
	case layers.LinkTypeEthernet:
		if err := d.eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return err
		}
		info.SrcMAC = append(net.HardwareAddr(nil), d.eth.SrcMAC...)
		info.DstMAC = append(net.HardwareAddr(nil), d.eth.DstMAC...)
		return d.decodeEtherType(info, d.eth.EthernetType, d.eth.Payload)
	case layers.LinkTypeLinuxSLL: // tcpdump -i any
		if err := d.sll.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return err
		}
		return d.decodeEtherType(info, d.sll.EthernetType, d.sll.Payload)
	case layers.LinkTypeLinuxSLL2:
		if err := d.sll2.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			return err
		}
		return d.decodeEtherType(info, d.sll2.ProtocolType, d.sll2.Payload)
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		if len(data) == 0 {
			return errNotIP
		}
		switch data[0] >> 4 {
		case 4:
			info.EtherType = layers.EthernetTypeIPv4
			return d.decodeIPv4(info, data)
		case 6:
			info.EtherType = layers.EthernetTypeIPv6
			return d.decodeIPv6(info, data)
		}
		return errNotIP
	}
	return fmt.Errorf("unsupported link type %v", linkType)
}

func (d *decoder) decodeEtherType(info *Info, t layers.EthernetType, payload []byte) error {
	info.EtherType = t
	switch t {
	case layers.EthernetTypeIPv4:
		return d.decodeIPv4(info, payload)
	case layers.EthernetTypeIPv6:
		return d.decodeIPv6(info, payload)
	}
	return nil
}

func (d *decoder) decodeIPv4(info *Info, data []byte) error {
	if err := d.ip4.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return err
	}
	ip := &d.ip4
	info.IPVersion = 4
	info.SrcIP = addrFrom(ip.SrcIP)
	info.DstIP = addrFrom(ip.DstIP)
	info.Proto = ip.Protocol
	info.IPLen = int(ip.Length)
	info.Frag = FragInfo{
		ID:     uint32(ip.Id),
		Offset: int(ip.FragOffset) * 8,
		More:   ip.Flags&layers.IPv4MoreFragments != 0,
		Len:    len(ip.Payload),
	}
	info.ipPayloadLen = len(ip.Payload)
	if !info.Frag.IsFragment() {
		info.Frag = FragInfo{}
	} else {
		info.fragSum = payloadSum(ip.Payload)
	}
	if info.Frag.Offset == 0 {
		decodePorts(info, ip.Payload)
	}
	return nil
}

func (d *decoder) decodeIPv6(info *Info, data []byte) error {
	if err := d.ip6.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return err
	}
	ip := &d.ip6
	info.IPVersion = 6
	info.SrcIP = addrFrom(ip.SrcIP)
	info.DstIP = addrFrom(ip.DstIP)
	info.IPLen = 40 + int(ip.Length)
	proto, payload := ip.NextHeader, ip.Payload
	if ip.HopByHop != nil {
		proto = ip.HopByHop.NextHeader
	}
	for {
		switch proto {
		case layers.IPProtocolIPv6Routing, layers.IPProtocolIPv6Destination:
			if len(payload) < 8 || len(payload) < (int(payload[1])+1)*8 {
				info.Proto = proto
				return errors.New("truncated IPv6 extension header")
			}
			proto, payload = layers.IPProtocol(payload[0]), payload[(int(payload[1])+1)*8:]
			continue
		case layers.IPProtocolIPv6Fragment:
			if err := d.frag.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
				info.Proto = proto
				return err
			}
			proto, payload = d.frag.NextHeader, d.frag.Payload
			info.Frag = FragInfo{
				ID:     d.frag.Identification,
				Offset: int(d.frag.FragmentOffset) * 8,
				More:   d.frag.MoreFragments,
				Len:    len(payload),
			}
			if !info.Frag.IsFragment() {
				info.Frag = FragInfo{} // an atomic fragment
			} else {
				info.fragSum = payloadSum(payload)
			}
		}
		break
	}
	info.Proto = proto
	info.ipPayloadLen = len(payload)
	if info.Frag.Offset == 0 {
		decodePorts(info, payload)
	}
	return nil
}

// payloadSum returns the FNV-1a hash of b.
func payloadSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// decodePorts reads the ports (and, for UDP, the length) from the start of
// a transport header. Only the fixed fields are read, so a first fragment
// holding just the UDP header still yields them.
func decodePorts(info *Info, b []byte) {
	switch info.Proto {
	case layers.IPProtocolUDP, layers.IPProtocolTCP, layers.IPProtocolSCTP, layers.IPProtocolUDPLite:
	default:
		return
	}
	if len(b) < 4 {
		return
	}
	info.SrcPort = binary.BigEndian.Uint16(b[0:2])
	info.DstPort = binary.BigEndian.Uint16(b[2:4])
	if info.Proto == layers.IPProtocolUDP && len(b) >= 8 {
		var udp layers.UDP
		if udp.DecodeFromBytes(b, gopacket.NilDecodeFeedback) == nil {
			info.UDPLen = int(udp.Length)
		}
	}
}

func addrFrom(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a
}
