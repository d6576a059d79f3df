package main

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Names of the paths the others are compared with, and of Node's.
const (
	refPathName  = "kernel net.UDPConn"
	nodePathName = "node"
)

// Measurement constants, the same for every path.
const (
	// drainIdle: after the sender stops, the receiver is done when every
	// datagram has arrived or none has arrived for this long.
	drainIdle = 100 * time.Millisecond
	// pingTimeout: a ping with no pong after this long is a timeout and
	// the next ping is sent.
	pingTimeout = 500 * time.Millisecond
	// setupTimeout bounds binding and priming (the first datagram through,
	// which resolves ARP on a Switch).
	setupTimeout = 5 * time.Second
	// sendBatch is how many datagrams an event-loop sender (dgram, Node)
	// sends per turn: the last one's callback sends the next batch, which
	// keeps the loop's queue bounded, as a Node program would.
	sendBatch = 32
)

// Payload marks: the first byte of every one-way datagram.
const (
	markPrime   = 'P' // priming, not counted
	markMeasure = 'M' // counted
)

// oneWaySpec says how one one-way measurement runs.
type oneWaySpec struct {
	size     int
	duration time.Duration
	// rate paces the sender at this many datagrams per second; 0 sends
	// as fast as the sender can.
	rate float64
	// rcvbuf is the SO_RCVBUF the receiver asks for; 0 keeps the default.
	rcvbuf int
}

// A benchPath moves datagrams between two endpoints one way. Each
// measurement sets up fresh endpoints and tears them down, so no state (a
// full buffer, a learnt MAC) carries over from one measurement to the next.
type benchPath struct {
	name string
	// about describes the path in one line, for the report's legend.
	about string
	// inProcess is set when both ends run in this process, so allocations
	// per datagram are measured.
	inProcess bool
	oneWay    func(ctx context.Context, spec oneWaySpec) (oneWayRun, error)
	pingPong  func(ctx context.Context, size int, d time.Duration) (pingRun, error)
	// bindNode gives the node path its runner.
	bindNode func(*nodeRunner)
}

// benchPaths returns every path, in the order they run.
func benchPaths() []*benchPath {
	node := &benchPath{name: nodePathName, about: "Node dgram on 127.0.0.1: a sender and a receiver process (an echo process for ping-pong)"}
	node.bindNode = func(r *nodeRunner) {
		node.oneWay = r.oneWay
		node.pingPong = r.pingPong
	}
	dgramPath := func(name, about string, newPair func() (*dgramPair, error)) *benchPath {
		return &benchPath{
			name: name, about: about, inProcess: true,
			oneWay: func(ctx context.Context, spec oneWaySpec) (oneWayRun, error) {
				return dgramOneWay(ctx, newPair, spec)
			},
			pingPong: func(ctx context.Context, size int, d time.Duration) (pingRun, error) {
				return dgramPingPong(ctx, newPair, size, d)
			},
		}
	}
	connPath := func(name, about string, newPair func() (*connPair, error)) *benchPath {
		return &benchPath{
			name: name, about: about, inProcess: true,
			oneWay: func(ctx context.Context, spec oneWaySpec) (oneWayRun, error) {
				return connOneWay(ctx, newPair, spec)
			},
			pingPong: func(ctx context.Context, size int, d time.Duration) (pingRun, error) {
				return connPingPong(ctx, newPair, size, d)
			},
		}
	}
	const tapAbout = ", a capture.Tap on both hosts' NICs writing every frame as pcapng (to io.Discard)"
	return []*benchPath{
		dgramPath("dgram/switch", "dgram sockets on two virtual hosts on a Switch, one Loop each on its own goroutine",
			func() (*dgramPair, error) { return newVirtualDgramPair("switch", false) }),
		dgramPath("dgram/switch+tap", "dgram/switch"+tapAbout,
			func() (*dgramPair, error) { return newVirtualDgramPair("switch", true) }),
		connPath("stack.UDPConn/switch", "stack.UDPConn on two virtual hosts on a Switch, a goroutine each",
			func() (*connPair, error) { return newVirtualConnPair("switch", false) }),
		connPath("stack.UDPConn/switch+tap", "stack.UDPConn/switch"+tapAbout,
			func() (*connPair, error) { return newVirtualConnPair("switch", true) }),
		connPath("stack.UDPConn/pipe", "stack.UDPConn on two virtual hosts on a Pipe, a goroutine each",
			func() (*connPair, error) { return newVirtualConnPair("pipe", false) }),
		dgramPath("dgram/kernel", "dgram sockets on dgram.System() (kernel) on 127.0.0.1, one Loop each on its own goroutine",
			newKernelDgramPair),
		connPath(refPathName, "Go net.UDPConn on kernel loopback 127.0.0.1, a goroutine each (the reference: ratios are to it)",
			newKernelConnPair),
		node,
	}
}

// benchPathNames lists the paths' names.
func benchPathNames() []string {
	var names []string
	for _, p := range benchPaths() {
		names = append(names, strconv.Quote(p.name))
	}
	return names
}

// Virtual addresses of the two-host paths.
var (
	virtA = netip.MustParseAddr("10.0.0.1")
	virtB = netip.MustParseAddr("10.0.0.2")
	// virtPort is the receiver's port on a virtual host.
	virtPort = 9000
	loopback = netip.MustParseAddr("127.0.0.1")
)

