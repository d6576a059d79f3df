package stack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/dgramlab/dgramlab/wire"
)

// Packet builders. The headers are written by hand here, not with the
// rebuild helpers under test, so that a reassembled packet is compared with
// an independent construction of the unfragmented one.

var (
	reasmSrc4 = netip.MustParseAddr("10.0.0.1")
	reasmDst4 = netip.MustParseAddr("10.0.0.2")
	reasmSrc6 = netip.MustParseAddr("fd00::1")
	reasmDst6 = netip.MustParseAddr("fd00::2")
)

// reasmUpper is the upper-layer protocol of the test datagrams (UDP).
const reasmUpper = 17

// reasmKey returns the key of a test datagram. IPv6 datagrams with an odd ID
// carry a Hop-by-Hop Options header in their unfragmentable part.
func reasmKey(v6 bool, nic tcpip.NICID, id uint32) fragKey {
	if v6 {
		return fragKey{nic: nic, src: reasmSrc6, dst: reasmDst6, id: id}
	}
	return fragKey{nic: nic, src: reasmSrc4, dst: reasmDst4, proto: reasmUpper, id: id & 0xffff}
}

// reasmIPv4Header returns an IPv4 header of hdrLen bytes (options are NOPs).
func reasmIPv4Header(key fragKey, hdrLen, totalLen, offset int, more bool) []byte {
	h := make([]byte, hdrLen)
	h[0] = 0x40 | byte(hdrLen/4)
	binary.BigEndian.PutUint16(h[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(h[4:], uint16(key.id))
	fo := uint16(offset / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	h[8], h[9] = 64, key.proto
	s, d := key.src.As4(), key.dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	for i := 20; i < hdrLen; i++ {
		h[i] = 1
	}
	binary.BigEndian.PutUint16(h[10:], ^header.IPv4(h).CalculateChecksum())
	return h
}

// reasmIPv6Unfrag returns key's IPv6 unfragmentable part whose last Next
// Header is next, its payload length left for the caller to set.
func reasmIPv6Unfrag(key fragKey, next uint8) []byte {
	n := 40
	if key.id%2 == 1 {
		n = 48
	}
	h := make([]byte, n)
	h[0] = 0x60
	h[6], h[7] = next, 64
	s, d := key.src.As16(), key.dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	if n == 48 {
		h[6] = 0                                   // Hop-by-Hop
		h[40], h[41], h[42], h[43] = next, 0, 1, 4 // PadN, 4 bytes
	}
	return h
}

// reasmFrag returns a fragment of key's datagram carrying data at offset.
func reasmFrag(v6 bool, key fragKey, offset int, more bool, data []byte) fragment {
	if !v6 {
		pkt := append(reasmIPv4Header(key, 20, 20+len(data), offset, more), data...)
		return fragment{packet: pkt, hdrLen: 20, dataStart: 20, dataEnd: len(pkt), offset: offset, more: more}
	}
	unfrag := reasmIPv6Unfrag(key, uint8(header.IPv6FragmentExtHdrIdentifier))
	fh := make([]byte, 8)
	fh[0] = reasmUpper
	fo := uint16(offset)
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], fo)
	binary.BigEndian.PutUint32(fh[4:], key.id)
	pkt := slices.Concat(unfrag, fh, data)
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
	return fragment{packet: pkt, hdrLen: len(unfrag), dataStart: len(unfrag) + 8, dataEnd: len(pkt),
		offset: offset, more: more, nextHeader: reasmUpper}
}

// reasmWhole returns key's datagram with payload, as one packet.
func reasmWhole(v6 bool, key fragKey, payload []byte) []byte {
	if !v6 {
		return append(reasmIPv4Header(key, 20, 20+len(payload), 0, false), payload...)
	}
	unfrag := reasmIPv6Unfrag(key, reasmUpper)
	binary.BigEndian.PutUint16(unfrag[4:], uint16(len(unfrag)-40+len(payload)))
	return append(unfrag, payload...)
}

// reasmPiece is a part of a datagram's payload.
type reasmPiece struct {
	offset int
	data   []byte
	more   bool
}

// reasmSplit cuts payload into pieces of size bytes (a multiple of 8),
// the last one shorter.
func reasmSplit(payload []byte, size int) []reasmPiece {
	var ps []reasmPiece
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		ps = append(ps, reasmPiece{offset: off, data: payload[off:end], more: end < len(payload)})
	}
	return ps
}

func reasmPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// reasmHarness runs a reassembler on a VirtualClock and records its drops.
type reasmHarness struct {
	r     *reassembler
	clock *VirtualClock
	mu    sync.Mutex
	drops []reasmDrop
}

// reasmDrop is one call of the drop callback, its packets copied.
type reasmDrop struct {
	reason reasmReason
	frags  []fragmentRecord
}

func (d reasmDrop) String() string {
	var offs []string
	for _, f := range d.frags {
		offs = append(offs, fmt.Sprintf("%d/%d", f.key.id, f.offset))
	}
	return d.reason.String() + "[" + strings.Join(offs, " ") + "]"
}

func newReasmHarness(tb testing.TB, opts reasmOptions) *reasmHarness {
	tb.Helper()
	h := &reasmHarness{clock: NewVirtualClock(time.Time{})}
	if opts.Clock == nil {
		opts.Clock = h.clock
	}
	opts.Drop = func(frags []fragmentRecord, reason reasmReason) {
		d := reasmDrop{reason: reason}
		for _, f := range frags {
			f.packet = bytes.Clone(f.packet)
			d.frags = append(d.frags, f)
		}
		h.mu.Lock()
		h.drops = append(h.drops, d)
		h.mu.Unlock()
	}
	h.r = newReassembler(opts)
	tb.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			h.r.close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Fatalf("close did not return (waiting for a timer it did not stop?)")
		}
		if _, ok := h.clock.Next(); ok {
			tb.Errorf("a timer is pending after close")
		}
	})
	return h
}

// take returns the drops recorded since the last call.
func (h *reasmHarness) take() []reasmDrop {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.drops
	h.drops = nil
	return d
}

// add adds a piece of key's datagram.
func (h *reasmHarness) add(tb testing.TB, key fragKey, p reasmPiece) ([]byte, reasmReason) {
	tb.Helper()
	return h.r.add(key, reasmFrag(h.r.v6, key, p.offset, p.more, p.data))
}

// wantDrops checks the drops recorded since the last take: one call per
// want, "reason[id/offset ...]" as reasmDrop.String prints it.
func (h *reasmHarness) wantDrops(tb testing.TB, want ...string) {
	tb.Helper()
	got := h.take()
	var gs []string
	for _, d := range got {
		gs = append(gs, d.String())
	}
	if !slices.Equal(gs, want) {
		tb.Errorf("drops = %q, want %q", gs, want)
	}
}

func TestReassemblerInOrderAndReverse(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, id := range []uint32{2, 3} { // IPv6: 3 has a Hop-by-Hop header
			for _, reverse := range []bool{false, true} {
				t.Run(fmt.Sprintf("v6=%v/id=%d/reverse=%v", v6, id, reverse), func(t *testing.T) {
					h := newReasmHarness(t, reasmOptions{IPv6: v6})
					key := reasmKey(v6, 1, id)
					payload := reasmPattern(3000, 1)
					ps := reasmSplit(payload, 1232)
					if reverse {
						slices.Reverse(ps)
					}
					var whole []byte
					for i, p := range ps {
						got, why := h.add(t, key, p)
						if why != 0 || (got != nil) != (i == len(ps)-1) {
							t.Fatalf("add(piece %d) = %d bytes, %v; want whole only at the last", i, len(got), why)
						}
						whole = got
					}
					if want := reasmWhole(v6, key, payload); !bytes.Equal(whole, want) {
						t.Errorf("whole = %x\nwant    %x", whole[:60], want[:60])
					}
					if !v6 && !header.IPv4(whole).IsChecksumValid() {
						t.Errorf("whole's IPv4 checksum is not valid")
					}
					if c := h.r.counters(); c.Reassembled != 1 || c.Fragments != 3 || c.Held != 0 || c.Mem != 0 {
						t.Errorf("counters = %+v, want 1 reassembled of 3 fragments, none held", c)
					}
					h.wantDrops(t)
				})
			}
		}
	}
}

func TestReassemblerDuplicateKeepsDatagram(t *testing.T) {
	h := newReasmHarness(t, reasmOptions{})
	key := reasmKey(false, 1, 7)
	payload := reasmPattern(100, 2)
	ps := reasmSplit(payload, 40)
	for _, p := range []reasmPiece{ps[1], ps[1], ps[2], ps[2], ps[0]} {
		whole, why := h.add(t, key, p)
		if why == reasmDuplicate {
			continue
		}
		if why != 0 {
			t.Fatalf("add(%d) = %v", p.offset, why)
		}
		if whole != nil && !bytes.Equal(whole, reasmWhole(false, key, payload)) {
			t.Errorf("whole = %x, want the datagram", whole)
		}
	}
	h.wantDrops(t, "duplicate[7/40]", "duplicate[7/80]")
	if c := h.r.counters(); c.Reassembled != 1 || c.Dropped[reasmDuplicate] != 2 {
		t.Errorf("counters = %+v, want 1 reassembled, 2 duplicates", c)
	}
}

