package stack_test

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// pipeHosts joins two hosts, a (10.0.0.1) and b (10.0.0.2), by a Pipe and
// opens a conn on 9000 on each. Everything is closed when the test ends.
type pipeHosts struct {
	next   int // the number of the next datagram sendSeq sends
	a, b   *stack.Host
	ea, eb *stack.PipeEnd
	ca, cb *stack.UDPConn
}

func newPipeHosts(t testing.TB, opts stack.PipeOptions) *pipeHosts {
	t.Helper()
	ea, eb, err := stack.NewPipe(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeHosts{ea: ea, eb: eb}
	for i, e := range []*stack.PipeEnd{ea, eb} {
		h, err := stack.NewHost(stack.HostOptions{Name: "p" + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(e, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
		c := listen(t, h, "udp4", "0.0.0.0:9000")
		// Room for every datagram the tests send before they read (a small
		// datagram costs 832 bytes of buffer, as on Linux).
		if err := c.SetReadBuffer(stack.MaxSocketBuffer); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			p.a, p.ca = h, c
		} else {
			p.b, p.cb = h, c
		}
	}
	return p
}

var toB = netip.MustParseAddrPort("10.0.0.2:9000")

// sendSeq sends n datagrams of size bytes from a to b, numbered on from
// the last one sent.
func (p *pipeHosts) sendSeq(t testing.TB, n, size int) {
	t.Helper()
	msg := make([]byte, max(size, 4))
	for range n {
		i := p.next
		p.next++
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := p.ca.WriteToUDPAddrPort(msg, toB); err != nil {
			t.Fatalf("WriteTo #%d = %v", i, err)
		}
	}
}

// drainSeq reads what b has without waiting and returns the numbers.
func drainSeq(c *stack.UDPConn) []int {
	var got []int
	buf := make([]byte, 2048)
	for {
		n, _, err := c.TryReadFromUDPAddrPort(buf)
		if err != nil {
			return got
		}
		if n >= 4 {
			got = append(got, int(binary.BigEndian.Uint32(buf)))
		}
	}
}

// Loss drops a share of the frames; each is counted with its reason, shows
// in the drop hooks, and the same seed drops the same frames.
func TestImpairLossIsSeeded(t *testing.T) {
	run := func(seed int64) (got []int, c stack.LinkCounters, hooked int) {
		p := newPipeHosts(t, stack.PipeOptions{Name: "lossy"})
		remove := p.ea.AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) {
			if reason != wire.DropLoss || dir != wire.Outbound {
				t.Errorf("drop hook: reason %v, direction %v; want loss, outbound", reason, dir)
			}
			hooked++
		})
		defer remove()
		if err := p.ea.SetImpairments(wire.Outbound, stack.Impairments{Loss: 0.3, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		p.sendSeq(t, 500, 32)
		return drainSeq(p.cb), p.ea.Counters(), hooked
	}
	got1, c1, hooked := run(7)
	got2, _, _ := run(7)
	got3, _, _ := run(8)
	lost := c1.Drops[wire.DropLoss]
	if uint64(len(got1))+lost != 500 || c1.TxFrames != uint64(len(got1)) || hooked != int(lost) {
		t.Fatalf("received %d, Tx %d, lost %d, hooked %d: want received+lost = 500", len(got1), c1.TxFrames, lost, hooked)
	}
	if lost < 100 || lost > 200 {
		t.Errorf("lost %d of 500 at 30%%", lost)
	}
	if !slices.Equal(got1, got2) {
		t.Errorf("seed 7 twice dropped different frames")
	}
	if slices.Equal(got1, got3) {
		t.Errorf("seeds 7 and 8 dropped the same frames")
	}
}

// Stages draw from their own streams: turning on delay and duplication
// does not change which frames loss picks.
func TestImpairStreamsAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lostWith := func(im stack.Impairments) []int {
			p := newPipeHosts(t, stack.PipeOptions{Name: "x"})
			p.ea.SetImpairments(wire.Outbound, im)
			p.sendSeq(t, 200, 32)
			time.Sleep(time.Second)
			got := drainSeq(p.cb)
			var lost []int
			for i := range 200 {
				if !slices.Contains(got, i) {
					lost = append(lost, i)
				}
			}
			return lost
		}
		a := lostWith(stack.Impairments{Loss: 0.2, Seed: 3})
		b := lostWith(stack.Impairments{Loss: 0.2, Seed: 3, Delay: 5 * time.Millisecond, Jitter: time.Millisecond, Duplicate: 0.3})
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("lost %v alone, %v with delay and duplication", a, b)
		}
	})
}

