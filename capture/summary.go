package capture

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

// Summary describes a capture file: what went over each link, per flow
// sizes, fragments, broadcasts, multicasts and drops. Summarize builds it;
// WriteText and encoding/json render it (the JSON field names are stable).
//
// Frame counts exclude drop reports, which are counted in Drops and in
// each link's Drops. A frame recorded by two taps (the sender's and the
// receiver's) is counted once per tap.
//
// The frames counted on a link are those the tapped host's NIC saw, as
// tcpdump on that host would: a frame the host sent that its link then
// dropped (an MTU check on a switch port, loss or a full queue in an
// impairment) was recorded as an outbound frame before the link got it,
// and is counted in Frames and Bytes as well as, from its drop report, in
// Drops. Subtract the outbound drops to get what left the link.
type Summary struct {
	// Format is "pcap", "pcapng", or "frames" (SummarizeFrames).
	Format string `json:"format"`
	// Frames and Bytes count the frames that went through the taps and
	// their on-wire length.
	Frames int   `json:"frames"`
	Bytes  int64 `json:"bytes"`
	// Links has one entry per link (pcapng interface, or the single link
	// of a pcap file) that has frames or drops, in the order of its first
	// frame or drop report; an interface with neither is left out.
	Links []LinkSummary `json:"links"`
	// Flows has one entry per IP flow, in order of first frame.
	Flows []FlowSummary `json:"flows"`
	// NonIP counts frames that are not IP (ARP, ...).
	NonIP int `json:"non_ip"`
	// Fragments describes IP fragmentation.
	Fragments FragmentSummary `json:"fragments"`
	// Broadcasts counts frames to ff:ff:ff:ff:ff:ff or 255.255.255.255.
	Broadcasts int `json:"broadcasts"`
	// Multicasts counts frames to a multicast MAC or IP address.
	Multicasts int `json:"multicasts"`
	// Drops counts the frames links reported dropped, by reason, sorted
	// by reason.
	Drops []DropSummary `json:"drops"`
}

// LinkSummary counts one link's frames.
type LinkSummary struct {
	Name     string `json:"name"`
	LinkType string `json:"link_type"` // "ethernet", "raw", or the number
	Frames   int    `json:"frames"`
	Bytes    int64  `json:"bytes"`
	Inbound  int    `json:"inbound"`  // frames marked inbound
	Outbound int    `json:"outbound"` // frames marked outbound
	Drops    int    `json:"drops"`
}

// FlowSummary counts the frames of one IP flow. Non-first fragments are
// counted in the flow of their first fragment when it was seen before them.
type FlowSummary struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	Proto   string     `json:"proto"` // "udp", "tcp", "icmp", "icmp6", "proto-N"
	SrcPort uint16     `json:"src_port"`
	DstPort uint16     `json:"dst_port"`
	Frames  int        `json:"frames"`
	Bytes   int64      `json:"bytes"`   // total on-wire bytes
	MinLen  int        `json:"min_len"` // smallest on-wire frame
	MaxLen  int        `json:"max_len"` // largest on-wire frame
}

// FragmentSummary describes IP fragmentation in a capture.
type FragmentSummary struct {
	// Frames counts fragment frames.
	Frames int `json:"frames"`
	// Datagrams counts the fragmented datagrams (see Reassemble).
	Datagrams int `json:"datagrams"`
	// Reassembled counts the datagrams whose fragments were all seen.
	Reassembled int `json:"reassembled"`
	// Duplicates counts the fragment frames (among Frames) whose bytes
	// had all been seen already in their datagram, such as each fragment
	// of a capture that recorded both ends of a link as one.
	Duplicates int `json:"duplicates"`
}

// DropSummary counts the frames dropped for one reason.
type DropSummary struct {
	Reason string `json:"reason"`
	Frames int    `json:"frames"`
	Bytes  int64  `json:"bytes"`
}

type flowKey struct {
	src, dst         netip.Addr
	proto            layers.IPProtocol
	srcPort, dstPort uint16
}

// summarizer accumulates a Summary frame by frame.
type summarizer struct {
	s       Summary
	links   map[linkKey]int
	flows   map[flowKey]int
	drops   map[string]int
	frags   reassembler
	dec     decoder
	scratch Info
}