func TestReassemblerOverlap(t *testing.T) {
	payload := reasmPattern(64, 3)
	flipped := reasmPattern(64, 0x55)
	tests := []struct {
		name string
		held []reasmPiece
		add  reasmPiece
		want string
	}{
		{"partial", []reasmPiece{{0, payload[:24], true}}, reasmPiece{16, payload[16:40], true}, "overlap[9/0 9/16]"},
		{"inside", []reasmPiece{{0, payload[:48], true}}, reasmPiece{8, payload[8:16], true}, "overlap[9/0 9/8]"},
		{"covering", []reasmPiece{{8, payload[8:16], true}}, reasmPiece{0, payload[:32], true}, "overlap[9/8 9/0]"},
		{"same range other bytes", []reasmPiece{{8, payload[8:16], true}}, reasmPiece{8, flipped[8:16], true}, "overlap[9/8 9/8]"},
		{"same offset longer", []reasmPiece{{8, payload[8:16], true}}, reasmPiece{8, payload[8:24], true}, "overlap[9/8 9/8]"},
		{"next one", []reasmPiece{{0, payload[:8], true}, {16, payload[16:24], true}}, reasmPiece{8, payload[8:24], true}, "overlap[9/0 9/16 9/8]"},
		{"last", []reasmPiece{{40, payload[40:], false}}, reasmPiece{32, payload[32:48], true}, "overlap[9/40 9/32]"},
	}
	for _, v6 := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v6=%v/%s", v6, tt.name), func(t *testing.T) {
				h := newReasmHarness(t, reasmOptions{IPv6: v6})
				key := reasmKey(v6, 1, 9)
				for _, p := range tt.held {
					if _, why := h.add(t, key, p); why != 0 {
						t.Fatalf("add(%d) = %v", p.offset, why)
					}
				}
				if _, why := h.add(t, key, tt.add); why != reasmOverlap {
					t.Errorf("add(overlapping) = %v, want %v", why, reasmOverlap)
				}
				h.wantDrops(t, tt.want)
				// The key starts afresh.
				for _, p := range reasmSplit(payload, 16) {
					if _, why := h.add(t, key, p); why != 0 {
						t.Fatalf("add(%d) after the overlap = %v", p.offset, why)
					}
				}
				if c := h.r.counters(); c.Reassembled != 1 || c.Held != 0 {
					t.Errorf("counters = %+v, want the datagram sent again reassembled", c)
				}
			})
		}
	}
}

func TestReassemblerInconsistent(t *testing.T) {
	payload := reasmPattern(64, 4)
	tests := []struct {
		name string
		held []reasmPiece
		add  reasmPiece
		want string
	}{
		{"second last ends later", []reasmPiece{{32, payload[32:48], false}}, reasmPiece{48, payload[48:], false}, "inconsistent[5/32 5/48]"},
		{"second last ends sooner", []reasmPiece{{32, payload[32:], false}}, reasmPiece{16, payload[16:24], false}, "inconsistent[5/32 5/16]"},
		{"last before held data", []reasmPiece{{48, payload[48:56], true}}, reasmPiece{16, payload[16:32], false}, "inconsistent[5/48 5/16]"},
		{"data past the end", []reasmPiece{{8, payload[8:16], false}}, reasmPiece{16, payload[16:32], true}, "inconsistent[5/8 5/16]"},
		{"same range, more flag differs", []reasmPiece{{16, payload[16:32], true}}, reasmPiece{16, payload[16:32], false}, "inconsistent[5/16 5/16]"},
		{"non-last length not a multiple of 8 (alone)", []reasmPiece{{0, payload[:16], true}}, reasmPiece{16, payload[16:21], true}, "inconsistent[5/16]"},
		{"empty (alone)", []reasmPiece{{0, payload[:16], true}}, reasmPiece{16, nil, false}, "inconsistent[5/16]"},
	}
	for _, v6 := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v6=%v/%s", v6, tt.name), func(t *testing.T) {
				h := newReasmHarness(t, reasmOptions{IPv6: v6})
				key := reasmKey(v6, 1, 5)
				for _, p := range tt.held {
					if _, why := h.add(t, key, p); why != 0 {
						t.Fatalf("add(%d) = %v", p.offset, why)
					}
				}
				if _, why := h.add(t, key, tt.add); why != reasmInconsistent {
					t.Errorf("add(inconsistent) = %v, want %v", why, reasmInconsistent)
				}
				h.wantDrops(t, tt.want)
				alone := strings.HasSuffix(tt.name, "(alone)")
				if c := h.r.counters(); (c.Held == len(tt.held)) != alone {
					t.Errorf("held = %d after the drop, want the datagram kept: %v", c.Held, alone)
				}
			})
		}
	}
}

