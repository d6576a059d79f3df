package integration

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dgramlab/dgramlab/stack"
)

// The conservation test's scenarios: a seed makes one, with math/rand/v2,
// the same on every run. A scenario is a few hosts on one or two switches
// and up to two pipes; its sockets, their readers, the traffic they send,
// the frames the test injects and the impairments of every link end are
// all drawn from the seed. Hosts do not forward, so each datagram stays on
// the segment (switch or pipe) it was sent on.

type segKind uint8

const (
	segSwitch segKind = iota
	segPipe
)

// consSeg is one segment: a switch or a pipe. Segment i is 10.(i+1).0.0/24;
// host h's address on it is 10.(i+1).0.(h+1).
type consSeg struct {
	kind     segKind
	mtu      int
	members  []int // hosts, in the order their NICs were added
	injector bool  // a switch port the test writes hand-made frames into
}

// consNIC is one NIC of a host and the link end under it.
type consNIC struct {
	seg             int
	addr            netip.Addr
	portMTU, nicMTU int                  // a switch port's options (0: the switch's)
	imp             [2]stack.Impairments // outbound, inbound
	downAt, upAt    time.Duration        // the link end is down in [downAt, upAt) when upAt > 0
}

type consHost struct {
	nics []consNIC
}

type readerMode uint8

const (
	readFast  readerMode = iota // reads whatever comes, at once
	readSlow                    // sleeps after each datagram
	readClose                   // reads at once, and its socket is closed mid-stream
)

// consJoin is a multicast membership: a group on one of the host's NICs.
type consJoin struct {
	group netip.Addr
	nic   int
}

type consSock struct {
	host    int
	port    uint16
	bindNIC int // the NIC whose address it is bound to, or -1 for 0.0.0.0
	bcast   bool
	rcvbuf  int // SetReadBuffer(rcvbuf) when >= 0
	joins   []consJoin
	mode    readerMode
	gap     time.Duration // the pause after each datagram read (readSlow, some readClose)
	closeAt time.Duration // readClose
}

type sendKind uint8

const (
	sendUnicast sendKind = iota
	sendClosedPort
	sendUnresolved
	sendSubnetBcast
	sendLimitedBcast
	sendMulticast
	numSendKinds
)

var sendKindNames = [numSendKinds]string{"unicast", "closed-port", "unresolvable", "subnet-broadcast", "broadcast", "multicast"}

type consSend struct {
	at   time.Duration
	sock int
	kind sendKind
	seg  int // the segment it goes out on
	dst  netip.AddrPort
	size int
}

type injKind uint8

const (
	injValid injKind = iota
	injBadIPSum
	injBadUDPSum
	injTruncated
	injBadVersion
	injUnknownEtherType
	injWrongDstIP
	injWrongDstMAC
	injRunt
	injBadUDPLen
	injUnknownProto
	injLoneFragment
	numInjKinds
)

var injKindNames = [numInjKinds]string{"valid", "bad-ip-checksum", "bad-udp-checksum", "truncated", "bad-version",
	"unknown-ethertype", "wrong-dst-ip", "wrong-dst-mac", "runt", "bad-udp-length", "unknown-protocol", "lone-fragment"}

type consInject struct {
	at       time.Duration
	seg      int
	kind     injKind
	host     int // the host it is addressed to
	bcastMAC bool
	port     uint16
	size     int
}

type consScenario struct {
	seed    uint64
	segs    []consSeg
	hosts   []consHost
	socks   []consSock
	sends   []consSend
	injects []consInject
	dur     time.Duration // traffic phase
}

var (
	consPorts  = []uint16{4000, 4001, 4002}
	consGroups = []netip.Addr{netip.MustParseAddr("239.1.1.1"), netip.MustParseAddr("239.1.1.2")}
)

const (
	consClosedPort = 4999 // nobody binds it
	consNobody     = 250  // 10.x.0.250: nobody has it
)

