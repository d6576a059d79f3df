package stack

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/dgramlab/dgramlab/wire"
)

// This file is the host's own IP reassembly. gVisor's drops fragments
// without telling anyone (on eviction, overlaps, timeouts); this one hands
// every fragment it discards, with its reason and its bytes, to a drop
// callback. It follows RFC 791 (IPv4), RFC 8200 (IPv6), RFC 5722 (overlaps
// discard the datagram) and RFC 6946 (atomic fragments stand alone), with
// Linux's limits as defaults.

// reasmReason says why the reassembler dropped fragments: the detail of
// the ledger's reason (wireReason). The zero value is no reason: add
// returns it for a fragment it kept.
type reasmReason uint8

// The reasons. Those marked "alone" drop only the fragment being added;
// the others drop the whole datagram it belongs to, every fragment held
// for it included.
const (
	// reasmTimeout: the datagram was not complete Timeout after its first
	// fragment arrived.
	reasmTimeout reasmReason = iota + 1
	// reasmOverlap: the fragment overlaps one already held without being
	// its exact copy (RFC 5722 for IPv6; Linux does the same for IPv4).
	reasmOverlap
	// reasmTooBig: the datagram would exceed 65535 bytes (IPv4 total
	// length) or 65535 bytes of payload (IPv6 payload length).
	reasmTooBig
	// reasmEvicted: memory charged exceeded HighThresh and the datagram was
	// among the oldest, evicted to bring it down to LowThresh.
	reasmEvicted
	// reasmInconsistent: the fragment contradicts the datagram's end (a
	// second last fragment ending elsewhere, data past the last fragment's
	// end); or, alone, it is empty or a non-last fragment whose length is
	// not a multiple of 8.
	reasmInconsistent
	// reasmDuplicate (alone): an exact copy (offset, length, bytes, more
	// flag) of a fragment already held. The datagram goes on.
	reasmDuplicate
	// reasmMalformed (alone): the caller's description of the fragment is
	// impossible (bounds outside the packet, an offset that is not a
	// multiple of 8 or past 65528), or a first fragment's header is not a
	// valid IPv4 header or IPv6 unfragmentable part.
	reasmMalformed
	// reasmHostClosed: close was called while the datagram was pending, or
	// the fragment was added after close (alone).
	reasmHostClosed

	numReasmReasons = int(reasmHostClosed) + 1
)

var reasmReasonNames = [numReasmReasons]string{
	reasmTimeout:      "timeout",
	reasmOverlap:      "overlap",
	reasmTooBig:       "too-big",
	reasmEvicted:      "eviction",
	reasmInconsistent: "inconsistent",
	reasmDuplicate:    "duplicate",
	reasmMalformed:    "malformed",
	reasmHostClosed:   "host-closed",
}

