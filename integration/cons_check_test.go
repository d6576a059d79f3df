package integration

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/dgramlab/dgramlab/wire"
)

// Checking a run. Every frame, dropped frame, dropped packet and delivered
// payload the run recorded is attributed to the datagram it belongs to (by
// its bytes, as the sender's tap saw them; by the identity in its payload;
// by its fragments' IP ID; or, for a corrupted copy, by the nearest frame
// the sender sent). Then, for each datagram and each host it was meant
// for, the datagram's copies are followed hop by hop:
//
//   - at the sender: each fragment went on the wire, or the sending host
//     counted its drop (an address ARP could not resolve, say);
//   - on the link: each copy of each fragment that the link took reached
//     the receiving NIC or was counted dropped by the sender's link end
//     (going out) or the receiver's (coming in); copies is 1, or up to 2
//     per link stage on the path that duplicates;
//   - at the receiving host: each copy that arrived was counted dropped
//     before the sockets (a bad checksum, no listener, ...), or went into
//     reassembly (a fragment), and each datagram that reached the UDP
//     demux went to every socket it was for: delivered, or counted dropped
//     at that socket (a full buffer, a close). The reassembler reports
//     each fragment it held and then dropped (a timeout, an overlap, an
//     eviction, a duplicate) as one wire.DropReassembly drop, so a
//     datagram whose fragments did not all arrive has 1 to (the fragment
//     copies that came) reassembly drops; so has a lone fragment injected,
//     which times out after 30 s (the run waits longer: consQuiesce).
//
// The hooks say which packet a host dropped, not for which socket, so the
// last step is checked per host: deliveries plus socket-level drops equal
// the datagrams that reached the demux times the sockets they were for.
// A socket that closed while a datagram was on its way may or may not have
// been one of them: then the check allows both.
//
// A unicast datagram a corrupted ARP reply sent to the wrong MAC is meant
// for the host behind that MAC (which drops it: not for us), or for every
// host when the MAC became a group address (the switch floods it).
//
// Frame counters are checked apart: each link end's drops by reason equal
// what its hooks saw; each frame is counted once, in Tx/Rx or in Drops
// (stack.LinkCounters), so what the host handed a link end plus what the
// end duplicated equals TxFrames plus what it dropped going out (a frame
// the switch has no port for included: wire.DropNoDestination); what a
// pipe end sent equals what the other end delivered plus what it dropped
// coming in; each host's ledger equals what its NICs' hooks saw.

// consIssue is one discrepancy: cat names its kind (the summary counts
// issues by it), msg says what happened.
type consIssue struct {
	cat string
	msg string
}

type frameRef struct {
	id  dgID
	off int // fragment offset, bytes
}

type knownFrame struct {
	data []byte
	ref  frameRef
}

// copyObs is one copy of a fragment seen by a hop.
type copyObs struct {
	end    int
	off    int
	at     time.Duration
	intact bool // an injected frame's copy: byte for byte what was injected
}

// dgState is what the run shows of one datagram.
type dgState struct {
	id         dgID
	sent       *sentDatagram
	senderHost int // -1: the injector
	senderEnd  int
	seg        int
	size       int // UDP payload bytes
	nfrag      int // fragments the sender makes
	outOffs    map[int]int
	outMAC     map[int]string    // destination MAC of each fragment sent (Ethernet)
	arrivals   map[int][]copyObs // by host
	linkDrops  []linkDrop
	linkOffs   []int // fragment offset of each of linkDrops
	hostDrops  []hostDrop
	hostWhole  []bool // whether each of hostDrops is the whole datagram
	hostOffs   []int
	delivered  map[int]int // socket → deliveries
	deliveryAt map[int]time.Duration
}

type consChecker struct {
	s      *consScenario
	r      *consRecord
	issues []consIssue

	known     map[string]frameRef
	byLen     map[int][]knownFrame
	fragOwner map[fragKey]dgID
	dgs       map[dgID]*dgState
	closedAt  map[int]time.Duration
}

func (c *consChecker) fail(cat, format string, args ...any) {
	c.issues = append(c.issues, consIssue{cat: cat, msg: fmt.Sprintf(format, args...)})
}

// ipPart returns the IP packet of a frame on end e.
func (c *consChecker) ipPart(e int, frame []byte) []byte {
	if c.r.ends[e].ethernet() {
		if len(frame) < header.EthernetMinimumSize {
			return nil
		}
		return frame[header.EthernetMinimumSize:]
	}
	return frame
}

