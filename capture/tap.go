package capture

import (
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// DropReporter is implemented by links that drop frames themselves (an MTU
// check, a full queue, a link that is down) and report each drop.
//
// AddDropHook registers hook and returns a function that removes it. The
// link calls hook as wire.DropHook says: on the goroutine that was moving
// the frame, with the whole frame (Ethernet header included on Ethernet
// links), valid only during the call, its direction and the reason. The
// hook must not block. stack's Port, PipeEnd and ImpairedLink and tun's
// Device implement it.
type DropReporter interface {
	AddDropHook(hook wire.DropHook) (remove func())
}

// TapOptions configures a Tap. The zero value is valid.
type TapOptions struct {
	// Name names the link in every frame and in capture files. Empty means
	// the link's address when it has one, else "link".
	Name string
	// Sink receives the frames. Nil discards them (the tap then only
	// forwards drop hooks).
	Sink Sink
	// Clock stamps frames. Nil means time.Now. Pass a fake clock for
	// repeatable capture files.
	Clock func() time.Time
}

// Tap is a link endpoint that wraps another one and records, in a Sink,
// every frame going through it in both directions and every frame the
// wrapped link reports dropped. It never changes, delays or drops what
// passes through, and holds no lock while calling the wrapped link or the
// stack.
//
// A Tap is itself a DropReporter (it forwards AddDropHook to the wrapped
// link), so taps can be stacked.
type Tap struct {
	nested.Endpoint

	inner    stack.LinkEndpoint
	name     string
	linkType layers.LinkType
	sink     Sink
	clock    func() time.Time
	reporter DropReporter // the wrapped link, if it reports drops

	closeOnce  sync.Once
	removeHook func()
}

var (
	_ stack.LinkEndpoint      = (*Tap)(nil)
	_ stack.NetworkDispatcher = (*Tap)(nil)
	_ stack.GSOEndpoint       = (*Tap)(nil)
	_ DropReporter            = (*Tap)(nil)
)

// NewTap returns a Tap around inner. Attach the Tap to the host's NIC in
// place of inner. The Tap records frames as Ethernet when inner's
// ARPHardwareType is header.ARPHardwareEther, and as raw IP otherwise. If
// the sink implements LinkAdder, NewTap declares the link to it; if inner
// is a DropReporter, NewTap registers a drop hook on it at once, and Close
// removes it.
func NewTap(inner stack.LinkEndpoint, opts TapOptions) *Tap {
	t := &Tap{
		inner:    inner,
		name:     opts.Name,
		linkType: layers.LinkTypeRaw,
		sink:     opts.Sink,
		clock:    opts.Clock,
	}
	if inner.ARPHardwareType() == header.ARPHardwareEther {
		t.linkType = layers.LinkTypeEthernet
	}
	if t.name == "" {
		t.name = "link"
		if a := inner.LinkAddress(); a != "" {
			t.name = a.String()
		}
	}
	if t.sink == nil {
		t.sink = SinkFunc(func(Frame) {})
	}
	if t.clock == nil {
		t.clock = time.Now
	}
	t.Endpoint.Init(inner, t)
	if a, ok := t.sink.(LinkAdder); ok {
		a.AddLink(t.name, t.linkType)
	}
	if r, ok := inner.(DropReporter); ok {
		t.reporter = r
		t.removeHook = r.AddDropHook(t.recordDrop)
	}
	return t
}

// Unwrap returns the link the tap wraps. (A stack.Host looks through it
// for a link that can stop by itself, such as a TUN device.)
func (t *Tap) Unwrap() stack.LinkEndpoint { return t.inner }

// Name returns the link name the tap puts in its frames.
func (t *Tap) Name() string { return t.name }

// LinkType returns layers.LinkTypeEthernet or layers.LinkTypeRaw.
func (t *Tap) LinkType() layers.LinkType { return t.linkType }

// WritePackets implements stack.LinkWriter. It records each packet as an
// outbound frame, then hands the list to the wrapped link. Packets the
// wrapped link did not accept are recorded as drops with reason
// wire.DropWriteError, unless the link reports its own drops.
func (t *Tap) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	for _, pkt := range all {
		t.record(wire.Outbound, frameBytes(pkt), 0)
	}
	n, tcpipErr := t.Endpoint.WritePackets(pkts)
	if t.reporter == nil && n < len(all) {
		for _, pkt := range all[n:] {
			t.record(wire.Outbound, frameBytes(pkt), wire.DropWriteError)
		}
	}
	return n, tcpipErr
}

// DeliverNetworkPacket implements stack.NetworkDispatcher. It records the
// packet as an inbound frame, then delivers it to the stack.
func (t *Tap) DeliverNetworkPacket(protocol tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	t.record(wire.Inbound, frameBytes(pkt), 0)
	t.Endpoint.DeliverNetworkPacket(protocol, pkt)
}

// AddDropHook implements DropReporter by registering hook on the wrapped
// link. When the wrapped link does not report drops, hook is never called
// and remove does nothing.
func (t *Tap) AddDropHook(hook wire.DropHook) (remove func()) {
	if t.reporter == nil {
		return func() {}
	}
	return t.reporter.AddDropHook(hook)
}

// Close implements stack.LinkEndpoint. It closes the wrapped link, still
// recording what the link drops as it closes (the frames an impairment
// held, say), then removes the tap's drop hook. It does not close the
// sink, which may be shared by other taps: close the sink after the host.
func (t *Tap) Close() {
	t.Endpoint.Close()
	t.closeOnce.Do(func() {
		if t.removeHook != nil {
			t.removeHook()
		}
	})
}

// recordDrop is the hook the tap registers on the wrapped link. A link
// that reports the zero reason, or one outside the enumeration, breaks the
// DropHook contract; its drop is recorded all the same, as
// wire.DropUnknown.
func (t *Tap) recordDrop(frame []byte, dir wire.Direction, reason wire.DropReason) {
	t.record(dir, append([]byte(nil), frame...), knownReason(reason))
}

// RecordHostDrop records a packet the host attached to the tapped link
// dropped (it implements stack.HostDropRecorder: a bad checksum, a full
// receive buffer, a destination nobody has...). The host has no frame for
// it, only the IP packet, so the drop is recorded as raw IP
// (layers.LinkTypeRaw) under the tap's link name: in a pcapng file, an
// interface of its own beside the link's Ethernet one.
func (t *Tap) RecordHostDrop(packet []byte, dir wire.Direction, reason wire.DropReason) {
	data := append([]byte(nil), packet...)
	t.sink.Record(Frame{
		Link:     t.name,
		LinkType: layers.LinkTypeRaw,
		Dir:      dir,
		Time:     t.clock(),
		Data:     data,
		Len:      len(data),
		Drop:     knownReason(reason),
	})
}

func (t *Tap) record(dir wire.Direction, data []byte, drop wire.DropReason) {
	t.sink.Record(Frame{
		Link:     t.name,
		LinkType: t.linkType,
		Dir:      dir,
		Time:     t.clock(),
		Data:     data,
		Len:      len(data),
		Drop:     drop,
	})
}

// frameBytes copies the whole frame held by pkt, link header included even
// when the link has already consumed it (inbound), into a new slice. It
// neither takes nor releases a reference on pkt.
func frameBytes(pkt *stack.PacketBuffer) []byte {
	views, off := pkt.AsViewList()
	b := make([]byte, 0, pkt.Size())
	for v := views.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if off >= len(s) {
			off -= len(s)
			continue
		}
		b = append(b, s[off:]...)
		off = 0
	}
	return b
}
