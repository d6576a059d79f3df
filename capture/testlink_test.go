package capture

import (
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// pairEnd is one end of a synchronous test link: WritePackets hands each
// packet to the peer's dispatcher on the caller's goroutine. An Ethernet
// pair pushes and parses a 14-byte header like gVisor's link/ethernet; an
// L3 pair carries raw IP packets. A frame whose IP packet is larger than
// limit (when non-zero) is dropped and reported to the drop hooks with
// reason "mtu", as dgramlab's links do.
type pairEnd struct {
	ether bool
	addr  tcpip.LinkAddress
	peer  *pairEnd

	mu         sync.Mutex
	mtu        uint32
	limit      int
	dispatcher stack.NetworkDispatcher
	hooks      map[int]wire.DropHook
	nextHook   int
	held       [][]byte // frames Close reports dropped, as an impairment's held ones
}

var (
	_ stack.LinkEndpoint = (*pairEnd)(nil)
	_ DropReporter       = (*pairEnd)(nil)
)

// newPair returns the two ends of a link with IP MTU mtu.
func newPair(ether bool, mtu uint32) (*pairEnd, *pairEnd) {
	a := &pairEnd{ether: ether, mtu: mtu}
	b := &pairEnd{ether: ether, mtu: mtu}
	if ether {
		a.addr = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x01")
		b.addr = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x02")
	}
	a.peer, b.peer = b, a
	return a, b
}

func (e *pairEnd) setLimit(n int) {
	e.mu.Lock()
	e.limit = n
	e.mu.Unlock()
}

func (e *pairEnd) hookCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.hooks)
}

func (e *pairEnd) AddDropHook(hook wire.DropHook) func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hooks == nil {
		e.hooks = make(map[int]wire.DropHook)
	}
	id := e.nextHook
	e.nextHook++
	e.hooks[id] = hook
	return func() {
		e.mu.Lock()
		delete(e.hooks, id)
		e.mu.Unlock()
	}
}

func (e *pairEnd) drop(pkt *stack.PacketBuffer, dir wire.Direction, reason wire.DropReason) {
	e.mu.Lock()
	hooks := make([]wire.DropHook, 0, len(e.hooks))
	for _, h := range e.hooks {
		hooks = append(hooks, h)
	}
	e.mu.Unlock()
	v := pkt.ToView()
	defer v.Release()
	for _, h := range hooks {
		h(v.AsSlice(), dir, reason)
	}
}

func (e *pairEnd) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	e.mu.Lock()
	limit := e.limit
	e.mu.Unlock()
	n := 0
	for _, pkt := range pkts.AsSlice() {
		n++
		ipLen := pkt.Size()
		if e.ether {
			ipLen -= header.EthernetMinimumSize
		}
		if limit > 0 && ipLen > limit {
			e.drop(pkt, wire.Outbound, wire.DropMTU)
			continue
		}
		e.peer.deliver(pkt)
	}
	return n, nil
}

func (e *pairEnd) deliver(pkt *stack.PacketBuffer) {
	e.mu.Lock()
	d := e.dispatcher
	e.mu.Unlock()
	if d == nil {
		return
	}
	// A fresh packet from the frame's bytes, as a real link reads it (a
	// CloneToInbound clone upsets gVisor's reassembly memory accounting).
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(pkt.ToView())})
	defer in.DecRef()
	var proto tcpip.NetworkProtocolNumber
	if e.ether {
		hdr, ok := in.LinkHeader().Consume(header.EthernetMinimumSize)
		if !ok {
			return
		}
		proto = header.Ethernet(hdr).Type()
	} else {
		switch header.IPVersion(in.Data().AsRange().ToSlice()) {
		case header.IPv4Version:
			proto = header.IPv4ProtocolNumber
		case header.IPv6Version:
			proto = header.IPv6ProtocolNumber
		default:
			return
		}
	}
	d.DeliverNetworkPacket(proto, in)
}

func (e *pairEnd) MTU() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mtu
}

func (e *pairEnd) SetMTU(mtu uint32) {
	e.mu.Lock()
	e.mtu = mtu
	e.mu.Unlock()
}

func (e *pairEnd) MaxHeaderLength() uint16 {
	if e.ether {
		return header.EthernetMinimumSize
	}
	return 0
}

func (e *pairEnd) LinkAddress() tcpip.LinkAddress   { return e.addr }
func (e *pairEnd) SetLinkAddress(tcpip.LinkAddress) {}

func (e *pairEnd) Capabilities() stack.LinkEndpointCapabilities {
	if e.ether {
		return stack.CapabilityResolutionRequired
	}
	return 0
}

func (e *pairEnd) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

func (e *pairEnd) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

func (e *pairEnd) Wait() {}

func (e *pairEnd) ARPHardwareType() header.ARPHardwareType {
	if e.ether {
		return header.ARPHardwareEther
	}
	return header.ARPHardwareNone
}

func (e *pairEnd) AddHeader(pkt *stack.PacketBuffer) {
	if !e.ether {
		return
	}
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

func (e *pairEnd) ParseHeader(pkt *stack.PacketBuffer) bool {
	if !e.ether {
		return true
	}
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close reports the held frames dropped, with reason "detached", as a
// dgramlab link end does with the frames its impairments hold.
func (e *pairEnd) Close() {
	e.mu.Lock()
	held := e.held
	e.held = nil
	e.mu.Unlock()
	for _, f := range held {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f)})
		e.drop(pkt, wire.Outbound, wire.DropDetached)
		pkt.DecRef()
	}
}

func (e *pairEnd) SetOnCloseAction(func()) {}

// tcpipEndpoint returns e as a stack.LinkEndpoint.
func tcpipEndpoint(e *pairEnd) stack.LinkEndpoint { return e }
