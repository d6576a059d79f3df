package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dgramlab/dgramlab/wire"
)

// readBack is a packet read back from a pcapng stream with pcapgo.
type readBack struct {
	iface    string
	data     []byte
	comments []string
}

// readPcapng reads every packet of b with pcapgo's NgReader, failing the
// test on any error but io.EOF at the end.
func readPcapng(t *testing.T, b []byte) []readBack {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatalf("NewNgReader = %v", err)
	}
	var out []readBack
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("packet %d: ReadPacketDataWithOptions = %v", len(out), err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("packet %d: Interface(%d) = %v", len(out), ci.InterfaceIndex, err)
		}
		out = append(out, readBack{iface: intf.Name, data: data, comments: opts.Comments})
	}
}

// checkDropComment checks a comment read back: within the option limit,
// valid UTF-8, parsed by ParseDropComment into reason and link (whole, or
// cut short and ending in "...").
func checkDropComment(c, reason, link string, dir wire.Direction) error {
	var errs []error
	if len(c) > MaxOptionLen {
		errs = append(errs, fmt.Errorf("comment is %d bytes, over %d", len(c), MaxOptionLen))
	}
	if !utf8.ValidString(c) {
		errs = append(errs, errors.New("comment is not valid UTF-8"))
	}
	r, l, d, ok := ParseDropComment(c)
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("ParseDropComment(%.60q...) failed", c))...)
	}
	cutOK := func(got, want string) bool {
		p, cut := strings.CutSuffix(got, "...")
		return got == want || cut && strings.HasPrefix(want, p)
	}
	if !cutOK(r, reason) {
		errs = append(errs, fmt.Errorf("reason %.40q... is not %.40q... or its beginning and \"...\"", r, reason))
	}
	if !cutOK(l, link) {
		errs = append(errs, fmt.Errorf("link %.40q... is not %.40q... or its beginning and \"...\"", l, link))
	}
	if d != dir {
		errs = append(errs, fmt.Errorf("direction %v, want %v", d, dir))
	}
	return errors.Join(errs...)
}

// TestPcapngLongNames: a link name of up to MaxOptionLen bytes is written
// whole as the interface name, and drop comments too long for an option
// are shortened so that they still parse; pcapgo reads every file back.
func TestPcapngLongNames(t *testing.T) {
	base := scenario(t)[1] // an outbound UDP frame on h1/eth0
	for _, c := range []struct {
		name, link string
		wantLink   bool // the comment keeps it whole
	}{
		{"short", "h1/eth0", true},
		{"link at the limit", strings.Repeat("l", MaxOptionLen), false},
		{"link whose comment just fits", strings.Repeat("l", MaxOptionLen-len(DropComment(wire.DropMTU, "", wire.Outbound))), true},
		{"link one byte over", strings.Repeat("l", MaxOptionLen-len(DropComment(wire.DropMTU, "", wire.Outbound))+1), false},
		{"multibyte link", strings.Repeat("é", MaxOptionLen/2), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewPcapngWriter(&buf)
			f := base
			f.Link = c.link
			w.Record(f)
			f.Drop = wire.DropMTU
			w.Record(f)
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			got := readPcapng(t, buf.Bytes())
			if len(got) != 2 {
				t.Fatalf("read back %d packets, want 2", len(got))
			}
			for i, p := range got {
				if p.iface != c.link {
					t.Errorf("packet %d: interface name of %d bytes, want the link's %d", i, len(p.iface), len(c.link))
				}
				if !bytes.Equal(p.data, f.Data) {
					t.Errorf("packet %d: data differs", i)
				}
			}
			if len(got[1].comments) != 1 {
				t.Fatalf("drop: %d comments, want 1", len(got[1].comments))
			}
			comment := got[1].comments[0]
			if err := checkDropComment(comment, "mtu", c.link, wire.Outbound); err != nil {
				t.Error(err)
			}
			_, link, _, _ := ParseDropComment(comment)
			if whole := link == c.link; whole != c.wantLink {
				t.Errorf("comment has the whole link: %v, want %v", whole, c.wantLink)
			}
			// dgramlab's own reader counts the drop under the interface name.
			s, err := Summarize(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("Summarize = %v", err)
			}
			if len(s.Links) != 1 || s.Links[0].Name != c.link || s.Links[0].Drops != 1 || s.Links[0].Frames != 1 {
				t.Errorf("Summarize: %d links, want 1 named after the link with 1 frame and 1 drop", len(s.Links))
			}
		})
	}
}

