package integration

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// testLAN is hosts on one switch, each NIC tapped into one recorder.
type testLAN struct {
	sw    *stack.Switch
	rec   *capture.Recorder
	hosts []*stack.Host
	ports []*stack.Port
}

// newTestLAN makes one host per MTU: h0 10.0.0.1/24 behind a port of
// mtus[0], h1 10.0.0.2/24, ... Everything is closed when the test ends.
func newTestLAN(t *testing.T, mtus ...int) *testLAN {
	t.Helper()
	l := &testLAN{sw: stack.NewSwitch(stack.SwitchOptions{Name: "sw"}), rec: capture.NewRecorder()}
	capturetest.DumpOnFailure(t, l.rec)
	for i, mtu := range mtus {
		name := "h" + string(rune('0'+i))
		h, err := stack.NewHost(stack.HostOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err := l.sw.NewPort(stack.PortOptions{MTU: mtu})
		if err != nil {
			t.Fatal(err)
		}
		tap := capture.NewTap(p, capture.TapOptions{Name: name, Sink: l.rec})
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
		l.hosts = append(l.hosts, h)
		l.ports = append(l.ports, p)
	}
	return l
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// runLoop runs a loop with a timeout that fails the test.
func runLoop(t *testing.T, loop *dgram.Loop) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := loop.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// The wire, seen through taps, while dgram sockets talk: exact on-wire
// sizes, the broadcast frame and its copies, an MTU drop with its reason,
// and fragments that reassemble.
func TestWireAssertions(t *testing.T) {
	l := newTestLAN(t, 1500, 1500, 576)
	loop := dgram.NewLoop(nil)
	sock := func(i int) *dgram.Socket {
		s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: "udp4", Network: l.hosts[i]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.OnError(func(err error) { t.Errorf("h%d: %v", i, err) })
		return s
	}
	rx1, rx2, tx := sock(1), sock(2), sock(0)
	var got []int
	var steps []func()
	next := func() {
		if len(steps) == 0 {
			rx1.Close(nil)
			rx2.Close(nil)
			tx.Close(nil)
			return
		}
		s := steps[0]
		steps = steps[1:]
		s()
	}
	for _, rx := range []*dgram.Socket{rx1, rx2} {
		rx.OnMessage(func(msg []byte, _ dgram.RemoteInfo) { got = append(got, len(msg)); next() })
	}
	send := func(size int, to string) func() {
		return func() {
			tx.Send(make([]byte, size), 9000, to, func(_ int, err error) {
				if err != nil {
					t.Errorf("send %d bytes to %s: %v", size, to, err)
				}
			})
		}
	}
	steps = []func(){
		send(1472, "10.0.0.2"), // the largest unfragmented datagram
		func() { tx.SetBroadcast(true); send(10, "255.255.255.255")() },
		func() {}, // the broadcast's second copy
		send(3000, "10.0.0.2"),
	}
	rx2.Bind(9000, "", func() { rx1.Bind(9000, "", func() { tx.Bind(0, "", func() { next() }) }) })
	runLoop(t, loop)
	if want := []int{1472, 10, 10, 3000}; len(got) != len(want) {
		t.Fatalf("received sizes %v, want %v", got, want)
	}

	frames := l.rec.Frames()
	onWireUDP := capture.All(capture.OnWire(), capture.UDP(), capture.DstPort(9000))
	// 1472 + 8 UDP + 20 IPv4 + 14 Ethernet = 1514: out of h0, into h1.
	capturetest.Expect(t, frames, capture.All(onWireUDP, capture.FrameLen(1514), capture.Not(capture.Fragment())), 2)
	// One broadcast frame leaves h0 and arrives at h1 and h2.
	capturetest.Expect(t, frames, capture.All(onWireUDP, capture.Broadcast(), capture.FrameLen(10+8+20+14)), 3)
	capturetest.Expect(t, frames, capture.All(onWireUDP, capture.Broadcast(), capture.Link("h2"), capture.Dir(wire.Inbound)), 1)
	// 3000 bytes cross as three fragments and reassemble, on both taps.
	capturetest.Expect(t, frames, capture.All(onWireUDP, capture.FirstFragment()), 2)
	capturetest.ExpectReassembled(t, frames, capture.All(capture.Link("h1"), capture.Dir(wire.Inbound)), 3000)

	// An MTU drop: 1400 bytes to the host behind the 576 port.
	l.rec.Reset()
	c, err := l.hosts[0].ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(make([]byte, 1400), netip.MustParseAddrPort("10.0.0.3:9000")); err != nil {
		t.Fatal(err)
	}
	drop := capturetest.WaitFor(t, l.rec, capture.Dropped(wire.DropMTU))
	if drop.Link != "h2" || drop.Dir != wire.Inbound || drop.Len != 1442 {
		t.Errorf("drop recorded as %v", drop)
	}
	capturetest.ExpectNone(t, l.rec.Frames(), capture.All(capture.OnWire(), capture.Link("h2"), capture.UDP()))
	if n := l.ports[2].Counters().Drops[wire.DropMTU]; n != 1 {
		t.Errorf("port counter: %d MTU drops, want 1", n)
	}
}

// Calls on a closed host fail cleanly: a send's callback gets ENETDOWN
// (the host failed its socket's conn), a new socket's bind is an 'error'
// event (EBADF), a stack conn reports net.ErrClosed; nothing panics or
// hangs.
func TestClosedHost(t *testing.T) {
	l := newTestLAN(t, 1500)
	h := l.hosts[0]
	loop := dgram.NewLoop(h)
	s, _ := loop.CreateSocket("udp4", nil)
	var events []string
	s.Bind(0, "", func() {
		h.Close()
		s.Send([]byte("x"), 9, "10.0.0.1", func(n int, err error) {
			events = append(events, "send: "+err.Error())
			s.Close(nil)
			s2, _ := loop.CreateSocket("udp4", nil)
			s2.OnError(func(err error) { events = append(events, "bind: "+err.Error()) })
			s2.Bind(0, "", nil)
		})
	})
	runLoop(t, loop)
	want := []string{"send: send ENETDOWN 10.0.0.1:9", "bind: bind EBADF 0.0.0.0"}
	if len(events) != 2 || events[0] != want[0] || events[1] != want[1] {
		t.Fatalf("events %q, want %q", events, want)
	}
	if _, err := h.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0")); !errors.Is(err, net.ErrClosed) && !errors.Is(err, stack.ErrHostClosed) {
		t.Fatalf("ListenUDP on a closed host = %v", err)
	}
	if _, err := h.AddNIC(nil, stack.NICOptions{}); err == nil {
		t.Fatal("AddNIC(nil) succeeded")
	}
}
