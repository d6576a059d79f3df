package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// PipeOptions configure a Pipe. The zero value is a 1500-MTU pipe named
// "pipe".
type PipeOptions struct {
	// Name names the pipe; its ends are Name+"/a" and Name+"/b".
	Name string
	// MTU is the largest IP packet the pipe carries. Default DefaultMTU.
	MTU int
	// Clock times the ends' impairments (delay, jitter, rate). Default: the
	// real clock, which is virtual inside a testing/synctest bubble.
	Clock tcpip.Clock
}

// NewPipe returns the two ends of a point-to-point IP link (no Ethernet
// header, no ARP: like a TUN device or a PPP link). Packets are delivered
// synchronously to the other end; packets larger than the MTU are dropped
// and counted (wire.DropMTU), whatever MTU the sending NIC has. Each end can
// impair what goes through it (PipeEnd.SetImpairments); one scheduler
// delivers the delayed packets of both ends.
func NewPipe(opts PipeOptions) (a, b *PipeEnd, err error) {
	if opts.Name == "" {
		opts.Name = "pipe"
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if err := checkMTU("pipe", opts.MTU); err != nil {
		return nil, nil, err
	}
	a = &PipeEnd{name: opts.Name + "/a"}
	b = &PipeEnd{name: opts.Name + "/b"}
	a.peer, b.peer = b, a
	sched := newScheduler(opts.Clock)
	for _, e := range []*PipeEnd{a, b} {
		e.mtu.Store(uint32(opts.MTU))
		e.nicMTU.Store(uint32(opts.MTU))
		e.initImpair(e.name, 0, sched, e.deliverOutbound, e.deliverInbound)
	}
	return a, b, nil
}

// PipeEnd is one end of a Pipe and the IP link endpoint of the NIC attached
// to it. It implements gVisor's stack.LinkEndpoint.
type PipeEnd struct {
	linkEnd
	name string
	peer *PipeEnd
}

var _ stack.LinkEndpoint = (*PipeEnd)(nil)

// Name returns the end's name ("pipe/a" or "pipe/b").
func (e *PipeEnd) Name() string { return e.name }

// Peer returns the other end.
func (e *PipeEnd) Peer() *PipeEnd { return e.peer }

// Counters returns a snapshot of this end's counters.
func (e *PipeEnd) Counters() LinkCounters { return e.counters() }

// SetLinkUp brings this end up or down. A down end drops (and counts, as
// wire.DropLinkDown) every packet in both directions.
func (e *PipeEnd) SetLinkUp(up bool) { e.down.Store(!up) }

// SetImpairments puts im in force for the packets going through this end in
// dir (wire.Outbound: sent by the attached host; wire.Inbound: delivered to
// it; BothDirections: each with the same settings). It may be called at any
// time, from any goroutine, also while traffic flows: packets already
// delayed keep their schedule. The zero Impairments remove every
// impairment. A bad setting is an error wrapping ErrInvalidImpairments,
// and changes nothing.
func (e *PipeEnd) SetImpairments(dir wire.Direction, im Impairments) error {
	return e.setImpairments(dir, im)
}

// Impairments returns the impairments in force in one direction
// (wire.Outbound or wire.Inbound).
func (e *PipeEnd) Impairments(dir wire.Direction) Impairments { return e.impairments(dir) }

// SetLinkMTU changes the MTU this end enforces on packets it sends and
// receives (not the NIC's MTU). An MTU out of [68, 65535] is an error and
// changes nothing.
func (e *PipeEnd) SetLinkMTU(mtu int) error {
	if err := checkMTU("pipe", mtu); err != nil {
		return err
	}
	e.mtu.Store(uint32(mtu))
	return nil
}

// WritePackets implements stack.LinkWriter.
func (e *PipeEnd) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	for _, pkt := range pkts.AsSlice() {
		size := pkt.Size()
		switch {
		case e.down.Load():
			e.drop(pkt, wire.Outbound, wire.DropLinkDown)
			continue
		case size > int(e.mtu.Load()):
			e.drop(pkt, wire.Outbound, wire.DropMTU)
			continue
		}
		if d := e.impair[outIdx].Load(); d != nil {
			d.process(heldFrame{buf: pkt.ToBuffer(), size: size, proto: pkt.NetworkProtocolNumber})
			continue
		}
		e.txFrames.Add(1)
		e.txBytes.Add(uint64(size))
		e.peer.receive(pkt, size)
	}
	return pkts.Len(), nil
}

