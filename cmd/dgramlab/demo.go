package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

const demoSummary = `Builds a virtual LAN (four hosts on one switch, one of them behind a 576-MTU
port), runs the seed's UDP server, client and broadcast examples on it with
dgram sockets, then shows MTU drops and IPv4 fragmentation, and prints what
went on the wire. Needs no root and touches no real network.

With impairment flags (--loss 0.05 --delay 20ms --jitter 5ms --seed 7 ...),
a fourth step puts them on client's cable, both ways, and sends 100 numbered
datagrams that server echoes: what was lost, duplicated, corrupted and late,
and the drops by reason, are in the summary and the capture. Frames the
impairments still hold when the step ends (3 s of virtual time with nothing
delivered, or 60 s in all) are dropped and counted as detached.

The LAN runs on a virtual clock: delays cost no waiting, and the same flags
write the same capture, byte for byte, on every run (timestamps count from
2000-01-01 00:00:00 UTC).`

// demoHosts is the demo LAN.
var demoHosts = []lanHost{
	{name: "server", addr: netip.MustParseAddr("10.0.0.1"), mtu: 1500},
	{name: "client", addr: netip.MustParseAddr("10.0.0.2"), mtu: 1500},
	{name: "peer", addr: netip.MustParseAddr("10.0.0.3"), mtu: 1500},
	{name: "small", addr: netip.MustParseAddr("10.0.0.4"), mtu: 576},
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[flags]", demoSummary, stdout)
	pcapPath := fs.String("pcap", "dgramlab-demo.pcapng", "write every frame (and every drop, with its reason) to this pcapng file; '' for none")
	timeout := fs.Duration("timeout", 30*time.Second, "give up if the scenario has not finished after this long")
	impairments := addImpairmentFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	im, err := impairments()
	if err != nil {
		return usagef("demo: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return usagef("demo: --timeout must be positive")
	}

	rec := capture.NewRecorder()
	sink := capture.Sink(rec)
	var pcap *capture.PcapngWriter
	if *pcapPath != "" {
		var err error
		if pcap, err = capture.CreatePcapngFile(*pcapPath); err != nil {
			return fmt.Errorf("demo: cannot write the capture: %w", err)
		}
		sink = capture.Tee(rec, pcap)
	}
	// Everything runs on one virtual clock. Steps 1-3 run on a loop whose
	// sockets cannot drive it: RunDue runs gVisor's zero-delay timers
	// (address resolution) as they come, on one goroutine. Step 4 drives
	// the clock itself.
	vc := stack.NewVirtualClock(time.Time{})
	stopDue := vc.RunDue()
	defer stopDue()
	l, err := buildLAN(demoHosts, sink, vc)
	if err != nil {
		if pcap != nil {
			pcap.Close()
		}
		return fmt.Errorf("demo: building the LAN: %w", err)
	}

	fmt.Fprintf(stdout, "dgramlab demo: a virtual LAN on switch %q (userspace gVisor stacks, no root, no real network)\n", l.sw.Name())
	for _, h := range l.hosts {
		fmt.Fprintf(stdout, "  %-7s %s/24  port MTU %d\n", h.name, h.addr, h.mtu)
	}

	sc := &scenario{out: stdout, lan: l, rec: rec, loop: dgram.NewLoop(nil)}
	runCtx, cancel := context.WithTimeout(ctx, *timeout)
	sc.start()
	runErr := sc.loop.Run(runCtx)
	stopDue()
	if runErr == nil && sc.err == nil && !im.IsZero() {
		sc.step = "impairments"
		runErr = runImpaired(runCtx, stdout, l, vc, im)
	}
	cancel()
	l.close()
	var pcapErr error
	if pcap != nil {
		pcapErr = pcap.Close()
	}
	switch {
	case runErr != nil && errors.Is(runErr, context.DeadlineExceeded):
		return fmt.Errorf("demo: stalled during %q after %v", sc.step, *timeout)
	case runErr != nil && ctx.Err() != nil:
		return fmt.Errorf("demo: interrupted during %q", sc.step)
	case runErr != nil:
		return fmt.Errorf("demo: %s: %w", sc.step, runErr)
	case sc.err != nil:
		return fmt.Errorf("demo: %s: %w", sc.step, sc.err)
	case pcapErr != nil:
		return fmt.Errorf("demo: writing %s: %w", *pcapPath, pcapErr)
	}

	fmt.Fprintf(stdout, "\nWhat went on the wire (every NIC tapped)")
	if pcap != nil {
		abs, _ := filepath.Abs(*pcapPath)
		fmt.Fprintf(stdout, "; capture written to %s", abs)
	}
	fmt.Fprintln(stdout, ":")
	sum := capture.SummarizeFrames(rec.Frames())
	if err := sum.WriteText(stdout); err != nil {
		return err
	}
	if pcap != nil {
		fmt.Fprintf(stdout, "\nOpen it with: tshark -r %s   (or Wireshark)\n", *pcapPath)
	}
	return nil
}

// scenario runs the demo's steps as a chain of callbacks on one loop, so
// that its output comes in a fixed order.
type scenario struct {
	out  io.Writer
	lan  *lan
	rec  *capture.Recorder
	loop *dgram.Loop
	step string
	err  error

	sockets []*dgram.Socket
}

func (sc *scenario) printf(format string, args ...any) { fmt.Fprintf(sc.out, format, args...) }

// socket creates a udp4 socket on a host; errors end the scenario.
func (sc *scenario) socket(host string) *dgram.Socket {
	s, err := sc.loop.CreateSocketWith(dgram.SocketOptions{Type: dgram.UDP4, Network: sc.lan.host(host).host}, nil)
	if err != nil {
		panic(err) // only a bad type can fail, and the type is a constant
	}
	s.OnError(func(err error) { sc.fail(fmt.Errorf("%s: %w", host, err)) })
	sc.sockets = append(sc.sockets, s)
	return s
}

// fail ends the scenario with err.
func (sc *scenario) fail(err error) {
	if sc.err == nil {
		sc.err = err
	}
	sc.finish()
}

// finish closes every socket; the loop then ends.
func (sc *scenario) finish() {
	for _, s := range sc.sockets {
		s.Close(nil)
	}
	sc.sockets = nil
}

func (sc *scenario) start() {
	sc.step = "UDP server and client"
	sc.printf("\n1. The seed's UDP server (on server) and client (on client)\n")
	server := sc.socket("server")
	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		sc.printf("server got: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
		server.Send(msg, rinfo.Port, rinfo.Address, nil) // echo
	})
	server.OnListening(func() {
		address, _ := server.Address()
		sc.printf("server listening %s:%d\n", address.Address, address.Port)
		client := sc.socket("client")
		client.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
			sc.printf("client got the echo: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
			frames := capture.Filter(sc.rec.Frames(), capture.All(capture.OnWire(), capture.Link("server/eth0"), capture.UDP(), capture.Any(capture.DstPort(41234), capture.SrcPort(41234))))
			for _, f := range frames {
				sc.printf("  on the wire at server/eth0 (%s): %d bytes = %d payload + 8 UDP + 20 IPv4 + 14 Ethernet\n",
					f.Dir, f.Len, f.Info().UDPPayloadLen())
			}
			sc.broadcast(client)
		})
		message := []byte("Some bytes")
		client.Send(message, 41234, "server", func(n int, err error) {
			if err != nil {
				sc.fail(err)
			}
		})
	})
	server.Bind(41234, "", nil)
}

