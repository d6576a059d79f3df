package stack

import (
	"fmt"
	"hash/fnv"
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// DefaultMTU is the MTU of a Switch port or Pipe whose options leave it 0.
const DefaultMTU = 1500

// MinMTU and MaxMTU bound the MTU of a Switch port or a Pipe: IPv4's
// minimum, and the largest IPv4 packet.
const (
	MinMTU = header.IPv4MinimumMTU
	MaxMTU = 65535
)

// checkMTU says what is wrong with a link MTU, if anything.
func checkMTU(what string, mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return fmt.Errorf("stack: %s MTU %d is out of range [%d, %d]", what, mtu, MinMTU, MaxMTU)
	}
	return nil
}

// SwitchOptions configure a Switch. The zero value is a 1500-MTU switch
// named "sw".
type SwitchOptions struct {
	// Name names the switch in port names and captures. Default "sw".
	Name string
	// MTU is the default MTU of new ports. Default (0 or less)
	// DefaultMTU; one out of [MinMTU, MaxMTU] makes NewPort fail unless
	// the port names its own.
	MTU int
	// Clock times the ports' impairments (delay, jitter, rate). Default:
	// the real clock, which is virtual inside a testing/synctest bubble.
	// Pass a VirtualClock (the one the hosts use) to run a scenario in
	// virtual time outside a bubble.
	Clock tcpip.Clock
}

// A Switch is an in-memory Ethernet segment. It learns which MAC is behind
// which port, forwards unicast frames to that port, and floods broadcast,
// multicast and unknown-unicast frames to every other port.
//
// Frames are delivered synchronously: the receiving host processes a frame
// on the goroutine of the host that sent it, with no queue in between, so
// nothing can overflow. Each port enforces its MTU on the frames that enter
// and leave the switch through it; a frame too big for a port is dropped
// and counted (wire.DropMTU), whatever MTU the sending NIC has.
//
// Each port can impair the frames that go through it, in each direction
// (Port.SetImpairments). Frames an impairment delays are delivered by one
// scheduler shared by the whole switch, in the order they are due.
type Switch struct {
	name  string
	mtu   int
	id    uint16
	sched *scheduler

	mu    sync.Mutex // serialises port changes
	ports atomic.Pointer[[]*Port]
	next  int // next port number

	// fdbMu guards fdb, the forwarding database: which port each learnt
	// MAC is behind. It is read for every frame and written only when a
	// MAC appears or moves. Keys are MACs as arrays, so that looking a
	// frame's addresses up allocates nothing.
	fdbMu sync.RWMutex
	fdb   map[mac]*Port
}

// mac is an Ethernet address as a map key.
type mac [header.EthernetAddressSize]byte

// NewSwitch returns an empty switch.
func NewSwitch(opts SwitchOptions) *Switch {
	if opts.Name == "" {
		opts.Name = "sw"
	}
	if opts.MTU <= 0 {
		opts.MTU = DefaultMTU
	}
	h := fnv.New32a()
	h.Write([]byte(opts.Name))
	sw := &Switch{name: opts.Name, mtu: opts.MTU, id: uint16(h.Sum32()), sched: newScheduler(opts.Clock), fdb: make(map[mac]*Port)}
	sw.ports.Store(&[]*Port{})
	return sw
}

// Name returns the switch's name.
func (sw *Switch) Name() string { return sw.name }

// PortOptions configure a Switch port. The zero value takes the switch's
// MTU and a generated MAC.
type PortOptions struct {
	// MTU is the largest IP packet (Ethernet payload) the port carries in
	// either direction. Default: the switch's MTU.
	MTU int
	// NICMTU is the MTU the attached NIC is told. Default: MTU. Set it
	// larger than MTU to model a host whose MTU is wrong for its link: its
	// big frames are then dropped at the port and counted.
	NICMTU int
	// MAC is the port's (and so the attached NIC's) address. Default: a
	// locally administered address derived from the switch name and the
	// port number, the same on every run.
	MAC net.HardwareAddr
}

