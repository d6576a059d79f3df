package stack_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
)

// Fuzz inputs are one or more frames, each prefixed by its length as a
// big-endian uint16 (a short last frame is taken as it is). At most
// fuzzMaxFrames frames are injected, so reassembly and neighbour code see
// sequences, not only single packets.
const fuzzMaxFrames = 8

var (
	fuzzHostV4  = netip.MustParseAddr("10.0.0.1")
	fuzzPeerV4  = netip.MustParseAddr("10.0.0.2")
	fuzzHostV6  = netip.MustParseAddr("fd00::1")
	fuzzPeerV6  = netip.MustParseAddr("fd00::2")
	fuzzPeerMAC = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x99")
)

const fuzzPort = 7

func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 && len(frames) < fuzzMaxFrames {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

func joinFrames(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}

// ipv4UDP builds an IPv4 packet carrying a UDP datagram (or a fragment of
// one: off in 8-byte units, more for MF). udpLen overrides the UDP length
// field when non-zero.
func ipv4UDP(src, dst netip.Addr, id uint16, off uint16, more bool, payload []byte, withUDP bool) []byte {
	body := payload
	if withUDP {
		u := make([]byte, header.UDPMinimumSize+len(payload))
		udp := header.UDP(u)
		udp.Encode(&header.UDPFields{SrcPort: 5000, DstPort: fuzzPort, Length: uint16(len(u))})
		copy(u[header.UDPMinimumSize:], payload)
		s, d := toAddr(src), toAddr(dst)
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(len(u)))
		xsum = checksum.Checksum(payload, xsum)
		udp.SetChecksum(^udp.CalculateChecksum(xsum))
		body = u
	}
	p := make([]byte, header.IPv4MinimumSize+len(body))
	ip := header.IPv4(p)
	var flags uint8
	if more {
		flags = header.IPv4FlagMoreFragments
	}
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(p)), ID: id, Flags: flags, FragmentOffset: off * 8, TTL: 64,
		Protocol: uint8(header.UDPProtocolNumber), SrcAddr: toAddr(src), DstAddr: toAddr(dst),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(p[header.IPv4MinimumSize:], body)
	return p
}

func ipv6UDP(src, dst netip.Addr, payload []byte) []byte {
	u := make([]byte, header.UDPMinimumSize+len(payload))
	udp := header.UDP(u)
	udp.Encode(&header.UDPFields{SrcPort: 5000, DstPort: fuzzPort, Length: uint16(len(u))})
	copy(u[header.UDPMinimumSize:], payload)
	s, d := toAddr(src), toAddr(dst)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(len(u)))
	xsum = checksum.Checksum(payload, xsum)
	udp.SetChecksum(^udp.CalculateChecksum(xsum))
	p := make([]byte, header.IPv6MinimumSize+len(u))
	header.IPv6(p).Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(u)), TransportProtocol: header.UDPProtocolNumber, HopLimit: 64,
		SrcAddr: s, DstAddr: d,
	})
	copy(p[header.IPv6MinimumSize:], u)
	return p
}

func toAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

func eth(dst, src tcpip.LinkAddress, typ tcpip.NetworkProtocolNumber, payload []byte) []byte {
	f := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: dst, Type: typ})
	copy(f[header.EthernetMinimumSize:], payload)
	return f
}