// identify finds the datagram (and fragment) an IP packet belongs to.
func (c *consChecker) identify(ip []byte) (frameRef, bool) {
	if len(ip) == 0 {
		return frameRef{}, false
	}
	if ref, ok := c.known[string(ip)]; ok {
		return ref, true
	}
	for _, k := range c.byLen[len(ip)] {
		if hamming(k.data, ip, 3) <= 3 {
			return k.ref, true
		}
	}
	if id, ok := payloadID(ip); ok {
		if _, sent := c.dgs[id]; sent {
			return frameRef{id: id}, true
		}
	}
	if info, ok := parseIPv4(ip); ok && info.frag {
		if id, ok := c.fragOwner[fragKey{info.src, info.dst, info.id}]; ok {
			return frameRef{id: id, off: info.offset}, true
		}
	}
	return frameRef{}, false
}

func (c *consChecker) learn(ip []byte, ref frameRef) {
	if _, ok := c.known[string(ip)]; ok {
		return
	}
	c.known[string(ip)] = ref
	c.byLen[len(ip)] = append(c.byLen[len(ip)], knownFrame{data: ip, ref: ref})
}

// nicMTU is the MTU host h's NIC on seg has.
func (c *consChecker) nicMTU(h, seg int) int {
	n := c.s.hosts[h].nics[c.s.nicOn(h, seg)]
	switch {
	case n.nicMTU > 0:
		return n.nicMTU
	case n.portMTU > 0:
		return n.portMTU
	}
	return c.s.segs[seg].mtu
}

func fragments(size, mtu int) int {
	l := header.UDPMinimumSize + size
	if l+header.IPv4MinimumSize <= mtu {
		return 1
	}
	per := (mtu - header.IPv4MinimumSize) &^ 7
	return (l + per - 1) / per
}

func checkRun(s *consScenario, r *consRecord) []consIssue {
	c := &consChecker{
		s: s, r: r,
		known: map[string]frameRef{}, byLen: map[int][]knownFrame{},
		fragOwner: map[fragKey]dgID{}, dgs: map[dgID]*dgState{},
		closedAt: r.closedAt,
	}
	c.index()
	c.attribute()
	for _, id := range slices.SortedFunc(maps.Keys(c.dgs), func(a, b dgID) int {
		if a.sender != b.sender {
			return int(a.sender) - int(b.sender)
		}
		return int(a.seq) - int(b.seq)
	}) {
		c.checkDatagram(c.dgs[id])
	}
	c.checkFrames()
	c.checkLedgers()
	for _, e := range r.readErrs {
		c.fail("read error", "%s", e)
	}
	return c.issues
}

// index makes a dgState for each datagram sent and learns the frames the
// senders put on their links.
func (c *consChecker) index() {
	for i := range c.r.sent {
		sd := &c.r.sent[i]
		if sd.err != nil {
			continue
		}
		st := &dgState{id: sd.id, sent: sd, outOffs: map[int]int{}, outMAC: map[int]string{}, arrivals: map[int][]copyObs{},
			delivered: map[int]int{}, deliveryAt: map[int]time.Duration{}}
		if sd.send >= 0 {
			d := c.s.sends[sd.send]
			k := c.s.socks[d.sock]
			st.senderHost, st.seg, st.size = k.host, d.seg, d.size
			st.senderEnd = c.endOf(k.host, d.seg)
			st.nfrag = fragments(d.size, c.nicMTU(k.host, d.seg))
		} else {
			in := c.s.injects[sd.inj]
			st.senderHost, st.seg, st.size, st.nfrag = -1, in.seg, in.size, 1
			for e, end := range c.r.ends {
				if end.host < 0 && end.seg == in.seg {
					st.senderEnd = e
				}
			}
			if len(sd.frame) > header.EthernetMinimumSize {
				c.learn(sd.frame[header.EthernetMinimumSize:], frameRef{id: sd.id})
			}
		}
		c.dgs[sd.id] = st
	}
	// First fragments first: a host may put a datagram's fragments on the
	// wire in any order (those that waited for ARP, say).
	for _, ev := range c.r.taps {
		e := c.r.ends[ev.end]
		if ev.dir != wire.Outbound || ev.drop != 0 || e.host < 0 {
			continue
		}
		ip := c.ipPart(ev.end, ev.data)
		if info, ok := parseIPv4(ip); ok && info.frag {
			if id, ok := payloadID(ip); ok {
				c.fragOwner[fragKey{info.src, info.dst, info.id}] = id
			}
		}
	}
	for _, ev := range c.r.taps {
		e := c.r.ends[ev.end]
		if ev.dir != wire.Outbound || ev.drop != 0 || e.host < 0 {
			continue
		}
		ip := c.ipPart(ev.end, ev.data)
		info, ok := parseIPv4(ip)
		if !ok || info.proto != uint8(header.UDPProtocolNumber) {
			continue
		}
		var ref frameRef
		if id, ok := payloadID(ip); ok {
			ref = frameRef{id: id}
		} else if id, ok := c.fragOwner[fragKey{info.src, info.dst, info.id}]; ok && info.frag {
			ref = frameRef{id: id, off: info.offset}
		} else {
			continue
		}
		st := c.dgs[ref.id]
		if st == nil {
			c.fail("unsent datagram on the wire", "%v: a frame of datagram %v, which was not sent", e.name, ref.id)
			continue
		}
		if ev.end != st.senderEnd {
			c.fail("datagram on the wrong link", "%v: a frame of datagram %v, sent on %v", e.name, ref.id, c.r.ends[st.senderEnd].name)
		}
		st.outOffs[ref.off]++
		if e.ethernet() {
			st.outMAC[ref.off] = string(ev.data[:header.EthernetAddressSize])
		}
		c.learn(ip, ref)
	}
}