// Delay holds every frame exactly Delay in virtual time; jitter varies it
// but keeps the order.
func TestImpairDelayAndJitter(t *testing.T) {
	for _, dist := range []stack.Distribution{stack.Uniform, stack.Normal, stack.Pareto} {
		t.Run(dist.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPipeHosts(t, stack.PipeOptions{})
				if err := p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 20 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				p.sendSeq(t, 1, 10)
				recv(t, p.cb)
				if d := time.Since(start); d != 20*time.Millisecond {
					t.Fatalf("delivered after %v, want 20ms", d)
				}
				p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Distribution: dist, Seed: 1})
				for i := range 100 {
					p.sendSeq(t, 1, 10+i)
					time.Sleep(time.Millisecond)
				}
				time.Sleep(2 * time.Second)
				got := drainSeq(p.cb)
				if len(got) != 100 || !slices.IsSorted(got) {
					t.Fatalf("got %v, want 100 frames in order", got)
				}
			})
		})
	}
}

// Delays spread around Delay with the spread Jitter asks for.
func TestImpairJitterSpread(t *testing.T) {
	for _, dist := range []stack.Distribution{stack.Uniform, stack.Normal, stack.Pareto} {
		t.Run(dist.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPipeHosts(t, stack.PipeOptions{})
				p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond, Distribution: dist, Seed: 5})
				var delays []float64
				for range 400 {
					start := time.Now()
					p.sendSeq(t, 1, 10)
					recv(t, p.cb)
					delays = append(delays, float64(time.Since(start))/float64(time.Millisecond))
					time.Sleep(time.Second) // an empty queue: no FIFO clamp
				}
				var sum, sq float64
				for _, d := range delays {
					sum += d
				}
				mean := sum / float64(len(delays))
				for _, d := range delays {
					sq += (d - mean) * (d - mean)
				}
				sd := math.Sqrt(sq / float64(len(delays)))
				wantSD := 10.0
				if dist == stack.Uniform {
					wantSD = 10 / math.Sqrt(3)
				}
				if math.Abs(mean-100) > 2 || math.Abs(sd-wantSD) > wantSD/4 {
					t.Errorf("%v: mean %.2fms sd %.2fms, want 100ms and %.2fms", dist, mean, sd, wantSD)
				}
			})
		})
	}
}

// Reordering lets frames overtake; duplication delivers copies; both are
// counted.
func TestImpairReorderAndDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeHosts(t, stack.PipeOptions{})
		p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 10 * time.Millisecond, Reorder: 0.25, Duplicate: 0.1, Seed: 2})
		for range 200 {
			p.sendSeq(t, 1, 10)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		got := drainSeq(p.cb)
		c := p.ea.Counters()
		if c.Reordered == 0 || c.Duplicated == 0 || uint64(len(got)) != 200+c.Duplicated || c.TxFrames != uint64(len(got)) {
			t.Fatalf("got %d frames, counters %+v", len(got), c)
		}
		if slices.IsSorted(got) {
			t.Errorf("no frame overtook another with Reorder 0.25")
		}
	})
}

