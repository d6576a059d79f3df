package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Load test (issue 8): hosts on one jumbo-MTU switch exchange seeded
// datagrams, unicast and broadcast; some receivers are slow (small receive
// buffer plus extra CPU work per datagram). Links deliver synchronously, so
// when every WriteTo has returned each datagram is either in a receive
// buffer or counted by a host's UDP drop counters; receivers then drain.
//
// Wire format: [0] sender id, [1] kind (0 unicast, 1 broadcast), [2:4] zero,
// [4:8] seq, [8:12] size, [12:20] FNV-64a of bytes [0:12] and [20:], then a
// pattern derived from (sender, seq). Sizes are 20..9000 bytes: a datagram
// shorter than the header could not be identified.

const (
	loadHosts   = 8
	loadPort    = 7000
	loadHdr     = 20
	loadMaxSize = 9000
	loadMTU     = 9216 // no fragmentation: a 9000-byte payload is a 9028-byte IP packet
)

const (
	kindUnicast = iota
	kindBroadcast
	kinds
)

func loadHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b[:12])
	h.Write(b[loadHdr:])
	return h.Sum64()
}

func fillDatagram(b []byte, sender, kind int, seq uint32) {
	b[0], b[1], b[2], b[3] = byte(sender), byte(kind), 0, 0
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)))
	x := uint32(sender)<<24 ^ seq*2654435761
	for i := loadHdr; i < len(b); i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	binary.BigEndian.PutUint64(b[12:], loadHash(b))
}

// loadRecv is one receiving socket's tally.
type loadRecv struct {
	delivered [loadHosts][kinds]uint64
	seen      [loadHosts]map[uint32]bool // (sender, seq) already delivered
	corrupt   uint64
	dups      uint64
}

func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(s.Text(), "VmHWM:"))
		}
	}
	return "unknown"
}