// String returns the reason's short name, such as "overlap".
func (r reasmReason) String() string {
	if int(r) < len(reasmReasonNames) && reasmReasonNames[r] != "" {
		return reasmReasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// wireReason is the reason the host's ledger counts the drop under:
// wire.DropHostClosed for reasmHostClosed, wire.DropBadHeader for
// reasmMalformed (a first fragment's header that cannot be rebuilt), and
// wire.DropReassembly, with String as the detail, for the others.
func (r reasmReason) wireReason() wire.DropReason {
	switch r {
	case reasmHostClosed:
		return wire.DropHostClosed
	case reasmMalformed:
		return wire.DropBadHeader
	}
	return wire.DropReassembly
}

// fragKey identifies the datagram a fragment belongs to: RFC 791's
// (source, destination, protocol, identification) for IPv4 and RFC 8200's
// (source, destination, identification) for IPv6, on one NIC.
type fragKey struct {
	nic      tcpip.NICID
	src, dst netip.Addr
	// proto is IPv4's Protocol field; zero for IPv6, whose fragments of
	// one datagram may name different next headers.
	proto uint8
	// id is the Identification field: 16 bits in IPv4, 32 in IPv6.
	id uint32
}

// fragment describes a received fragment to add. Its slices belong to the
// caller: add copies what it keeps.
type fragment struct {
	// packet is the whole IP packet as received, the IP header first. It
	// is what drop records carry.
	packet []byte
	// hdrLen is the length of packet's first part that a reassembled
	// packet keeps when this fragment is the first (offset 0): the IPv4
	// header with its options, or IPv6's unfragmentable part (the fixed
	// header and the extension headers before the Fragment header).
	hdrLen int
	// packet[dataStart:dataEnd] is the fragment's data, from the
	// fragmentable part (past an IPv6 Fragment header; before any link
	// padding).
	dataStart, dataEnd int
	// offset is the fragment offset in bytes (the header field times 8).
	offset int
	// more is the More Fragments flag.
	more bool
	// nextHeader is the IPv6 Fragment header's Next Header; only the first
	// fragment's is used. Zero for IPv4.
	nextHeader uint8
}

// fragmentRecord is a dropped fragment, as reported to the drop callback.
type fragmentRecord struct {
	key    fragKey
	offset int
	more   bool
	// packet is the whole IP packet as received. It is valid only during
	// the drop callback: a callback that keeps it must copy it.
	packet []byte
}

// reasmOptions configures a reassembler. The zero value is valid: IPv4
// with Linux's defaults, the real clock, no drop callback.
type reasmOptions struct {
	// IPv6 selects IPv6's rules (keys, limits, rebuilt header). False:
	// IPv4. A host has one reassembler per IP version, as Linux does.
	IPv6 bool
	// Timeout is how long a datagram may wait for its missing fragments
	// after its first one arrived. Zero: 30 s for IPv4 (Linux's
	// ipfrag_time), 60 s for IPv6 (RFC 8200, Linux's ip6frag_time).
	Timeout time.Duration
	// HighThresh is the memory, in bytes, that held fragments may be
	// charged (their packets' lengths plus a small overhead each) before
	// the oldest datagrams are evicted. Zero: 4 MiB (ipfrag_high_thresh).
	HighThresh int
	// LowThresh is where eviction stops. Zero: three quarters of
	// HighThresh (3 MiB with its default, ipfrag_low_thresh). At most
	// HighThresh.
	LowThresh int
	// Clock times datagrams out. Nil: the real clock. A VirtualClock, or
	// the real clock inside a testing/synctest bubble, makes it
	// deterministic.
	Clock tcpip.Clock
	// Drop, if not nil, is called for every fragment the reassembler
	// discards, with the fragments dropped together (all those of a
	// datagram, or one) and why. It is called without the reassembler's
	// lock held, on the goroutine of the add or close call that dropped
	// them, or on the clock's timer goroutine for timeouts; so possibly
	// from several goroutines at once. It may call add, not close.
	Drop func(frags []fragmentRecord, reason reasmReason)
}

// reasmCounters are a reassembler's counters since it was created.
type reasmCounters struct {
	// Reassembled counts datagrams returned whole, and Fragments the
	// fragments they were made of (an atomic fragment counts as one).
	Reassembled, Fragments uint64
	// Dropped counts dropped fragments by reason.
	Dropped [numReasmReasons]uint64
	// Held is the number of fragments held now, and Mem the memory they
	// are charged.
	Held, Mem int
}

// reasmFragOverhead is what a held fragment is charged beyond its packet's
// length: about what Linux adds to a received frame's truesize (an sk_buff,
// 256 bytes, and its skb_shared_info, 320), so that HighThresh holds about
// as many fragments as on Linux and a flood of tiny ones costs what it
// costs there.
const reasmFragOverhead = 576

// reasmMaxOffset is the largest offset a Fragment Offset field can say.
const reasmMaxOffset = 0x1fff * 8

// A reassembler puts IP datagrams back together from their fragments. Every
// fragment given to add ends, exactly once, either in a datagram add
// returns or in a call to the drop callback. It is safe for concurrent
// use.
type reassembler struct {
	v6        bool
	timeout   time.Duration
	high, low int
	clock     tcpip.Clock
	drop      func([]fragmentRecord, reasmReason)

	// timers counts timer callbacks armed and not yet returned (or
	// stopped), for close to wait for.
	timers sync.WaitGroup

	mu             sync.Mutex
	dgrams         map[fragKey]*datagram
	oldest, newest *datagram // the age list, by arrival of the first fragment
	mem, held      int
	counts         reasmCounters
	closed         bool
	armed          bool // a timer callback is pending
	timer          tcpip.Timer
}

// datagram is a datagram being reassembled.
type datagram struct {
	key        fragKey
	created    tcpip.MonotonicTime
	prev, next *datagram
	frags      []heldFrag // by offset; they never overlap
	end        int        // the last fragment's end; -1 until it arrives
	maxEnd     int        // the largest end of a held fragment
	size, mem  int        // data bytes held, memory charged
	header     []byte     // the first fragment's header, once it arrived
	nextHeader uint8      // IPv6: the first fragment's Next Header
	nhAt       int        // IPv6: where in header the next header to fix is
}

// heldFrag is a fragment a datagram holds: its own copy of the packet.
type heldFrag struct {
	offset int
	more   bool
	packet []byte
	data   []byte // in packet
}

func (h *heldFrag) end() int { return h.offset + len(h.data) }

// dropBatch collects the drops made under the lock, to be reported after.
type dropBatch []dropEvent

type dropEvent struct {
	frags  []fragmentRecord
	reason reasmReason
}

// newReassembler returns a reassembler configured by opts. Call close when
// done with it, to report what it still holds and stop its timer.
func newReassembler(opts reasmOptions) *reassembler {
	r := &reassembler{
		v6:      opts.IPv6,
		timeout: opts.Timeout,
		high:    opts.HighThresh,
		low:     opts.LowThresh,
		clock:   opts.Clock,
		drop:    opts.Drop,
		dgrams:  make(map[fragKey]*datagram),
	}
	if r.timeout <= 0 {
		r.timeout = 30 * time.Second
		if r.v6 {
			r.timeout = 60 * time.Second
		}
	}
	if r.high <= 0 {
		r.high = 4 << 20
	}
	if r.low <= 0 {
		r.low = r.high / 4 * 3
	}
	r.low = min(r.low, r.high)
	if r.clock == nil {
		r.clock = tcpip.NewStdClock()
	}
	return r
}

// add adds a received fragment of the datagram key names. When it
// completes the datagram, add returns the whole unfragmented IP packet, in
// a new buffer that belongs to the caller: the first fragment's header
// with its lengths, fragment fields and IPv4 checksum fixed (see
// rebuildIPv4 and rebuildIPv6). An atomic fragment (offset 0, no more) is
// returned whole at once, apart from any datagram with its key. When add
// drops f, it returns why, after reporting f (and the fragments dropped
// with it) to the drop callback: the drop is counted and reported already,
// the caller only decides whether to answer it (an ICMPv6 Parameter
// Problem for reasmTooBig, say). Otherwise f is held and add returns nil,
// 0. Drops of other datagrams that f caused (eviction) or that were due
// (timeouts) are reported during the call too.
func (r *reassembler) add(key fragKey, f fragment) (whole []byte, dropped reasmReason) {
	var b dropBatch
	r.mu.Lock()
	whole, dropped = r.addLocked(key, f, &b)
	r.armLocked()
	r.mu.Unlock()
	r.report(b)
	return whole, dropped
}

func (r *reassembler) addLocked(key fragKey, f fragment, b *dropBatch) ([]byte, reasmReason) {
	rec := fragmentRecord{key: key, offset: f.offset, more: f.more, packet: f.packet}
	if r.closed {
		return nil, r.dropOne(b, rec, reasmHostClosed)
	}
	r.expireLocked(b)
	nhAt, ok := r.check(f)
	if !ok {
		return nil, r.dropOne(b, rec, reasmMalformed)
	}
	data := f.packet[f.dataStart:f.dataEnd]
	if f.offset == 0 && !f.more {
		var whole []byte
		if r.v6 {
			whole = rebuildIPv6(f.packet[:f.hdrLen], f.nextHeader, data)
		} else {
			whole = rebuildIPv4(f.packet[:f.hdrLen], data)
		}
		if whole == nil {
			return nil, r.dropOne(b, rec, reasmTooBig)
		}
		r.counts.Reassembled++
		r.counts.Fragments++
		return whole, 0
	}
	if len(data) == 0 || f.more && len(data)%8 != 0 {
		return nil, r.dropOne(b, rec, reasmInconsistent)
	}
	d := r.dgrams[key]
	if d == nil {
		d = r.newDatagramLocked(key)
	}
	end := f.offset + len(data)
	if !f.more && (d.end >= 0 && end != d.end || end < d.maxEnd) || f.more && d.end >= 0 && end > d.end {
		return nil, r.dropDatagramLocked(d, &rec, reasmInconsistent, b)
	}
	hdrLen := len(d.header)
	if f.offset == 0 {
		hdrLen = f.hdrLen
	} else if d.header == nil {
		hdrLen = r.minHeader()
	}
	if r.tooBig(hdrLen, max(end, d.maxEnd)) {
		return nil, r.dropDatagramLocked(d, &rec, reasmTooBig, b)
	}
	i, found := slices.BinarySearchFunc(d.frags, f.offset, func(h heldFrag, off int) int { return cmp.Compare(h.offset, off) })
	if found {
		h := &d.frags[i]
		switch {
		case h.end() != end || !bytes.Equal(h.data, data):
			return nil, r.dropDatagramLocked(d, &rec, reasmOverlap, b)
		case h.more != f.more:
			return nil, r.dropDatagramLocked(d, &rec, reasmInconsistent, b)
		}
		return nil, r.dropOne(b, rec, reasmDuplicate)
	}
	if i > 0 && d.frags[i-1].end() > f.offset || i < len(d.frags) && d.frags[i].offset < end {
		return nil, r.dropDatagramLocked(d, &rec, reasmOverlap, b)
	}

	pkt := bytes.Clone(f.packet)
	d.frags = slices.Insert(d.frags, i, heldFrag{offset: f.offset, more: f.more, packet: pkt, data: pkt[f.dataStart:f.dataEnd]})
	d.size += len(data)
	d.maxEnd = max(d.maxEnd, end)
	if !f.more {
		d.end = end
	}
	if f.offset == 0 {
		d.header, d.nextHeader, d.nhAt = pkt[:f.hdrLen], f.nextHeader, nhAt
	}
	charge := len(pkt) + reasmFragOverhead
	d.mem += charge
	r.mem += charge
	r.held++

	if d.end >= 0 && d.size == d.end {
		// The fragments do not overlap and none ends past d.end, so they
		// cover [0, d.end).
		r.removeLocked(d)
		r.counts.Reassembled++
		r.counts.Fragments += uint64(len(d.frags))
		return r.build(d), 0
	}
	if r.mem > r.high {
		self := false
		for r.mem > r.low && r.oldest != nil {
			self = self || r.oldest == d
			r.dropDatagramLocked(r.oldest, nil, reasmEvicted, b)
		}
		if self {
			return nil, reasmEvicted
		}
	}
	return nil, 0
}

// check reports whether f's description is possible and, for a first
// fragment, its header valid; for an IPv6 first fragment it also returns
// where the next header to fix is in the header.
func (r *reassembler) check(f fragment) (nhAt int, ok bool) {
	if f.hdrLen < 0 || f.hdrLen > f.dataStart || f.dataStart > f.dataEnd || f.dataEnd > len(f.packet) ||
		f.offset < 0 || f.offset%8 != 0 || f.offset > reasmMaxOffset {
		return 0, false
	}
	if f.offset != 0 {
		return 0, true
	}
	if r.v6 {
		return ipv6NextHeaderAt(f.packet[:f.hdrLen])
	}
	return 0, validIPv4Header(f.packet[:f.hdrLen])
}

// minHeader is the shortest header a first fragment can have.
func (r *reassembler) minHeader() int {
	if r.v6 {
		return header.IPv6MinimumSize
	}
	return header.IPv4MinimumSize
}

// tooBig reports whether a datagram with a first header of hdrLen bytes
// and end bytes of data is over IPv4's total length or IPv6's payload
// length.
func (r *reassembler) tooBig(hdrLen, end int) bool {
	if r.v6 {
		return hdrLen-header.IPv6MinimumSize+end > 0xffff
	}
	return hdrLen+end > 0xffff
}

// build returns d's whole packet; d is complete.
func (r *reassembler) build(d *datagram) []byte {
	pkt := make([]byte, len(d.header)+d.end)
	copy(pkt, d.header)
	for _, h := range d.frags {
		copy(pkt[len(d.header)+h.offset:], h.data)
	}
	if r.v6 {
		fixIPv6(pkt, d.nhAt, d.nextHeader)
	} else {
		fixIPv4(pkt, len(d.header))
	}
	return pkt
}

func (r *reassembler) newDatagramLocked(key fragKey) *datagram {
	d := &datagram{key: key, created: r.clock.NowMonotonic(), end: -1, prev: r.newest}
	if r.newest != nil {
		r.newest.next = d
	} else {
		r.oldest = d
	}
	r.newest = d
	r.dgrams[key] = d
	return d
}

// removeLocked forgets d and uncharges its memory.
func (r *reassembler) removeLocked(d *datagram) {
	delete(r.dgrams, d.key)
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		r.oldest = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		r.newest = d.prev
	}
	d.prev, d.next = nil, nil
	r.mem -= d.mem
	r.held -= len(d.frags)
}

// dropOne drops one fragment that no datagram holds.
func (r *reassembler) dropOne(b *dropBatch, rec fragmentRecord, reason reasmReason) reasmReason {
	r.counts.Dropped[reason]++
	*b = append(*b, dropEvent{frags: []fragmentRecord{rec}, reason: reason})
	return reason
}

// dropDatagramLocked drops d, every fragment it holds and extra, if not nil
// (the fragment being added, not held).
func (r *reassembler) dropDatagramLocked(d *datagram, extra *fragmentRecord, reason reasmReason, b *dropBatch) reasmReason {
	r.removeLocked(d)
	recs := make([]fragmentRecord, 0, len(d.frags)+1)
	for _, h := range d.frags {
		recs = append(recs, fragmentRecord{key: d.key, offset: h.offset, more: h.more, packet: h.packet})
	}
	if extra != nil {
		recs = append(recs, *extra)
	}
	if len(recs) > 0 {
		r.counts.Dropped[reason] += uint64(len(recs))
		*b = append(*b, dropEvent{frags: recs, reason: reason})
	}
	return reason
}

// expireLocked drops the datagrams that have waited Timeout.
func (r *reassembler) expireLocked(b *dropBatch) {
	now := r.clock.NowMonotonic()
	for r.oldest != nil && now.Sub(r.oldest.created) >= r.timeout {
		r.dropDatagramLocked(r.oldest, nil, reasmTimeout, b)
	}
}

// armLocked sets the timer for the oldest datagram's deadline, unless one
// is pending already (firing early for a datagram that completed since, it
// finds nothing to do and sets itself again).
func (r *reassembler) armLocked() {
	if r.armed || r.closed || r.oldest == nil {
		return
	}
	wait := r.timeout - r.clock.NowMonotonic().Sub(r.oldest.created)
	r.armed = true
	r.timers.Add(1)
	r.timer = r.clock.AfterFunc(max(wait, 0), r.fire)
}

// fire is the timer callback, on the clock's goroutine.
func (r *reassembler) fire() {
	defer r.timers.Done()
	var b dropBatch
	r.mu.Lock()
	r.armed = false
	if !r.closed {
		r.expireLocked(&b)
		r.armLocked()
	}
	r.mu.Unlock()
	r.report(b)
}

// report calls the drop callback for each drop in b, without the lock.
func (r *reassembler) report(b dropBatch) {
	if r.drop == nil {
		return
	}
	for _, ev := range b {
		r.drop(ev.frags, ev.reason)
	}
}

// close drops every pending datagram with reasmHostClosed, stops the timer
// and waits for a timer callback already running. Later adds drop their
// fragment with reasmHostClosed. close must not be called from the drop
// callback. Calling it again does nothing.
func (r *reassembler) close() {
	var b dropBatch
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		if r.armed && r.timer.Stop() {
			r.armed = false
			r.timers.Done()
		}
		for r.oldest != nil {
			r.dropDatagramLocked(r.oldest, nil, reasmHostClosed, &b)
		}
	}
	r.mu.Unlock()
	r.report(b)
	r.timers.Wait()
}