// NewPort adds a port to the switch. The port is a gVisor link endpoint:
// attach it to a host with Host.AddNIC (optionally wrapped, e.g. by a
// capture tap).
func (sw *Switch) NewPort(opts PortOptions) (*Port, error) {
	what := "port"
	if opts.MTU == 0 {
		opts.MTU, what = sw.mtu, "switch "+sw.name+"'s default port"
	}
	if err := checkMTU(what, opts.MTU); err != nil {
		return nil, err
	}
	if opts.NICMTU == 0 {
		opts.NICMTU = opts.MTU
	}
	if err := checkMTU("port's NIC", opts.NICMTU); err != nil {
		return nil, err
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	num := sw.next
	sw.next++
	var addr tcpip.LinkAddress
	switch {
	case opts.MAC == nil:
		addr = tcpip.LinkAddress([]byte{0x02, byte(sw.id >> 8), byte(sw.id), 0, byte(num >> 8), byte(num)})
	case len(opts.MAC) != 6 || opts.MAC[0]&1 != 0:
		return nil, fmt.Errorf("stack: port MAC %v is not a 6-byte unicast address", opts.MAC)
	default:
		addr = tcpip.LinkAddress(opts.MAC)
	}
	p := &Port{sw: sw, num: num, name: fmt.Sprintf("%s/port%d", sw.name, num), mac: addr, key: mac([]byte(addr))}
	p.mtu.Store(uint32(opts.MTU))
	p.nicMTU.Store(uint32(opts.NICMTU))
	p.initImpair(p.name, header.EthernetMinimumSize, sw.sched, p.deliverOutbound, p.deliverInbound)
	next := append(append([]*Port(nil), *sw.ports.Load()...), p)
	sw.ports.Store(&next)
	return p, nil
}

// Ports returns the switch's current ports in the order they were added.
func (sw *Switch) Ports() []*Port {
	return append([]*Port(nil), *sw.ports.Load()...)
}

func (sw *Switch) removePort(p *Port) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var kept []*Port
	for _, q := range *sw.ports.Load() {
		if q != p {
			kept = append(kept, q)
		}
	}
	sw.ports.Store(&kept)
	sw.fdbMu.Lock()
	defer sw.fdbMu.Unlock()
	for k, v := range sw.fdb {
		if v == p {
			delete(sw.fdb, k)
		}
	}
}

// learn records that src is behind port in.
func (sw *Switch) learn(src mac, in *Port) {
	sw.fdbMu.RLock()
	cur := sw.fdb[src]
	sw.fdbMu.RUnlock()
	if cur == in {
		return
	}
	sw.fdbMu.Lock()
	sw.fdb[src] = in
	sw.fdbMu.Unlock()
}

// lookup returns the port behind dst, or nil when dst was not learnt.
func (sw *Switch) lookup(dst mac) *Port {
	sw.fdbMu.RLock()
	defer sw.fdbMu.RUnlock()
	return sw.fdb[dst]
}

// ingress checks a frame the host attached to in sends, and passes it to
// in's impairments, if any, or straight into the switch.
func (sw *Switch) ingress(in *Port, pkt *stack.PacketBuffer) {
	size := pkt.Size()
	if len(pkt.LinkHeader().Slice()) < header.EthernetMinimumSize {
		in.drop(pkt, wire.Outbound, wire.DropMalformed)
		return
	}
	if size-header.EthernetMinimumSize > int(in.mtu.Load()) {
		in.drop(pkt, wire.Outbound, wire.DropMTU)
		return
	}
	if d := in.impair[outIdx].Load(); d != nil {
		d.process(heldFrame{buf: pkt.ToBuffer(), size: size})
		return
	}
	sw.forward(in, pkt, size)
}

