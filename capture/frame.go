package capture

import (
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

// Frame is one frame seen by a tap, or one frame a link reported dropped.
//
// Data is owned by the Frame: taps copy the packet into a fresh slice once
// and hand the same Frame to every sink, so sinks and matchers must treat
// Data as read-only.
type Frame struct {
	// Link names the tapped link (the name given to NewTap).
	Link string
	// LinkType is layers.LinkTypeEthernet on Ethernet links (Data starts
	// with the 14-byte Ethernet header) and layers.LinkTypeRaw on L3 links
	// (Data is an IPv4 or IPv6 packet).
	LinkType layers.LinkType
	// Dir is the direction of the frame, seen from the host whose link
	// was tapped: wire.Outbound for a frame the host was sending (the tap
	// saw it in WritePackets, or the link dropped it on its way out),
	// wire.Inbound for one on its way to the host (the tap saw it in
	// DeliverNetworkPacket, or the link dropped it before delivery).
	Dir wire.Direction
	// Time is when the tap saw the frame, from the tap's clock.
	Time time.Time
	// Data holds the frame's bytes, link header included on Ethernet links.
	Data []byte
	// Len is the frame's length on the wire. It equals len(Data) for
	// frames recorded by a tap; it can be larger for frames read back from
	// a capture file with a snap length.
	Len int
	// Drop is the reason the link dropped the frame (wire.DropMTU,
	// wire.DropQueueFull, ...), or zero for a frame that went through the
	// tap.
	Drop wire.DropReason
}

// Dropped reports whether the frame is a drop report rather than a frame
// that went through the tap.
func (f Frame) Dropped() bool { return f.Drop != 0 }

// Sink receives frames from taps.
//
// Record is called on the goroutine that moved the frame (the one inside the
// link's WritePackets, DeliverNetworkPacket or drop hook), possibly from
// many goroutines at once, so implementations must be safe for concurrent
// use, must not block for long, and must not call back into the network
// stack. The frame's Data may be kept but not modified.
type Sink interface {
	Record(f Frame)
}

// LinkAdder is implemented by sinks that want to know about a link before
// its first frame, such as PcapngWriter, which then declares the link's
// interface at tap creation so that interface numbers follow the order in
// which taps were made. NewTap calls AddLink when its sink implements it.
type LinkAdder interface {
	AddLink(name string, linkType layers.LinkType)
}

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(f Frame)

// Record implements Sink by calling fn(f).
func (fn SinkFunc) Record(f Frame) { fn(f) }

var _ Sink = SinkFunc(nil)

// Tee returns a Sink that hands every frame to each of sinks in order; nil
// sinks are skipped. It forwards AddLink to the sinks that implement
// LinkAdder.
func Tee(sinks ...Sink) Sink {
	var t tee
	for _, s := range sinks {
		if s != nil {
			t = append(t, s)
		}
	}
	return t
}

type tee []Sink

var (
	_ Sink      = tee(nil)
	_ LinkAdder = tee(nil)
)

// Record implements Sink.
func (t tee) Record(f Frame) {
	for _, s := range t {
		s.Record(f)
	}
}

// AddLink implements LinkAdder.
func (t tee) AddLink(name string, linkType layers.LinkType) {
	for _, s := range t {
		if a, ok := s.(LinkAdder); ok {
			a.AddLink(name, linkType)
		}
	}
}