// broadcast is the seed's broadcast example: one datagram that every host
// on the LAN receives.
func (sc *scenario) broadcast(client *dgram.Socket) {
	sc.step = "broadcast"
	sc.printf("\n2. Broadcast: client sends one datagram to 255.255.255.255:41235; every host listens on 0.0.0.0:41235\n")
	got := make(map[string]string) // host → what it got, printed in host order
	bound := 0
	for _, h := range sc.lan.hosts {
		name := h.name
		s := sc.socket(name)
		s.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
			got[name] = fmt.Sprintf("  %-6s got %q from %s:%d\n", name, msg, rinfo.Address, rinfo.Port)
			if len(got) < len(sc.lan.hosts) {
				return
			}
			for _, h := range sc.lan.hosts {
				sc.printf("%s", got[h.name])
			}
			frames := capture.Filter(sc.rec.Frames(), capture.All(capture.OnWire(), capture.Broadcast(), capture.UDP(), capture.DstPort(41235)))
			sc.printf("  on the wire: %d frames to ff:ff:ff:ff:ff:ff (one sent by client, one received by each other host)\n", len(frames))
			sc.mtu(client)
		})
		s.Bind(41235, "", func() {
			if bound++; bound < len(sc.lan.hosts) {
				return
			}
			if err := client.SetBroadcast(true); err != nil {
				sc.fail(err)
				return
			}
			client.Send([]byte("hello LAN"), 41235, "255.255.255.255", func(n int, err error) {
				if err != nil {
					sc.fail(err)
				}
			})
		})
	}
}

// mtu shows a frame dropped by a small-MTU port, the same datagram
// delivered through a 1500-MTU port, the largest datagram arriving as
// fragments, and EMSGSIZE one byte above it.
func (sc *scenario) mtu(client *dgram.Socket) {
	sc.step = "MTU"
	small, peer := sc.lan.host("small"), sc.lan.host("peer")
	sc.printf("\n3. MTU: small sits behind a port whose MTU is %d; peer behind one of %d\n", small.mtu, peer.mtu)
	const port = 41236
	var steps []func()
	mark := 0 // frames recorded before the current step
	next := func() {
		mark = sc.rec.Len()
		if len(steps) == 0 {
			sc.finish()
			return
		}
		s := steps[0]
		steps = steps[1:]
		s()
	}
	// Deliveries to small or peer advance the scenario.
	for _, h := range []*lanHost{small, peer} {
		name := h.name
		s := sc.socket(name)
		s.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
			frags := capture.Filter(sc.rec.Frames()[mark:], capture.All(capture.Link(name+"/eth0"), capture.Dir(wire.Inbound), capture.Fragment()))
			if len(msg) > 1472 {
				sc.printf("  %d bytes to %s: delivered, reassembled from %d IPv4 fragments\n", len(msg), name, len(frags))
			} else {
				sc.printf("  %d bytes to %s: delivered (%d-byte frame)\n", len(msg), name, len(msg)+8+20+14)
			}
			next()
		})
		s.Bind(port, "", nil)
	}
	// A drop on small's port advances it too.
	// The port reports the drop to this hook and to the tap on small's
	// NIC, which records it on small's link: say where to find it.
	remove := small.port.AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) {
		sc.loop.Post(func() {
			sc.printf("  1400 bytes to small: dropped by %s (reason %q: a %d-byte IP packet > MTU %d), never delivered\n",
				small.port.Name(), reason, len(frame)-14, small.port.PortMTU())
			sc.printf("    captured as a drop on %s: %q\n", small.link, capture.DropComment(reason, small.link, dir))
			next()
		})
	})
	send := func(size int, to *lanHost) {
		client.Send(make([]byte, size), port, to.addr.String(), func(n int, err error) {
			if err != nil {
				sc.printf("  %d bytes to %s: %v\n", size, to.name, err)
				next()
			}
		})
	}
	steps = []func(){
		func() { send(1400, peer) },
		func() { remove(); send(65507, peer) },
		func() { send(65508, peer) },
	}
	send(1400, small)
}