func TestReassemblerTooBig(t *testing.T) {
	t.Run("v4 past 65535", func(t *testing.T) {
		h := newReasmHarness(t, reasmOptions{})
		key := reasmKey(false, 1, 1)
		if _, why := h.add(t, key, reasmPiece{0, reasmPattern(8, 0), true}); why != 0 {
			t.Fatal(why)
		}
		// 20 + 65528 + 16 > 65535.
		if _, why := h.add(t, key, reasmPiece{reasmMaxOffset, reasmPattern(16, 0), false}); why != reasmTooBig {
			t.Errorf("add(end 65544) = %v, want %v", why, reasmTooBig)
		}
		h.wantDrops(t, "too-big[1/0 1/65528]")
	})
	t.Run("v4 header options arrive last", func(t *testing.T) {
		h := newReasmHarness(t, reasmOptions{})
		key := reasmKey(false, 1, 1)
		// 20 + 65512 fits; 24 + 65512 does not.
		if _, why := h.add(t, key, reasmPiece{65504, reasmPattern(8, 0), false}); why != 0 {
			t.Fatal(why)
		}
		first := reasmFrag(false, key, 0, true, reasmPattern(8, 0))
		first.packet = append(reasmIPv4Header(key, 24, 32, 0, true), first.packet[20:]...)
		first.hdrLen, first.dataStart, first.dataEnd = 24, 24, 32
		if _, why := h.r.add(key, first); why != reasmTooBig {
			t.Errorf("add(first, 24-byte header) = %v, want %v", why, reasmTooBig)
		}
		h.wantDrops(t, "too-big[1/65504 1/0]")
	})
	t.Run("v6 payload past 65535", func(t *testing.T) {
		h := newReasmHarness(t, reasmOptions{IPv6: true})
		key := reasmKey(true, 1, 2) // no extension header
		// 65528 + 8 = 65536 bytes of payload.
		if _, why := h.add(t, key, reasmPiece{reasmMaxOffset, reasmPattern(8, 0), false}); why != reasmTooBig {
			t.Errorf("add(end 65536) = %v, want %v", why, reasmTooBig)
		}
		if _, why := h.add(t, key, reasmPiece{reasmMaxOffset, reasmPattern(7, 0), false}); why != 0 {
			t.Errorf("add(end 65535) = %v, want held", why)
		}
		h.wantDrops(t, "too-big[2/65528]")
	})
}

func TestReassemblerTimeout(t *testing.T) {
	for _, tt := range []struct {
		v6      bool
		timeout time.Duration
	}{{false, 30 * time.Second}, {true, 60 * time.Second}} {
		t.Run(fmt.Sprintf("v6=%v", tt.v6), func(t *testing.T) {
			h := newReasmHarness(t, reasmOptions{IPv6: tt.v6})
			a, b := reasmKey(tt.v6, 1, 10), reasmKey(tt.v6, 1, 12)
			h.add(t, a, reasmPiece{0, reasmPattern(16, 0), true})
			h.clock.Advance(tt.timeout / 2)
			h.add(t, b, reasmPiece{8, reasmPattern(8, 0), true})
			h.add(t, a, reasmPiece{16, reasmPattern(8, 0), true})
			h.clock.Advance(tt.timeout/2 - time.Nanosecond)
			h.wantDrops(t)
			h.clock.Advance(time.Nanosecond)
			h.wantDrops(t, "timeout[10/0 10/16]")
			h.clock.Advance(tt.timeout / 2)
			h.wantDrops(t, "timeout[12/8]")
			if _, ok := h.clock.Next(); ok {
				t.Errorf("a timer is pending with nothing held")
			}
		})
	}
	t.Run("late timer", func(t *testing.T) {
		// A timer that fires late (a busy host) does not let an expired
		// datagram complete: add expires it first.
		clock := NewVirtualClock(time.Time{})
		h := newReasmHarness(t, reasmOptions{Timeout: time.Second, Clock: reasmLateClock{clock}})
		key := reasmKey(false, 1, 10)
		h.add(t, key, reasmPiece{0, reasmPattern(8, 0), true})
		clock.Advance(time.Second)
		h.wantDrops(t)
		if whole, why := h.add(t, key, reasmPiece{8, reasmPattern(8, 0), false}); whole != nil || why != 0 {
			t.Errorf("add(last, after the timeout) = %d bytes, %v; want held anew", len(whole), why)
		}
		h.wantDrops(t, "timeout[10/0]")
	})
}