// deliverOutbound moves a packet this end's outbound impairments let go to
// the peer.
func (e *PipeEnd) deliverOutbound(f *heldFrame) {
	if e.down.Load() {
		e.dropHeld(f, wire.Outbound, wire.DropLinkDown)
		return
	}
	e.txFrames.Add(1)
	e.txBytes.Add(uint64(f.size))
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	pkt.NetworkProtocolNumber = f.proto
	e.peer.receive(pkt, f.size)
	pkt.DecRef()
}

// deliverInbound moves a packet this end's inbound impairments let go to
// the attached NIC.
func (e *PipeEnd) deliverInbound(f *heldFrame) {
	if e.down.Load() {
		e.dropHeld(f, wire.Inbound, wire.DropLinkDown)
		return
	}
	d := e.getDispatcher()
	if d == nil {
		e.dropHeld(f, wire.Inbound, wire.DropDetached)
		return
	}
	e.rxFrames.Add(1)
	e.rxBytes.Add(uint64(f.size))
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	d.DeliverNetworkPacket(f.proto, in)
	in.DecRef()
}

func (e *PipeEnd) receive(pkt *stack.PacketBuffer, size int) {
	switch {
	case e.down.Load():
		e.drop(pkt, wire.Inbound, wire.DropLinkDown)
		return
	case size > int(e.mtu.Load()):
		e.drop(pkt, wire.Inbound, wire.DropMTU)
		return
	}
	d := e.getDispatcher()
	if d == nil {
		e.drop(pkt, wire.Inbound, wire.DropDetached)
		return
	}
	if imp := e.impair[inIdx].Load(); imp != nil {
		imp.process(heldFrame{buf: pkt.ToBuffer(), size: size, proto: pkt.NetworkProtocolNumber})
		return
	}
	e.rxFrames.Add(1)
	e.rxBytes.Add(uint64(size))
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
	d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, in)
	in.DecRef()
}

// MTU implements stack.LinkEndpoint.
func (e *PipeEnd) MTU() uint32 { return e.nicMTU.Load() }

// SetMTU implements stack.LinkEndpoint (the NIC's MTU, see SetLinkMTU).
func (e *PipeEnd) SetMTU(mtu uint32) { e.nicMTU.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *PipeEnd) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.LinkEndpoint: a pipe has no link addresses.
func (e *PipeEnd) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.LinkEndpoint (ignored).
func (e *PipeEnd) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint.
func (e *PipeEnd) Capabilities() stack.LinkEndpointCapabilities { return 0 }

// Attach implements stack.LinkEndpoint.
func (e *PipeEnd) Attach(d stack.NetworkDispatcher) { e.attach(d) }

// IsAttached implements stack.LinkEndpoint.
func (e *PipeEnd) IsAttached() bool { return e.getDispatcher() != nil }

// Wait implements stack.LinkEndpoint. A pipe has no goroutines.
func (e *PipeEnd) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *PipeEnd) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint (no link header).
func (e *PipeEnd) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.LinkEndpoint (no link header).
func (e *PipeEnd) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.LinkEndpoint. Packets this end's impairments
// still hold are dropped as wire.DropDetached.
func (e *PipeEnd) Close() {
	e.runOnClose()
	e.purgeImpairments()
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *PipeEnd) SetOnCloseAction(fn func()) { e.setOnClose(fn) }
