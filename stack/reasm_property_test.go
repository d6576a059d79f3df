// The reassembler conservation harness: its property test over random streams and the fuzz test.

package stack

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// reasmConservation drives a reassembler and checks, on every add, that each
// fragment ends exactly once: in a returned datagram (whose fragments must
// tile it and rebuild it exactly) or in a drop record (with its bytes as
// sent). Drops must be reported on the test's goroutine (a VirtualClock).
type reasmConservation struct {
	tb       testing.TB
	r        *reassembler
	clock    *VirtualClock
	mu       sync.Mutex
	serial   uint32
	pending  map[fragKey]map[uint32]*reasmSent
	npending int
	adds     uint64
	dropped  map[uint32]reasmReason
	env      map[fragKey]bool // timed out or evicted
	done     map[fragKey]int  // datagrams returned
	bad      map[fragKey]bool // returned with a fragment that was not correct
	payloads map[fragKey][]byte
}

// reasmSent is a fragment given to add, as it was then.
type reasmSent struct {
	key     fragKey
	f       fragment
	serial  uint32
	correct bool   // its bytes, offset and more flag are the datagram's
	packet  []byte // a copy
}

func newReasmConservation(tb testing.TB, opts reasmOptions) *reasmConservation {
	c := &reasmConservation{
		tb: tb, clock: NewVirtualClock(time.Time{}),
		pending: map[fragKey]map[uint32]*reasmSent{}, dropped: map[uint32]reasmReason{},
		env: map[fragKey]bool{}, done: map[fragKey]int{}, bad: map[fragKey]bool{}, payloads: map[fragKey][]byte{},
	}
	opts.Clock, opts.Drop = c.clock, c.onDrop
	c.r = newReassembler(opts)
	return c
}

// The serial of each fragment travels in 4 bytes after its data, like link
// padding: the reassembler must keep them in records and out of datagrams.
func reasmSerial(packet []byte) uint32 { return binary.BigEndian.Uint32(packet[len(packet)-4:]) }

func (c *reasmConservation) onDrop(frags []fragmentRecord, reason reasmReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if alone := reason == reasmDuplicate || reason == reasmMalformed; alone && len(frags) != 1 {
		c.tb.Errorf("%v dropped %d fragments at once, want 1", reason, len(frags))
	}
	for _, rec := range frags {
		s := reasmSerial(rec.packet)
		sf := c.pending[rec.key][s]
		if sf == nil {
			c.tb.Errorf("%v: fragment %d (key %v, offset %d) reported but not pending (reported twice?)", reason, s, rec.key, rec.offset)
			continue
		}
		if !bytes.Equal(rec.packet, sf.packet) || rec.offset != sf.f.offset || rec.more != sf.f.more {
			c.tb.Errorf("%v: fragment %d reported as offset %d more %v %x, sent as offset %d more %v %x",
				reason, s, rec.offset, rec.more, rec.packet, sf.f.offset, sf.f.more, sf.packet)
		}
		delete(c.pending[rec.key], s)
		c.npending--
		c.dropped[s] = reason
		if reason == reasmTimeout || reason == reasmEvicted {
			c.env[rec.key] = true
		}
	}
}

