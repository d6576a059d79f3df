package capture

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

var (
	mac1  = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2  = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
)

// udpSpec describes a synthetic UDP datagram.
type udpSpec struct {
	ether          bool // Ethernet frame, else raw IP
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	payload        int
	// fragSize, when non-zero, splits the datagram into IP fragments
	// carrying at most fragSize payload bytes (a multiple of 8).
	fragSize int
	id       uint32
}

// frames returns the frames of the datagram, stamped at t0 + i ns.
func (s udpSpec) frames(t *testing.T, link string, dir wire.Direction, t0 time.Time) []Frame {
	t.Helper()
	lt := layers.LinkTypeRaw
	if s.ether {
		lt = layers.LinkTypeEthernet
	}
	var out []Frame
	for i, b := range s.build(t) {
		out = append(out, Frame{Link: link, LinkType: lt, Dir: dir, Time: t0.Add(time.Duration(i)), Data: b, Len: len(b)})
	}
	return out
}

func (s udpSpec) build(t testing.TB) [][]byte {
	t.Helper()
	if s.srcMAC == nil {
		s.srcMAC = mac1
	}
	if s.dstMAC == nil {
		s.dstMAC = mac2
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	v6 := s.src.Is6()
	// The whole UDP segment first (its checksum needs the pseudo-header).
	udp := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
	var netLayer gopacket.NetworkLayer
	ethType := layers.EthernetTypeIPv4
	if v6 {
		ethType = layers.EthernetTypeIPv6
		netLayer = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
	} else {
		netLayer = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: uint16(s.id), SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
	}
	if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, s.payload)
	for i := range payload {
		payload[i] = byte(i)
	}
	seg := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(seg, opts, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	segment := seg.Bytes()

	type piece struct {
		off  int
		data []byte
		more bool
	}
	pieces := []piece{{0, segment, false}}
	if s.fragSize > 0 {
		pieces = nil
		for off := 0; off < len(segment); off += s.fragSize {
			end := min(off+s.fragSize, len(segment))
			pieces = append(pieces, piece{off, segment[off:end], end < len(segment)})
		}
	}
	var out [][]byte
	for _, p := range pieces {
		var ls []gopacket.SerializableLayer
		if s.ether {
			ls = append(ls, &layers.Ethernet{SrcMAC: s.srcMAC, DstMAC: s.dstMAC, EthernetType: ethType})
		}
		switch {
		case v6 && s.fragSize > 0:
			ip := *netLayer.(*layers.IPv6)
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			ls = append(ls, &ip, &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(p.off / 8), MoreFragments: p.more, Identification: s.id})
		case v6:
			ip := *netLayer.(*layers.IPv6)
			ls = append(ls, &ip)
		default:
			ip := *netLayer.(*layers.IPv4)
			ip.FragOffset = uint16(p.off / 8)
			if p.more {
				ip.Flags = layers.IPv4MoreFragments
			}
			ls = append(ls, &ip)
		}
		ls = append(ls, gopacket.Payload(p.data))
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// arpFrame returns a broadcast ARP request from mac1/10.0.0.1 for 10.0.0.2.
func arpFrame(t *testing.T, link string, tm time.Time) Frame {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: mac1, DstMAC: bcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: mac1, SourceProtAddress: ip1.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: ip2.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	return Frame{Link: link, LinkType: layers.LinkTypeEthernet, Dir: wire.Outbound, Time: tm, Data: b, Len: len(b)}
}

// scenario returns a fixed set of frames covering what captures hold: ARP
// broadcast, unicast UDP both ways, a fragmented datagram, a multicast, an
// IPv6 datagram on a raw link, and MTU and queue-full drops.
func scenario(t *testing.T) []Frame {
	t.Helper()
	t0 := epoch
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms)*time.Millisecond + time.Duration(ms)) }
	var fs []Frame
	add := func(more ...Frame) { fs = append(fs, more...) }
	add(arpFrame(t, "h1/eth0", at(0)))
	uni := udpSpec{ether: true, src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 100}
	add(uni.frames(t, "h1/eth0", wire.Outbound, at(1))...)
	add(uni.frames(t, "h2/eth0", wire.Inbound, at(2))...)
	back := udpSpec{ether: true, srcMAC: mac2, dstMAC: mac1, src: ip2, dst: ip1, sport: 9000, dport: 40000, payload: 100}
	add(back.frames(t, "h2/eth0", wire.Outbound, at(3))...)
	frag := udpSpec{ether: true, src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 3000, fragSize: 1480, id: 7}
	add(frag.frames(t, "h1/eth0", wire.Outbound, at(4))...)
	mc := udpSpec{ether: true, dstMAC: mcast, src: ip1, dst: netip.MustParseAddr("224.0.0.251"), sport: 7000, dport: 7000, payload: 20}
	add(mc.frames(t, "h1/eth0", wire.Outbound, at(5))...)
	bc := udpSpec{ether: true, dstMAC: bcast, src: ip1, dst: netip.MustParseAddr("10.0.0.255"), sport: 6000, dport: 6000, payload: 10}
	add(bc.frames(t, "h1/eth0", wire.Outbound, at(6))...)
	v6 := udpSpec{src: netip.MustParseAddr("fd00::1"), dst: netip.MustParseAddr("fd00::2"), sport: 1234, dport: 9053, payload: 30}
	add(v6.frames(t, "tun0", wire.Outbound, at(7))...)
	v6frag := udpSpec{src: netip.MustParseAddr("fd00::1"), dst: netip.MustParseAddr("fd00::2"), sport: 1234, dport: 9053, payload: 2000, fragSize: 1232, id: 99}
	add(v6frag.frames(t, "tun0", wire.Outbound, at(8))...)
	big := udpSpec{ether: true, src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 1472}
	drop := big.frames(t, "sw0/port2", wire.Inbound, at(9))[0]
	drop.Drop = wire.DropMTU
	add(drop)
	qf := uni.frames(t, "h1/eth0", wire.Outbound, at(10))[0]
	qf.Drop = wire.DropQueueFull
	add(qf)
	return fs
}