func segPrefix(seg int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(seg + 1), 0, 0}), 24)
}

func segAddr(seg, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(seg + 1), 0, byte(host + 1)})
}

func segBroadcast(seg int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(seg + 1), 0, 255})
}

// nicOn returns the index of host h's NIC on seg, or -1.
func (s *consScenario) nicOn(h, seg int) int {
	for i, n := range s.hosts[h].nics {
		if n.seg == seg {
			return i
		}
	}
	return -1
}

func genScenario(seed uint64) *consScenario {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &consScenario{seed: seed, dur: 2 * time.Second}
	nh := 2 + r.IntN(5)
	nsw := 1 + r.IntN(2)
	npipe := r.IntN(3)
	mtus := []int{1500, 1500, 1500, 1280, 576, 9000}
	for range nsw {
		s.segs = append(s.segs, consSeg{kind: segSwitch, mtu: mtus[r.IntN(len(mtus))], injector: r.IntN(2) == 0})
	}
	s.hosts = make([]consHost, nh)
	addNIC := func(h, seg int) {
		n := consNIC{seg: seg, addr: segAddr(seg, h)}
		sg := &s.segs[seg]
		if sg.kind == segSwitch && r.IntN(10) == 0 {
			n.nicMTU = sg.mtu
			n.portMTU = max(576, sg.mtu/2) // a NIC whose MTU is wrong for its port
		}
		s.hosts[h].nics = append(s.hosts[h].nics, n)
		sg.members = append(sg.members, h)
	}
	for h := range nh {
		first := r.IntN(nsw)
		addNIC(h, first)
		if nsw == 2 && r.IntN(3) == 0 {
			addNIC(h, 1-first)
		}
	}
	for range npipe {
		a := r.IntN(nh)
		b := (a + 1 + r.IntN(nh-1)) % nh
		pm := []int{1500, 1280, 9000}
		s.segs = append(s.segs, consSeg{kind: segPipe, mtu: pm[r.IntN(len(pm))]})
		seg := len(s.segs) - 1
		addNIC(a, seg)
		addNIC(b, seg)
	}
	// Impairments and link downs.
	for h := range s.hosts {
		for i := range s.hosts[h].nics {
			n := &s.hosts[h].nics[i]
			if r.IntN(2) == 0 {
				dupDir := r.IntN(3) // duplication in one direction at most: 0 out, 1 in, 2 none
				for d := range 2 {
					if r.IntN(5) < 3 {
						n.imp[d] = genImpairments(r, dupDir == d)
					}
				}
			}
			if r.IntN(12) == 0 {
				n.downAt = time.Duration(r.Int64N(int64(s.dur)))
				n.upAt = n.downAt + time.Millisecond + time.Duration(r.Int64N(int64(s.dur/2)))
			}
		}
	}
	// Sockets.
	for h := range s.hosts {
		ports := slices.Clone(consPorts)
		r.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
		for _, p := range ports[:1+r.IntN(len(ports))] {
			k := consSock{host: h, port: p, bindNIC: -1, bcast: r.IntN(10) < 7, rcvbuf: -1}
			if r.IntN(5) == 0 {
				k.bindNIC = r.IntN(len(s.hosts[h].nics))
			}
			if r.IntN(5) == 0 {
				k.rcvbuf = r.IntN(8192)
			}
			for _, g := range consGroups {
				if r.IntN(10) < 3 {
					k.joins = append(k.joins, consJoin{group: g, nic: r.IntN(len(s.hosts[h].nics))})
				}
			}
			switch x := r.IntN(20); {
			case x < 4:
				k.mode = readSlow
				k.gap = time.Duration(1+r.IntN(30)) * time.Millisecond
			case x < 7:
				k.mode = readClose
				k.closeAt = time.Duration(r.Int64N(int64(s.dur)))
				if r.IntN(2) == 0 {
					k.gap = time.Duration(1+r.IntN(30)) * time.Millisecond // a slow reader that closes
				}
			}
			s.socks = append(s.socks, k)
		}
	}
	// Traffic.
	nsend := 30 + r.IntN(120)
	for range nsend {
		d, ok := s.genSend(r)
		if !ok {
			continue
		}
		s.sends = append(s.sends, d)
		if r.IntN(12) == 0 { // a burst: the same datagram again at once, to fill buffers
			for range 1 + r.IntN(12) {
				s.sends = append(s.sends, d)
			}
		}
	}
	slices.SortStableFunc(s.sends, func(a, b consSend) int { return int(a.at - b.at) })
	for seg := range s.segs {
		sg := &s.segs[seg]
		if !sg.injector || len(sg.members) == 0 {
			continue
		}
		for range 5 + r.IntN(16) {
			in := consInject{
				at:       time.Duration(r.Int64N(int64(s.dur))),
				seg:      seg,
				kind:     injKind(r.IntN(int(numInjKinds))),
				host:     sg.members[r.IntN(len(sg.members))],
				bcastMAC: r.IntN(5) == 0,
				port:     consPorts[r.IntN(len(consPorts))],
				size:     consHdrSize + r.IntN(400),
			}
			s.injects = append(s.injects, in)
		}
	}
	slices.SortStableFunc(s.injects, func(a, b consInject) int { return int(a.at - b.at) })
	return s
}