func (c *consChecker) endOf(h, seg int) int {
	for i, e := range c.r.ends {
		if e.host == h && e.seg == seg {
			return i
		}
	}
	return -1
}

// attribute gives each arrival, drop and delivery to its datagram.
func (c *consChecker) attribute() {
	for _, ev := range c.r.taps {
		e := c.r.ends[ev.end]
		if ev.dir != wire.Inbound || ev.drop != 0 || e.host < 0 {
			continue
		}
		ip := c.ipPart(ev.end, ev.data)
		ref, ok := c.identify(ip)
		if !ok {
			continue
		}
		if st := c.dgs[ref.id]; st != nil {
			intact := st.sent.send >= 0 || bytesEqualInjected(st, ip)
			st.arrivals[e.host] = append(st.arrivals[e.host], copyObs{end: ev.end, off: ref.off, at: ev.at, intact: intact})
		}
	}
	for _, d := range c.r.linkDrops {
		ref, ok := c.identify(c.ipPart(d.end, d.data))
		if !ok {
			continue
		}
		if st := c.dgs[ref.id]; st != nil {
			st.linkDrops = append(st.linkDrops, d)
			st.linkOffs = append(st.linkOffs, ref.off)
		}
	}
	for _, d := range c.r.hostDrops {
		ref, ok := c.identify(d.data)
		if !ok {
			if _, magic := payloadID(d.data); magic {
				c.fail("unattributed host drop", "h%d: %v %v drop of a datagram of ours that was not sent", d.host, d.dir, d.reason)
			}
			continue
		}
		st := c.dgs[ref.id]
		if st == nil {
			continue
		}
		whole := true
		info, parsed := parseIPv4(d.data)
		if st.nfrag > 1 {
			// A fragment is shorter than the reassembled datagram, even
			// one whose header a corruption made unreadable; the datagram
			// has the host's own header, with its whole length, even when
			// its packet is cut to a (corrupted) shorter UDP length.
			n := header.IPv4MinimumSize + header.UDPMinimumSize + st.size
			whole = len(d.data) >= n || parsed && !info.frag && int(header.IPv4(d.data).TotalLength()) == n
		} else if parsed {
			whole = !info.frag
		}
		st.hostDrops = append(st.hostDrops, d)
		st.hostWhole = append(st.hostWhole, whole)
		st.hostOffs = append(st.hostOffs, ref.off)
	}
	for _, d := range c.r.delivered {
		if !d.ok {
			c.fail("unidentified delivery", "sock %d (h%d) read %d bytes without an identity", d.sock, c.s.socks[d.sock].host, d.n)
			continue
		}
		st := c.dgs[d.id]
		if st == nil {
			c.fail("unsent datagram delivered", "sock %d read datagram %v, which was not sent", d.sock, d.id)
			continue
		}
		st.delivered[d.sock]++
		st.deliveryAt[d.sock] = d.at
	}
}

// recipient is a host a datagram was meant for, and how it gets there.
type recipient struct {
	host     int
	loopback bool
	end      int             // the host's link end on the segment (not for loopback)
	pseudo   wire.DropReason // the drop expected before any socket, if it is known
}

// describe names a datagram in messages.
func (c *consChecker) describe(st *dgState) string {
	if st.sent.send >= 0 {
		d := c.s.sends[st.sent.send]
		return fmt.Sprintf("datagram %v (%s from sock %d h%d to %v, %d bytes, %d fragments, at %v)",
			st.id, sendKindNames[d.kind], d.sock, st.senderHost, d.dst, d.size, st.nfrag, st.sent.at)
	}
	in := c.s.injects[st.sent.inj]
	mac := "unicast"
	if in.bcastMAC {
		mac = "broadcast"
	}
	return fmt.Sprintf("injected frame %v (%s to h%d port %d, %s MAC, at %v)", st.id, injKindNames[in.kind], in.host, in.port, mac, st.sent.at)
}

