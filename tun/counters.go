package tun

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Drop reasons, in counters and in drop hooks. They are the words package
// stack's links use for the same causes, so captures read alike.
const (
	// DropMTU: the IP packet is larger than the device's MTU. The kernel
	// does not check what userspace writes to a TUN/TAP device, so the
	// Device does, in both directions.
	DropMTU = "mtu"
	// DropLinkDown: the device vanished or was closed; the frame was
	// written after that.
	DropLinkDown = "link-down"
	// DropDetached: a frame arrived while no NIC was attached.
	DropDetached = "detached"
	// DropMalformed: a frame read from the device is too short for its
	// link header, or (TUN) is neither IPv4 nor IPv6.
	DropMalformed = "malformed"
	// DropWriteError: the kernel refused the frame (an errno other than
	// the device vanishing); Counters.Errors counts it too.
	DropWriteError = "write-error"
)

var dropReasons = [...]string{DropMTU, DropLinkDown, DropDetached, DropMalformed, DropWriteError}

// Counters are a Device's counters, seen from the attached host: Tx is
// host → device (→ kernel), Rx is device → host. Every frame the host
// writes and every frame read from the device is counted in Tx or Rx, in
// Filtered, or in Drops under its reason.
type Counters struct {
	TxFrames, TxBytes uint64
	RxFrames, RxBytes uint64
	// Filtered counts TAP frames addressed to another unicast MAC, which
	// the host's NIC ignores as a real NIC's address filter does. They are
	// not losses.
	Filtered uint64
	// Errors counts reads and writes the device failed, including the
	// read that found the device gone.
	Errors uint64
	// Drops counts dropped frames by reason (DropMTU, ...). Only reasons
	// with a non-zero count are present.
	Drops map[string]uint64
}

// Dropped returns the total number of dropped frames.
func (c Counters) Dropped() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// DropHook is called for every frame a Device drops: frame is the whole
// frame (with its Ethernet header on a TAP device), valid only during the
// call; outbound is true for a frame the host was sending. It runs on the
// goroutine that was moving the frame (the host's sender, or the Device's
// reader) and must not block.
type DropHook = func(frame []byte, outbound bool, reason string)

// counters holds a Device's counters and drop hooks.
type counters struct {
	txFrames, txBytes atomic.Uint64
	rxFrames, rxBytes atomic.Uint64
	filtered, errors  atomic.Uint64
	drops             [len(dropReasons)]atomic.Uint64

	hooksMu sync.Mutex
	hooks   atomic.Pointer[[]*hookEntry]
}

type hookEntry struct{ fn DropHook }

func (c *counters) snapshot() Counters {
	s := Counters{
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		Filtered: c.filtered.Load(), Errors: c.errors.Load(),
	}
	for i := range c.drops {
		if v := c.drops[i].Load(); v != 0 {
			if s.Drops == nil {
				s.Drops = make(map[string]uint64)
			}
			s.Drops[dropReasons[i]] = v
		}
	}
	return s
}

func (c *counters) addHook(fn DropHook) (remove func()) {
	e := &hookEntry{fn: fn}
	c.hooksMu.Lock()
	defer c.hooksMu.Unlock()
	var next []*hookEntry
	if cur := c.hooks.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, e)
	c.hooks.Store(&next)
	return func() {
		c.hooksMu.Lock()
		defer c.hooksMu.Unlock()
		var kept []*hookEntry
		if cur := c.hooks.Load(); cur != nil {
			for _, h := range *cur {
				if h != e {
					kept = append(kept, h)
				}
			}
		}
		c.hooks.Store(&kept)
	}
}

// dropBytes counts a dropped frame held as bytes and reports it.
func (c *counters) dropBytes(frame []byte, outbound bool, reason int) {
	c.drops[reason].Add(1)
	if hooks := c.hooks.Load(); hooks != nil {
		for _, h := range *hooks {
			h.fn(frame, outbound, dropReasons[reason])
		}
	}
}

// dropPacket counts a dropped outbound packet and reports it.
func (c *counters) dropPacket(pkt *stack.PacketBuffer, reason int) {
	c.drops[reason].Add(1)
	hooks := c.hooks.Load()
	if hooks == nil || len(*hooks) == 0 {
		return
	}
	v := pkt.ToView()
	defer v.Release()
	for _, h := range *hooks {
		h.fn(v.AsSlice(), true, dropReasons[reason])
	}
}

// Indexes of dropReasons.
const (
	dropMTU = iota
	dropLinkDown
	dropDetached
	dropMalformed
	dropWriteError
)