// counters returns the reassembler's counters.
func (r *reassembler) counters() reasmCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	c.Held, c.Mem = r.held, r.mem
	return c
}

// validIPv4Header reports whether hdr can be the header of a rebuilt IPv4
// packet: 20 to 60 bytes, a multiple of 4.
func validIPv4Header(hdr []byte) bool {
	return len(hdr) >= header.IPv4MinimumSize && len(hdr) <= header.IPv4MaximumHeaderSize && len(hdr)%4 == 0
}

// rebuildIPv4 returns, in a new buffer, the unfragmented IPv4 packet made of
// a fragment's header hdr (options included) and the datagram's whole
// payload: IHL and total length set, More Fragments and offset cleared (Don't
// Fragment kept), checksum recomputed. It returns nil if hdr is not 20 to
// 60 bytes (a multiple of 4) or the packet would be over 65535 bytes.
func rebuildIPv4(hdr, payload []byte) []byte {
	if !validIPv4Header(hdr) || len(hdr)+len(payload) > 0xffff {
		return nil
	}
	pkt := append(append(make([]byte, 0, len(hdr)+len(payload)), hdr...), payload...)
	fixIPv4(pkt, len(hdr))
	return pkt
}

func fixIPv4(pkt []byte, hdrLen int) {
	h := header.IPv4(pkt)
	h.SetHeaderLength(uint8(hdrLen))
	h.SetTotalLength(uint16(len(pkt)))
	h.SetFlagsFragmentOffset(h.Flags()&^header.IPv4FlagMoreFragments, 0)
	h.SetChecksum(0)
	h.SetChecksum(^h.CalculateChecksum())
}