// forward moves one frame of size bytes that entered the switch through
// in; its link header holds its Ethernet header.
func (sw *Switch) forward(in *Port, pkt *stack.PacketBuffer, size int) {
	eth := header.Ethernet(pkt.LinkHeader().Slice())
	// sent counts the frame as one the link carried, once it has somewhere
	// to go: a frame is counted once, in TxFrames or in Drops.
	sent := func() {
		in.txFrames.Add(1)
		in.txBytes.Add(uint64(size))
	}

	// The addresses are read as arrays, not as tcpip.LinkAddress strings,
	// which would be allocated for every frame.
	src := mac(eth[header.EthernetAddressSize : 2*header.EthernetAddressSize])
	dst := mac(eth[:header.EthernetAddressSize])
	if unicast(src) {
		sw.learn(src, in)
	}
	proto := eth.Type()
	if unicast(dst) {
		if out := sw.lookup(dst); out != nil {
			if out == in {
				// Addressed to a MAC behind its own port: a switch sends
				// nothing back where a frame came from.
				in.drop(pkt, wire.Outbound, wire.DropNoDestination)
				return
			}
			sent()
			out.receive(pkt, size, proto, tcpip.PacketHost)
			return
		}
	}
	typ := tcpip.PacketOtherHost
	switch {
	case dst == broadcastMAC:
		typ = tcpip.PacketBroadcast
	case dst[0]&1 != 0:
		typ = tcpip.PacketMulticast
	}
	ports := *sw.ports.Load()
	owned := typ != tcpip.PacketOtherHost
	for _, out := range ports {
		owned = owned || out != in && out.key == dst
	}
	if len(ports) < 2 {
		in.drop(pkt, wire.Outbound, wire.DropNoDestination) // nobody to take it
		return
	}
	if owned {
		sent()
	} else {
		// A unicast MAC no port has: flooded, as a switch does with a MAC
		// it has not learnt, and filtered by every port's NIC (those are
		// not losses); the frame is lost, and counted so, once.
		in.drop(pkt, wire.Outbound, wire.DropNoDestination)
	}
	for _, out := range ports {
		if out == in {
			continue
		}
		if typ == tcpip.PacketOtherHost && out.key == dst {
			out.receive(pkt, size, proto, tcpip.PacketHost)
			continue
		}
		out.receive(pkt, size, proto, typ)
	}
}

// broadcastMAC is ff:ff:ff:ff:ff:ff.
var broadcastMAC = mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// unicast reports whether m is a unicast address other than all zeros, as
// header.IsValidUnicastEthernetAddress does.
func unicast(m mac) bool {
	return m[0]&1 == 0 && m != mac{}
}

// Port is one port of a Switch and the Ethernet link endpoint of the NIC
// attached to it. It implements gVisor's stack.LinkEndpoint.
type Port struct {
	linkEnd
	sw     *Switch
	num    int
	name   string
	mac    tcpip.LinkAddress
	key    mac // mac as a forwarding database key
	closed atomic.Bool
}

var _ stack.LinkEndpoint = (*Port)(nil)

// Name returns "switch/portN".
func (p *Port) Name() string { return p.name }

// Switch returns the switch the port belongs to.
func (p *Port) Switch() *Switch { return p.sw }

// Counters returns a snapshot of the port's counters.
func (p *Port) Counters() LinkCounters { return p.counters() }

// SetLinkUp brings the port up or down. A down port drops (and counts, as
// wire.DropLinkDown) every frame in both directions.
func (p *Port) SetLinkUp(up bool) { p.down.Store(!up) }

// SetImpairments puts im in force for the frames going through the port in
// dir (wire.Outbound: from the attached host into the switch; wire.Inbound:
// from the switch to the host; BothDirections: each with the same
// settings). It may
// be called at any time, from any goroutine, also while traffic flows:
// frames already delayed keep their schedule. The zero Impairments remove
// every impairment. A bad setting is an error wrapping
// ErrInvalidImpairments, and changes nothing.
func (p *Port) SetImpairments(dir wire.Direction, im Impairments) error {
	return p.setImpairments(dir, im)
}

// Impairments returns the impairments in force in one direction
// (wire.Outbound or wire.Inbound).
func (p *Port) Impairments(dir wire.Direction) Impairments { return p.impairments(dir) }

// SetPortMTU changes the MTU the port enforces (not the NIC's MTU). An MTU
// out of [68, 65535] is an error and changes nothing.
func (p *Port) SetPortMTU(mtu int) error {
	if err := checkMTU("port", mtu); err != nil {
		return err
	}
	p.mtu.Store(uint32(mtu))
	return nil
}

// PortMTU returns the MTU the port enforces.
func (p *Port) PortMTU() int { return int(p.mtu.Load()) }

// Remove takes the port out of its switch; frames written to it afterwards
// are dropped as wire.DropDetached. Removing the NIC from its host does
// the same.
func (p *Port) Remove() {
	if p.closed.CompareAndSwap(false, true) {
		p.sw.removePort(p)
		p.purgeImpairments()
	}
}

