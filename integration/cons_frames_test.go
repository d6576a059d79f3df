// Link and frame balance checks: each link end's frame counters and each host's ledger against the hooks.

package integration

import (
	"fmt"
	"maps"

	"github.com/dgramlab/dgramlab/wire"
)

// checkFrames checks every link end's frame counters.
func (c *consChecker) checkFrames() {
	r := c.r
	n := len(r.ends)
	hooked := make([]map[wire.DropReason]uint64, n)
	dir := make([][2]uint64, n) // hooks' drops by direction: out, in
	for i := range hooked {
		hooked[i] = map[wire.DropReason]uint64{}
	}
	for _, d := range r.linkDrops {
		hooked[d.end][d.reason]++
		if d.dir == wire.Outbound {
			dir[d.end][0]++
		} else {
			dir[d.end][1]++
		}
	}
	tapOut := make([]uint64, n)
	tapIn := make([]uint64, n)
	tapDrops := make([]uint64, n)
	for _, ev := range r.taps {
		switch {
		case ev.drop != 0:
			tapDrops[ev.end]++
		case ev.dir == wire.Outbound:
			tapOut[ev.end]++
		default:
			tapIn[ev.end]++
		}
	}
	for _, sd := range r.sent {
		if sd.inj >= 0 {
			for e, end := range r.ends {
				if end.host < 0 && end.seg == c.s.injects[sd.inj].seg {
					tapOut[e]++
				}
			}
		}
	}
	hostHooked := map[[2]int]uint64{}
	for _, d := range r.hostDrops {
		hostHooked[[2]int{d.host, d.nic}]++
	}
	for i, e := range r.ends {
		ctr := r.finalCounters[i]
		if !maps.Equal(ctr.Drops, nonZero(hooked[i])) {
			c.fail("link counters ≠ drop hooks", "%s: Counters().Drops = %v, the drop hooks saw %v", e.name, ctr.Drops, nonZero(hooked[i]))
		}
		var dupOut, dupIn uint64
		if e.host >= 0 {
			imp := c.s.hosts[e.host].nics[e.nic].imp
			if imp[0].Duplicate > 0 {
				dupOut = ctr.Duplicated
			}
			if imp[1].Duplicate > 0 {
				dupIn = ctr.Duplicated
			}
		}
		// Each frame once: in TxFrames (sent on, duplicates included) or
		// in Drops.
		if tapOut[i]+dupOut != ctr.TxFrames+dir[i][0] {
			c.fail("link end: frames in ≠ out + drops (outbound)", "%s: the host handed it %d frames (+%d duplicated), it counted %d in TxFrames and dropped %d going out (%v); want each counted once",
				e.name, tapOut[i], dupOut, ctr.TxFrames, dir[i][0], ctr.Drops)
		}
		rx := tapIn[i]
		if e.host < 0 {
			rx = uint64(r.injRx[i])
		}
		if rx != ctr.RxFrames {
			c.fail("link end: Rx ≠ delivered", "%s: RxFrames %d, the NIC got %d", e.name, ctr.RxFrames, rx)
		}
		if e.pipe != nil {
			for j, o := range r.ends {
				if o.pipe == e.pipe.Peer() {
					if r.finalCounters[j].TxFrames+dupIn != ctr.RxFrames+dir[i][1] {
						c.fail("link end: frames in ≠ out + drops (inbound)", "%s: the other end sent %d frames (+%d duplicated here), this end delivered %d and dropped %d coming in (%v)",
							e.name, r.finalCounters[j].TxFrames, dupIn, ctr.RxFrames, dir[i][1], ctr.Drops)
					}
				}
			}
		}
		if e.host >= 0 {
			if want := uint64(len(r.linkDropsAt(i))) + hostHooked[[2]int{e.host, e.nic}]; tapDrops[i] != want {
				c.fail("tap drops ≠ hooks", "%s: the tap recorded %d drops, the link's and the NIC's hooks saw %d", e.name, tapDrops[i], want)
			}
		}
	}
}

func (r *consRecord) linkDropsAt(end int) []linkDrop {
	var out []linkDrop
	for _, d := range r.linkDrops {
		if d.end == end {
			out = append(out, d)
		}
	}
	return out
}

func nonZero(m map[wire.DropReason]uint64) map[wire.DropReason]uint64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// checkLedgers checks each host's ledger against its NICs' hooks.
func (c *consChecker) checkLedgers() {
	for h := range c.s.hosts {
		hooked := map[wire.DropReason]uint64{}
		for _, d := range c.r.hostDrops {
			if d.host == h {
				hooked[d.reason]++
			}
		}
		if got := c.r.finalStats[h].Drops; !maps.Equal(got, nonZero(hooked)) {
			var diff []string
			for _, reason := range wire.AllDropReasons() {
				if got[reason] != hooked[reason] {
					diff = append(diff, fmt.Sprintf("%v: ledger %d, hooks %d", reason, got[reason], hooked[reason]))
					c.fail("host ledger ≠ NIC hooks ("+reason.String()+")", "h%d: %s", h, diff[len(diff)-1])
				}
			}
		}
	}
}