func genImpairments(r *rand.Rand, dup bool) stack.Impairments {
	var im stack.Impairments
	if r.IntN(3) == 0 {
		im.Loss = r.Float64() * 0.2
	}
	if r.IntN(6) == 0 {
		im.BurstLoss = &stack.GilbertElliott{P: 0.05 + 0.1*r.Float64(), R: 0.3 + 0.5*r.Float64()}
		if r.IntN(2) == 0 {
			im.BurstLoss.LossBad = 0.5
		}
	}
	if r.IntN(2) == 0 {
		im.Delay = time.Duration(r.IntN(50_000)) * time.Microsecond
		if r.IntN(2) == 0 {
			im.Jitter = time.Duration(1+r.IntN(20_000)) * time.Microsecond
			im.Distribution = stack.Distribution(r.IntN(3))
		}
	}
	if dup && r.IntN(2) == 0 {
		im.Duplicate = 0.05 + 0.25*r.Float64()
	}
	if r.IntN(4) == 0 {
		im.Corrupt = 0.05 + 0.15*r.Float64()
	}
	if r.IntN(4) == 0 {
		im.Rate = int64(5+r.IntN(50)) * 1_000_000
		if r.IntN(2) == 0 {
			im.RateBurst = 1 + r.IntN(30000)
		}
	}
	if (im.Delay > 0 || im.Jitter > 0 || im.Rate > 0) && r.IntN(3) == 0 {
		im.Reorder = 0.1 + 0.3*r.Float64()
	}
	if r.IntN(4) == 0 {
		im.QueueLimit = 1 + r.IntN(20)
	}
	im.Seed = r.Int64()
	return im
}

