package integration

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenPcap is the capture TestGoldenImpairedCapture compares with.
const goldenPcap = "testdata/impaired.pcapng"

// TestGoldenImpairedCapture proves deterministic mode: a scenario on an
// impaired virtual LAN, run inside a testing/synctest bubble (virtual time:
// its minutes of delays take milliseconds), writes a pcapng that is the
// same, byte for byte, on every run: the same frames dropped (with the same
// reasons), duplicated, corrupted, delayed and reordered, with the same
// timestamps. Run it with -count=20 to see it; run it with -update after a
// deliberate change to what goes on the wire (gVisor's version, the
// hosts' options) to rewrite the golden file.
func TestGoldenImpairedCapture(t *testing.T) {
	var got []byte
	var sum *capture.Summary
	synctest.Test(t, func(t *testing.T) { got, sum = impairedScenario(t) })

	// Every kind of drop the scenario provokes is in the capture.
	reasons := map[wire.DropReason]int{}
	for _, d := range sum.Drops {
		r, ok := wire.ParseDropReason(d.Reason)
		if !ok {
			t.Errorf("the capture has drops for %q, which is no wire.DropReason", d.Reason)
		}
		reasons[r] = d.Frames
	}
	for _, r := range []wire.DropReason{wire.DropLoss, wire.DropQueueFull, wire.DropLinkDown} {
		if reasons[r] == 0 {
			t.Errorf("no %v drop in the capture (drops: %v)", r, reasons)
		}
	}

	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenPcap), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPcap, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", goldenPcap, len(got))
		return
	}
	want, err := os.ReadFile(goldenPcap)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		path := filepath.Join(t.ArtifactDir(), "impaired.pcapng")
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Logf("cannot keep this run's capture: %v", err)
		}
		t.Fatalf("the capture differs from %s (%d bytes, want %d); this run's is %s (kept with go test -artifacts). If what goes on the wire changed on purpose, rerun with -update.",
			goldenPcap, len(got), len(want), path)
	}
}

// impairedScenario runs a fixed scenario on three hosts whose switch ports
// are impaired, and returns its pcapng and a summary. It must run in a
// synctest bubble. The scenario moves in steps: the test goroutine sends,
// then sleeps (virtual time) while the links deliver, then reads what came
// without waiting, so that only one goroutine at a time puts frames on the
// wire. (Two goroutines woken at the same virtual instant, say two hosts'
// timers, would race: the scenario keeps its hosts' actions apart in time.)
func impairedScenario(t *testing.T) ([]byte, *capture.Summary) {
	var out bytes.Buffer
	pcap := capture.NewPcapngWriter(&out)
	rec := capture.NewRecorder()
	sink := capture.Tee(rec, pcap)
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "golden"})
	type node struct {
		host *stack.Host
		port *stack.Port
		conn *stack.UDPConn
		addr netip.Addr
	}
	var nodes []*node
	for i, name := range []string{"a", "b", "c"} {
		h, err := stack.NewHost(stack.HostOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		tap := capture.NewTap(p, capture.TapOptions{Name: name, Sink: sink, Clock: time.Now})
		if _, err := h.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(addr, 24)}}); err != nil {
			t.Fatal(err)
		}
		c, err := h.ListenUDP("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), 7000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetBroadcast(true)
		nodes = append(nodes, &node{host: h, port: p, conn: c, addr: addr})
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	to := func(n *node) netip.AddrPort { return netip.AddrPortFrom(n.addr, 7000) }
	send := func(from, dst *node, size int, tag string) {
		msg := bytes.Repeat([]byte(tag), size/len(tag)+1)[:size]
		if _, err := from.conn.WriteToUDPAddrPort(msg, to(dst)); err != nil {
			t.Fatalf("%s: WriteTo = %v", tag, err)
		}
	}
	// drain reads what n has and, if echo, sends it back.
	drain := func(n *node, echo bool) int {
		buf := make([]byte, 2048)
		got := 0
		for {
			m, from, err := n.conn.TryReadFromUDPAddrPort(buf)
			if err != nil {
				return got
			}
			got++
			if echo && from.Port() == 7000 {
				n.conn.WriteToUDPAddrPort(buf[:m], from)
			}
		}
	}

	// Static ARP entries: gVisor resolves addresses on timer goroutines,
	// which race with the rest of a flooded ARP request (the frames would
	// come in either order) and probe neighbours again 5s later.
	for _, n := range nodes {
		var nicID tcpip.NICID
		for id, info := range n.host.Stack().NICInfo() {
			if info.Name == "eth0" {
				nicID = id
			}
		}
		for _, peer := range nodes {
			if peer != n {
				if tcpipErr := n.host.Stack().AddStaticNeighbor(nicID, ipv4.ProtocolNumber, tcpip.AddrFrom4(peer.addr.As4()), peer.port.LinkAddress()); tcpipErr != nil {
					t.Fatalf("AddStaticNeighbor: %v", tcpipErr)
				}
			}
		}
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.port.SetImpairments(stack.BothDirections, stack.Impairments{
		Loss: 0.1, Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: stack.Normal,
		Duplicate: 0.05, Corrupt: 0.05, Reorder: 0.1, Seed: 42,
	}))
	must(b.port.SetImpairments(wire.Inbound, stack.Impairments{
		Rate: 190_000, QueueLimit: 3,
		BurstLoss: &stack.GilbertElliott{P: 0.05, R: 0.4}, Seed: 42,
	}))
	must(c.port.SetImpairments(wire.Outbound, stack.Impairments{
		Delay: 7 * time.Millisecond, Jitter: 3 * time.Millisecond, Distribution: stack.Pareto, Seed: 42,
	}))

	for round := range 60 {
		send(a, b, 40+round*5, fmt.Sprintf("a%d>b;", round))
		send(a, c, 30+round*5, fmt.Sprintf("a%d>c;", round))
		if round%4 == 0 {
			// A burst into b's rate-limited port overflows its queue.
			for k := range 4 {
				send(c, b, 200, fmt.Sprintf("c%d.%d>b;", round, k))
			}
		}
		if round%10 == 5 {
			c.conn.WriteToUDPAddrPort([]byte("broadcast from c"), netip.MustParseAddrPort("255.255.255.255:7000"))
		}
		switch round {
		case 20:
			c.port.SetLinkUp(false)
		case 23:
			c.port.SetLinkUp(true)
		case 40:
			must(a.port.SetImpairments(wire.Outbound, stack.Impairments{Delay: 3 * time.Millisecond, Jitter: time.Millisecond, Seed: 42}))
		}
		// b and c echo at different instants: their echoes start gVisor
		// timers (neighbour probes 5s later) that must not fire together.
		time.Sleep(37 * time.Millisecond)
		drain(b, true)
		time.Sleep(3 * time.Millisecond)
		drain(c, true)
		time.Sleep(57 * time.Millisecond) // rounds of 97ms: 5s is no multiple of it
		drain(a, false)
	}
	time.Sleep(2 * time.Second)
	for _, n := range nodes {
		drain(n, false)
	}
	if err := pcap.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), capture.SummarizeFrames(rec.Frames())
}
