package tun

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// Counters are a Device's counters, seen from the attached host: Tx counts
// the frames going wire.Outbound (host → device → kernel), Rx those going
// wire.Inbound (device → host). Every frame the host writes and every frame
// read from the device is counted in Tx or Rx, in Filtered, or in Drops
// under its reason.
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
	// Drops counts dropped frames by reason. Only reasons with a non-zero
	// count are present. A Device drops frames for these reasons:
	//
	//   - wire.DropMTU: the IP packet is larger than the device's MTU. The
	//     kernel does not check what userspace writes to a TUN/TAP device,
	//     so the Device does, in both directions.
	//   - wire.DropLinkDown: the kernel's end of the device is down (Linux
	//     answers EIO), or the device vanished or was closed and the frame
	//     was written after that.
	//   - wire.DropDetached: a frame arrived while no NIC was attached.
	//   - wire.DropMalformed: a frame read from the device is too short
	//     for its link header, or (TUN) is neither IPv4 nor IPv6.
	//   - wire.DropWriteError: the kernel refused the frame (an errno other
	//     than the device vanishing); Errors counts it too.
	Drops map[wire.DropReason]uint64
}

// Dropped returns the total number of dropped frames.
func (c Counters) Dropped() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// counters holds a Device's counters and drop hooks.
type counters struct {
	txFrames, txBytes atomic.Uint64
	rxFrames, rxBytes atomic.Uint64
	filtered, errors  atomic.Uint64
	drops             [wire.MaxDropReason + 1]atomic.Uint64 // by reason

	hooksMu sync.Mutex
	hooks   atomic.Pointer[[]*hookEntry]
}

type hookEntry struct{ fn wire.DropHook }

func (c *counters) snapshot() Counters {
	s := Counters{
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		Filtered: c.filtered.Load(), Errors: c.errors.Load(),
	}
	for i := range c.drops {
		if v := c.drops[i].Load(); v != 0 {
			if s.Drops == nil {
				s.Drops = make(map[wire.DropReason]uint64)
			}
			s.Drops[wire.DropReason(i)] = v
		}
	}
	return s
}

func (c *counters) addHook(fn wire.DropHook) (remove func()) {
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
func (c *counters) dropBytes(frame []byte, dir wire.Direction, reason wire.DropReason) {
	c.drops[reason].Add(1)
	if hooks := c.hooks.Load(); hooks != nil {
		for _, h := range *hooks {
			h.fn(frame, dir, reason)
		}
	}
}

// dropPacket counts a dropped outbound packet and reports it.
func (c *counters) dropPacket(pkt *stack.PacketBuffer, reason wire.DropReason) {
	c.drops[reason].Add(1)
	hooks := c.hooks.Load()
	if hooks == nil || len(*hooks) == 0 {
		return
	}
	v := pkt.ToView()
	defer v.Release()
	for _, h := range *hooks {
		h.fn(v.AsSlice(), wire.Outbound, reason)
	}
}