func newSummarizer(format string) *summarizer {
	return &summarizer{
		s: Summary{
			Format: format,
			Links:  []LinkSummary{},
			Flows:  []FlowSummary{},
			Drops:  []DropSummary{},
		},
		links: make(map[linkKey]int),
		flows: make(map[flowKey]int),
		drops: make(map[string]int),
	}
}

// link returns the index of a link's entry, adding it if needed.
func (z *summarizer) link(name string, lt layers.LinkType) int {
	k := linkKey{name, lt}
	if i, ok := z.links[k]; ok {
		return i
	}
	z.links[k] = len(z.s.Links)
	z.s.Links = append(z.s.Links, LinkSummary{Name: name, LinkType: linkTypeName(lt)})
	return len(z.s.Links) - 1
}

// add accounts for one frame read from a file: data may be truncated
// (length is the on-wire length); drop is the reason parsed from the
// frame's comment, or "".
func (z *summarizer) add(link int, lt layers.LinkType, dir wire.Direction, data []byte, length int, drop string) {
	l := &z.s.Links[link]
	if drop != "" {
		l.Drops++
		i, ok := z.drops[drop]
		if !ok {
			i = len(z.s.Drops)
			z.drops[drop] = i
			z.s.Drops = append(z.s.Drops, DropSummary{Reason: drop})
		}
		z.s.Drops[i].Frames++
		z.s.Drops[i].Bytes += int64(length)
		return
	}
	z.s.Frames++
	z.s.Bytes += int64(length)
	l.Frames++
	l.Bytes += int64(length)
	switch dir {
	case wire.Inbound:
		l.Inbound++
	case wire.Outbound:
		l.Outbound++
	}

	info := &z.scratch
	*info = Info{}
	info.Err = z.dec.decode(info, lt, data)
	if info.Broadcast() {
		z.s.Broadcasts++
	} else if info.Multicast() {
		z.s.Multicasts++
	}
	if info.IPVersion == 0 {
		z.s.NonIP++
		return
	}
	sp, dp := info.SrcPort, info.DstPort
	if info.Frag.IsFragment() {
		z.s.Fragments.Frames++
		sp, dp = z.frags.add(z.s.Links[link].Name, dir, info)
	}
	k := flowKey{info.SrcIP, info.DstIP, info.Proto, sp, dp}
	i, ok := z.flows[k]
	if !ok {
		i = len(z.s.Flows)
		z.flows[k] = i
		z.s.Flows = append(z.s.Flows, FlowSummary{
			Src: k.src, Dst: k.dst, Proto: protoName(k.proto), SrcPort: sp, DstPort: dp,
			MinLen: length, MaxLen: length,
		})
	}
	f := &z.s.Flows[i]
	f.Frames++
	f.Bytes += int64(length)
	f.MinLen = min(f.MinLen, length)
	f.MaxLen = max(f.MaxLen, length)
}

func (z *summarizer) finish() *Summary {
	for _, d := range z.frags.datagrams() {
		z.s.Fragments.Datagrams++
		z.s.Fragments.Duplicates += d.Duplicates
		if d.Complete {
			z.s.Fragments.Reassembled++
		}
	}
	slices.SortFunc(z.s.Drops, func(a, b DropSummary) int { return strings.Compare(a.Reason, b.Reason) })
	return &z.s
}

func linkTypeName(lt layers.LinkType) string {
	switch lt {
	case layers.LinkTypeEthernet:
		return "ethernet"
	case layers.LinkTypeRaw:
		return "raw"
	case layers.LinkTypeIPv4:
		return "ipv4"
	case layers.LinkTypeIPv6:
		return "ipv6"
	case layers.LinkTypeLinuxSLL:
		return "linux-sll"
	case layers.LinkTypeLinuxSLL2:
		return "linux-sll2"
	}
	return "linktype-" + strconv.Itoa(int(lt))
}

// SummarizeFrames summarises frames recorded in memory (by a Recorder), as
// Summarize does for a capture file. Format is "frames".
func SummarizeFrames(frames []Frame) *Summary {
	z := newSummarizer("frames")
	for _, f := range frames {
		drop := ""
		if f.Drop != 0 {
			drop = f.Drop.String()
		}
		z.add(z.link(f.Link, f.LinkType), f.LinkType, f.Dir, f.Data, max(f.Len, len(f.Data)), drop)
	}
	return z.finish()
}
