// Per-datagram checks: each datagram's copies followed hop by hop to every host it was meant for.

package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/dgramlab/dgramlab/wire"
)

// injExpect is the drop an injected frame of kind k must meet at a host it
// reaches intact (target: addressed to that host's IP address), or 0 when
// it is a good datagram.
func injExpect(k injKind, target bool) wire.DropReason {
	switch k {
	case injBadIPSum, injTruncated, injBadVersion:
		return wire.DropBadHeader
	case injUnknownEtherType:
		return wire.DropUnknownProtocol
	}
	if !target {
		return wire.DropNotForUs
	}
	switch k {
	case injBadUDPSum:
		return wire.DropBadChecksum
	case injWrongDstIP:
		return wire.DropNotForUs
	case injBadUDPLen:
		return wire.DropBadLength
	case injUnknownProto:
		return wire.DropUnknownProtocol
	case injLoneFragment:
		return wire.DropReassembly
	}
	return 0
}

// open reports whether socket k is open at t.
func (c *consChecker) open(k int, t time.Duration) bool {
	at, closed := c.closedAt[k]
	return !closed || at > t
}

// member reports whether host h is in group g on its NIC on seg at t.
func (c *consChecker) member(h, seg int, g netip.Addr, t time.Duration) bool {
	nic := c.s.nicOn(h, seg)
	for si, k := range c.s.socks {
		if k.host != h || !c.open(si, t) {
			continue
		}
		for _, j := range k.joins {
			if j.group == g && j.nic == nic {
				return true
			}
		}
	}
	return false
}

// targets returns the sockets of host h a datagram reaching it between t0
// and t1 is for: certainly (open throughout) and possibly (open at t0).
func (c *consChecker) targets(st *dgState, rc recipient, t0, t1 time.Duration) (certain, possible []int) {
	var port uint16
	var dst netip.Addr
	kind := sendUnicast
	maybe := false // none certain
	if st.sent.send >= 0 {
		d := c.s.sends[st.sent.send]
		port, dst, kind = d.dst.Port(), d.dst.Addr(), d.kind
	} else {
		// A bad frame injected for rc's host is for no socket, unless a
		// corruption on the way made a copy of it good: one flipped bit
		// can undo the injected fault (one bit of a checksum, or a bit of
		// the words it sums, in the opposite sense). Then it may reach
		// the sockets a good one would.
		in := c.s.injects[st.sent.inj]
		if in.host != rc.host {
			return nil, nil
		}
		healed := false
		for _, a := range st.arrivals[rc.host] {
			healed = healed || !a.intact
		}
		if injExpect(in.kind, true) != 0 {
			if !healed || in.kind == injLoneFragment {
				return nil, nil
			}
			maybe = true
		}
		port, dst = in.port, segAddr(in.seg, in.host)
	}
	if rc.pseudo != 0 && !maybe {
		return nil, nil
	}
	for si, k := range c.s.socks {
		if k.host != rc.host || k.port != port {
			continue
		}
		switch kind {
		case sendUnicast, sendClosedPort:
			if k.bindNIC >= 0 && c.s.hosts[k.host].nics[k.bindNIC].addr != dst {
				continue
			}
		case sendSubnetBcast, sendLimitedBcast:
			if k.bindNIC >= 0 {
				continue
			}
		case sendMulticast:
			if k.bindNIC >= 0 {
				continue
			}
		}
		mcast := kind == sendMulticast
		if c.open(si, t1) && (!mcast || c.member(rc.host, st.seg, dst, t1) && c.member(rc.host, st.seg, dst, t0)) {
			certain = append(certain, si)
		}
		if c.open(si, t0-1) && (!mcast || c.member(rc.host, st.seg, dst, t0-1)) {
			possible = append(possible, si)
		}
	}
	if maybe {
		certain = nil
	}
	return certain, possible
}

