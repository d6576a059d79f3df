package capture

import (
	"net/netip"
	"slices"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

// Datagram is an IP datagram that was sent in fragments, put together
// from the fragments of one link and direction.
type Datagram struct {
	Link     string            // link the fragments were recorded on
	Dir      wire.Direction    // their direction
	Src, Dst netip.Addr        // IP addresses
	Proto    layers.IPProtocol // transport protocol
	ID       uint32            // IP identification
	// SrcPort and DstPort come from the first fragment; zero if it was not
	// seen.
	SrcPort, DstPort uint16
	// Fragments is the number of fragment frames seen, Duplicates
	// included.
	Fragments int
	// Duplicates counts the fragments identical to one seen before in
	// this datagram (same offset, length, more-fragments flag and payload
	// bytes): the same fragment recorded twice on one link, as in the
	// captures of a link's two ends merged into one pcap link, or tcpdump
	// -i any on a bridge.
	Duplicates int
	// Size is the reassembled IP payload length in bytes (transport header
	// included: a UDP datagram with a 3000-byte payload has Size 3008).
	// It is known once the last fragment is seen, else it is the number of
	// bytes seen.
	Size int
	// Complete reports whether every byte from 0 to Size was seen and the
	// last fragment was among them.
	Complete bool
}

// UDPPayloadLen returns the size of a reassembled UDP datagram's payload,
// or -1 if the datagram is not UDP or not complete.
func (d Datagram) UDPPayloadLen() int {
	if d.Proto != layers.IPProtocolUDP || !d.Complete {
		return -1
	}
	return d.Size - 8
}

// Reassemble groups the IP fragments among frames into datagrams, in the
// order their first fragment was seen. Fragments are grouped by link,
// direction, addresses, protocol and IP identification. A fragment
// identical to one already seen in its group (same offset, length,
// more-fragments flag and payload bytes) is a duplicate, counted in the
// group's Duplicates, even when the group is complete; any other fragment
// whose group is complete starts a new datagram (the identification was
// reused). Only a datagram sent again byte for byte under the same
// identification is taken for duplicates. Dropped frames are left out: a
// datagram with a dropped fragment is not complete.
func Reassemble(frames []Frame) []Datagram {
	var r reassembler
	for _, f := range frames {
		if f.Drop != 0 {
			continue
		}
		info := f.Info()
		r.add(f.Link, f.Dir, &info)
	}
	return r.datagrams()
}

type fragKey struct {
	link  string
	dir   wire.Direction
	src   netip.Addr
	dst   netip.Addr
	proto layers.IPProtocol
	id    uint32
}

// maxFrags bounds the distinct fragments tracked per datagram: a 65535-byte IPv4
// datagram has at most 8192 fragments of 8 bytes.
const maxFrags = 8192

type fragGroup struct {
	d Datagram
	// spans are the byte ranges [start, end) seen, sorted, disjoint and
	// not adjacent: in-order fragments keep one span.
	spans [][2]int
	seen  int // bytes in spans
	total int // payload length from the last fragment, or -1
	frags map[fragID]struct{}
}

// fragID identifies a fragment within its datagram.
type fragID struct {
	start, end int
	more       bool
	sum        uint64 // the payload's hash
}

// reassembler follows fragmented datagrams; its zero value is ready.
type reassembler struct {
	open   map[fragKey]int // index in groups of the datagram being filled
	groups []*fragGroup
}

// add records one decoded frame if it is a fragment and returns its
// group's first-fragment ports (zero if unknown).
func (r *reassembler) add(link string, dir wire.Direction, i *Info) (srcPort, dstPort uint16) {
	if !i.Frag.IsFragment() {
		return 0, 0
	}
	if r.open == nil {
		r.open = make(map[fragKey]int)
	}
	k := fragKey{link, dir, i.SrcIP, i.DstIP, i.Proto, i.Frag.ID}
	start, end := i.Frag.Offset, i.Frag.Offset+i.Frag.Len
	id := fragID{start, end, i.Frag.More, i.fragSum}
	idx, ok := r.open[k]
	if ok {
		if g := r.groups[idx]; g.has(id) {
			g.d.Fragments++
			g.d.Duplicates++
			return g.d.SrcPort, g.d.DstPort
		}
	}
	if !ok || r.groups[idx].d.Complete {
		idx = len(r.groups)
		r.groups = append(r.groups, &fragGroup{
			d:     Datagram{Link: link, Dir: dir, Src: i.SrcIP, Dst: i.DstIP, Proto: i.Proto, ID: i.Frag.ID},
			total: -1,
		})
		r.open[k] = idx
	}
	g := r.groups[idx]
	g.d.Fragments++
	if i.Frag.Offset == 0 {
		g.d.SrcPort, g.d.DstPort = i.SrcPort, i.DstPort
	}
	if !i.Frag.More {
		g.total = end
	}
	if len(g.frags) < maxFrags { // else a hostile file: stop tracking bytes
		if g.frags == nil {
			g.frags = make(map[fragID]struct{})
		}
		g.frags[id] = struct{}{}
		g.insert(start, end)
	}
	g.update()
	return g.d.SrcPort, g.d.DstPort
}

func (g *fragGroup) has(id fragID) bool {
	_, ok := g.frags[id]
	return ok
}

// insert adds [start, end) to the spans, merging it with those it
// overlaps or touches. It costs a binary search, plus a copy of the spans
// after it when the fragment is neither next in order nor joins others.
func (g *fragGroup) insert(start, end int) {
	if end <= start {
		return
	}
	// The spans from lo to hi-1 overlap or touch [start, end).
	lo, _ := slices.BinarySearchFunc(g.spans, start, func(s [2]int, start int) int { return s[1] - start })
	hi := lo
	for hi < len(g.spans) && g.spans[hi][0] <= end {
		hi++
	}
	merged := [2]int{start, end}
	for _, s := range g.spans[lo:hi] {
		merged[0] = min(merged[0], s[0])
		merged[1] = max(merged[1], s[1])
		g.seen -= s[1] - s[0]
	}
	g.seen += merged[1] - merged[0]
	g.spans = slices.Replace(g.spans, lo, hi, merged)
}

// update recomputes Size and Complete from the spans seen.
func (g *fragGroup) update() {
	if g.total >= 0 {
		g.d.Size = g.total
		g.d.Complete = len(g.spans) > 0 && g.spans[0][0] == 0 && g.spans[0][1] >= g.total
	} else {
		g.d.Size = g.seen
	}
}

func (r *reassembler) datagrams() []Datagram {
	out := make([]Datagram, len(r.groups))
	for i, g := range r.groups {
		out[i] = g.d
	}
	return out
}
