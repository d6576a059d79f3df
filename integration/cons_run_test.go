package integration

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Running a scenario: build its network in a testing/synctest bubble (so
// that delays, ARP timeouts and reassembly timeouts pass in virtual time),
// record everything the taps, the links' drop hooks and the NICs' drop
// hooks report, play the scenario's actions from one goroutine in time
// order, let the network settle, drain the readers, close everything, and
// hand back what was recorded.

// consQuiesce is how long the network is left alone after the traffic:
// longer than reassembly's timeout (30 s), ARP's (3 s) and any queue a rate
// limit builds.
const consQuiesce = 60 * time.Second

// linkEnd is one end of a link: under a host's NIC, or a switch's injector
// port.
type consEnd struct {
	host, nic int // -1, -1 for an injector port
	seg       int
	port      *stack.Port
	pipe      *stack.PipeEnd
	name      string // the tap's link name
}

func (e *consEnd) counters() stack.LinkCounters {
	if e.port != nil {
		return e.port.Counters()
	}
	return e.pipe.Counters()
}

func (e *consEnd) ethernet() bool { return e.port != nil }

type tapEvent struct {
	end  int
	dir  wire.Direction
	at   time.Duration
	data []byte          // the frame, link header included
	drop wire.DropReason // a drop the tap recorded: the link's or the host's
}

type linkDrop struct {
	end    int
	dir    wire.Direction
	reason wire.DropReason
	at     time.Duration
	data   []byte
}

type hostDrop struct {
	host   int
	nic    int // -1: loopback
	dir    wire.Direction
	reason wire.DropReason
	at     time.Duration
	data   []byte // the IP packet
}

type delivery struct {
	sock int
	id   dgID
	ok   bool // the payload's identity read back
	at   time.Duration
	n    int
}

type sentDatagram struct {
	id    dgID
	send  int // index in scenario.sends, or -1 for an injected frame
	inj   int // index in scenario.injects, or -1
	at    time.Duration
	err   error
	frame []byte // injected: the frame written
}

// consRecord is everything one run recorded.
type consRecord struct {
	mu        sync.Mutex
	start     time.Time
	ends      []*consEnd
	taps      []tapEvent
	linkDrops []linkDrop
	hostDrops []hostDrop
	delivered []delivery
	sent      []sentDatagram
	closedAt  map[int]time.Duration // socket → when the driver closed it
	injRx     map[int]int           // injector end → frames delivered to it

	// Snapshots taken once the network settled, before closing anything,
	// and after everything was closed.
	counters      []stack.LinkCounters
	hostStats     []stack.HostStats
	finalCounters []stack.LinkCounters
	finalStats    []stack.HostStats
	readErrs      []string
}

func (r *consRecord) now() time.Duration { return time.Since(r.start) }

// consInjectorDispatcher is what an injector port delivers to: it counts.
type consInjectorDispatcher struct {
	rec *consRecord
	end int
}

var _ gstack.NetworkDispatcher = (*consInjectorDispatcher)(nil)

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (d *consInjectorDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {
	d.rec.mu.Lock()
	d.rec.injRx[d.end]++
	d.rec.mu.Unlock()
}

// DeliverLinkPacket implements stack.NetworkDispatcher.
func (d *consInjectorDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {
}

// runScenario runs s in a synctest bubble and returns what it recorded.
func runScenario(t testing.TB, s *consScenario) *consRecord {
	var rec *consRecord
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatalf("runScenario needs a *testing.T")
	}
	synctest.Test(tt, func(t *testing.T) { rec = playScenario(t, s) })
	return rec
}

type consAction struct {
	at   time.Duration
	kind int // 0 send, 1 inject, 2 down, 3 up, 4 close
	i    int
}

func playScenario(t *testing.T, s *consScenario) *consRecord {
	rec := &consRecord{start: time.Now(), closedAt: map[int]time.Duration{}, injRx: map[int]int{}}
	sink := capture.SinkFunc(func(f capture.Frame) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for i, e := range rec.ends {
			if e.name == f.Link {
				rec.taps = append(rec.taps, tapEvent{end: i, dir: f.Dir, at: f.Time.Sub(rec.start), data: f.Data, drop: f.Drop})
				return
			}
		}
		t.Errorf("a frame from unknown link %q", f.Link)
	})
	var switches []*stack.Switch
	pipes := map[int][2]*stack.PipeEnd{}
	for i, sg := range s.segs {
		switch sg.kind {
		case segSwitch:
			switches = append(switches, stack.NewSwitch(stack.SwitchOptions{Name: fmt.Sprintf("s%d", i), MTU: sg.mtu}))
		case segPipe:
			a, b, err := stack.NewPipe(stack.PipeOptions{Name: fmt.Sprintf("p%d", i), MTU: sg.mtu})
			if err != nil {
				t.Fatal(err)
			}
			pipes[i] = [2]*stack.PipeEnd{a, b}
			switches = append(switches, nil)
		}
	}
	addEnd := func(e *consEnd) int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.ends = append(rec.ends, e)
		return len(rec.ends) - 1
	}
	linkHook := func(end int) wire.DropHook {
		return func(frame []byte, dir wire.Direction, reason wire.DropReason) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.linkDrops = append(rec.linkDrops, linkDrop{end: end, dir: dir, reason: reason, at: rec.now(), data: slices.Clone(frame)})
		}
	}
	hostHook := func(host, nic int) wire.DropHook {
		return func(packet []byte, dir wire.Direction, reason wire.DropReason) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.hostDrops = append(rec.hostDrops, hostDrop{host: host, nic: nic, dir: dir, reason: reason, at: rec.now(), data: slices.Clone(packet)})
		}
	}

	hosts := make([]*stack.Host, len(s.hosts))
	endOf := make([][]int, len(s.hosts))
	pipeUsed := map[int]int{}
	for h := range s.hosts {
		host, err := stack.NewHost(stack.HostOptions{Name: fmt.Sprintf("h%d", h)})
		if err != nil {
			t.Fatal(err)
		}
		hosts[h] = host
		host.NIC("lo").AddDropHook(hostHook(h, -1))
		for ni, n := range s.hosts[h].nics {
			e := &consEnd{host: h, nic: ni, seg: n.seg, name: fmt.Sprintf("h%d/n%d", h, ni)}
			var ep gstack.LinkEndpoint
			if sw := switches[n.seg]; sw != nil {
				p, err := sw.NewPort(stack.PortOptions{MTU: n.portMTU, NICMTU: n.nicMTU})
				if err != nil {
					t.Fatal(err)
				}
				e.port, ep = p, p
			} else {
				pe := pipes[n.seg][pipeUsed[n.seg]]
				pipeUsed[n.seg]++
				e.pipe, ep = pe, pe
			}
			ei := addEnd(e)
			endOf[h] = append(endOf[h], ei)
			for d, dir := range []wire.Direction{wire.Outbound, wire.Inbound} {
				if err := setImpairments(e, dir, n.imp[d]); err != nil {
					t.Fatalf("%s: SetImpairments(%v, %v) = %v", e.name, dir, n.imp[d], err)
				}
			}
			if e.port != nil {
				e.port.AddDropHook(linkHook(ei))
			} else {
				e.pipe.AddDropHook(linkHook(ei))
			}
			tap := capture.NewTap(ep, capture.TapOptions{Name: e.name, Sink: sink})
			nic, err := host.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(n.addr, 24)}})
			if err != nil {
				t.Fatal(err)
			}
			nic.AddDropHook(hostHook(h, ni))
		}
	}
	injEnd := map[int]int{} // segment → end
	for seg, sg := range s.segs {
		if sg.kind != segSwitch || !sg.injector || len(sg.members) == 0 {
			continue
		}
		p, err := switches[seg].NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e := &consEnd{host: -1, nic: -1, seg: seg, port: p, name: fmt.Sprintf("s%d/inj", seg)}
		ei := addEnd(e)
		p.AddDropHook(linkHook(ei))
		p.Attach(&consInjectorDispatcher{rec: rec, end: ei})
		injEnd[seg] = ei
	}

	conns := make([]*stack.UDPConn, len(s.socks))
	var readers sync.WaitGroup
	for si, k := range s.socks {
		addr := netip.IPv4Unspecified()
		if k.bindNIC >= 0 {
			addr = s.hosts[k.host].nics[k.bindNIC].addr
		}
		c, err := hosts[k.host].ListenUDP("udp4", netip.AddrPortFrom(addr, k.port))
		if err != nil {
			t.Fatalf("h%d: ListenUDP(%v:%d) = %v", k.host, addr, k.port, err)
		}
		conns[si] = c
		if err := c.SetBroadcast(k.bcast); err != nil {
			t.Fatal(err)
		}
		if k.rcvbuf >= 0 {
			if err := c.SetReadBuffer(k.rcvbuf); err != nil {
				t.Fatal(err)
			}
		}
		for _, j := range k.joins {
			if err := c.JoinGroup(j.group, s.hosts[k.host].nics[j.nic].addr); err != nil {
				t.Fatalf("h%d: JoinGroup(%v, %v) = %v", k.host, j.group, s.hosts[k.host].nics[j.nic].addr, err)
			}
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 65536)
			for {
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						rec.mu.Lock()
						rec.readErrs = append(rec.readErrs, fmt.Sprintf("sock %d: %v", si, err))
						rec.mu.Unlock()
					}
					return
				}
				id, ok := readConsPayload(buf[:n])
				rec.mu.Lock()
				rec.delivered = append(rec.delivered, delivery{sock: si, id: id, ok: ok, at: rec.now(), n: n})
				rec.mu.Unlock()
				if k.gap > 0 {
					time.Sleep(k.gap)
				}
			}
		}()
	}

	// The actions, in time order, from this goroutine alone.
	var acts []consAction
	for i, d := range s.sends {
		acts = append(acts, consAction{d.at, 0, i})
	}
	for i, in := range s.injects {
		acts = append(acts, consAction{in.at, 1, i})
	}
	for h := range s.hosts {
		for ni, n := range s.hosts[h].nics {
			if n.upAt > 0 {
				acts = append(acts, consAction{n.downAt, 2, endOf[h][ni]}, consAction{n.upAt, 3, endOf[h][ni]})
			}
		}
	}
	for si, k := range s.socks {
		if k.mode == readClose {
			acts = append(acts, consAction{k.closeAt, 4, si})
		}
	}
	slices.SortStableFunc(acts, func(a, b consAction) int { return int(a.at - b.at) })
	seqs := make([]uint32, len(s.socks))
	var injSeq uint32
	buf := make([]byte, 65536)
	for _, a := range acts {
		if d := a.at - rec.now(); d > 0 {
			time.Sleep(d)
		}
		switch a.kind {
		case 0:
			d := s.sends[a.i]
			id := dgID{sender: uint16(d.sock), seq: seqs[d.sock]}
			seqs[d.sock]++
			b := buf[:d.size]
			putConsPayload(b, 0, id)
			_, err := conns[d.sock].WriteToUDPAddrPort(b, d.dst)
			rec.mu.Lock()
			rec.sent = append(rec.sent, sentDatagram{id: id, send: a.i, inj: -1, at: rec.now(), err: err})
			rec.mu.Unlock()
		case 1:
			in := s.injects[a.i]
			id := dgID{sender: consInjector, seq: injSeq}
			injSeq++
			ei := injEnd[in.seg]
			frame := buildInjected(s, rec.ends[ei].port.LinkAddress(), findPort(rec, in.host, in.seg), in, id)
			rec.mu.Lock()
			rec.sent = append(rec.sent, sentDatagram{id: id, send: -1, inj: a.i, at: rec.now(), frame: frame})
			rec.mu.Unlock()
			writeFrame(rec.ends[ei].port, frame)
		case 2, 3:
			e := rec.ends[a.i]
			if e.port != nil {
				e.port.SetLinkUp(a.kind == 3)
			} else {
				e.pipe.SetLinkUp(a.kind == 3)
			}
		case 4:
			conns[a.i].Close()
			rec.mu.Lock()
			rec.closedAt[a.i] = rec.now()
			rec.mu.Unlock()
		}
		// Let the readers and links finish with it before the next action,
		// so that a seed replays the same way.
		synctest.Wait()
	}
	time.Sleep(consQuiesce)
	synctest.Wait()

	rec.mu.Lock()
	for _, e := range rec.ends {
		rec.counters = append(rec.counters, e.counters())
	}
	for _, h := range hosts {
		rec.hostStats = append(rec.hostStats, h.Stats())
	}
	rec.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	for _, h := range hosts {
		h.Close()
	}
	for _, e := range rec.ends {
		if e.port != nil && e.host < 0 {
			e.port.Remove()
		}
	}
	synctest.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.ends {
		rec.finalCounters = append(rec.finalCounters, e.counters())
	}
	for _, h := range hosts {
		rec.finalStats = append(rec.finalStats, h.Stats())
	}
	return rec
}

