package capture

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

// Dir matches frames going in direction d (wire.Outbound or
// wire.Inbound).
func Dir(d wire.Direction) Matcher {
	return frameMatcher(d.String(), func(f *Frame) bool { return f.Dir == d })
}

// Link matches frames recorded on the link with this name.
func Link(name string) Matcher {
	return frameMatcher(fmt.Sprintf("link %q", name), func(f *Frame) bool { return f.Link == name })
}

// Dropped matches frames the link dropped with this reason (wire.DropMTU,
// wire.DropQueueFull, ...); the zero reason matches every dropped frame.
//
// A drop report carries the dropped frame, so address and port predicates
// match it too: combine them with OnWire to count only frames that went
// through the tap.
func Dropped(reason wire.DropReason) Matcher {
	if reason == 0 {
		return frameMatcher("dropped", func(f *Frame) bool { return f.Drop != 0 })
	}
	return frameMatcher("dropped ("+reason.String()+")", func(f *Frame) bool { return f.Drop == reason })
}

// OnWire matches frames that went through the tap, that is, everything but
// drop reports. An outbound frame the link then dropped went through the
// tap (it is recorded before the link gets it, as tcpdump on the sending
// host would see it) and matches, and so does not prove the frame left the
// link; its drop report, recorded after it, matches Dropped instead.
func OnWire() Matcher {
	return frameMatcher("on wire", func(f *Frame) bool { return f.Drop == 0 })
}

// FrameLen matches frames whose on-wire length (Ethernet header included
// on Ethernet links) is n bytes.
func FrameLen(n int) Matcher {
	return frameMatcher(fmt.Sprintf("frame len %d", n), func(f *Frame) bool { return f.Len == n })
}

// SrcMAC matches Ethernet frames from mac.
func SrcMAC(mac net.HardwareAddr) Matcher {
	return infoPred("src mac "+mac.String(), func(i *Info) bool { return i.SrcMAC != nil && bytes.Equal(i.SrcMAC, mac) })
}

// DstMAC matches Ethernet frames to mac.
func DstMAC(mac net.HardwareAddr) Matcher {
	return infoPred("dst mac "+mac.String(), func(i *Info) bool { return i.DstMAC != nil && bytes.Equal(i.DstMAC, mac) })
}

// Broadcast matches Ethernet frames to ff:ff:ff:ff:ff:ff.
func Broadcast() Matcher {
	return infoPred("dst mac broadcast", func(i *Info) bool { return isBroadcastMAC(i.DstMAC) })
}

// MulticastMAC matches Ethernet frames to a group address (the I/G bit
// set) other than broadcast, such as 01:00:5e:xx:xx:xx or 33:33:xx:xx:xx:xx.
func MulticastMAC() Matcher {
	return infoPred("dst mac multicast", func(i *Info) bool {
		return len(i.DstMAC) == 6 && i.DstMAC[0]&1 == 1 && !isBroadcastMAC(i.DstMAC)
	})
}

// EtherType matches frames of this Ethernet type (on raw IP links, IPv4 or
// IPv6 from the IP version).
func EtherType(t layers.EthernetType) Matcher {
	return infoPred("ethertype "+t.String(), func(i *Info) bool { return i.EtherType == t })
}

// IPv4 matches IPv4 packets.
func IPv4() Matcher { return infoPred("ipv4", func(i *Info) bool { return i.IPVersion == 4 }) }

// IPv6 matches IPv6 packets.
func IPv6() Matcher { return infoPred("ipv6", func(i *Info) bool { return i.IPVersion == 6 }) }

// SrcIP matches IP packets from a.
func SrcIP(a netip.Addr) Matcher {
	return infoPred("src ip "+a.String(), func(i *Info) bool { return i.IPVersion != 0 && i.SrcIP == a })
}

// DstIP matches IP packets to a.
func DstIP(a netip.Addr) Matcher {
	return infoPred("dst ip "+a.String(), func(i *Info) bool { return i.IPVersion != 0 && i.DstIP == a })
}

// Proto matches IP packets (fragments included) of transport protocol p.
func Proto(p layers.IPProtocol) Matcher {
	return infoPred(protoName(p), func(i *Info) bool { return i.IPVersion != 0 && i.Proto == p })
}

// UDP matches UDP packets, fragments of UDP datagrams included.
func UDP() Matcher { return Proto(layers.IPProtocolUDP) }

// SrcPort matches UDP or TCP packets from port p. Fragments other than the
// first carry no ports and never match.
func SrcPort(p uint16) Matcher {
	return infoPred(fmt.Sprintf("src port %d", p), func(i *Info) bool { return hasPorts(i) && i.SrcPort == p })
}

// DstPort matches UDP or TCP packets to port p. Fragments other than the
// first carry no ports and never match.
func DstPort(p uint16) Matcher {
	return infoPred(fmt.Sprintf("dst port %d", p), func(i *Info) bool { return hasPorts(i) && i.DstPort == p })
}

func hasPorts(i *Info) bool { return i.SrcPort != 0 || i.DstPort != 0 }

// UDPPayloadLen matches frames carrying a UDP header whose length field
// says the datagram's payload is n bytes. A first fragment matches with the
// size of the whole datagram's payload.
func UDPPayloadLen(n int) Matcher {
	return infoPred(fmt.Sprintf("udp payload %d", n), func(i *Info) bool { return i.UDPPayloadLen() == n })
}

// Fragment matches IP fragments (IPv4 with MF set or a non-zero offset;
// IPv6 with a Fragment header that is not atomic).
func Fragment() Matcher {
	return infoPred("fragment", func(i *Info) bool { return i.Frag.IsFragment() })
}

// FirstFragment matches first fragments (offset 0, more fragments).
func FirstFragment() Matcher {
	return infoPred("first fragment", func(i *Info) bool { return i.Frag.First() })
}

// MiddleFragment matches fragments that are neither first nor last.
func MiddleFragment() Matcher {
	return infoPred("middle fragment", func(i *Info) bool { return i.Frag.Middle() })
}

// LastFragment matches last fragments (non-zero offset, no more
// fragments).
func LastFragment() Matcher {
	return infoPred("last fragment", func(i *Info) bool { return i.Frag.Last() })
}

// ReassembledSize matches the frame that completes an IP datagram of n
// bytes of IP payload, transport header included (as Datagram.Size: a UDP
// datagram with a 3000-byte payload has size 3008): a last fragment whose
// offset plus length is n, or a packet that is not fragmented and carries
// n bytes of IP payload (after any IPv6 extension headers). It looks at
// that one frame only, not at the other fragments: use Reassemble, or
// capturetest.ExpectReassembled, to check that they all arrived.
func ReassembledSize(n int) Matcher {
	return infoPred(fmt.Sprintf("reassembled size %d", n), func(i *Info) bool {
		switch {
		case i.IPVersion == 0:
			return false
		case i.Frag.IsFragment():
			return i.Frag.Last() && i.Frag.Offset+i.Frag.Len == n
		}
		return i.ipPayloadLen == n
	})
}
