package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// ImpairedLinkOptions configure an ImpairedLink. The zero value is valid.
type ImpairedLinkOptions struct {
	// Name seeds the link's random streams (with Impairments.Seed). Default
	// "link".
	Name string
	// Clock times delays and rates. Default: the real clock.
	Clock tcpip.Clock
}

// An ImpairedLink wraps any link endpoint (a TUN device, for instance)
// and impairs what goes through it, as Port.SetImpairments does on a
// Switch: wire.Outbound is what the host writes, wire.Inbound what the
// wrapped link delivers. Attach the ImpairedLink to the host in place of
// the endpoint it wraps. With no impairment in force it adds one atomic
// load per frame.
//
// It reports the frames it drops (wire.DropLoss, wire.DropQueueFull, and
// wire.DropDetached for frames still held when it closes) to drop hooks,
// as well as those the wrapped link reports if it is a drop reporter, and
// counts its own in Counters.
type ImpairedLink struct {
	nested.Endpoint
	linkEnd
	inner    stack.LinkEndpoint
	name     string
	reporter interface {
		AddDropHook(wire.DropHook) (remove func())
	}
}

var (
	_ stack.LinkEndpoint      = (*ImpairedLink)(nil)
	_ stack.NetworkDispatcher = (*ImpairedLink)(nil)
)

// NewImpairedLink wraps inner. No impairment is in force until
// SetImpairments.
func NewImpairedLink(inner stack.LinkEndpoint, opts ImpairedLinkOptions) *ImpairedLink {
	if opts.Name == "" {
		opts.Name = "link"
	}
	l := &ImpairedLink{inner: inner, name: opts.Name}
	l.Endpoint.Init(inner, l)
	hdr := 0
	if inner.ARPHardwareType() == header.ARPHardwareEther {
		hdr = header.EthernetMinimumSize
	}
	l.initImpair(opts.Name, hdr, newScheduler(opts.Clock), l.deliverOutbound, l.deliverInbound)
	if r, ok := inner.(interface {
		AddDropHook(wire.DropHook) (remove func())
	}); ok {
		l.reporter = r
	}
	return l
}

// Unwrap returns the link it wraps.
func (l *ImpairedLink) Unwrap() stack.LinkEndpoint { return l.inner }

// Name returns the link's name.
func (l *ImpairedLink) Name() string { return l.name }

// SetImpairments puts im in force in dir; see Port.SetImpairments.
func (l *ImpairedLink) SetImpairments(dir wire.Direction, im Impairments) error {
	return l.setImpairments(dir, im)
}

// Impairments returns the impairments in force in one direction.
func (l *ImpairedLink) Impairments(dir wire.Direction) Impairments { return l.impairments(dir) }

// Counters returns what the impairments did: Drops, Corrupted, Duplicated
// and Reordered (the frame counters stay zero: the wrapped link has its
// own).
func (l *ImpairedLink) Counters() LinkCounters { return l.counters() }

// AddDropHook registers fn for the frames the impairments drop and, if
// the wrapped link reports drops, for those too. Capture taps call it.
func (l *ImpairedLink) AddDropHook(fn wire.DropHook) (remove func()) {
	own := l.linkEnd.AddDropHook(fn)
	if l.reporter == nil {
		return own
	}
	inner := l.reporter.AddDropHook(fn)
	return func() { own(); inner() }
}

// WritePackets implements stack.LinkWriter.
func (l *ImpairedLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	d := l.impair[outIdx].Load()
	if d == nil {
		return l.Endpoint.WritePackets(pkts)
	}
	for _, pkt := range pkts.AsSlice() {
		d.process(heldFrame{buf: pkt.ToBuffer(), size: pkt.Size(), proto: pkt.NetworkProtocolNumber, typ: pkt.PktType, route: pkt.EgressRoute})
	}
	return pkts.Len(), nil
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (l *ImpairedLink) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	d := l.impair[inIdx].Load()
	if d == nil {
		l.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	d.process(heldFrame{buf: pkt.ToBuffer(), size: pkt.Size(), proto: proto, typ: pkt.PktType})
}

func (l *ImpairedLink) deliverOutbound(f *heldFrame) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	defer pkt.DecRef()
	if hdr := l.dirs[outIdx].hdrLen; hdr > 0 {
		pkt.LinkHeader().Consume(hdr)
	}
	pkt.NetworkProtocolNumber = f.proto
	pkt.PktType = f.typ
	pkt.EgressRoute = f.route
	var list stack.PacketBufferList
	list.PushBack(pkt)
	if n, _ := l.Endpoint.WritePackets(list); n < 1 {
		l.drop(pkt, wire.Outbound, wire.DropWriteError)
	}
}

func (l *ImpairedLink) deliverInbound(f *heldFrame) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	defer pkt.DecRef()
	if hdr := l.dirs[inIdx].hdrLen; hdr > 0 {
		pkt.LinkHeader().Consume(hdr)
	}
	pkt.PktType = f.typ
	l.Endpoint.DeliverNetworkPacket(f.proto, pkt)
}

// Close implements stack.LinkEndpoint: frames still held are dropped as
// wire.DropDetached, then the wrapped link is closed.
func (l *ImpairedLink) Close() {
	l.purgeImpairments()
	l.Endpoint.Close()
}