// maxCopies is how many copies of a frame can reach rc: 2 per link stage
// on the way that duplicates.
func (c *consChecker) maxCopies(st *dgState, rc recipient) int {
	n := 1
	if st.senderHost >= 0 {
		nic := c.s.hosts[st.senderHost].nics[c.s.nicOn(st.senderHost, st.seg)]
		if nic.imp[0].Duplicate > 0 {
			n *= 2
		}
	}
	nic := c.s.hosts[rc.host].nics[c.s.nicOn(rc.host, st.seg)]
	if nic.imp[1].Duplicate > 0 {
		n *= 2
	}
	return n
}

func isSocketReason(r wire.DropReason) bool {
	return r == wire.DropBufferFull || r == wire.DropClosedUnread || r == wire.DropSourceFiltered
}

func (c *consChecker) checkDatagram(st *dgState) {
	name := c.describe(st)
	frag := st.nfrag > 1
	// The sender.
	var senderDrops int
	senderReasons := map[wire.DropReason]int{}
	for i, d := range st.hostDrops {
		if d.host == st.senderHost && d.dir == wire.Outbound {
			senderDrops++
			senderReasons[d.reason]++
			_ = i
		}
	}
	out := 0
	for _, n := range st.outOffs {
		out += n
	}
	if st.senderHost >= 0 {
		// A datagram the sender drops before it is fragmented (one waiting
		// for ARP, say) is one drop; a fragment dropped after, one each.
		if out+senderDrops != st.nfrag && !(out == 0 && senderDrops == 1) {
			cat := "lost at the sender"
			if out+senderDrops > st.nfrag {
				cat = "counted twice at the sender"
			}
			if st.sent.send >= 0 {
				cat += " (" + sendKindNames[c.s.sends[st.sent.send].kind] + ")"
			}
			c.fail(cat, "%s: %d frames on the wire + %d dropped by the sender %v, want %d frames, or the datagram dropped once", name, out, senderDrops, senderReasons, st.nfrag)
		}
		if st.sent.send >= 0 && c.s.sends[st.sent.send].kind == sendUnresolved && c.s.segs[st.seg].kind == segSwitch {
			if out != 0 || senderReasons[wire.DropUnresolved] != senderDrops {
				c.fail("unresolvable destination", "%s: %d frames on the wire, sender drops %v, want it dropped as unresolved", name, out, senderReasons)
			}
		}
	}
	rcs := c.recipients(st)
	meant := map[int]bool{}
	for _, rc := range rcs {
		meant[rc.host] = true
		c.checkRecipient(st, rc, name, frag)
	}
	for si, n := range st.delivered {
		if h := c.s.socks[si].host; !meant[h] {
			c.fail("delivered where not meant", "%s: delivered %d times to sock %d on h%d, which it was not meant for", name, n, si, h)
		}
	}
	for i, d := range st.hostDrops {
		if d.dir == wire.Inbound && !meant[d.host] {
			c.fail("dropped where not meant", "%s: h%d dropped it (%v, fragment at %d), not meant for it", name, d.host, d.reason, st.hostOffs[i])
		}
	}
}