// add adds f to key's datagram and checks the outcome.
func (c *reasmConservation) add(key fragKey, f fragment, correct bool) {
	c.tb.Helper()
	c.mu.Lock()
	c.serial++
	c.adds++
	s := c.serial
	f.packet = binary.BigEndian.AppendUint32(slices.Clip(f.packet), s)
	sf := &reasmSent{key: key, f: f, serial: s, correct: correct, packet: bytes.Clone(f.packet)}
	if c.pending[key] == nil {
		c.pending[key] = map[uint32]*reasmSent{}
	}
	c.pending[key][s] = sf
	c.npending++
	c.mu.Unlock()

	before := c.r.counters()
	whole, why := c.r.add(key, f)
	after := c.r.counters()
	for i := range f.packet { // the caller's buffer is the caller's again
		f.packet[i] ^= 0xff
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	_, held := c.pending[key][s]
	switch {
	case why != 0:
		if whole != nil || c.dropped[s] != why {
			c.tb.Errorf("add(%d) = %d bytes, %v; drop reported: %v", s, len(whole), why, c.dropped[s])
		}
	case whole != nil:
		var in []*reasmSent
		if f.offset == 0 && !f.more {
			in = []*reasmSent{sf}
			delete(c.pending[key], s)
		} else {
			for _, p := range c.pending[key] {
				in = append(in, p)
			}
			delete(c.pending, key)
		}
		c.npending -= len(in)
		if !held {
			c.tb.Errorf("add(%d) returned a datagram but also dropped the fragment (%v)", s, c.dropped[s])
		}
		if n := after.Fragments - before.Fragments; n != uint64(len(in)) {
			c.tb.Errorf("add(%d) returned a datagram of %d fragments, %d were pending", s, n, len(in))
		}
		c.checkWhole(key, whole, in)
	case !held:
		c.tb.Errorf("add(%d) = nil, nil but the fragment was dropped (%v)", s, c.dropped[s])
	}
	if after.Held != c.npending {
		c.tb.Errorf("after add(%d): %d fragments held, %d pending", s, after.Held, c.npending)
	}
}

// checkWhole checks that the fragments in tile a datagram and that whole
// is it.
func (c *reasmConservation) checkWhole(key fragKey, whole []byte, in []*reasmSent) {
	slices.SortFunc(in, func(a, b *reasmSent) int { return a.f.offset - b.f.offset })
	var payload []byte
	correct := true
	for i, p := range in {
		if p.f.offset != len(payload) || p.f.more == (i == len(in)-1) {
			c.tb.Errorf("datagram %v made of fragments that do not tile it: #%d offset %d more %v at %d", key, i, p.f.offset, p.f.more, len(payload))
			return
		}
		payload = append(payload, p.packet[p.f.dataStart:p.f.dataEnd]...)
		correct = correct && p.correct
	}
	if want := reasmWhole(c.r.v6, key, payload); !bytes.Equal(whole, want) {
		c.tb.Errorf("datagram %v = %x\nwant %x", key, whole, want)
	}
	if orig, ok := c.payloads[key]; ok && correct && !bytes.Equal(payload, orig) {
		c.tb.Errorf("datagram %v made of correct fragments = %x, sent %x", key, payload, orig)
	}
	if !correct {
		c.bad[key] = true
	}
	c.done[key]++
}

// close closes the reassembler and checks that nothing is left.
func (c *reasmConservation) close() {
	c.tb.Helper()
	c.r.close()
	k := c.r.counters()
	var drops uint64
	for _, n := range k.Dropped {
		drops += n
	}
	if c.npending != 0 || k.Held != 0 || k.Mem != 0 || k.Fragments+drops != c.adds {
		c.tb.Errorf("after close: %d pending, counters %+v; want %d added = reassembled + dropped", c.npending, k, c.adds)
	}
	if _, ok := c.clock.Next(); ok {
		c.tb.Errorf("a timer is pending after close")
	}
}

// TestReassemblerConservation runs random fragment streams (reordered,
// duplicated, overlapping, lost, inconsistent, interleaved across
// datagrams and NICs, with timeouts and memory pressure) and checks
// conservation on every add, and that a datagram whose fragments all
// arrived, without overlaps and in time, was reassembled.
func TestReassemblerConservation(t *testing.T) {
	streams := 5000
	if testing.Short() {
		streams = 300
	}
	var total reasmCounters
	for i := range streams {
		c := reasmStream(t, rand.New(rand.NewPCG(0x7ea5, uint64(i))))
		if t.Failed() {
			t.Fatalf("stream %d failed", i)
		}
		total.Reassembled += c.Reassembled
		total.Fragments += c.Fragments
		for r, n := range c.Dropped {
			total.Dropped[r] += n
		}
	}
	// The streams must have exercised every way to drop.
	t.Logf("%d datagrams of %d fragments reassembled, dropped: %v", total.Reassembled, total.Fragments, total.Dropped)
	for r := reasmReason(1); int(r) < numReasmReasons; r++ {
		if total.Dropped[r] == 0 && r != reasmMalformed {
			t.Errorf("no fragment dropped for %v", r)
		}
	}
}

// reasmStream runs one random stream and returns the reassembler's
// counters.
func reasmStream(t *testing.T, rng *rand.Rand) reasmCounters {
	v6 := rng.IntN(2) == 0
	opts := reasmOptions{IPv6: v6}
	if rng.IntN(4) == 0 {
		opts.HighThresh = 2000 + rng.IntN(30000)
		opts.LowThresh = opts.HighThresh/2 + rng.IntN(opts.HighThresh/2)
	}
	if rng.IntN(3) == 0 {
		opts.Timeout = time.Duration(1+rng.IntN(5)) * time.Second
	}
	c := newReasmConservation(t, opts)
	timeout := c.r.timeout

	type op struct {
		key     fragKey
		p       reasmPiece
		correct bool
	}
	var ops []op
	clean := map[fragKey]bool{}
	for j := range 1 + rng.IntN(5) {
		key := reasmKey(v6, tcpip.NICID(1+j%2), uint32(100+j/2))
		size := 1 + rng.IntN(3000)
		if rng.IntN(20) == 0 {
			size = 1 + rng.IntN(20000)
		}
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		c.payloads[key] = payload
		clean[key] = true
		fragSize := 8 * (1 + rng.IntN(185))
		for _, p := range reasmSplit(payload, fragSize) {
			if rng.IntN(20) == 0 {
				clean[key] = false // lost
				continue
			}
			ops = append(ops, op{key, p, true})
			if rng.IntN(10) == 0 {
				ops = append(ops, op{key, p, true}) // duplicated
			}
		}
		if rng.IntN(10) == 0 { // re-fragmented differently: overlaps
			clean[key] = false
			a := 8 * rng.IntN((size+7)/8)
			b := min(size, a+8*(1+rng.IntN(50)))
			data := bytes.Clone(payload[a:b])
			correct := rng.IntN(2) == 0
			if !correct {
				data[0] ^= 0xff
			}
			ops = append(ops, op{key, reasmPiece{a, data, b < size}, correct})
		}
		if rng.IntN(20) == 0 { // a last fragment that ends elsewhere
			clean[key] = false
			a := 8 * rng.IntN((size+7)/8+2)
			ops = append(ops, op{key, reasmPiece{a, reasmPattern(1+rng.IntN(100), 0), false}, false})
		}
		if rng.IntN(30) == 0 { // past 65535
			clean[key] = false
			ops = append(ops, op{key, reasmPiece{reasmMaxOffset, reasmPattern(8+8*rng.IntN(4), 0), false}, false})
		}
	}
	if rng.IntN(2) == 0 {
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	} else {
		for i := 1; i < len(ops); i++ {
			if rng.IntN(3) == 0 {
				ops[i-1], ops[i] = ops[i], ops[i-1]
			}
		}
	}
	for _, o := range ops {
		switch n := rng.IntN(100); {
		case n < 2:
			c.clock.Advance(timeout + time.Duration(rng.Int64N(int64(timeout))))
		case n < 15:
			c.clock.Advance(time.Duration(rng.IntN(200)) * time.Millisecond)
		}
		c.add(o.key, reasmFrag(v6, o.key, o.p.offset, o.p.more, o.p.data), o.correct)
	}
	if rng.IntN(2) == 0 {
		c.clock.Advance(2 * timeout)
	}
	c.close()
	for key, ok := range clean {
		if ok && c.done[key] == 0 && !c.env[key] {
			t.Errorf("datagram %v: every fragment arrived, none timed out or was evicted, not reassembled", key)
		}
		if ok && c.bad[key] {
			t.Errorf("datagram %v: clean, reassembled from a fragment that was not correct", key)
		}
	}
	return c.r.counters()
}

// FuzzReassembler turns bytes into a sequence of adds (and clock moves) on
// a few datagrams and checks for panics and conservation.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0, 0x04, 0, 16, 0, 0x04, 2, 16, 0, 0, 4, 8, 0})
	f.Add([]byte{1, 0x04, 0, 16, 0, 0x04, 0, 16, 0, 0x00, 2, 8, 0, 0xe0, 200, 0, 0})
	f.Add([]byte{3, 0x0c, 1, 200, 1, 0x04, 1, 255, 0xe3, 0x01, 0, 7, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		// Up to 128 operations: longer inputs make executions, and their
		// minimization, slow without reaching more.
		data = data[:min(len(data), 1+4*128)]
		v6 := data[0]&1 != 0
		opts := reasmOptions{IPv6: v6, Timeout: time.Second}
		if data[0]&2 != 0 {
			opts.HighThresh = 500 + int(data[0]>>2)*50
		}
		c := newReasmConservation(t, opts)
		for data = data[1:]; len(data) >= 4; data = data[4:] {
			b := data[:4]
			if b[0]>>5 == 7 {
				c.clock.Advance(time.Duration(b[1]) * 10 * time.Millisecond)
				continue
			}
			key := reasmKey(v6, 1, uint32(b[0]&3))
			more := b[0]&4 != 0
			offset := int(b[1]) * 8
			if b[0]&8 != 0 {
				offset = reasmMaxOffset - offset
			}
			n := int(b[2])
			if more && b[0]&16 == 0 {
				n &^= 7
			}
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte((offset+i)*7) ^ byte(key.id) // same bytes for the same place
			}
			if b[3]&1 != 0 && n > 0 {
				payload[0] ^= 0xff
			}
			fr := reasmFrag(v6, key, offset, more, payload)
			if b[3]&0xe0 == 0xe0 {
				switch b[3] >> 1 & 3 {
				case 0:
					fr.dataEnd = len(fr.packet) + 100
				case 1:
					fr.offset += 4
				case 2:
					fr.hdrLen = fr.dataStart + 1
				case 3:
					fr.offset = -8
				}
			}
			c.add(key, fr, false)
		}
		c.close()
	})
}