// reasmLateClock is a clock whose timers fire an hour late.
type reasmLateClock struct{ *VirtualClock }

func (c reasmLateClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return c.VirtualClock.AfterFunc(d+time.Hour, f)
}

func TestReassemblerEviction(t *testing.T) {
	charge := 20 + 1000 + reasmFragOverhead
	h := newReasmHarness(t, reasmOptions{HighThresh: 4*charge + 1, LowThresh: 2 * charge})
	for id := range uint32(5) {
		_, why := h.add(t, reasmKey(false, 1, id), reasmPiece{0, reasmPattern(1000, 0), true})
		if why != 0 {
			t.Fatalf("add(%d) = %v", id, why)
		}
	}
	h.wantDrops(t, "eviction[0/0]", "eviction[1/0]", "eviction[2/0]")
	if c := h.r.counters(); c.Held != 2 || c.Mem != 2*charge {
		t.Errorf("counters = %+v, want 2 held, %d bytes", c, 2*charge)
	}

	t.Run("its own datagram", func(t *testing.T) {
		h := newReasmHarness(t, reasmOptions{HighThresh: 1000})
		key := reasmKey(false, 1, 1)
		if _, why := h.add(t, key, reasmPiece{0, reasmPattern(1000, 0), true}); why != reasmEvicted {
			t.Errorf("add(bigger than HighThresh) = %v, want %v", why, reasmEvicted)
		}
		h.wantDrops(t, "eviction[1/0]")
	})
}

func TestReassemblerMalformed(t *testing.T) {
	tests := []struct {
		name   string
		v6     bool
		modify func(*fragment)
	}{
		{"data past the packet", false, func(f *fragment) { f.dataEnd = len(f.packet) + 1 }},
		{"header past the data", false, func(f *fragment) { f.hdrLen = f.dataStart + 1 }},
		{"negative offset", false, func(f *fragment) { f.offset = -8 }},
		{"offset not a multiple of 8", false, func(f *fragment) { f.offset = 12 }},
		{"offset past 65528", false, func(f *fragment) { f.offset = reasmMaxOffset + 8 }},
		{"short IPv4 header", false, func(f *fragment) { f.offset, f.hdrLen = 0, 16 }},
		{"IPv6 unfragmentable part with an unknown header", true, func(f *fragment) { f.packet[6] = 99 }},
		{"IPv6 unfragmentable part cut short", true, func(f *fragment) { f.hdrLen = 44 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newReasmHarness(t, reasmOptions{IPv6: tt.v6})
			key := reasmKey(tt.v6, 1, 3)
			f := reasmFrag(tt.v6, key, 0, true, reasmPattern(16, 0))
			tt.modify(&f)
			if _, why := h.r.add(key, f); why != reasmMalformed {
				t.Errorf("add(%s) = %v, want %v", tt.name, why, reasmMalformed)
			}
			if d := h.take(); len(d) != 1 || d[0].reason != reasmMalformed || len(d[0].frags) != 1 || !bytes.Equal(d[0].frags[0].packet, f.packet) {
				t.Errorf("drops = %v, want the packet alone, malformed", d)
			}
		})
	}
}

func TestReassemblerAtomicFragment(t *testing.T) {
	h := newReasmHarness(t, reasmOptions{IPv6: true})
	key := reasmKey(true, 1, 3)
	h.add(t, key, reasmPiece{8, reasmPattern(8, 0), true})
	payload := reasmPattern(40, 1)
	whole, why := h.add(t, key, reasmPiece{0, payload, false})
	if why != 0 || !bytes.Equal(whole, reasmWhole(true, key, payload)) {
		t.Errorf("add(atomic) = %x, %v; want the packet without its Fragment header", whole, why)
	}
	if c := h.r.counters(); c.Held != 1 {
		t.Errorf("held = %d, want the pending datagram with its key untouched", c.Held)
	}
	h.wantDrops(t)
}

