package stack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Drop reasons reported by links in counters and to drop hooks.
const (
	// DropMTU: the frame's IP packet is larger than the link's MTU.
	DropMTU = "mtu"
	// DropLinkDown: the port or pipe end is administratively down.
	DropLinkDown = "link-down"
	// DropDetached: no NIC is attached to the receiving end (the host
	// removed it or never attached it), or the link end was closed or
	// removed while its impairments still held the frame.
	DropDetached = "detached"
	// DropMalformed: the frame is too short to carry a link header.
	DropMalformed = "malformed"
	// DropQueueFull: a bounded queue on the link was full (an impairment's
	// delay line or rate-limit queue, see Impairments.QueueLimit).
	DropQueueFull = "queue-full"
	// DropLoss: an impairment lost the frame (Impairments.Loss or
	// Impairments.BurstLoss).
	DropLoss = "loss"
	// DropWriteError: the link an ImpairedLink wraps refused a frame that
	// the impairments had delayed.
	DropWriteError = "write-error"
	// DropNoDestination: a Switch had no port to send the frame out of (it
	// came in through the only port left, or was addressed to a MAC no
	// port has, flooded to no other port). Counted at the ingress port.
	DropNoDestination = "no-destination"
)

// dropReasons lists every reason in a fixed order, for counters.
var dropReasons = [...]string{DropMTU, DropLinkDown, DropDetached, DropMalformed, DropQueueFull, DropLoss, DropWriteError, DropNoDestination}

func reasonIndex(reason string) int {
	for i, r := range dropReasons {
		if r == reason {
			return i
		}
	}
	panic("stack: unknown drop reason " + reason) // programming error inside this package
}

// LinkCounters are the counters of one end of a link (a Switch port or a
// Pipe end), seen from the host attached to it: Tx is host → link, Rx is
// link → host. Every frame that reaches the link is either counted in
// Tx/Rx or in Drops under its reason.
type LinkCounters struct {
	TxFrames, TxBytes uint64
	RxFrames, RxBytes uint64
	// Filtered counts flooded unicast frames addressed to another MAC that
	// the NIC ignored, as a real NIC's address filter does. They are not
	// losses: the frame's owner got its own copy.
	Filtered uint64
	// Corrupted, Duplicated and Reordered count what impairments did to
	// frames they let through: a corrupted frame is delivered with one bit
	// flipped (the receiver's checksums then drop it, counted by the
	// receiving stack, not here); a duplicated frame is delivered twice
	// (both copies count in Tx/Rx); a reordered frame skipped the delay and
	// overtook frames sent before it.
	Corrupted, Duplicated, Reordered uint64
	// Drops counts dropped frames by reason (DropMTU, ...). Only reasons
	// with a non-zero count are present.
	Drops map[string]uint64
}

// Dropped returns the total number of dropped frames.
func (c LinkCounters) Dropped() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// DropHook is called for every frame a link drops. frame is the whole frame
// (with its Ethernet header on Ethernet links) and is only valid during the
// call; outbound is true for a frame the attached host was sending. It is
// called on the goroutine that was delivering the frame and must not block.
type DropHook = func(frame []byte, outbound bool, reason string)

// linkEnd holds what every link end shares: counters, drop hooks, up/down
// state and the attached dispatcher.
type linkEnd struct {
	txFrames, txBytes atomic.Uint64
	rxFrames, rxBytes atomic.Uint64
	filtered          atomic.Uint64
	drops             [len(dropReasons)]atomic.Uint64

	corrupted, duplicated, reordered atomic.Uint64

	// impair holds, per direction (dirFromHost, dirToHost), the
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

type hookEntry struct{ fn DropHook }

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
				c.Drops = make(map[string]uint64)
			}
			c.Drops[dropReasons[i]] = v
		}
	}
	return c
}

// AddDropHook registers fn to be called for every frame this link end drops
// and returns a function that removes it. Capture taps use it to record
// drops with their reason.
func (l *linkEnd) AddDropHook(fn DropHook) (remove func()) {
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
func (l *linkEnd) drop(pkt *stack.PacketBuffer, outbound bool, reason string) {
	l.drops[reasonIndex(reason)].Add(1)
	hooks := l.hooks.Load()
	if hooks == nil || len(*hooks) == 0 {
		return
	}
	v := pkt.ToView()
	defer v.Release()
	for _, h := range *hooks {
		h.fn(v.AsSlice(), outbound, reason)
	}
}

// dropBytes is drop for a frame held as bytes.
func (l *linkEnd) dropBytes(frame []byte, outbound bool, reason string) {
	l.drops[reasonIndex(reason)].Add(1)
	if hooks := l.hooks.Load(); hooks != nil {
		for _, h := range *hooks {
			h.fn(frame, outbound, reason)
		}
	}
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
