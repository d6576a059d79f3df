package stack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// The host's ledger: every packet or datagram the host itself discards, at
// any layer (IP input, UDP, receive queues, conns that close), is counted
// under its reason (Host.Stats().Drops) and reported to the drop hooks of
// the NIC it concerns: the NIC it came in through, or the one it was to
// leave by. What links drop is counted by the links (LinkCounters).

// A HostDropRecorder is a link, or a link wrapper such as capture.Tap,
// that wants to know what the host attached to it drops: AddNIC finds the
// ones in the NIC's link and in the links it wraps (through Unwrap), and
// the host calls RecordHostDrop for each packet it drops that concerns the
// NIC. packet is the IP packet (no link header), valid only during the
// call; dir is wire.Inbound for one that came in through the NIC,
// wire.Outbound for one that was to leave by it. It is called on the
// goroutine that dropped the packet and must not block.
type HostDropRecorder interface {
	RecordHostDrop(packet []byte, dir wire.Direction, reason wire.DropReason)
}

// hostDrops counts a host's drops by reason.
type hostDrops [wire.MaxDropReason + 1]atomic.Uint64

func (d *hostDrops) add(reason wire.DropReason, n uint64) {
	if reason == 0 || reason > wire.MaxDropReason {
		reason = wire.DropUnknown
	}
	d[reason].Add(n)
}

func (d *hostDrops) snapshot() map[wire.DropReason]uint64 {
	var m map[wire.DropReason]uint64
	for r := range d {
		if v := d[r].Load(); v != 0 {
			if m == nil {
				m = make(map[wire.DropReason]uint64)
			}
			m[wire.DropReason(r)] = v
		}
	}
	return m
}

// nicReporters are who hear of a NIC's host drops.
type nicReporters struct {
	recorders []HostDropRecorder // found in the NIC's link chain at AddNIC
	hooksMu   sync.Mutex
	hooks     atomic.Pointer[[]*wire.DropHook]
}

// active reports whether anyone listens: when nobody does, the packet's
// bytes need not be gathered.
func (r *nicReporters) active() bool {
	if len(r.recorders) > 0 {
		return true
	}
	h := r.hooks.Load()
	return h != nil && len(*h) > 0
}

func (r *nicReporters) report(packet []byte, dir wire.Direction, reason wire.DropReason) {
	for _, rec := range r.recorders {
		rec.RecordHostDrop(packet, dir, reason)
	}
	if hooks := r.hooks.Load(); hooks != nil {
		for _, h := range *hooks {
			(*h)(packet, dir, reason)
		}
	}
}

// AddDropHook registers fn to be called for every packet the NIC's host
// drops that came in through this NIC or was to leave by it (a checksum
// that fails, a full receive buffer, an address nobody has...), with the IP
// packet (no link header), and returns a function that removes it. fn is
// called as wire.DropHook says. The host counts these drops in
// Host.Stats().Drops; what the NIC's link drops is reported by the link's
// own AddDropHook.
func (n *NIC) AddDropHook(fn wire.DropHook) (remove func()) {
	r := &n.reporters
	e := &fn
	r.hooksMu.Lock()
	defer r.hooksMu.Unlock()
	var next []*wire.DropHook
	if cur := r.hooks.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, e)
	r.hooks.Store(&next)
	return func() {
		r.hooksMu.Lock()
		defer r.hooksMu.Unlock()
		cur := r.hooks.Load()
		if cur == nil {
			return
		}
		var kept []*wire.DropHook
		for _, h := range *cur {
			if h != e {
				kept = append(kept, h)
			}
		}
		r.hooks.Store(&kept)
	}
}

// hostDropRecorders finds the HostDropRecorders in ep's chain.
func hostDropRecorders(ep stack.LinkEndpoint) []HostDropRecorder {
	var out []HostDropRecorder
	for l := range linkChain(ep) {
		if r, ok := l.(HostDropRecorder); ok {
			out = append(out, r)
		}
	}
	return out
}

// dropPacket counts a packet the host drops and reports it to the hooks of
// the NIC it concerns. pkt's network header must be parsed (its bytes from
// the network header on are what is reported); pkt stays the caller's.
func (h *Host) dropPacket(nic tcpip.NICID, dir wire.Direction, reason wire.DropReason, pkt *stack.PacketBuffer) {
	h.drops.add(reason, 1)
	n := h.nicFor(nic)
	if n == nil || !n.reporters.active() {
		return
	}
	v := stack.PayloadSince(pkt.NetworkHeader())
	defer v.Release()
	n.reporters.report(v.AsSlice(), dir, reason)
}

// dropBytes is dropPacket for a packet held as bytes.
func (h *Host) dropBytes(nic tcpip.NICID, dir wire.Direction, reason wire.DropReason, packet []byte) {
	h.drops.add(reason, 1)
	if n := h.nicFor(nic); n != nil && n.reporters.active() {
		n.reporters.report(packet, dir, reason)
	}
}

// nicFor returns the NIC with the given ID without taking the host's lock
// (the delivery path calls it), or nil.
func (h *Host) nicFor(id tcpip.NICID) *NIC {
	if t := h.nicTable.Load(); t != nil {
		return (*t)[id]
	}
	return nil
}

// publishNICsLocked makes the NIC table nicFor reads; h.mu is held.
func (h *Host) publishNICsLocked() {
	t := make(map[tcpip.NICID]*NIC, len(h.nics))
	for _, n := range h.nics {
		t[n.id] = n
	}
	h.nicTable.Store(&t)
}

// dropFragments is the reassemblers' drop callback: each fragment they
// discard is a drop of the NIC it came in through.
func (h *Host) dropFragments(frags []fragmentRecord, reason reasmReason) {
	for _, f := range frags {
		h.dropBytes(f.key.nic, wire.Inbound, reason.wireReason(), f.packet)
	}
}