// A corrupted frame is delivered with a flipped bit and the receiver's
// checksums drop it.
func TestImpairCorrupt(t *testing.T) {
	p := newPipeHosts(t, stack.PipeOptions{})
	p.eb.SetImpairments(wire.Inbound, stack.Impairments{Corrupt: 1, Seed: 4})
	p.sendSeq(t, 50, 100)
	if got := drainSeq(p.cb); len(got) != 0 {
		t.Errorf("received %d corrupted datagrams", len(got))
	}
	c := p.eb.Counters()
	st := p.b.Stats()
	caught := st.Drops[wire.DropBadHeader] + st.Drops[wire.DropBadChecksum] + st.Drops[wire.DropBadLength] + st.Drops[wire.DropNotForUs]
	if c.Corrupted != 50 || c.RxFrames != 50 || caught != 50 || st.Dropped() != 50 {
		t.Errorf("Corrupted %d, Rx %d, caught by the receiver %d (ledger %v); want 50 each", c.Corrupted, c.RxFrames, caught, st.Drops)
	}
}

// The token bucket paces frames at Rate; frames beyond QueueLimit are
// dropped as queue-full.
func TestImpairRateAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeHosts(t, stack.PipeOptions{})
		// 80 kbit/s is 10 kB/s: a 1000-byte IP packet every 100ms.
		p.ea.SetImpairments(wire.Outbound, stack.Impairments{Rate: 80_000, QueueLimit: 5})
		start := time.Now()
		p.sendSeq(t, 8, 1000-28)
		for i := range 5 {
			recv(t, p.cb)
			if d, want := time.Since(start), time.Duration(i+1)*100*time.Millisecond; d != want {
				t.Errorf("frame %d left after %v, want %v", i, d, want)
			}
		}
		if c := p.ea.Counters(); c.Drops[wire.DropQueueFull] != 3 || c.TxFrames != 5 {
			t.Errorf("counters %+v, want 5 sent and 3 queue-full", c)
		}
		// A burst lets frames go at once after an idle time.
		p.ea.SetImpairments(wire.Outbound, stack.Impairments{Rate: 80_000, RateBurst: 3000})
		time.Sleep(time.Second)
		start = time.Now()
		p.sendSeq(t, 4, 1000-28)
		for range 3 {
			recv(t, p.cb)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("burst: three frames took %v", d)
		}
		recv(t, p.cb)
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("burst: the fourth frame took %v, want 100ms", d)
		}
	})
}

// Gilbert-Elliott loses frames in runs.
func TestImpairBurstLoss(t *testing.T) {
	p := newPipeHosts(t, stack.PipeOptions{})
	p.ea.SetImpairments(wire.Outbound, stack.Impairments{BurstLoss: &stack.GilbertElliott{P: 0.02, R: 0.2}, Seed: 9})
	p.sendSeq(t, 2000, 10)
	got := drainSeq(p.cb)
	lost := 2000 - len(got)
	if c := p.ea.Counters(); c.Drops[wire.DropLoss] != uint64(lost) || lost == 0 {
		t.Fatalf("lost %d, counted %v", lost, c.Drops)
	}
	// Mean burst 1/R = 5 frames: count runs of lost frames.
	runs, prev := 0, -1
	for _, n := range got {
		if n != prev+1 {
			runs++
		}
		prev = n
	}
	if mean := float64(lost) / float64(runs); mean < 3 || mean > 8 {
		t.Errorf("%d frames lost in %d runs (mean %.1f, want about 5)", lost, runs, mean)
	}
}

// A link going down drops what it holds (link-down); closing drops it as
// detached; nothing is left pending and no goroutine leaks.
func TestImpairHeldFramesOnDownAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeHosts(t, stack.PipeOptions{})
		p.ea.SetImpairments(wire.Outbound, stack.Impairments{Delay: 50 * time.Millisecond})
		p.sendSeq(t, 3, 10)
		time.Sleep(10 * time.Millisecond)
		p.ea.SetLinkUp(false)
		time.Sleep(100 * time.Millisecond)
		p.ea.SetLinkUp(true)
		if c := p.ea.Counters(); c.Drops[wire.DropLinkDown] != 3 || c.TxFrames != 0 {
			t.Errorf("after down: %+v", c)
		}
		p.sendSeq(t, 4, 10)
		p.a.Close()
		if c := p.ea.Counters(); c.Drops[wire.DropDetached] != 4 {
			t.Errorf("after close: %+v", c)
		}
	})
}

