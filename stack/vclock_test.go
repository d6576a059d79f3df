package stack_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Impairments with a VirtualClock: nothing moves until the clock does.
func TestImpairVirtualClock(t *testing.T) {
	vc := stack.NewVirtualClock(time.Time{})
	p := newPipeHosts(t, stack.PipeOptions{Clock: vc})
	p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 1})
	p.sendSeq(t, 10, 10)
	if got := drainSeq(p.cb); len(got) != 0 {
		t.Fatalf("delivered %v before the clock moved", got)
	}
	next, ok := vc.Next()
	if !ok || next.Before(stack.VirtualEpoch.Add(15*time.Millisecond)) {
		t.Fatalf("Next() = %v, %v", next, ok)
	}
	vc.Advance(14 * time.Millisecond)
	if got := drainSeq(p.cb); len(got) != 0 {
		t.Fatalf("delivered %v before 15ms", got)
	}
	vc.Advance(time.Second)
	if got := drainSeq(p.cb); len(got) != 10 {
		t.Fatalf("delivered %v after 1s", got)
	}
	if _, ok := vc.Next(); ok {
		t.Errorf("a timer is still pending")
	}
}

func TestVirtualClockTimers(t *testing.T) {
	vc := stack.NewVirtualClock(time.Time{})
	var got []string
	add := func(name string, d time.Duration) interface {
		Stop() bool
		Reset(time.Duration)
	} {
		return vc.AfterFunc(d, func() { got = append(got, name+"@"+vc.Elapsed().String()) })
	}
	add("b", 2*time.Second)
	add("a", time.Second)
	add("a2", time.Second)
	c := add("c", 3*time.Second)
	d := add("d", 4*time.Second)
	vc.AfterFunc(1500*time.Millisecond, func() { add("nested", 0) })
	if !c.Stop() || c.Stop() {
		t.Error("Stop")
	}
	d.Reset(500 * time.Millisecond)
	vc.Advance(10 * time.Second)
	want := []string{"d@500ms", "a@1s", "a2@1s", "nested@1.5s", "b@2s"}
	if !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	if vc.Elapsed() != 10*time.Second || !vc.Now().Equal(stack.VirtualEpoch.Add(10*time.Second)) {
		t.Errorf("Now %v", vc.Now())
	}
	vc.AdvanceTo(stack.VirtualEpoch) // the past: nothing
	if vc.Elapsed() != 10*time.Second {
		t.Errorf("AdvanceTo the past moved the clock to %v", vc.Elapsed())
	}
}

// RunDue runs zero-delay timers (gVisor's ARP requests) at once, so hosts
// on a VirtualClock resolve addresses without anyone advancing it.
func TestVirtualClockRunDue(t *testing.T) {
	vc := stack.NewVirtualClock(time.Time{})
	stop := vc.RunDue()
	defer stop()
	sw := stack.NewSwitch(stack.SwitchOptions{Clock: vc})
	var conns []*stack.UDPConn
	for i := range 2 {
		h, err := stack.NewHost(stack.HostOptions{Name: "v" + string(rune('a'+i)), Clock: vc})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, _ := sw.NewPort(stack.PortOptions{})
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, listen(t, h, "udp4", "0.0.0.0:9000"))
	}
	conns[0].WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.2:9000"))
	recv(t, conns[1])
	if vc.Elapsed() != 0 {
		t.Errorf("the clock moved by itself: %v", vc.Elapsed())
	}
	stop()
	stop() // twice is fine
}
