package capture

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTapRecordsBothDirections(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ether    bool
		linkType layers.LinkType
		overhead int // bytes added to the UDP payload on the wire
	}{
		{"ethernet", true, layers.LinkTypeEthernet, 8 + 20 + 14},
		{"l3", false, layers.LinkTypeRaw, 8 + 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, tc.ether, 1500, nil)
			if got := l.tap1.LinkType(); got != tc.linkType {
				t.Fatalf("LinkType() = %v, want %v", got, tc.linkType)
			}
			_ = udpEndpoint(t, l.s2, 9000)
			ep := udpEndpoint(t, l.s1, 40000)
			const payload = 100
			sendUDP(t, ep, ip2, 9000, payload)

			datagram := All(UDP(), SrcIP(ip1), DstIP(ip2), SrcPort(40000), DstPort(9000), UDPPayloadLen(payload), FrameLen(payload+tc.overhead))
			ctx := waitCtx(t)
			out, err := l.rec.Wait(ctx, All(Link("h1/eth0"), Dir(wire.Outbound), datagram))
			if err != nil {
				t.Fatalf("outbound: %v\n%s", err, Listing(l.rec.Frames(), nil))
			}
			in, err := l.rec.Wait(ctx, All(Link("h2/eth0"), Dir(wire.Inbound), datagram))
			if err != nil {
				t.Fatalf("inbound: %v\n%s", err, Listing(l.rec.Frames(), nil))
			}
			if !bytes.Equal(out.Data, in.Data) {
				t.Errorf("inbound frame differs from outbound frame:\nout % x\nin  % x", out.Data, in.Data)
			}
			if out.LinkType != tc.linkType || in.LinkType != tc.linkType {
				t.Errorf("frame link types = %v, %v, want %v", out.LinkType, in.LinkType, tc.linkType)
			}
			if !out.Time.Before(in.Time) {
				t.Errorf("outbound time %v not before inbound time %v", out.Time, in.Time)
			}
			if err := CheckCount(l.rec.Frames(), All(OnWire(), datagram), 2); err != nil {
				t.Error(err)
			}
			if tc.ether {
				// ARP: a broadcast request out of h1, into h2; a unicast reply back.
				if err := CheckCount(l.rec.Frames(), All(Broadcast(), EtherType(layers.EthernetTypeARP)), 2); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestTapRecordsDrops(t *testing.T) {
	l := newLab(t, true, 1500, nil)
	_ = udpEndpoint(t, l.s2, 9000)
	ep := udpEndpoint(t, l.s1, 40000)
	sendUDP(t, ep, ip2, 9000, 10) // resolves ARP first
	ctx := waitCtx(t)
	if _, err := l.rec.Wait(ctx, All(Dir(wire.Inbound), DstPort(9000))); err != nil {
		t.Fatal(err)
	}

	l.end1.setLimit(576)
	sendUDP(t, ep, ip2, 9000, 1000)
	drop, err := l.rec.Wait(ctx, Dropped(wire.DropMTU))
	if err != nil {
		t.Fatal(err)
	}
	if drop.Dir != wire.Outbound || drop.Link != "h1/eth0" || drop.Len != 1000+8+20+14 || len(drop.Data) != drop.Len {
		t.Errorf("drop = %v, want outbound on h1/eth0 with len %d", drop, 1000+8+20+14)
	}
	if !UDPPayloadLen(1000).Match(drop) {
		t.Errorf("drop report does not carry the dropped frame: %v", drop)
	}
	frames := l.rec.Frames()
	// The tap saw the frame leave, then the link dropped it: it never arrived.
	for _, c := range []struct {
		m    Matcher
		want int
	}{
		{All(OnWire(), Dir(wire.Outbound), UDPPayloadLen(1000)), 1},
		{All(OnWire(), Dir(wire.Inbound), UDPPayloadLen(1000)), 0},
		{Dropped(0), 1},
	} {
		if err := CheckCount(frames, c.m, c.want); err != nil {
			t.Error(err)
		}
	}
}

func TestTapFragments(t *testing.T) {
	l := newLab(t, true, 1500, nil)
	_ = udpEndpoint(t, l.s2, 9000)
	ep := udpEndpoint(t, l.s1, 40000)
	const payload = 3000 // 3008 bytes of IP payload: 1480 + 1480 + 48
	sendUDP(t, ep, ip2, 9000, payload)
	ctx := waitCtx(t)
	if _, err := l.rec.WaitCount(ctx, All(Dir(wire.Inbound), Fragment()), 3); err != nil {
		t.Fatal(err)
	}
	frames := Filter(l.rec.Frames(), Link("h2/eth0"))
	for _, c := range []struct {
		m    Matcher
		want int
	}{
		{All(FirstFragment(), UDPPayloadLen(payload), DstPort(9000), FrameLen(1514)), 1},
		{All(MiddleFragment(), FrameLen(1514)), 1},
		{All(LastFragment(), FrameLen(48+20+14)), 1},
		{Fragment(), 3},
	} {
		if err := CheckCount(frames, c.m, c.want); err != nil {
			t.Error(err)
		}
	}
	ds := Reassemble(frames)
	if len(ds) != 1 || !ds[0].Complete || ds[0].UDPPayloadLen() != payload || ds[0].Fragments != 3 || ds[0].DstPort != 9000 {
		t.Errorf("Reassemble = %+v, want one complete datagram of %d payload bytes in 3 fragments", ds, payload)
	}
}

func TestTapCloseRemovesHook(t *testing.T) {
	a, _ := newPair(true, 1500)
	tap := NewTap(a, TapOptions{})
	if got := a.hookCount(); got != 1 {
		t.Fatalf("hooks after NewTap = %d, want 1", got)
	}
	tap.Close()
	tap.Close() // idempotent
	if got := a.hookCount(); got != 0 {
		t.Errorf("hooks after Close = %d, want 0", got)
	}
	if got := tap.Name(); got != "02:00:00:00:00:01" {
		t.Errorf("default Name() = %q, want the link address", got)
	}
}

// Frames the wrapped link drops as it closes (those an impairment still
// held) are recorded: the tap removes its hook only once the link is
// closed.
func TestTapRecordsDropsOnClose(t *testing.T) {
	a, _ := newPair(false, 1500)
	rec := NewRecorder()
	tap := NewTap(a, TapOptions{Name: "held", Sink: rec})
	frame := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	a.held = [][]byte{frame}
	tap.Close()
	fs := rec.Frames()
	if len(fs) != 1 || fs[0].Drop != wire.DropDetached || fs[0].Dir != wire.Outbound || !bytes.Equal(fs[0].Data, frame) {
		t.Errorf("recorded %v, want the held frame as an outbound drop with reason \"detached\"", fs)
	}
	if got := a.hookCount(); got != 0 {
		t.Errorf("hooks after Close = %d, want 0", got)
	}
}

func TestTapsStack(t *testing.T) {
	a, _ := newPair(false, 1500)
	outer, inner := NewRecorder(), NewRecorder()
	t1 := NewTap(a, TapOptions{Name: "inner", Sink: inner})
	t2 := NewTap(t1, TapOptions{Name: "outer", Sink: outer})
	if got := a.hookCount(); got != 2 {
		t.Fatalf("hooks on the link = %d, want 2 (the outer tap's goes through the inner one)", got)
	}
	frame := bytes.Repeat([]byte{0x45}, 40)
	pkt := newInboundPacket(frame)
	defer pkt.DecRef()
	a.drop(pkt, wire.Inbound, wire.DropQueueFull)
	for _, rec := range []*Recorder{inner, outer} {
		fs := rec.Frames()
		if len(fs) != 1 || fs[0].Drop != wire.DropQueueFull || fs[0].Dir != wire.Inbound || !bytes.Equal(fs[0].Data, frame) {
			t.Errorf("recorded %v, want one inbound queue-full drop of the frame", fs)
		}
	}
	t2.Close() // closes the inner tap too, as nested endpoints do
	if got := a.hookCount(); got != 0 {
		t.Errorf("hooks after closing the outer tap = %d, want 0", got)
	}
}

// fakeDispatcher records what a tap delivers.
type fakeDispatcher struct {
	got [][]byte
}

func (d *fakeDispatcher) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	v := pkt.ToView()
	d.got = append(d.got, bytes.Clone(v.AsSlice()))
	v.Release()
}
func (d *fakeDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// TestInboundFrameKeepsConsumedHeader checks the PacketBuffer facts the tap
// relies on: after a link consumes the Ethernet header, ToView (and the
// tap's copy) still start with it; and the tap takes no reference away.
func TestInboundFrameKeepsConsumedHeader(t *testing.T) {
	frame := make([]byte, 14+20)
	copy(frame, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00")
	frame[14] = 0x45
	released := false
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload:   newInboundPacket(frame).ToBuffer(),
		OnRelease: func() { released = true },
	})
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok || !bytes.Equal(hdr, frame[:14]) {
		t.Fatalf("Consume = % x, %v", hdr, ok)
	}
	v := pkt.ToView()
	if !bytes.Equal(v.AsSlice(), frame) {
		t.Errorf("ToView after Consume = % x, want the whole frame % x", v.AsSlice(), frame)
	}
	v.Release()

	a, _ := newPair(true, 1500)
	rec := NewRecorder()
	tap := NewTap(a, TapOptions{Name: "x", Sink: rec})
	var d fakeDispatcher
	tap.Attach(&d)
	tap.DeliverNetworkPacket(header.IPv4ProtocolNumber, pkt)
	if released {
		t.Fatal("tap released a packet it did not own")
	}
	pkt.DecRef()
	if !released {
		t.Error("packet still referenced after its owner's DecRef: the tap leaked a reference")
	}
	fs := rec.Frames()
	if len(fs) != 1 || !bytes.Equal(fs[0].Data, frame) || fs[0].Dir != wire.Inbound {
		t.Errorf("recorded %v, want the whole inbound frame", fs)
	}
	if len(d.got) != 1 || !bytes.Equal(d.got[0], frame) {
		t.Errorf("dispatcher got %x, want the frame unchanged", d.got)
	}
	tap.Attach(nil)
	tap.Close()
}

// A link that breaks the DropHook contract (the zero reason, or one outside
// the enumeration) still has its drops recorded, as wire.DropUnknown.
func TestTapRecordsUnknownReason(t *testing.T) {
	a, _ := newPair(false, 1500)
	rec := NewRecorder()
	tap := NewTap(a, TapOptions{Name: "odd", Sink: rec})
	defer tap.Close()
	pkt := newInboundPacket(bytes.Repeat([]byte{0x45}, 40))
	defer pkt.DecRef()
	a.drop(pkt, wire.Inbound, 0)
	a.drop(pkt, wire.Outbound, wire.MaxDropReason+1)
	fs := rec.Frames()
	if len(fs) != 2 || fs[0].Drop != wire.DropUnknown || fs[1].Drop != wire.DropUnknown || fs[0].Dir != wire.Inbound || fs[1].Dir != wire.Outbound {
		t.Errorf("recorded %v, want an inbound and an outbound drop with reason unknown", fs)
	}
	if n := Count(fs, Dropped(0)); n != 2 {
		t.Errorf("Count(Dropped(0)) = %d, want 2", n)
	}
}