// receive delivers a frame leaving the switch through p to p's NIC.
func (p *Port) receive(pkt *stack.PacketBuffer, size int, proto tcpip.NetworkProtocolNumber, typ tcpip.PacketType) {
	if typ == tcpip.PacketOtherHost {
		// A flooded copy for another MAC: the NIC's filter ignores it,
		// whatever the port's state; it is not a loss (see Filtered).
		p.filtered.Add(1)
		return
	}
	switch {
	case p.down.Load():
		p.drop(pkt, wire.Inbound, wire.DropLinkDown)
		return
	case size-header.EthernetMinimumSize > int(p.mtu.Load()):
		p.drop(pkt, wire.Inbound, wire.DropMTU)
		return
	}
	d := p.getDispatcher()
	if d == nil {
		p.drop(pkt, wire.Inbound, wire.DropDetached)
		return
	}
	if imp := p.impair[inIdx].Load(); imp != nil {
		imp.process(heldFrame{buf: pkt.ToBuffer(), size: size, proto: proto, typ: typ})
		return
	}
	p.rxFrames.Add(1)
	p.rxBytes.Add(uint64(size))
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
	in.LinkHeader().Consume(header.EthernetMinimumSize)
	in.PktType = typ
	d.DeliverNetworkPacket(proto, in)
	in.DecRef()
}

// deliverOutbound moves a frame the port's outbound impairments let go
// into the switch.
func (p *Port) deliverOutbound(f *heldFrame) {
	switch {
	case p.down.Load():
		p.dropHeld(f, wire.Outbound, wire.DropLinkDown)
		return
	case p.closed.Load():
		p.dropHeld(f, wire.Outbound, wire.DropDetached)
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	p.sw.forward(p, pkt, f.size)
	pkt.DecRef()
}

// deliverInbound moves a frame the port's inbound impairments let go to
// the attached NIC.
func (p *Port) deliverInbound(f *heldFrame) {
	if p.down.Load() {
		p.dropHeld(f, wire.Inbound, wire.DropLinkDown)
		return
	}
	d := p.getDispatcher()
	if d == nil {
		p.dropHeld(f, wire.Inbound, wire.DropDetached)
		return
	}
	p.rxFrames.Add(1)
	p.rxBytes.Add(uint64(f.size))
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: f.buf})
	in.LinkHeader().Consume(header.EthernetMinimumSize)
	in.PktType = f.typ
	d.DeliverNetworkPacket(f.proto, in)
	in.DecRef()
}

// WritePackets implements stack.LinkWriter: the frames enter the switch.
func (p *Port) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	for _, pkt := range pkts.AsSlice() {
		switch {
		case p.down.Load():
			p.drop(pkt, wire.Outbound, wire.DropLinkDown)
		case p.closed.Load():
			p.drop(pkt, wire.Outbound, wire.DropDetached)
		default:
			p.sw.ingress(p, pkt)
		}
	}
	return pkts.Len(), nil
}

// MTU implements stack.LinkEndpoint.
func (p *Port) MTU() uint32 { return p.nicMTU.Load() }

// SetMTU implements stack.LinkEndpoint. It changes the MTU the NIC is told,
// not the one the port enforces (see SetPortMTU).
func (p *Port) SetMTU(mtu uint32) { p.nicMTU.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (p *Port) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (p *Port) LinkAddress() tcpip.LinkAddress { return p.mac }

// SetLinkAddress implements stack.LinkEndpoint. A port's MAC is fixed; the
// call is ignored.
func (p *Port) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint. The port resolves addresses
// with ARP/NDP and offloads no checksums, so every frame on the wire (and in
// a capture) carries real checksums.
func (p *Port) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired
}

// Attach implements stack.LinkEndpoint.
func (p *Port) Attach(d stack.NetworkDispatcher) { p.attach(d) }

// IsAttached implements stack.LinkEndpoint.
func (p *Port) IsAttached() bool { return p.getDispatcher() != nil }

// Wait implements stack.LinkEndpoint. A port has no goroutines.
func (p *Port) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (p *Port) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (p *Port) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (p *Port) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close implements stack.LinkEndpoint: the host removed its NIC, so the port
// leaves the switch.
func (p *Port) Close() {
	p.runOnClose()
	p.Remove()
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (p *Port) SetOnCloseAction(fn func()) { p.setOnClose(fn) }