// rebuildIPv6 returns, in a new buffer, the unfragmented IPv6 packet made of
// a fragment's unfragmentable part unfrag (the fixed header and any
// Hop-by-Hop, Destination Options and Routing headers before the Fragment
// header), the Fragment header's Next Header nextHeader and the datagram's
// whole payload: the Fragment header is gone, the header that named it names
// nextHeader, the payload length is set. It returns nil if unfrag is not such
// a chain or the payload would be over 65535 bytes.
func rebuildIPv6(unfrag []byte, nextHeader uint8, payload []byte) []byte {
	nhAt, ok := ipv6NextHeaderAt(unfrag)
	if !ok || len(unfrag)-header.IPv6MinimumSize+len(payload) > 0xffff {
		return nil
	}
	pkt := append(append(make([]byte, 0, len(unfrag)+len(payload)), unfrag...), payload...)
	fixIPv6(pkt, nhAt, nextHeader)
	return pkt
}

func fixIPv6(pkt []byte, nhAt int, nextHeader uint8) {
	pkt[nhAt] = nextHeader
	header.IPv6(pkt).SetPayloadLength(uint16(len(pkt) - header.IPv6MinimumSize))
}

// ipv6NextHeaderAt walks the unfragmentable part unfrag and returns the
// index of the last Next Header field in it (the one that named the
// Fragment header); ok is false if unfrag is shorter than an IPv6 header or
// not made of whole Hop-by-Hop, Destination Options and Routing headers.
func ipv6NextHeaderAt(unfrag []byte) (at int, ok bool) {
	if len(unfrag) < header.IPv6MinimumSize {
		return 0, false
	}
	at, off := header.IPv6NextHeaderOffset, header.IPv6MinimumSize
	for off < len(unfrag) {
		switch header.IPv6ExtensionHeaderIdentifier(unfrag[at]) {
		case header.IPv6HopByHopOptionsExtHdrIdentifier, header.IPv6RoutingExtHdrIdentifier, header.IPv6DestinationOptionsExtHdrIdentifier:
		default:
			return 0, false
		}
		if off+2 > len(unfrag) {
			return 0, false
		}
		at, off = off, off+(int(unfrag[off+1])+1)*8
	}
	return at, off == len(unfrag)
}
