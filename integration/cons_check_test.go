package integration

import (
	"fmt"
	"maps"
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