func setImpairments(e *consEnd, dir wire.Direction, im stack.Impairments) error {
	if im.IsZero() {
		return nil
	}
	if e.port != nil {
		return e.port.SetImpairments(dir, im)
	}
	return e.pipe.SetImpairments(dir, im)
}

// findPort returns the switch port of host h on seg.
func findPort(rec *consRecord, h, seg int) *stack.Port {
	for _, e := range rec.ends {
		if e.host == h && e.seg == seg {
			return e.port
		}
	}
	return nil
}

// writeFrame writes a hand-made Ethernet frame into a switch port, as a
// NIC would.
func writeFrame(p *stack.Port, frame []byte) {
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(slices.Clone(frame))})
	if len(frame) >= header.EthernetMinimumSize {
		pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	}
	var list gstack.PacketBufferList
	list.PushBack(pkt)
	p.WritePackets(list)
	list.Reset()
}

// buildInjected makes the frame of one injection, with id in its payload.
func buildInjected(s *consScenario, src tcpip.LinkAddress, to *stack.Port, in consInject, id dgID) []byte {
	dstMAC := to.LinkAddress()
	if in.bcastMAC {
		dstMAC = header.EthernetBroadcastAddress
	}
	payload := make([]byte, in.size)
	putConsPayload(payload, 1, id)
	srcIP := netip.AddrFrom4([4]byte{10, byte(in.seg + 1), 0, 240})
	dstIP := segAddr(in.seg, in.host)
	const etherIPv4 = 0x0800
	ip := udp4Packet(srcIP, dstIP, 5353, in.port, uint16(id.seq)|0x8000, payload)
	switch in.kind {
	case injBadIPSum:
		ip[10] ^= 0x01
	case injBadUDPSum:
		ip[header.IPv4MinimumSize+6] ^= 0x10
		if ip[header.IPv4MinimumSize+6] == 0 && ip[header.IPv4MinimumSize+7] == 0 {
			ip[header.IPv4MinimumSize+7] = 1
		}
	case injTruncated:
		header.IPv4(ip).SetTotalLength(uint16(len(ip) + 100))
		setIPv4Checksum(ip)
	case injBadVersion:
		ip[0] = 0x55
		setIPv4Checksum(ip)
	case injUnknownEtherType:
		return ethFrame(dstMAC, src, 0x88b5, ip)
	case injWrongDstIP:
		header.IPv4(ip).SetDestinationAddress(tcpip.AddrFrom4(segAddr(in.seg, 200).As4()))
		setIPv4Checksum(ip)
		setUDP4Checksum(ip)
	case injWrongDstMAC:
		dstMAC = tcpip.LinkAddress([]byte{0x02, 0xee, 0xee, 0, 0, byte(id.seq)})
	case injRunt:
		return ethFrame(dstMAC, src, etherIPv4, nil)[:10]
	case injBadUDPLen:
		u := header.UDP(ip[header.IPv4MinimumSize:])
		u.SetLength(u.Length() + 64)
		setUDP4Checksum(ip)
	case injUnknownProto:
		ip[9] = 253
		setIPv4Checksum(ip)
	case injLoneFragment:
		// The first fragment of a datagram whose rest never comes.
		cut := header.IPv4MinimumSize + ((len(ip)-header.IPv4MinimumSize)/2)&^7
		if cut <= header.IPv4MinimumSize+header.UDPMinimumSize+consHdrSize {
			cut = header.IPv4MinimumSize + (header.UDPMinimumSize+consHdrSize+7)&^7
		}
		if cut >= len(ip) {
			ip = append(ip, make([]byte, 64)...) // payload long enough to cut
			header.IPv4(ip).SetTotalLength(uint16(len(ip)))
			setUDP4Checksum(ip)
		}
		ip = ip[:cut]
		h := header.IPv4(ip)
		h.SetTotalLength(uint16(cut))
		h.SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
		setIPv4Checksum(ip)
	}
	return ethFrame(dstMAC, src, etherIPv4, ip)
}
