package capture

import (
	"net/netip"
	"slices"

	"github.com/gopacket/gopacket/layers"
)

// Datagram is an IP datagram that was sent in fragments, put together
// from the fragments of one link and direction.
type Datagram struct {
	Link     string            // link the fragments were recorded on
	Dir      Direction         // their direction
	Src, Dst netip.Addr        // IP addresses
	Proto    layers.IPProtocol // transport protocol
	ID       uint32            // IP identification
	// SrcPort and DstPort come from the first fragment; zero if it was not
	// seen.
	SrcPort, DstPort uint16
	// Fragments is the number of fragment frames seen.
	Fragments int
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
// direction, addresses, protocol and IP identification; a fragment whose
// group is already complete starts a new datagram. Dropped frames are left
// out: a datagram with a dropped fragment is not complete.
func Reassemble(frames []Frame) []Datagram {
	var r reassembler
	for _, f := range frames {
		if f.Drop != "" {
			continue
		}
		info := f.Info()
		r.add(f.Link, f.Dir, &info)
	}
	return r.datagrams()
}

type fragKey struct {
	link  string
	dir   Direction
	src   netip.Addr
	dst   netip.Addr
	proto layers.IPProtocol
	id    uint32
}

// maxSpans bounds the fragments tracked per datagram: a 65535-byte IPv4
// datagram has at most 8192 fragments of 8 bytes.
const maxSpans = 8192

type fragGroup struct {
	d     Datagram
	spans [][2]int // [start, end) byte ranges seen
	total int      // payload length from the last fragment, or -1
}

// reassembler follows fragmented datagrams; its zero value is ready.
type reassembler struct {
	open   map[fragKey]int // index in groups of the datagram being filled
	groups []*fragGroup
}

// add records one decoded frame if it is a fragment and returns its
// group's first-fragment ports (zero if unknown).
func (r *reassembler) add(link string, dir Direction, i *Info) (srcPort, dstPort uint16) {
	if !i.Frag.IsFragment() {
		return 0, 0
	}
	if r.open == nil {
		r.open = make(map[fragKey]int)
	}
	k := fragKey{link, dir, i.SrcIP, i.DstIP, i.Proto, i.Frag.ID}
	idx, ok := r.open[k]
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
	end := i.Frag.Offset + i.Frag.Len
	if len(g.spans) >= maxSpans {
		return g.d.SrcPort, g.d.DstPort // a hostile file; stop tracking bytes
	}
	g.spans = append(g.spans, [2]int{i.Frag.Offset, end})
	if !i.Frag.More {
		g.total = end
	}
	g.update()
	return g.d.SrcPort, g.d.DstPort
}

// update recomputes Size and Complete from the spans seen.
func (g *fragGroup) update() {
	slices.SortFunc(g.spans, func(a, b [2]int) int { return a[0] - b[0] })
	covered, seen := 0, 0 // contiguous bytes from 0, and bytes seen
	last := 0
	for _, s := range g.spans {
		if s[0] <= covered && s[1] > covered {
			covered = s[1]
		}
		if s[1] > last {
			seen += s[1] - max(s[0], last)
			last = s[1]
		}
	}
	if g.total >= 0 {
		g.d.Size = g.total
		g.d.Complete = covered >= g.total
	} else {
		g.d.Size = seen
	}
}

func (r *reassembler) datagrams() []Datagram {
	out := make([]Datagram, len(r.groups))
	for i, g := range r.groups {
		out[i] = g.d
	}
	return out
}