// checkRecipient follows a datagram's copies to one host it was meant for.
func (c *consChecker) checkRecipient(st *dgState, rc recipient, name string, frag bool) {
	where := fmt.Sprintf("h%d", rc.host)
	if rc.loopback {
		where += " (loopback)"
	}
	kindWord := "injected"
	if st.sent.send >= 0 {
		kindWord = sendKindNames[c.s.sends[st.sent.send].kind]
	} else {
		kindWord += " " + injKindNames[c.s.injects[st.sent.inj].kind]
	}
	if frag {
		kindWord += ", fragmented"
	}
	// Host-level drops at rc.
	var pre, whole, reasm, sock int
	preBy := map[int]int{} // fragment offset → edge drops of fragments
	reasons := map[wire.DropReason]int{}
	exactPre := map[wire.DropReason]int{}
	for i, d := range st.hostDrops {
		if d.host != rc.host || d.dir != wire.Inbound {
			continue
		}
		reasons[d.reason]++
		switch {
		case isSocketReason(d.reason):
			sock++
		case d.reason == wire.DropReassembly:
			reasm++
		case frag && !st.hostWhole[i]:
			pre++
			preBy[st.hostOffs[i]]++
		default:
			whole++
			if st.sent.send < 0 && bytesEqualInjected(st, d.data) {
				exactPre[d.reason]++
			}
		}
	}
	del := 0
	for si, n := range st.delivered {
		if c.s.socks[si].host == rc.host {
			del += n
		}
	}
	detail := func() string {
		return fmt.Sprintf("arrivals %d, host drops %v, delivered %d, link drops %s", len(st.arrivals[rc.host]), reasons, del, c.linkDropWords(st, rc))
	}

	// Copies on the way: each fragment that went out reached rc or was
	// counted dropped on the way, as many times as the links made copies.
	var t0, t1 time.Duration
	good := map[int]int{}
	if rc.loopback {
		t0, t1 = st.sent.at, st.sent.at
	} else {
		arr := map[int]int{}
		for i, a := range st.arrivals[rc.host] {
			arr[a.off]++
			if i == 0 || a.at < t0 {
				t0 = a.at
			}
			t1 = max(t1, a.at)
		}
		onWay := map[int]int{}
		for i, d := range st.linkDrops {
			if d.end == st.senderEnd && d.dir == wire.Outbound || d.end == rc.end && d.dir == wire.Inbound {
				onWay[st.linkOffs[i]]++
			}
		}
		maxc := c.maxCopies(st, rc)
		offs := st.outOffs
		if st.senderHost < 0 {
			offs = map[int]int{0: 1}
		}
		for off := range offs {
			n := arr[off] + onWay[off]
			switch {
			case n == 0 && c.strayMAC(st, rc, off) && st.outMAC[off] == string(c.r.ends[st.senderEnd].port.LinkAddress()):
				c.fail("lost: unicast to the sender's own MAC, filtered by the switch ("+kindWord+")", "%s: fragment at %d went to MAC %x, the sender's own port's (a corrupted ARP reply taught it), so the switch filtered it there and %s never got it: no drop counted (%s)",
					name, off, st.outMAC[off], where, detail())
			case n == 0 && c.strayMAC(st, rc, off):
				c.fail("lost: unicast to a MAC no port has, flooded and filtered ("+kindWord+")", "%s: fragment at %d went to MAC %x, which no port has (a corrupted ARP reply taught it), so every port filtered it and %s never got it: no drop counted (%s)",
					name, off, st.outMAC[off], where, detail())
			case n == 0:
				c.fail("lost on the link ("+kindWord+")", "%s: fragment at %d never reached %s and no link counted it dropped (%s)", name, off, where, detail())
			case n > maxc:
				c.fail("counted twice on the link ("+kindWord+")", "%s: fragment at %d reached %s or was dropped on the way %d times, at most %d copies possible (%s)", name, off, where, n, maxc, detail())
			}
			if preBy[off] > arr[off] {
				c.fail("counted twice at the host ("+kindWord+")", "%s: fragment at %d arrived at %s %d times, dropped there %d times (%s)", name, off, where, arr[off], preBy[off], detail())
			}
			good[off] = arr[off] - preBy[off]
		}
		for off := range arr {
			if _, ok := offs[off]; !ok {
				c.fail("unknown fragment", "%s: a fragment at %d reached %s, which the sender never sent", name, off, where)
			}
		}
		if !frag {
			// Every drop before the sockets is of the whole datagram.
			good[0] = arr[0] - whole
			if whole > arr[0] {
				c.fail("counted twice at the host ("+kindWord+")", "%s: arrived at %s %d times, dropped there before the sockets %d times (%s)", name, where, arr[0], whole, detail())
			}
			whole = 0
		}
	}
	// How many datagrams the host made of what arrived, and where they went.
	certain, possible := c.targets(st, rc, t0, t1)
	inSet := map[int]bool{}
	for _, si := range possible {
		inSet[si] = true
	}
	for si, n := range st.delivered {
		if c.s.socks[si].host == rc.host && !inSet[si] {
			c.fail("delivered to the wrong socket", "%s: delivered %d times to sock %d on %s, which was not open on port %d for it", name, n, si, where, c.s.socks[si].port)
		}
	}
	// instances: the datagrams that reached the sockets; lo..hi when a
	// socket closed while it was on its way.
	got := del + sock
	lo, hi := 0, 0
	switch {
	case len(possible) == 0:
		if got > 0 {
			c.fail("delivered to no socket", "%s: %d deliveries or socket drops on %s, which had no socket for it (%s)", name, got, where, detail())
		}
	case len(certain) == 0:
		lo, hi = (got+len(possible)-1)/len(possible), got
	default:
		lo, hi = (got+len(possible)-1)/len(possible), got/len(certain)
	}
	if len(possible) > 0 && len(possible) == len(certain) && got%len(certain) != 0 {
		c.fail("lost at a socket ("+kindWord+")", "%s: %d deliveries + socket drops on %s is not a multiple of its %d sockets %v (%s)", name, got, where, len(certain), certain, detail())
	}
	var expect []int // acceptable instance counts (before the sockets and at them)
	if rc.loopback {
		expect = []int{1}
	} else if !frag {
		// One packet: each copy that passed the host's edge is a datagram
		// for the sockets, unless it is a lone fragment, which waits in
		// reassembly for the rest and is dropped there (after 30 s; the run
		// waits longer, consQuiesce): one reassembly drop or more, at most
		// one a copy that came.
		switch {
		case st.sent.send < 0 && c.s.injects[st.sent.inj].kind == injLoneFragment:
			expect = []int{0}
			if good[0] > 0 && (reasm < 1 || reasm > good[0]) {
				c.fail("lost in reassembly ("+kindWord+")", "%s: %d copies of a lone first fragment reached reassembly on %s: want 1 to %d reassembly drops, got %d (%s)", name, good[0], where, good[0], reasm, detail())
			}
		default:
			expect = []int{good[0]}
		}
		if good[0] <= 0 && reasm > 0 || st.sent.send >= 0 && reasm > 0 {
			c.fail("counted twice at the host ("+kindWord+")", "%s: no fragment of it reached reassembly on %s, yet %d reassembly drops (%s)", name, where, reasm, detail())
		}
	} else {
		// The host's reassembler reports each fragment copy it held and
		// then dropped (a timeout, an overlap, an eviction, a duplicate) as
		// one reassembly drop: a datagram whose fragments did not all come
		// has 1 to came reassembly drops, and the copies that made n
		// datagrams leave at most came-n*nfrag for reassembly drops.
		all, any := true, false
		minGood, came := -1, 0
		for _, g := range good {
			all = all && g > 0
			any = any || g > 0
			came += max(g, 0)
			if minGood < 0 || g < minGood {
				minGood = g
			}
		}
		if len(good) < st.nfrag {
			all = false
		}
		switch {
		case !any:
			expect = []int{0}
			if reasm > 0 {
				c.fail("counted twice at the host ("+kindWord+")", "%s: no fragment reached reassembly on %s, yet %d reassembly drops (%s)", name, where, reasm, detail())
			}
		case !all:
			expect = []int{0}
			if reasm < 1 || reasm > came {
				c.fail("lost in reassembly ("+kindWord+")", "%s: some fragments reached %s, not all: want 1 to %d reassembly drops (one a fragment copy that came), got %d (%s)", name, where, came, reasm, detail())
			}
		case c.maxCopies(st, rc) == 1:
			// One copy of each fragment, all of them: one datagram.
			expect = []int{1}
			if reasm != 0 {
				c.fail("counted twice at the host ("+kindWord+")", "%s: every fragment reached %s once, yet %d reassembly drops (%s)", name, where, reasm, detail())
			}
		default:
			// Duplicated fragments, all of them: n datagrams, at most as
			// many as the scarcest fragment, and a reassembly drop for
			// none, some or each of the copies left over, at least one in
			// all.
			for n := 0; n <= minGood; n++ {
				if n+reasm >= 1 && reasm <= came-n*st.nfrag {
					expect = append(expect, n)
				}
			}
			if len(expect) == 0 {
				c.fail("counted twice at the host ("+kindWord+")", "%s: %d fragment copies reached reassembly on %s, yet %d reassembly drops (%s)", name, came, where, reasm, detail())
				for n := 0; n <= minGood; n++ {
					expect = append(expect, n)
				}
			}
		}
	}
	// Before the sockets: drops of the whole (reassembled) datagram, or of
	// the loopback copy.
	ok := false
	for _, n := range expect {
		inst := n - whole
		if rc.loopback {
			inst = n - whole - reasm
		}
		if inst < 0 {
			continue
		}
		if len(possible) == 0 && inst == 0 || len(possible) > 0 && inst >= lo && inst <= hi && got >= inst*len(certain) && got <= inst*len(possible) {
			ok = true
		}
	}
	if !ok {
		cat := "lost at the host (" + kindWord + ")"
		for _, si := range possible {
			if at, closed := c.closedAt[si]; closed && at >= t0 {
				cat = "lost at a socket closed with it unread (" + kindWord + ")"
			}
		}
		if len(expect) > 0 && (whole+got) > expect[len(expect)-1]*max(1, len(possible)) {
			cat = "counted twice at the host (" + kindWord + ")"
		}
		c.fail(cat, "%s: at %s want %v datagram(s) dropped before the sockets or delivered to each of %v (certain %v), got %d dropped before, %d delivered + socket drops (%s)",
			name, where, expect, possible, certain, whole, got, detail())
	}
	// Per socket: no socket gets more than came.
	top := 0
	if len(expect) > 0 {
		top = expect[len(expect)-1]
	}
	for si, n := range st.delivered {
		if c.s.socks[si].host == rc.host && n > top {
			c.fail("delivered too often ("+kindWord+")", "%s: sock %d on %s read it %d times, at most %d copies came (%s)", name, si, where, n, top, detail())
		}
	}
	// The reason, where it is known: injected frames that arrived intact,
	// and datagrams for nobody.
	want := rc.pseudo
	if want != 0 && want != wire.DropReassembly {
		for r, n := range exactPre {
			if r != want {
				c.fail("wrong reason ("+kindWord+")", "%s: %d intact copies dropped at %s as %v, want %v", name, n, where, r, want)
			}
		}
	}
}