// recipients lists the hosts a datagram was meant for.
func (c *consChecker) recipients(st *dgState) []recipient {
	var out []recipient
	sg := c.s.segs[st.seg]
	remote := func(h int, pseudo wire.DropReason) {
		out = append(out, recipient{host: h, end: c.endOf(h, st.seg), pseudo: pseudo})
	}
	if st.sent.send < 0 {
		in := c.s.injects[st.sent.inj]
		if in.kind == injWrongDstMAC || in.kind == injRunt {
			return nil
		}
		for _, h := range sg.members {
			if h != in.host && !in.bcastMAC {
				continue
			}
			expect := injExpect(in.kind, h == in.host)
			remote(h, expect)
		}
		return out
	}
	d := c.s.sends[st.sent.send]
	switch d.kind {
	case sendUnicast, sendClosedPort:
		h := int(d.dst.Addr().As4()[3]) - 1
		// A corrupted ARP reply (ARP has no checksum) can teach the sender
		// the MAC of another port: the switch then takes the datagram
		// there, to a host it is not for, or to the injector.
		if o := c.macOwner(st); o >= 0 && c.r.ends[o].host != h && c.r.ends[o].host != st.senderHost {
			if c.r.ends[o].host >= 0 {
				remote(c.r.ends[o].host, wire.DropNotForUs)
			}
			break
		}
		remote(h, 0)
		// If a flipped bit made it a group MAC, the switch floods the
		// datagram to every host, which drops it unless it is h.
		if c.groupMAC(st) && sg.kind == segSwitch {
			for _, m := range sg.members {
				if m != h && m != st.senderHost {
					remote(m, wire.DropNotForUs)
				}
			}
		}
	case sendUnresolved:
		if sg.kind == segPipe {
			for _, h := range sg.members {
				if h != st.senderHost {
					remote(h, wire.DropNotForUs)
				}
			}
		}
	case sendSubnetBcast, sendLimitedBcast, sendMulticast:
		for _, h := range sg.members {
			if h != st.senderHost {
				remote(h, 0)
			}
		}
		if d.kind != sendMulticast || c.member(st.senderHost, st.seg, d.dst.Addr(), st.sent.at) {
			out = append(out, recipient{host: st.senderHost, loopback: true, end: -1})
		}
	}
	return out
}

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

// summarise counts issues by category, keeping each one's first example.
type consSummary struct {
	count map[string]int
	first map[string]string
	seeds map[string][]uint64
}

func newConsSummary() *consSummary {
	return &consSummary{count: map[string]int{}, first: map[string]string{}, seeds: map[string][]uint64{}}
}

func (s *consSummary) add(seed uint64, desc string, issues []consIssue) {
	seen := map[string]bool{}
	for _, is := range issues {
		s.count[is.cat]++
		if _, ok := s.first[is.cat]; !ok {
			s.first[is.cat] = fmt.Sprintf("seed %d: %s\n      scenario: %s", seed, is.msg, desc)
		}
		if !seen[is.cat] {
			seen[is.cat] = true
			s.seeds[is.cat] = append(s.seeds[is.cat], seed)
		}
	}
}

func (s *consSummary) String() string {
	cats := slices.Collect(maps.Keys(s.count))
	sort.Strings(cats)
	var b strings.Builder
	for _, cat := range cats {
		seeds := s.seeds[cat]
		show := seeds[:min(len(seeds), 8)]
		gap := "NEW: no known gap explains it"
		if r := knownGap(cat); r != "" {
			gap = "known gap, see " + r
		}
		fmt.Fprintf(&b, "  %s: %d issues in %d seeds (e.g. %v); %s\n    first: %s\n", cat, s.count[cat], len(seeds), show, gap, s.first[cat])
	}
	return b.String()
}

// consKnownGaps maps the issue categories the product's known gaps cause
// (by prefix) to the reproduction that shows each; the summary names it,
// so that a new kind of failure stands out.
// The regression tests of fixed gaps stay listed, to name the test that
// shows it if one comes back.
var consKnownGaps = []struct{ prefix, repro string }{
	{"lost at the host (injected unknown-protocol)", "TestConservationRepro_UnknownTransportNotCounted"},
	{"host ledger ≠ NIC hooks (closed-unread)", "TestConservationRepro_ClosedUnreadNotReported"},
	{"lost at a socket closed with it unread (", "TestConservationRepro_ClosedUnreadNotReported"},
	{"link end: frames in ≠ out + drops (outbound)", "TestConservationRepro_NoDestinationCountedTwice"},
	{"lost: unicast to a MAC no port has", "TestConservationRepro_UnknownUnicastFloodedUncounted"},
	{"lost: unicast to the sender's own MAC", "TestConservationRepro_OwnMACUnicastUncounted"},
	{"counted twice on the link (", "TestConservationRepro_UnknownUnicastCountedTwice"},
}

// knownGap returns the reproduction of the known gap behind cat, or "".
func knownGap(cat string) string {
	for _, g := range consKnownGaps {
		if strings.HasPrefix(cat, g.prefix) {
			return g.repro
		}
	}
	return ""
}
