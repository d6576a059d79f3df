package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// FuzzSummarize feeds Summarize arbitrary bytes. It must never panic (a
// recovered panic surfaces as errInternal), must fail only with a
// *FormatError whose offset lies inside the input, and must produce
// summaries whose totals agree.
func FuzzSummarize(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.pcap*")
	for _, p := range paths {
		if filepath.Ext(p) == ".txt" || filepath.Ext(p) == ".json" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, cut := range []int{4, 12, 24, 27, 28, 40, 60, len(b) / 3, len(b) / 2, len(b) - 4, len(b) - 1} {
			if cut > 0 && cut < len(b) {
				f.Add(b[:cut])
			}
		}
	}
	// A Linux cooked capture (tcpdump -i any) of one datagram.
	ip := udpSpec{src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 10}.build(f)[0]
	var sll bytes.Buffer
	w := pcapgo.NewWriter(&sll)
	w.WriteFileHeader(262144, layers.LinkTypeLinuxSLL)
	pkt := append([]byte{0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, ip...)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: epoch, CaptureLength: len(pkt), Length: len(pkt)}, pkt)
	f.Add(sll.Bytes())
	f.Add([]byte{})
	f.Add([]byte("not a capture"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Summarize(bytes.NewReader(data))
		if err != nil {
			if errors.Is(err, errInternal) {
				t.Fatalf("Summarize panicked: %v", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Summarize error %v (%T) is not a *FormatError", err, err)
			}
			gz := len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
			if !gz && (fe.Offset < 0 || fe.Offset > int64(len(data))) {
				t.Fatalf("error offset %d outside the %d-byte input: %v", fe.Offset, len(data), err)
			}
			return
		}
		frames, drops := 0, 0
		for _, l := range s.Links {
			frames += l.Frames
			drops += l.Drops
		}
		for _, d := range s.Drops {
			drops -= d.Frames
		}
		if frames != s.Frames || drops != 0 {
			t.Fatalf("link totals disagree: links %d frames vs %d; drops off by %d", frames, s.Frames, drops)
		}
		if err := s.WriteText(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	})
}