// Impairments change while traffic flows: race-clean, and every frame is
// accounted for (delivered or dropped with a reason).
func TestImpairChangeWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeHosts(t, stack.PipeOptions{})
		const n = 600
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range n {
				p.sendSeq(t, 1, 10)
				if i%3 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		go func() {
			defer wg.Done()
			settings := []stack.Impairments{
				{Loss: 0.2, Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond},
				{},
				{Duplicate: 0.2, Rate: 1_000_000, QueueLimit: 3},
				{Reorder: 0.5, Delay: time.Millisecond, Corrupt: 0.1},
				{Loss: 0.5},
			}
			for i := range 100 {
				if err := p.ea.SetImpairments(stack.BothDirections, settings[i%len(settings)]); err != nil {
					t.Error(err)
				}
				p.eb.SetImpairments(wire.Inbound, settings[(i+1)%len(settings)])
				time.Sleep(time.Millisecond)
			}
			p.ea.SetImpairments(stack.BothDirections, stack.Impairments{})
			p.eb.SetImpairments(wire.Inbound, stack.Impairments{})
		}()
		wg.Wait()
		time.Sleep(time.Second)
		a, b := p.ea.Counters(), p.eb.Counters()
		if a.TxFrames+a.Dropped() != n+a.Duplicated {
			t.Errorf("end a: %d sent + %d dropped != %d + %d duplicated", a.TxFrames, a.Dropped(), n, a.Duplicated)
		}
		if b.RxFrames+b.Dropped() != a.TxFrames+b.Duplicated {
			t.Errorf("end b: %d received + %d dropped != %d sent by a + %d duplicated", b.RxFrames, b.Dropped(), a.TxFrames, b.Duplicated)
		}
	})
}

// Impairments on a Switch port: per port, per direction.
func TestImpairSwitchPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, hosts, ports := lan(t, 1500, 1500, 1500)
		srv := listen(t, hosts[1], "udp4", "0.0.0.0:9000")
		srv2 := listen(t, hosts[2], "udp4", "0.0.0.0:9000")
		cli := listen(t, hosts[0], "udp4", "0.0.0.0:0")
		cli.SetBroadcast(true)
		ports[1].SetImpairments(wire.Inbound, stack.Impairments{Delay: 30 * time.Millisecond})
		ports[2].SetImpairments(wire.Inbound, stack.Impairments{Delay: 10 * time.Millisecond})
		start := time.Now()
		cli.WriteToUDPAddrPort([]byte("hi"), netip.MustParseAddrPort("255.255.255.255:9000"))
		recv(t, srv2)
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("h2 got the broadcast after %v", d)
		}
		recv(t, srv)
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("h1 got the broadcast after %v", d)
		}
		if got := ports[1].Impairments(wire.Inbound).Delay; got != 30*time.Millisecond {
			t.Errorf("Impairments = %v", got)
		}
		if got := ports[1].Impairments(wire.Outbound); !got.IsZero() {
			t.Errorf("Impairments(wire.Outbound) = %v, want none", got)
		}
		// A port removed with frames held drops them as detached. (gVisor
		// sends ARP requests, and the packets waiting for them, from
		// zero-delay timers: synctest.Wait lets them run.)
		cli.WriteToUDPAddrPort([]byte("hi"), netip.MustParseAddrPort("10.0.0.2:9000"))
		recv(t, srv)
		ports[1].SetImpairments(wire.Inbound, stack.Impairments{Delay: time.Second})
		cli.WriteToUDPAddrPort([]byte("hi"), netip.MustParseAddrPort("10.0.0.2:9000"))
		synctest.Wait()
		ports[1].Remove()
		if c := ports[1].Counters(); c.Drops[wire.DropDetached] != 1 {
			t.Errorf("removed port: %+v", c)
		}
	})
}