func TestLoad(t *testing.T) {
	total := 20000
	if os.Getenv("DGRAMLAB_SOAK") != "" {
		total = 1000000
	}
	start := time.Now()
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "loadsw", MTU: loadMTU})
	// unresolvedTo counts, by destination host, the datagrams senders
	// dropped while ARP had not resolved it yet (a sender's queue for a
	// neighbour holds 212992 bytes, as Linux's): the senders' NIC drop hooks
	// give each one's IP packet.
	var unresolvedTo [loadHosts]atomic.Uint64
	hosts := make([]*stack.Host, loadHosts)
	conns := make([]*stack.UDPConn, loadHosts)
	for i := range hosts {
		h, err := stack.NewHost(stack.HostOptions{Name: "load" + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(i + 1)}), 24)
		nic, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{addr}})
		if err != nil {
			t.Fatal(err)
		}
		nic.AddDropHook(func(packet []byte, dir wire.Direction, reason wire.DropReason) {
			if reason == wire.DropUnresolved && dir == wire.Outbound && len(packet) >= 20 {
				if d := int(packet[19]) - 1; d >= 0 && d < loadHosts {
					unresolvedTo[d].Add(1)
				}
			}
		})
		c, err := h.ListenUDP("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), loadPort))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.SetBroadcast(true); err != nil {
			t.Fatal(err)
		}
		if i >= loadHosts-2 { // slow receivers: tiny buffer
			if err := c.SetReadBuffer(16 << 10); err != nil {
				t.Fatal(err)
			}
		}
		hosts[i], conns[i] = h, c
	}
	before := make([]stack.UDPStats, loadHosts)
	for i, h := range hosts {
		before[i] = h.Stats().UDP
	}

	// Receivers.
	recvs := make([]*loadRecv, loadHosts)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range conns {
		r := &loadRecv{}
		for s := range r.seen {
			r.seen[s] = map[uint32]bool{}
		}
		recvs[i] = r
		readable := make(chan struct{}, 1)
		stop := conns[i].NotifyReadable(func() {
			select {
			case readable <- struct{}{}:
			default:
			}
		})
		slow := i >= loadHosts-2
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stop()
			buf := make([]byte, 65536)
			finishing := false
			for {
				n, _, err := conns[i].TryReadFromUDPAddrPort(buf)
				if errors.Is(err, syscall.EAGAIN) {
					if finishing {
						return
					}
					select {
					case <-readable:
					case <-done:
						finishing = true
					}
					continue
				}
				if err != nil {
					t.Errorf("h%d read: %v", i, err)
					return
				}
				b := buf[:n]
				if slow { // extra CPU work
					for k := 0; k < 8; k++ {
						loadHash(b)
					}
				}
				if n < loadHdr || int(binary.BigEndian.Uint32(b[8:])) != n ||
					b[0] >= loadHosts || b[1] >= kinds ||
					binary.BigEndian.Uint64(b[12:]) != loadHash(b) {
					r.corrupt++
					continue
				}
				s, k, seq := int(b[0]), int(b[1]), binary.BigEndian.Uint32(b[4:])
				if r.seen[s][seq] {
					r.dups++
					continue
				}
				r.seen[s][seq] = true
				r.delivered[s][k]++
			}
		}()
	}

	// Senders: total datagrams split among hosts, each with its own seeded rand.
	var sent [loadHosts][kinds]uint64
	var sentTo [loadHosts][loadHosts]uint64 // unicast, by (sender, destination)
	var sendErrs atomic.Uint64
	var swg sync.WaitGroup
	bcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, 255}), loadPort)
	for i := range conns {
		swg.Add(1)
		go func() {
			defer swg.Done()
			rng := rand.New(rand.NewSource(int64(1000 + i)))
			buf := make([]byte, loadMaxSize)
			for seq := uint32(0); seq < uint32(total/loadHosts); seq++ {
				size := loadHdr + rng.Intn(loadMaxSize-loadHdr+1)
				if rng.Intn(4) == 0 { // favour small datagrams too
					size = loadHdr + rng.Intn(200)
				}
				kind := kindUnicast
				dst := bcast
				d := -1
				if rng.Intn(10) == 0 {
					kind = kindBroadcast
				} else {
					d = rng.Intn(loadHosts - 1)
					if d >= i {
						d++
					}
					dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(d + 1)}), loadPort)
				}
				b := buf[:size]
				fillDatagram(b, i, kind, seq)
				if _, err := conns[i].WriteToUDPAddrPort(b, dst); err != nil {
					sendErrs.Add(1)
					t.Errorf("h%d send: %v", i, err)
					continue
				}
				sent[i][kind]++
				if d >= 0 {
					sentTo[i][d]++
				}
			}
		}()
	}
	swg.Wait()
	close(done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wdone := make(chan struct{})
	go func() { wg.Wait(); close(wdone) }()
	select {
	case <-wdone:
	case <-ctx.Done():
		t.Fatal("receivers did not drain")
	}
	elapsed := time.Since(start)

	// Accounting. Delivered per (sender, kind) summed over receiving sockets.
	// Broadcasts: measure whether the sender's own socket gets its own.
	selfLoop := false
	for i, r := range recvs {
		if r.delivered[i][kindBroadcast] > 0 {
			selfLoop = true
		}
	}
	var sentAll, delAll, bufFull, noListener, other, unresolved uint64
	for h := range hosts {
		st := hosts[h].Stats().UDP
		bf := st.BufferFull - before[h].BufferFull
		nl := st.NoListener - before[h].NoListener
		oth := (st.Checksum - before[h].Checksum) + (st.Malformed - before[h].Malformed) +
			(st.SourceFiltered - before[h].SourceFiltered)
		unres := unresolvedTo[h].Load()
		// Datagrams that arrived at host h's socket port.
		var arrive, del uint64
		for s := range hosts {
			del += recvs[h].delivered[s][kindUnicast] + recvs[h].delivered[s][kindBroadcast]
			arrive += sentTo[s][h]
			if s != h || selfLoop {
				arrive += sent[s][kindBroadcast]
			}
		}
		if arrive != del+bf+nl+oth+unres {
			t.Errorf("h%d: %d arrivals expected, delivered+dropped = %d (ledger %v, unresolved at the senders %d)", h, arrive, del+bf+nl+oth+unres, hosts[h].Stats().Drops, unres)
		}
		// Observed: Received counts every datagram that reached the conn,
		// including the ones then dropped as buffer-full.
		if recvd := st.Received - before[h].Received; recvd != del+bf {
			t.Errorf("h%d: stack Received %d != delivered %d + buffer-full %d", h, recvd, del, bf)
		}
		if recvs[h].corrupt != 0 || recvs[h].dups != 0 {
			t.Errorf("h%d: %d corrupt, %d duplicate datagrams", h, recvs[h].corrupt, recvs[h].dups)
		}
		t.Logf("h%d: expected %d, delivered %d, buffer-full %d, no-listener %d, other %d, unresolved at the senders %d", h, arrive, del, bf, nl, oth, unres)
		delAll += del
		unresolved += unres
		bufFull += bf
		noListener += nl
		other += oth
	}
	// Expected arrivals overall: unicast once, broadcast once per receiving socket.
	var uni, bc uint64
	for s := range hosts {
		uni += sent[s][kindUnicast]
		bc += sent[s][kindBroadcast]
	}
	per := uint64(loadHosts - 1)
	if selfLoop {
		per = loadHosts
	}
	expected := uni + bc*per
	sentAll = uni + bc
	t.Logf("sent %d (unicast %d, broadcast %d; self-loop of broadcast: %v), expected arrivals %d",
		sentAll, uni, bc, selfLoop, expected)
	t.Logf("delivered %d + buffer-full %d + no-listener %d + other %d + unresolved %d = %d",
		delAll, bufFull, noListener, other, unresolved, delAll+bufFull+noListener+other+unresolved)
	// Per (sender, kind): sent, and deliveries over all receiving sockets.
	// Buffer-full drops are counted per receiving host only (the stack does
	// not say whose datagram it dropped), so they are checked per host above.
	for snd := range hosts {
		for k, name := range []string{"unicast", "broadcast"} {
			var d uint64
			for _, r := range recvs {
				d += r.delivered[snd][k]
			}
			t.Logf("sender h%d %-9s sent %7d delivered %8d", snd, name, sent[snd][k], d)
		}
	}
	t.Logf("send errors %d, wall %v, peak RSS %s", sendErrs.Load(), elapsed, peakRSS())
	if delAll+bufFull+noListener+other+unresolved != expected {
		t.Errorf("accounting mismatch: expected %d arrivals, got %d", expected, delAll+bufFull+noListener+other+unresolved)
	}
	if noListener != 0 || other != 0 {
		t.Errorf("unexpected drops: no-listener %d, other %d", noListener, other)
	}
}
