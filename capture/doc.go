// Package capture records what goes over dgramlab's links: a Tap wraps a
// host NIC's gVisor link endpoint and hands every frame, in both
// directions, and every frame the link reports dropped, to a Sink.
//
// Sinks:
//   - PcapngWriter writes a pcapng file for Wireshark and tshark: one
//     interface per link (Ethernet or raw IP), nanosecond timestamps, the
//     direction in each packet's flags, and a comment on dropped frames
//     (see DropComment).
//   - Recorder keeps frames in memory for tests, which wait for traffic
//     with Recorder.Wait and WaitCount instead of sleeping.
//   - Tee and SinkFunc combine and adapt sinks.
//
// Matchers select frames for assertions: All, Any and Not combine
// predicates on direction, link, MAC and IP addresses, ports, on-wire
// length, UDP payload size, IP fragments (first, middle, last, and the
// size a last fragment completes) and drop reasons; Count, Filter,
// CheckCount and Reassemble work on the frames a Recorder returns.
// Package capturetest wraps them as test helpers that print every frame
// on failure.
//
// Summarize reads a pcap or pcapng file, from dgramlab or any other tool,
// and reports frames per link, per flow sizes, fragments, broadcasts,
// multicasts and drops by reason, as text (Summary.WriteText) or JSON.
//
// # Wiring
//
// Wrap the link endpoint before attaching it to the host's NIC:
//
//	rec := capture.NewRecorder()
//	ep := capture.NewTap(link, capture.TapOptions{Name: "h1/eth0", Sink: rec})
//	// attach ep (not link) to the NIC
//
// Then, in a test:
//
//	f, err := rec.Wait(ctx, capture.All(capture.Dir(wire.Outbound), capture.DstPort(53)))
//
// A Tap holds no lock while frames pass and never changes them. Sinks are
// called on the goroutine that moves the frame, so they must be quick and
// safe for concurrent use; the sinks in this package are.
//
// capture depends only on gVisor, gopacket (layers and pcapgo), package
// wire (directions and drop reasons, shared with the links that report
// drops) and the standard library.
package capture