// strayMAC reports whether the fragment at off was sent to a unicast MAC
// that is not rc's port's.
func (c *consChecker) strayMAC(st *dgState, rc recipient, off int) bool {
	m, ok := st.outMAC[off]
	p := c.r.ends[rc.end].port
	return ok && p != nil && m[0]&1 == 0 && m != string(p.LinkAddress())
}

// groupMAC reports whether st's fragments were sent to a group MAC.
func (c *consChecker) groupMAC(st *dgState) bool {
	for _, m := range st.outMAC {
		if m[0]&1 != 0 {
			return true
		}
	}
	return false
}

// macOwner returns the link end on st's segment whose port has the
// unicast MAC every fragment of st was sent to, or -1.
func (c *consChecker) macOwner(st *dgState) int {
	var m string
	for _, fm := range st.outMAC {
		if m != "" && fm != m {
			return -1
		}
		m = fm
	}
	if m == "" || m[0]&1 != 0 {
		return -1
	}
	for i, e := range c.r.ends {
		if e.seg == st.seg && e.port != nil && string(e.port.LinkAddress()) == m {
			return i
		}
	}
	return -1
}

func bytesEqualInjected(st *dgState, ip []byte) bool {
	f := st.sent.frame
	return len(f) > header.EthernetMinimumSize && string(f[header.EthernetMinimumSize:]) == string(ip)
}

func (c *consChecker) linkDropWords(st *dgState, rc recipient) string {
	var w []string
	for i, d := range st.linkDrops {
		if rc.loopback || d.end == st.senderEnd || d.end == rc.end {
			w = append(w, fmt.Sprintf("%s/%v/%v@%d", c.r.ends[d.end].name, d.dir, d.reason, st.linkOffs[i]))
		}
	}
	if len(w) == 0 {
		return "none"
	}
	return strings.Join(w, " ")
}