// In a synctest bubble, a close that waited for a timer it did not stop
// fails the test as a deadlock instead of hanging it.
func TestReassemblerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newReasmHarness(t, reasmOptions{})
		h.add(t, reasmKey(false, 1, 1), reasmPiece{0, reasmPattern(8, 0), true})
		h.add(t, reasmKey(false, 1, 2), reasmPiece{8, reasmPattern(8, 0), true})
		h.add(t, reasmKey(false, 1, 2), reasmPiece{24, reasmPattern(8, 0), false})
		h.r.close()
		h.wantDrops(t, "host-closed[1/0]", "host-closed[2/8 2/24]")
		if _, ok := h.clock.Next(); ok {
			t.Errorf("a timer is still pending after close")
		}
		if _, why := h.add(t, reasmKey(false, 1, 1), reasmPiece{8, reasmPattern(8, 0), false}); why != reasmHostClosed {
			t.Errorf("add after close = %v, want %v", why, reasmHostClosed)
		}
		h.wantDrops(t, "host-closed[1/8]")
		h.r.close()
		if c := h.r.counters(); c.Held != 0 || c.Mem != 0 || c.Dropped[reasmHostClosed] != 4 {
			t.Errorf("counters = %+v, want 4 host-closed, nothing held", c)
		}
	})
}

func TestReasmReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := reasmReason(1); int(r) < numReasmReasons; r++ {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "reason(") || seen[s] {
			t.Errorf("reasmReason(%d).String() = %q, want a name of its own", r, s)
		}
		seen[s] = true
	}
	if got := reasmReason(200).String(); got != "reason(200)" {
		t.Errorf("reasmReason(200).String() = %q, want reason(200)", got)
	}
	if got := fmt.Sprint(reasmOverlap); got != "overlap" {
		t.Errorf("fmt.Sprint(reasmOverlap) = %q, want overlap", got)
	}
	for r, want := range map[reasmReason]wire.DropReason{
		reasmTimeout: wire.DropReassembly, reasmDuplicate: wire.DropReassembly,
		reasmMalformed: wire.DropBadHeader, reasmHostClosed: wire.DropHostClosed,
	} {
		if got := r.wireReason(); got != want {
			t.Errorf("%v.wireReason() = %v, want %v", r, got, want)
		}
	}
}

func TestReassemblerRebuildHelpers(t *testing.T) {
	key4, key6 := reasmKey(false, 1, 1), reasmKey(true, 1, 3)
	payload := reasmPattern(100, 9)
	// A first fragment's header with Don't Fragment (kept) and 8 bytes of
	// options.
	hdr := reasmIPv4Header(key4, 28, 48, 0, true)
	hdr[6] |= 0x40
	got := rebuildIPv4(hdr, payload)
	h := header.IPv4(got)
	if h.HeaderLength() != 28 || h.TotalLength() != 128 || h.Flags() != header.IPv4FlagDontFragment || h.FragmentOffset() != 0 || !h.IsChecksumValid() || !bytes.Equal(h.Payload(), payload) {
		t.Errorf("rebuildIPv4 = %x, want 28-byte header, length 128, DF only, valid checksum", got)
	}
	f := reasmFrag(true, key6, 0, true, payload)
	if got, want := rebuildIPv6(f.packet[:f.hdrLen], reasmUpper, payload), reasmWhole(true, key6, payload); !bytes.Equal(got, want) {
		t.Errorf("rebuildIPv6 = %x\nwant          %x", got, want)
	}
	for _, bad := range []struct {
		name string
		got  []byte
	}{
		{"rebuildIPv4(short header)", rebuildIPv4(hdr[:16], payload)},
		{"rebuildIPv4(header of 22 bytes)", rebuildIPv4(append(hdr[:20:20], 1, 1), payload)},
		{"rebuildIPv4(too big)", rebuildIPv4(hdr, make([]byte, 65535-27))},
		{"rebuildIPv6(short)", rebuildIPv6(f.packet[:39], reasmUpper, payload)},
		{"rebuildIPv6(too big)", rebuildIPv6(f.packet[:f.hdrLen], reasmUpper, make([]byte, 65535-7))},
	} {
		if bad.got != nil {
			t.Errorf("%s = %d bytes, want nil", bad.name, len(bad.got))
		}
	}
}