// rawSeeds are IP packets (no link header) for the seed corpora.
func rawSeeds() [][][]byte {
	msg := []byte("hello fuzz")
	big := bytes.Repeat([]byte{0xab}, 40)
	v4 := ipv4UDP(fuzzPeerV4, fuzzHostV4, 1, 0, false, msg, true)
	v6 := ipv6UDP(fuzzPeerV6, fuzzHostV6, msg)
	// A 48-byte UDP datagram in three fragments (16+16+16 bytes).
	whole := ipv4UDP(fuzzPeerV4, fuzzHostV4, 7, 0, false, big, true)[header.IPv4MinimumSize:]
	frag1 := ipv4UDP(fuzzPeerV4, fuzzHostV4, 7, 0, true, whole[:16], false)
	frag2 := ipv4UDP(fuzzPeerV4, fuzzHostV4, 7, 2, true, whole[16:32], false)
	frag3 := ipv4UDP(fuzzPeerV4, fuzzHostV4, 7, 4, false, whole[32:], false)
	overlap := ipv4UDP(fuzzPeerV4, fuzzHostV4, 7, 1, true, whole[8:32], false)
	badXsum := append([]byte(nil), v4...)
	badXsum[10] ^= 0xff
	badUDPXsum := append([]byte(nil), v4...)
	badUDPXsum[len(badUDPXsum)-1] ^= 0xff
	badTotLen := append([]byte(nil), v4...)
	binary.BigEndian.PutUint16(badTotLen[2:], 0xffff)
	badUDPLen := append([]byte(nil), v4...)
	binary.BigEndian.PutUint16(badUDPLen[header.IPv4MinimumSize+4:], 3)
	badIHL := append([]byte(nil), v4...)
	badIHL[0] = 0x4f
	v6BadLen := append([]byte(nil), v6...)
	binary.BigEndian.PutUint16(v6BadLen[4:], 0x4000)
	return [][][]byte{
		{v4}, {v6}, {frag1, frag2, frag3}, {frag3, frag1, frag2}, {frag1, overlap, frag2, frag3},
		{frag2}, {frag1, frag1}, {badXsum}, {badUDPXsum}, {badTotLen}, {badUDPLen}, {badIHL},
		{v6BadLen}, {v4[:10]}, {v4[:header.IPv4MinimumSize+4]}, {v6[:20]}, {{}}, {{0x60}}, {{0x45}},
	}
}

// frameSeeds wraps the raw seeds in Ethernet and adds link-level oddities.
func frameSeeds(host tcpip.LinkAddress) [][]byte {
	var seeds [][]byte
	for _, pkts := range rawSeeds() {
		var frames [][]byte
		for _, p := range pkts {
			typ := header.IPv4ProtocolNumber
			if len(p) > 0 && p[0]>>4 == 6 {
				typ = header.IPv6ProtocolNumber
			}
			frames = append(frames, eth(host, fuzzPeerMAC, typ, p))
		}
		seeds = append(seeds, joinFrames(frames...))
	}
	arp := make([]byte, header.ARPSize)
	a := header.ARP(arp)
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), fuzzPeerMAC)
	copy(a.ProtocolAddressSender(), fuzzPeerV4.AsSlice())
	copy(a.ProtocolAddressTarget(), fuzzHostV4.AsSlice())
	v4 := ipv4UDP(fuzzPeerV4, fuzzHostV4, 1, 0, false, []byte("x"), true)
	seeds = append(seeds,
		joinFrames(eth(header.EthernetBroadcastAddress, fuzzPeerMAC, header.ARPProtocolNumber, arp)),
		joinFrames(eth(host, fuzzPeerMAC, header.ARPProtocolNumber, arp[:10])),
		joinFrames(eth(host, fuzzPeerMAC, 0x88b5, []byte("odd ethertype"))),
		joinFrames(eth(host, fuzzPeerMAC, header.IPv6ProtocolNumber, v4)), // v4 in a v6 frame
		joinFrames(eth(host, host, header.IPv4ProtocolNumber, v4)),        // spoofs the host's MAC
		joinFrames(eth(header.EthernetBroadcastAddress, fuzzPeerMAC, header.IPv4ProtocolNumber, v4)),
		joinFrames(eth("\x01\x00\x5e\x00\x00\x01", fuzzPeerMAC, header.IPv4ProtocolNumber, v4)),
		joinFrames(eth("\x02\x00\x00\x00\x00\x42", fuzzPeerMAC, header.IPv4ProtocolNumber, v4)), // other host
		joinFrames(eth(host, fuzzPeerMAC, header.IPv4ProtocolNumber, make([]byte, 1600))),       // too big
		joinFrames([]byte{1, 2, 3}),
		joinFrames(make([]byte, 14)),
	)
	return seeds
}

// recorder is the injector's NIC: it counts the frames the switch
// delivers to it.
type recorder struct{ n atomic.Int64 }

func (r *recorder) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {
	r.n.Add(1)
}
func (r *recorder) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}

// fuzzHost is a host with one NIC and a udp4 and a udp6 socket on port 7.
type fuzzHost struct {
	h         *stack.Host
	c4, c6    *stack.UDPConn
	delivered int
}