// newVirtualHosts returns hosts 10.0.0.1/24 and 10.0.0.2/24 joined by a
// Switch or a Pipe; closing both hosts releases everything. With a sink,
// each host's NIC is a capture.Tap on its link recording into it.
// newTappedHosts is newVirtualHosts with, when tap is set, a tapSink that
// records every frame of both NICs (nil otherwise).
func newTappedHosts(link string, tap bool) (a, b *stack.Host, sink *tapSink, err error) {
	var hostSink capture.Sink // a nil *tapSink would be a non-nil Sink
	if tap {
		sink = newTapSink()
		hostSink = sink
	}
	a, b, err = newVirtualHosts(link, hostSink)
	return a, b, sink, err
}

func newVirtualHosts(link string, sink capture.Sink) (a, b *stack.Host, err error) {
	a, err = stack.NewHost(stack.HostOptions{Name: "bench-a"})
	if err != nil {
		return nil, nil, err
	}
	b, err = stack.NewHost(stack.HostOptions{Name: "bench-b"})
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	fail := func(err error) (*stack.Host, *stack.Host, error) {
		a.Close()
		b.Close()
		return nil, nil, err
	}
	var epA, epB gvstack.LinkEndpoint
	switch link {
	case "switch":
		sw := stack.NewSwitch(stack.SwitchOptions{Name: "bench"})
		pa, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			return fail(err)
		}
		pb, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			return fail(err)
		}
		epA, epB = pa, pb
	case "pipe":
		pa, pb, err := stack.NewPipe(stack.PipeOptions{Name: "bench"})
		if err != nil {
			return fail(err)
		}
		epA, epB = pa, pb
	default:
		panic("bench: unknown link " + link)
	}
	if sink != nil {
		epA = capture.NewTap(epA, capture.TapOptions{Name: "bench-a/eth0", Sink: sink})
		epB = capture.NewTap(epB, capture.TapOptions{Name: "bench-b/eth0", Sink: sink})
	}
	if _, err := a.AddNIC(epA, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(virtA, 24)}}); err != nil {
		return fail(err)
	}
	if _, err := b.AddNIC(epB, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(virtB, 24)}}); err != nil {
		return fail(err)
	}
	return a, b, nil
}

// rxCounter counts the measured datagrams a receiver gets. Its methods are
// called on the receiver's goroutine; the fields are read by the
// coordinator.
type rxCounter struct {
	base   time.Time
	count  atomic.Uint64
	last   atomic.Int64  // time of the last counted datagram, ns since base
	primed chan struct{} // receives once a priming datagram arrived
}

func newRxCounter(base time.Time) *rxCounter {
	return &rxCounter{base: base, primed: make(chan struct{}, 1)}
}

// got accounts for one datagram.
func (r *rxCounter) got(msg []byte) {
	if len(msg) == 0 {
		return
	}
	switch msg[0] {
	case markMeasure:
		r.count.Add(1)
		r.last.Store(int64(time.Since(r.base)))
	case markPrime:
		select {
		case r.primed <- struct{}{}:
		default:
		}
	}
}

// prime calls send every 20ms until a priming datagram has arrived.
func (r *rxCounter) prime(ctx context.Context, send func()) error {
	deadline := time.Now().Add(setupTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		send()
		select {
		case <-r.primed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return errors.New("no datagram got through while priming")
		}
	}
}

// drain waits, once the sender has stopped (sendEnd, ns since base), until
// want datagrams were counted or none has been for drainIdle.
func (r *rxCounter) drain(ctx context.Context, want uint64, sendEnd time.Duration) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for r.count.Load() < want {
		last := max(time.Duration(r.last.Load()), sendEnd)
		if time.Since(r.base)-last >= drainIdle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// oneWayResult turns counts and times (ns since base) into a run.
func oneWayResult(sent, sendErrors, received uint64, start, sendEnd, lastRecv time.Duration) oneWayRun {
	run := oneWayRun{Sent: sent, SendErrors: sendErrors, Received: received,
		SendNs: int64(sendEnd - start)}
	if received > 0 && lastRecv > start {
		run.ElapsedNs = int64(lastRecv - start)
		run.PPS = float64(received) / (lastRecv - start).Seconds()
	}
	if sendEnd > start {
		run.OfferedPPS = float64(sent) / (sendEnd - start).Seconds()
	}
	return run
}

// kernelRcvbufErrors reads the kernel's UDP RcvbufErrors counter (datagrams
// dropped because a receive buffer was full). It counts the whole network
// namespace, not one socket. ok is false where it cannot be read.
func kernelRcvbufErrors() (n uint64, ok bool) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, name := range header {
			if name == "RcvbufErrors" && i < len(fields) {
				v, err := strconv.ParseUint(fields[i], 10, 64)
				return v, err == nil
			}
		}
		return 0, false
	}
	return 0, false
}

// kernelDrops returns a function giving the RcvbufErrors counted since the
// call, or nil when the counter cannot be read.
func kernelDrops() func() uint64 {
	start, ok := kernelRcvbufErrors()
	if !ok {
		return nil
	}
	return func() uint64 {
		n, _ := kernelRcvbufErrors()
		return n - start
	}
}
