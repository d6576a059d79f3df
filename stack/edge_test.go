package stack_test

import (
	"encoding/binary"
	"testing"
	"testing/synctest"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// injector writes hand-made frames into a switch through a port of its own.
type injector struct {
	port *stack.Port
}

func (injector) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}
func (injector) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer)    {}

func newInjector(t *testing.T, sw *stack.Switch) *injector {
	t.Helper()
	p, err := sw.NewPort(stack.PortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := &injector{port: p}
	p.Attach(in)
	t.Cleanup(p.Remove)
	return in
}

// send writes an Ethernet frame to dst carrying an IP packet.
func (in *injector) send(dst tcpip.LinkAddress, proto tcpip.NetworkProtocolNumber, packet []byte) {
	frame := make([]byte, header.EthernetMinimumSize+len(packet))
	header.Ethernet(frame).Encode(&header.EthernetFields{SrcAddr: "\x02\x00\x00\x00\x00\xee", DstAddr: dst, Type: proto})
	copy(frame[header.EthernetMinimumSize:], packet)
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	var l gstack.PacketBufferList
	l.PushBack(pkt)
	in.port.WritePackets(l)
	l.Reset()
}

// ipv4Packet builds an IPv4 packet from 10.0.0.9 to dst carrying a UDP
// datagram to port 9000 (or, with frag, its first fragment only).
func ipv4Packet(dst [4]byte, payload []byte, frag bool) []byte {
	udp := make([]byte, header.UDPMinimumSize+len(payload))
	copy(udp[header.UDPMinimumSize:], payload)
	u := header.UDP(udp)
	u.Encode(&header.UDPFields{SrcPort: 5000, DstPort: 9000, Length: uint16(len(udp))})
	src, d := tcpip.AddrFrom4([4]byte{10, 0, 0, 9}), tcpip.AddrFrom4(dst)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, d, uint16(len(udp)))
	u.SetChecksum(^checksum.Checksum(udp, sum))
	body := udp
	fields := header.IPv4Fields{TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: d, ID: 77}
	if frag {
		body = udp[:16]
		fields.Flags = header.IPv4FlagMoreFragments
	}
	b := make([]byte, header.IPv4MinimumSize+len(body))
	fields.TotalLength = uint16(len(b))
	ip := header.IPv4(b)
	ip.Encode(&fields)
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(b[header.IPv4MinimumSize:], body)
	return b
}

// What the host's IP input would drop is counted in its ledger under its
// reason and reported to the NIC's hooks: invalid headers, addresses the
// host does not have, unknown EtherTypes, a fragment whose datagram never
// completes; a good datagram still arrives.
func TestEdgeDropsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw, hosts, ports := lan(t, 1500)
		h := hosts[0]
		c := listen(t, h, "udp4", "0.0.0.0:9000")
		hooked := map[wire.DropReason]int{}
		h.NICs()[1].AddDropHook(func(packet []byte, dir wire.Direction, reason wire.DropReason) {
			hooked[reason]++
		})
		in := newInjector(t, sw)
		mac := ports[0].LinkAddress()
		me := [4]byte{10, 0, 0, 1}

		good := ipv4Packet(me, []byte("good"), false)
		in.send(mac, header.IPv4ProtocolNumber, good)

		badSum := ipv4Packet(me, []byte("bad header checksum"), false)
		badSum[10] ^= 0xff
		in.send(mac, header.IPv4ProtocolNumber, badSum)

		v5 := ipv4Packet(me, []byte("version 5"), false)
		v5[0] = 0x55
		in.send(mac, header.IPv4ProtocolNumber, v5)

		long := ipv4Packet(me, []byte("total length too long"), false)
		binary.BigEndian.PutUint16(long[2:], uint16(len(long)+100))
		in.send(mac, header.IPv4ProtocolNumber, long)

		in.send(mac, header.IPv6ProtocolNumber, ipv4Packet(me, []byte("IPv4 in an IPv6 frame"), false))
		in.send(mac, header.IPv4ProtocolNumber, ipv4Packet([4]byte{10, 0, 0, 50}, []byte("not for us"), false))
		in.send(mac, 0x88b5, []byte("an EtherType nobody speaks"))

		udpSum := ipv4Packet(me, []byte("bad UDP checksum"), false)
		udpSum[len(udpSum)-1] ^= 1
		in.send(mac, header.IPv4ProtocolNumber, udpSum)

		in.send(mac, header.IPv4ProtocolNumber, ipv4Packet(me, []byte("the first fragment of a datagram that never completes"), true))

		b, _ := recv(t, c)
		if string(b) != "good" {
			t.Fatalf("received %q, want \"good\"", b)
		}
		time.Sleep(31 * time.Second) // IPv4 reassembly gives up after 30 s
		synctest.Wait()
		want := map[wire.DropReason]uint64{
			wire.DropBadHeader: 4, wire.DropNotForUs: 1, wire.DropUnknownProtocol: 1,
			wire.DropBadChecksum: 1, wire.DropReassembly: 1,
		}
		st := h.Stats()
		for r, n := range want {
			if st.Drops[r] != n || hooked[r] != int(n) {
				t.Errorf("%v: ledger %d, hooks %d, want %d", r, st.Drops[r], hooked[r], n)
			}
		}
		if st.Dropped() != 8 || st.UDP.NoListener != 0 || st.ICMP.V4.DstUnreachableSent != 0 {
			t.Errorf("Stats() = %+v, want 8 drops, no port unreachable", st)
		}
		if _, _, err := c.TryReadFromUDPAddrPort(make([]byte, 100)); err == nil {
			t.Error("a second datagram was delivered")
		}
	})
}