// TestPcapngLinkNameTooLong: a link name longer than an option can hold
// is an error as soon as the link is added, by AddLink or by a tap made
// on the writer; the frames before it are written and read back, those
// after it are counted as discarded.
func TestPcapngLinkNameTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxOptionLen+1)
	wantErr := fmt.Sprintf("is %d bytes long, more than the %d bytes a pcapng interface name can have", MaxOptionLen+1, MaxOptionLen)
	t.Run("AddLink", func(t *testing.T) {
		var buf bytes.Buffer
		w := NewPcapngWriter(&buf)
		f := scenario(t)[1]
		w.Record(f)
		w.AddLink(long, layers.LinkTypeRaw)
		if err := w.Err(); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Err() after AddLink(a %d-byte name) = %v, want %q", len(long), err, wantErr)
		}
		w.Record(f)
		if got := w.Discarded(); got != 1 {
			t.Errorf("Discarded() = %d, want 1", got)
		}
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Close() = %v, want %q", err, wantErr)
		}
		if got := readPcapng(t, buf.Bytes()); len(got) != 1 || got[0].iface != f.Link {
			t.Errorf("read back %d packets, want the 1 on %s from before the error", len(got), f.Link)
		}
	})
	t.Run("Record", func(t *testing.T) {
		var buf bytes.Buffer
		w := NewPcapngWriter(&buf)
		f := scenario(t)[1]
		f.Link = long
		w.Record(f)
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Close() = %v, want %q", err, wantErr)
		}
		if w.Discarded() != 1 || buf.Len() != 0 {
			t.Errorf("Discarded() = %d, %d bytes written; want 1 and nothing", w.Discarded(), buf.Len())
		}
	})
	t.Run("NewTap", func(t *testing.T) {
		w := NewPcapngWriter(io.Discard)
		a, _ := newPair(false, 1500)
		tap := NewTap(a, TapOptions{Name: long, Sink: w})
		defer tap.Close()
		err := w.Err()
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), `capture: link "xxxxxxxx`) {
			t.Fatalf("Err() after NewTap(a %d-byte name) = %.200v, want %q", len(long), err, wantErr)
		}
		if len(err.Error()) > 200 {
			t.Errorf("the error repeats the whole name: %d bytes", len(err.Error()))
		}
	})
}

// TestPcapngFrameLimits: a frame length a packet block cannot record is
// an error, not a wrapped 32-bit field; a time after what pcapgo counts in
// nanoseconds is written as the last one it can, not wrapped into the past.
func TestPcapngFrameLimits(t *testing.T) {
	f := scenario(t)[1]
	t.Run("length", func(t *testing.T) {
		for _, n := range []int{1 << 32, 1<<32 + 10} {
			var buf bytes.Buffer
			w := NewPcapngWriter(&buf)
			w.Record(f)
			big := f
			big.Len = n
			w.Record(big)
			want := fmt.Sprintf(`capture: frame on link "h1/eth0": length %d is more than the 4294967295 bytes a pcapng packet block can record`, n)
			if err := w.Close(); err == nil || err.Error() != want {
				t.Errorf("Close() after a frame of Len %d = %v, want %q", n, err, want)
			}
			if got := readPcapng(t, buf.Bytes()); len(got) != 1 {
				t.Errorf("read back %d packets, want the 1 from before the error", len(got))
			}
		}
		var buf bytes.Buffer
		w := NewPcapngWriter(&buf)
		edge := f
		edge.Len = 1<<32 - 1
		w.Record(edge)
		if err := w.Close(); err != nil {
			t.Fatalf("Close() after a frame of Len 1<<32-1 = %v", err)
		}
		r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.NgReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ci, err := r.ReadPacketData(); err != nil || ci.Length != 1<<32-1 {
			t.Errorf("ReadPacketData() = length %d, %v; want %d", ci.Length, err, 1<<32-1)
		}
	})
	t.Run("time", func(t *testing.T) {
		last := time.Unix(0, math.MaxInt64)
		for _, c := range []struct{ in, want time.Time }{
			{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), last},
			{last.Add(time.Nanosecond), last},
			{last, last},
			{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)},
			{time.Time{}, time.Unix(0, 0)},
		} {
			var buf bytes.Buffer
			w := NewPcapngWriter(&buf)
			g := f
			g.Time = c.in
			w.Record(g)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.NgReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ci, err := r.ReadPacketData(); err != nil || !ci.Timestamp.Equal(c.want) {
				t.Errorf("frame at %v: read back at %v (%v), want %v", c.in, ci.Timestamp.UTC(), err, c.want.UTC())
			}
		}
	})
}