func newFuzzHost(t *testing.T, ep gstack.LinkEndpoint) *fuzzHost {
	t.Helper()
	h, err := stack.NewHost(stack.HostOptions{Name: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if _, err := h.AddNIC(ep, stack.NICOptions{Addresses: []netip.Prefix{
		netip.PrefixFrom(fuzzHostV4, 24), netip.PrefixFrom(fuzzHostV6, 64),
	}}); err != nil {
		t.Fatal(err)
	}
	fh := &fuzzHost{h: h}
	if fh.c4, err = h.ListenUDP("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), fuzzPort)); err != nil {
		t.Fatal(err)
	}
	if fh.c6, err = h.ListenUDP("udp6", netip.AddrPortFrom(fuzzHostV6, fuzzPort)); err != nil {
		t.Fatal(err)
	}
	return fh
}

// drain reads every datagram waiting on the sockets (delivery is
// synchronous, so nothing is still in flight) and returns the payloads.
func (fh *fuzzHost) drain() [][]byte {
	var got [][]byte
	buf := make([]byte, 70000)
	for _, c := range []*stack.UDPConn{fh.c4, fh.c6} {
		for {
			n, _, err := c.TryReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			got = append(got, append([]byte(nil), buf[:n]...))
		}
	}
	fh.delivered += len(got)
	return got
}

// check verifies the host's UDP accounting and that valid datagrams still
// reach both sockets; inject sends one IP packet (wrapping it as needed).
func (fh *fuzzHost) check(t *testing.T, inject func(ip []byte)) {
	t.Helper()
	fh.drain()
	st := fh.h.Stats().UDP
	if uint64(fh.delivered) > st.Received {
		t.Fatalf("sockets read %d datagrams, host counted %d received", fh.delivered, st.Received)
	}
	for _, p := range [][]byte{
		ipv4UDP(fuzzPeerV4, fuzzHostV4, 0xbeef, 0, false, []byte("after-v4"), true),
		ipv6UDP(fuzzPeerV6, fuzzHostV6, []byte("after-v6")),
	} {
		inject(p)
		got := fh.drain()
		if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("after-v")) {
			t.Fatalf("after the fuzz frames, a valid datagram was not delivered exactly once: got %q (host stats %+v)", got, fh.h.Stats())
		}
	}
}

func writeFrame(p *stack.Port, frame []byte) {
	var pkt *gstack.PacketBuffer
	if len(frame) >= header.EthernetMinimumSize {
		pkt = gstack.NewPacketBuffer(gstack.PacketBufferOptions{
			ReserveHeaderBytes: header.EthernetMinimumSize,
			Payload:            buffer.MakeWithData(frame[header.EthernetMinimumSize:]),
		})
		copy(pkt.LinkHeader().Push(header.EthernetMinimumSize), frame)
	} else {
		pkt = gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	}
	var l gstack.PacketBufferList
	l.PushBack(pkt)
	p.WritePackets(l)
	pkt.DecRef()
}

// FuzzInjectFrame injects arbitrary Ethernet frames into a switch port
// facing a host: nothing may panic or hang, every frame is accounted for
// by the link counters, and the host still receives valid datagrams.
func FuzzInjectFrame(f *testing.F) {
	// The host's port is the switch's first: its MAC is fixed.
	hostMAC := tcpip.LinkAddress([]byte{0x02, 0, 0, 0, 0, 0})
	{
		sw := stack.NewSwitch(stack.SwitchOptions{Name: "fuzz"})
		p, _ := sw.NewPort(stack.PortOptions{})
		hostMAC = p.LinkAddress()
	}
	for _, s := range frameSeeds(hostMAC) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sw := stack.NewSwitch(stack.SwitchOptions{Name: "fuzz"})
		hp, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var rec recorder
		ip.Attach(&rec)
		fh := newFuzzHost(t, hp)

		frames := splitFrames(data)
		for _, fr := range frames {
			before, hostBefore := ip.Counters(), hp.Counters()
			dropsBefore, deliveredBefore := fh.h.Stats().Dropped(), fh.delivered
			writeFrame(ip, fr)
			after := ip.Counters()
			if got := (after.TxFrames - before.TxFrames) + (after.Dropped() - before.Dropped()); got != 1 {
				t.Fatalf("frame %x: injector port counted %d frames (tx+drops), want 1", fr, got)
			}
			// Conservation at the host: a whole IPv4 or IPv6 packet
			// carrying UDP for the host's own address that reached its
			// NIC is delivered once or dropped with a reason, once.
			if hp.Counters().RxFrames-hostBefore.RxFrames == 1 && udpForHost(fr, hostMAC) {
				fh.drain()
				outcomes := uint64(fh.delivered-deliveredBefore) + fh.h.Stats().Dropped() - dropsBefore
				if outcomes != 1 {
					t.Fatalf("frame %x: UDP for the host had %d outcomes (delivered %d, ledger %v), want 1",
						fr, outcomes, fh.delivered-deliveredBefore, fh.h.Stats().Drops)
				}
			}
		}
		// The host may still be sending on its timers: read what the
		// injector received before what the host's port sent.
		injRx := rec.n.Load()
		ic, hc := ip.Counters(), hp.Counters()
		// Every frame that entered the switch left it (to a NIC, filtered,
		// or dropped with a reason). The host may still be sending on its
		// timers, so its side is a lower bound.
		if out := hc.RxFrames + hc.Filtered + hc.Dropped() + ic.Filtered; out < ic.TxFrames {
			t.Fatalf("injected %d frames into the switch, only %d accounted at the host port (%+v, injector %+v)", ic.TxFrames, out, hc, ic)
		}
		if uint64(injRx) > hc.TxFrames {
			t.Fatalf("injector received %d frames, host port sent %d", injRx, hc.TxFrames)
		}
		fh.check(t, func(p []byte) {
			typ := header.IPv4ProtocolNumber
			if p[0]>>4 == 6 {
				typ = header.IPv6ProtocolNumber
			}
			// The fuzz frames may have taught the switch that the
			// host's MAC is behind the injector: a frame from the host's
			// port (as the host would send) teaches it back.
			writeFrame(hp, eth(header.EthernetBroadcastAddress, hostMAC, 0x88b5, []byte("relearn")))
			writeFrame(ip, eth(hostMAC, fuzzPeerMAC, typ, p))
		})
	})
}

