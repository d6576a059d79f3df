package stack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// LinkCounters are the counters of one end of a link (a Switch port or a
// Pipe end), seen from the host attached to it: Tx counts the frames going
// wire.Outbound (host → link), Rx those going wire.Inbound (link → host).
// Every frame that reaches the link is either counted in Tx/Rx or in Drops
// under its reason.
type LinkCounters struct {
	TxFrames, TxBytes uint64
	RxFrames, RxBytes uint64
	// Filtered counts flooded unicast frames addressed to another MAC that
	// the NIC ignored, as a real NIC's address filter does. They are not
	// losses: the frame's owner got its own copy, or, when no port has
	// that MAC, the port it came in through counted it dropped
	// (wire.DropNoDestination).
	Filtered uint64
	// Corrupted, Duplicated and Reordered count what impairments did to
	// frames they let through: a corrupted frame is delivered with one bit
	// flipped (the receiver's checksums then drop it, counted by the
	// receiving stack, not here); a duplicated frame is delivered twice
	// (both copies count in Tx/Rx); a reordered frame skipped the delay and
	// overtook frames sent before it.
	Corrupted, Duplicated, Reordered uint64
	// Drops counts dropped frames by reason (wire.DropMTU, ...). Only
	// reasons with a non-zero count are present.
	Drops map[wire.DropReason]uint64
}

// Dropped returns the total number of dropped frames.
func (c LinkCounters) Dropped() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// linkEnd holds what every link end shares: counters, drop hooks, up/down
// state and the attached dispatcher.
type linkEnd struct {
	txFrames, txBytes atomic.Uint64
	rxFrames, rxBytes atomic.Uint64
	filtered          atomic.Uint64
	drops             [wire.MaxDropReason + 1]atomic.Uint64 // by reason

	corrupted, duplicated, reordered atomic.Uint64

	// impair holds, per direction (outIdx, inIdx), the
	// impairments in force, or nil when there are none and no delayed frame
	// is pending: the only cost of the impairment layer on an unimpaired
	// link is loading it.
	impair [2]atomic.Pointer[impairDir]
	// dirs are the per-direction impairment states, made on first use.
	dirsMu sync.Mutex
	dirs   [2]*impairDir

	down       atomic.Bool
	dispatcher atomic.Pointer[dispatcherBox]
	mtu        atomic.Uint32 // enforced link MTU (IP packet bytes)
	nicMTU     atomic.Uint32 // MTU reported to the host's NIC

	hooksMu sync.Mutex
	hooks   atomic.Pointer[[]*hookEntry]

	onCloseMu sync.Mutex
	onClose   func()
}

type dispatcherBox struct{ d stack.NetworkDispatcher }

type hookEntry struct{ fn wire.DropHook }

func (l *linkEnd) counters() LinkCounters {
	c := LinkCounters{
		TxFrames: l.txFrames.Load(), TxBytes: l.txBytes.Load(),
		RxFrames: l.rxFrames.Load(), RxBytes: l.rxBytes.Load(),
		Filtered:  l.filtered.Load(),
		Corrupted: l.corrupted.Load(), Duplicated: l.duplicated.Load(), Reordered: l.reordered.Load(),
	}
	for i := range l.drops {
		if v := l.drops[i].Load(); v != 0 {
			if c.Drops == nil {
				c.Drops = make(map[wire.DropReason]uint64)
			}
			c.Drops[wire.DropReason(i)] = v
		}
	}
	return c
}

// AddDropHook registers fn to be called for every frame this link end drops
// and returns a function that removes it. Capture taps use it to record
// drops with their reason.
func (l *linkEnd) AddDropHook(fn wire.DropHook) (remove func()) {
	e := &hookEntry{fn: fn}
	l.hooksMu.Lock()
	defer l.hooksMu.Unlock()
	var next []*hookEntry
	if cur := l.hooks.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, e)
	l.hooks.Store(&next)
	return func() {
		l.hooksMu.Lock()
		defer l.hooksMu.Unlock()
		cur := l.hooks.Load()
		if cur == nil {
			return
		}
		var kept []*hookEntry
		for _, h := range *cur {
			if h != e {
				kept = append(kept, h)
			}
		}
		l.hooks.Store(&kept)
	}
}

// drop counts a dropped packet under reason and reports it to the hooks.
func (l *linkEnd) drop(pkt *stack.PacketBuffer, dir wire.Direction, reason wire.DropReason) {
	reason = l.count(reason)
	hooks := l.hooks.Load()
	if hooks == nil || len(*hooks) == 0 {
		return
	}
	v := pkt.ToView()
	defer v.Release()
	for _, h := range *hooks {
		h.fn(v.AsSlice(), dir, reason)
	}
}

// dropBytes is drop for a frame held as bytes.
func (l *linkEnd) dropBytes(frame []byte, dir wire.Direction, reason wire.DropReason) {
	reason = l.count(reason)
	if hooks := l.hooks.Load(); hooks != nil {
		for _, h := range *hooks {
			h.fn(frame, dir, reason)
		}
	}
}

// count counts a drop under reason, or under wire.DropUnknown for a reason
// outside the enumeration (a bug here, but no reason to panic or to lose
// the drop), and returns the reason counted.
func (l *linkEnd) count(reason wire.DropReason) wire.DropReason {
	if reason == 0 || reason > wire.MaxDropReason {
		reason = wire.DropUnknown
	}
	l.drops[reason].Add(1)
	return reason
}

func (l *linkEnd) attach(d stack.NetworkDispatcher) {
	if d == nil {
		l.dispatcher.Store(nil)
		return
	}
	l.dispatcher.Store(&dispatcherBox{d})
}

func (l *linkEnd) getDispatcher() stack.NetworkDispatcher {
	if b := l.dispatcher.Load(); b != nil {
		return b.d
	}
	return nil
}

func (l *linkEnd) setOnClose(fn func()) {
	l.onCloseMu.Lock()
	l.onClose = fn
	l.onCloseMu.Unlock()
}

func (l *linkEnd) runOnClose() {
	l.onCloseMu.Lock()
	fn := l.onClose
	l.onClose = nil
	l.onCloseMu.Unlock()
	if fn != nil {
		fn()
	}
}
