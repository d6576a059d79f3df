package capture

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

// TimeFormat is the layout of the time at the start of Frame.String.
const TimeFormat = "15:04:05.000000000"

// String describes the frame on one line, for test failures and logs:
//
//	15:04:05.000000123 h1/eth0 out len=1442 02:00:00:00:00:01>ff:ff:ff:ff:ff:ff udp 10.0.0.1:40000>10.0.0.255:5353 payload=1400
//	15:04:05.000000456 sw0/p2 in len=1514 02:00:00:00:00:01>02:00:00:00:00:02 udp 10.0.0.1>10.0.0.2 frag(id=7 off=1480 len=1480 more) DROPPED mtu
//
// Fields: time (UTC), link, direction, on-wire length, MAC addresses
// (Ethernet links), transport protocol, addresses with ports when the frame
// carries them, the UDP payload size from the UDP header, fragment info, and
// the drop reason. The format is for people; match frames with Matchers.
func (f Frame) String() string {
	var b strings.Builder
	if f.Time.IsZero() {
		b.WriteString("-")
	} else {
		b.WriteString(f.Time.UTC().Format(TimeFormat))
	}
	fmt.Fprintf(&b, " %s %s len=%d", f.Link, shortDir(f.Dir), f.Len)
	if f.Len != len(f.Data) {
		fmt.Fprintf(&b, " caplen=%d", len(f.Data))
	}
	i := f.Info()
	if i.DstMAC != nil {
		fmt.Fprintf(&b, " %s>%s", i.SrcMAC, i.DstMAC)
	}
	switch {
	case i.IPVersion != 0:
		fmt.Fprintf(&b, " %s %s>%s", protoName(i.Proto), hostPort(i.SrcIP, i.SrcPort), hostPort(i.DstIP, i.DstPort))
		if i.HasUDP() {
			fmt.Fprintf(&b, " payload=%d", i.UDPPayloadLen())
		}
	case i.EtherType != 0:
		fmt.Fprintf(&b, " %s", strings.ToLower(i.EtherType.String()))
	}
	if i.Frag.IsFragment() {
		fmt.Fprintf(&b, " frag(id=%d off=%d len=%d", i.Frag.ID, i.Frag.Offset, i.Frag.Len)
		if i.Frag.More {
			b.WriteString(" more")
		}
		b.WriteString(")")
	}
	if i.Err != nil {
		fmt.Fprintf(&b, " [%v]", i.Err)
	}
	if f.Drop != 0 {
		fmt.Fprintf(&b, " DROPPED %s", f.Drop)
	}
	return b.String()
}

// shortDir is the direction in Frame.String, shortened to keep the line
// short: "out" (wire.Outbound), "in" (wire.Inbound), or "?".
func shortDir(d wire.Direction) string {
	switch d {
	case wire.Outbound:
		return "out"
	case wire.Inbound:
		return "in"
	}
	return "?"
}

// protoName returns a short lower-case name for an IP protocol.
func protoName(p layers.IPProtocol) string {
	switch p {
	case layers.IPProtocolUDP:
		return "udp"
	case layers.IPProtocolTCP:
		return "tcp"
	case layers.IPProtocolICMPv4:
		return "icmp"
	case layers.IPProtocolICMPv6:
		return "icmp6"
	case layers.IPProtocolIGMP:
		return "igmp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

func hostPort(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}