// genSend draws one datagram to send.
func (s *consScenario) genSend(r *rand.Rand) (consSend, bool) {
	si := r.IntN(len(s.socks))
	k := &s.socks[si]
	host := &s.hosts[k.host]
	d := consSend{at: time.Duration(r.Int64N(int64(s.dur))), sock: si}
	d.size = consHdrSize + r.IntN(1400)
	switch x := r.IntN(20); {
	case x == 0:
		d.size = consHdrSize + r.IntN(9000)
	case x < 3:
		d.size = 1000 + r.IntN(3000)
	}
	nic := k.bindNIC
	if nic < 0 {
		nic = r.IntN(len(host.nics))
	}
	d.seg = host.nics[nic].seg
	port := consPorts[r.IntN(len(consPorts))]
	x := r.IntN(100)
	if k.bindNIC >= 0 && x >= 58 {
		x = r.IntN(58) // bound sockets send unicast only
	}
	switch {
	case x < 53:
		d.kind = sendUnicast
		if x >= 45 {
			d.kind = sendClosedPort
			port = consClosedPort
		}
		var peers []int
		for _, m := range s.segs[d.seg].members {
			if m != k.host {
				peers = append(peers, m)
			}
		}
		if len(peers) == 0 {
			d.kind = sendUnresolved
			d.dst = netip.AddrPortFrom(segAddr(d.seg, consNobody-1), port)
			break
		}
		t := peers[r.IntN(len(peers))]
		if d.kind == sendUnicast && r.IntN(5) > 0 {
			var tp []uint16
			for _, o := range s.socks {
				if o.host == t {
					tp = append(tp, o.port)
				}
			}
			port = tp[r.IntN(len(tp))]
		}
		d.dst = netip.AddrPortFrom(segAddr(d.seg, t), port)
	case x < 58:
		d.kind = sendUnresolved
		d.dst = netip.AddrPortFrom(segAddr(d.seg, consNobody-1), port)
	case x < 73:
		d.kind = sendSubnetBcast
		d.dst = netip.AddrPortFrom(segBroadcast(d.seg), port)
	case x < 83:
		d.kind = sendLimitedBcast
		d.seg = host.nics[0].seg
		d.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port)
	default:
		d.kind = sendMulticast
		d.seg = host.nics[0].seg
		d.dst = netip.AddrPortFrom(consGroups[r.IntN(len(consGroups))], port)
	}
	return d, true
}

// String describes the scenario in one line.
func (s *consScenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%d hosts=%d segs=[", s.seed, len(s.hosts))
	for i, sg := range s.segs {
		if i > 0 {
			b.WriteString(" ")
		}
		kind := "sw"
		if sg.kind == segPipe {
			kind = "pipe"
		}
		fmt.Fprintf(&b, "%s%d:mtu%d:%v", kind, i, sg.mtu, sg.members)
		if sg.injector {
			b.WriteString("+inj")
		}
	}
	var slow, closing, small, joins, bound int
	for _, k := range s.socks {
		switch k.mode {
		case readSlow:
			slow++
		case readClose:
			closing++
		}
		if k.rcvbuf >= 0 {
			small++
		}
		if k.bindNIC >= 0 {
			bound++
		}
		joins += len(k.joins)
	}
	fmt.Fprintf(&b, "] socks=%d(bound %d slow %d closing %d smallbuf %d joins %d)", len(s.socks), bound, slow, closing, small, joins)
	var kinds [numSendKinds]int
	frag := 0
	for _, d := range s.sends {
		kinds[d.kind]++
		if d.size+28 > 576 {
			frag++
		}
	}
	b.WriteString(" sends=")
	for k, n := range kinds {
		if n > 0 {
			fmt.Fprintf(&b, "%s:%d,", sendKindNames[k], n)
		}
	}
	fmt.Fprintf(&b, "big:%d injects=%d", frag, len(s.injects))
	var imp, dup, corrupt, rate, down, mtu int
	for _, h := range s.hosts {
		for _, n := range h.nics {
			if !n.imp[0].IsZero() || !n.imp[1].IsZero() {
				imp++
			}
			if n.imp[0].Duplicate > 0 || n.imp[1].Duplicate > 0 {
				dup++
			}
			if n.imp[0].Corrupt > 0 || n.imp[1].Corrupt > 0 {
				corrupt++
			}
			if n.imp[0].Rate > 0 || n.imp[1].Rate > 0 {
				rate++
			}
			if n.upAt > 0 {
				down++
			}
			if n.portMTU > 0 {
				mtu++
			}
		}
	}
	fmt.Fprintf(&b, " impaired=%d(dup %d corrupt %d rate %d) down=%d small-port-mtu=%d", imp, dup, corrupt, rate, down, mtu)
	return b.String()
}