// An ImpairedLink impairs any endpoint.
func TestImpairedLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ea, eb, _ := stack.NewPipe(stack.PipeOptions{})
		wrapped := stack.NewImpairedLink(ea, stack.ImpairedLinkOptions{Name: "tun0"})
		var hosts []*stack.Host
		for i, ep := range []gvstack.LinkEndpoint{wrapped, eb} {
			h, _ := stack.NewHost(stack.HostOptions{Name: "w" + string(rune('a'+i))})
			defer h.Close()
			addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
			if _, err := h.AddNIC(ep, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, h)
		}
		ca := listen(t, hosts[0], "udp4", "0.0.0.0:9000")
		cb := listen(t, hosts[1], "udp4", "0.0.0.0:9000")
		var reasons []wire.DropReason
		wrapped.AddDropHook(func(_ []byte, _ wire.Direction, reason wire.DropReason) { reasons = append(reasons, reason) })
		if err := wrapped.SetImpairments(stack.BothDirections, stack.Impairments{Delay: 15 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ca.WriteToUDPAddrPort([]byte("ping"), toB)
		_, from := recv(t, cb)
		cb.WriteToUDPAddrPort([]byte("pong"), from)
		recv(t, ca)
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("round trip %v, want 30ms", d)
		}
		wrapped.SetImpairments(wire.Outbound, stack.Impairments{Loss: 1})
		ca.WriteToUDPAddrPort([]byte("lost"), toB)
		if err := ea.SetLinkMTU(100); err != nil {
			t.Fatal(err)
		}
		wrapped.SetImpairments(wire.Outbound, stack.Impairments{})
		ca.WriteToUDPAddrPort(make([]byte, 200), toB)
		if !slices.Equal(reasons, []wire.DropReason{wire.DropLoss, wire.DropMTU}) || wrapped.Counters().Drops[wire.DropLoss] != 1 {
			t.Errorf("drops reported %v, counted %v", reasons, wrapped.Counters().Drops)
		}
	})
}

// An ImpairedLink around an Ethernet link (a Switch port) keeps link
// headers right: ARP and UDP work through it, delayed.
func TestImpairedLinkEthernet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := stack.NewSwitch(stack.SwitchOptions{})
		var conns []*stack.UDPConn
		var wrapped *stack.ImpairedLink
		for i := range 2 {
			h, _ := stack.NewHost(stack.HostOptions{Name: "e" + string(rune('a'+i))})
			defer h.Close()
			p, _ := sw.NewPort(stack.PortOptions{})
			var ep gvstack.LinkEndpoint = p
			if i == 0 {
				wrapped = stack.NewImpairedLink(p, stack.ImpairedLinkOptions{Name: "eth"})
				wrapped.SetImpairments(stack.BothDirections, stack.Impairments{Delay: 10 * time.Millisecond, Seed: 1})
				ep = wrapped
			}
			addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
			if _, err := h.AddNIC(ep, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, listen(t, h, "udp4", "0.0.0.0:9000"))
		}
		for range 20 {
			conns[0].WriteToUDPAddrPort([]byte("x"), toB)
			time.Sleep(100 * time.Millisecond)
		}
		drainN := func(c *stack.UDPConn) int {
			n := 0
			buf := make([]byte, 100)
			for {
				if _, _, err := c.TryReadFromUDPAddrPort(buf); err != nil {
					return n
				}
				n++
			}
		}
		if got := drainN(conns[1]); got != 20 {
			t.Errorf("got %d of 20 through the delay", got)
		}
		// Corruption flips bits past the Ethernet header only: every frame
		// reaches the host, whose checksums drop it.
		wrapped.SetImpairments(wire.Inbound, stack.Impairments{Corrupt: 1, Seed: 1})
		for range 5 {
			conns[1].WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.1:9000"))
			time.Sleep(10 * time.Millisecond)
		}
		if got, c := drainN(conns[0]), wrapped.Counters(); got != 0 || c.Corrupted != 5 {
			t.Errorf("got %d corrupted datagrams; counters %+v", got, c)
		}
	})
}