// FuzzInjectPacket injects arbitrary IP packets into a Pipe whose other end
// is a host's NIC (a raw-IP link, like a TUN device).
func FuzzInjectPacket(f *testing.F) {
	for _, pkts := range rawSeeds() {
		f.Add(joinFrames(pkts...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b, err := stack.NewPipe(stack.PipeOptions{Name: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		var rec recorder
		a.Attach(&rec)
		fh := newFuzzHost(t, b)
		inject := func(p []byte) {
			pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
			// As a TUN device does: the version nibble names the protocol.
			pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
			if len(p) > 0 && p[0]>>4 == 6 {
				pkt.NetworkProtocolNumber = header.IPv6ProtocolNumber
			}
			var l gstack.PacketBufferList
			l.PushBack(pkt)
			a.WritePackets(l)
			pkt.DecRef()
		}
		frames := splitFrames(data)
		for _, p := range frames {
			before, bb := a.Counters(), b.Counters()
			inject(p)
			after, ba := a.Counters(), b.Counters()
			if got := (after.TxFrames - before.TxFrames) + (after.Dropped() - before.Dropped()); got != 1 {
				t.Fatalf("packet %x: sending end counted %d (tx+drops), want 1", p, got)
			}
			if after.TxFrames > before.TxFrames {
				if got := (ba.RxFrames - bb.RxFrames) + (ba.Dropped() - bb.Dropped()); got != 1 {
					t.Fatalf("packet %x: host's end counted %d (rx+drops), want 1", p, got)
				}
			}
		}
		fh.check(t, inject)
	})
}

// udpForHost reports whether frame is addressed to the host's MAC and
// carries a whole (unfragmented) IPv4 or IPv6 packet whose protocol is UDP
// and whose destination is the host's address.
func udpForHost(frame []byte, hostMAC tcpip.LinkAddress) bool {
	if len(frame) < header.EthernetMinimumSize || tcpip.LinkAddress(frame[:6]) != hostMAC {
		return false
	}
	eth, ip := header.Ethernet(frame), frame[header.EthernetMinimumSize:]
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		if len(ip) < header.IPv4MinimumSize || ip[0]>>4 != 4 {
			return false
		}
		h := header.IPv4(ip)
		return h.Protocol() == uint8(header.UDPProtocolNumber) && !h.More() && h.FragmentOffset() == 0 &&
			h.DestinationAddress() == tcpip.AddrFrom4(fuzzHostV4.As4())
	case header.IPv6ProtocolNumber:
		if len(ip) < header.IPv6MinimumSize || ip[0]>>4 != 6 {
			return false
		}
		h := header.IPv6(ip)
		return h.NextHeader() == uint8(header.UDPProtocolNumber) && h.DestinationAddress() == tcpip.AddrFrom16(fuzzHostV6.As16())
	}
	return false
}
