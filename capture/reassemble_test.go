package capture

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

func TestReassembleDuplicates(t *testing.T) {
	spec := udpSpec{ether: true, src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 3000, fragSize: 1480, id: 7}
	fs := spec.frames(t, "h1/eth0", wire.Outbound, epoch) // 3 fragments
	other := spec
	other.payload = 1000 // the same ID, another layout: a new datagram
	other.fragSize = 512
	reused := other.frames(t, "h1/eth0", wire.Outbound, epoch)
	cat := func(parts ...[]Frame) []Frame {
		var out []Frame
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	type want struct {
		fragments, duplicates, size int
		complete                    bool
	}
	for _, tc := range []struct {
		name   string
		frames []Frame
		want   []want
	}{
		{"each fragment twice", cat(fs[:1], fs[:1], fs[1:2], fs[1:2], fs[2:], fs[2:]), []want{{6, 3, 3008, true}}},
		{"the whole datagram twice", cat(fs, fs), []want{{6, 3, 3008, true}}},
		{"out of order, last one twice", cat(fs[2:], fs[:1], fs[2:], fs[1:2]), []want{{4, 1, 3008, true}}},
		{"reused ID, other layout", cat(fs, reused), []want{{3, 0, 3008, true}, {2, 0, 1008, true}}},
		{"reused ID, other layout, then duplicates of it", cat(fs, reused, reused[1:]), []want{{3, 0, 3008, true}, {3, 1, 1008, true}}},
		{"missing middle, first twice", cat(fs[:1], fs[2:], fs[:1]), []want{{3, 1, 3008, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Reassemble(tc.frames)
			var got []want
			for _, d := range ds {
				got = append(got, want{d.Fragments, d.Duplicates, d.Size, d.Complete})
				if d.DstPort != 9000 {
					t.Errorf("datagram %+v lost its ports", d)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Reassemble = %+v, want %d datagrams %+v", ds, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("datagram %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestSummarizeDuplicateFragments reads a pcap in which every frame
// appears twice on its one link, as when the captures of a link's two
// ends are merged into one pcap (editcap -F pcap of a two-tap pcapng).
func TestSummarizeDuplicateFragments(t *testing.T) {
	var twice []Frame
	for _, f := range scenario(t) {
		if f.Link == "h1/eth0" {
			twice = append(twice, f, f)
		}
	}
	s, err := Summarize(bytes.NewReader(writePcap(t, twice)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (FragmentSummary{Frames: 6, Datagrams: 1, Reassembled: 1, Duplicates: 3}); s.Fragments != want {
		t.Errorf("Fragments = %+v, want %+v", s.Fragments, want)
	}
	for _, f := range s.Flows {
		if f.Proto == "udp" && f.SrcPort == 0 && f.DstPort == 0 {
			t.Errorf("flow %+v has no ports: a duplicate fragment was taken for a new datagram", f)
		}
	}
	var text strings.Builder
	s.WriteText(&text)
	if !strings.Contains(text.String(), "fragments: 6 frames, 1 datagrams, 1 reassembled, 3 duplicates") {
		t.Errorf("WriteText does not show the duplicates:\n%s", text.String())
	}
}

// hostileFragments returns n datagrams of 8192 8-byte fragments each, sent
// in an order (even offsets first, then odd ones) that keeps the ranges
// apart until the end.
func hostileFragments(n int) []Frame {
	var out []Frame
	for id := range n {
		for _, odd := range []int{0, 1} {
			for k := odd; k < 8192; k += 2 {
				out = append(out, rawFragment(uint16(id), k*8, 8, k < 8191))
			}
		}
	}
	return out
}

// rawFragment returns a raw-IP IPv4 UDP fragment from ip1 to ip2.
func rawFragment(id uint16, off, n int, more bool) Frame {
	b := make([]byte, 20+n)
	b[0] = 0x45
	b[2], b[3] = byte((20+n)>>8), byte(20+n)
	b[4], b[5] = byte(id>>8), byte(id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	b[6], b[7] = byte(fo>>8), byte(fo)
	b[8], b[9] = 64, 17
	copy(b[12:16], ip1.AsSlice())
	copy(b[16:20], ip2.AsSlice())
	return Frame{Link: "l", LinkType: layers.LinkTypeRaw, Dir: wire.Outbound, Data: b, Len: len(b)}
}

func TestReassembleHostile(t *testing.T) {
	ds := Reassemble(hostileFragments(2))
	if len(ds) != 2 {
		t.Fatalf("Reassemble = %d datagrams, want 2", len(ds))
	}
	for _, d := range ds {
		if !d.Complete || d.Size != 8192*8 || d.Fragments != 8192 || d.Duplicates != 0 {
			t.Errorf("datagram = %+v, want complete, %d bytes in 8192 fragments", d, 8192*8)
		}
	}
}

func BenchmarkReassembleHostile(b *testing.B) {
	fs := hostileFragments(8)
	for b.Loop() {
		Reassemble(fs)
	}
}
