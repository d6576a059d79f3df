package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

// writePcap writes the Ethernet frames among frames as a nanosecond pcap.
func writePcap(t *testing.T, frames []Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if f.LinkType != layers.LinkTypeEthernet || f.Drop != 0 {
			continue
		}
		ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Data), Length: f.Len}
		if err := w.WritePacket(ci, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestTestdata checks that the files in testdata are what the code writes
// today, and rewrites them with -update. The tshark-* files were written
// by tshark (Wireshark 4.0) from the scenario files, to check that files
// from other writers read too; they are only rewritten when tshark is
// installed.
func TestTestdata(t *testing.T) {
	files := map[string][]byte{
		"scenario.pcapng": writePcapng(t, scenario(t)),
		"scenario.pcap":   writePcap(t, scenario(t)),
	}
	for name, want := range files {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the writer produces now (run go test -update if the change is intended)", path)
		}
	}
	if !*update {
		return
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: keeping testdata/tshark-*")
		return
	}
	for _, c := range [][]string{
		{"-r", "testdata/scenario.pcap", "-F", "pcapng", "-w", "testdata/tshark-from-pcap.pcapng"},
		{"-r", "testdata/scenario.pcapng", "-Y", "eth", "-F", "pcap", "-w", "testdata/tshark-ethernet.pcap"},
	} {
		if out, err := exec.Command(tshark, c...).CombinedOutput(); err != nil {
			t.Fatalf("tshark %v: %v\n%s", c, err, out)
		}
	}
}

func TestSummarizeGolden(t *testing.T) {
	for _, name := range []string{"scenario.pcapng", "scenario.pcap", "tshark-from-pcap.pcapng", "tshark-ethernet.pcap"} {
		t.Run(name, func(t *testing.T) {
			s, err := SummarizeFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := s.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", name+".txt"), text.Bytes())
			golden(t, filepath.Join("testdata", name+".json"), append(js, '\n'))
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

func TestSummarizeScenario(t *testing.T) {
	s, err := Summarize(bytes.NewReader(writePcapng(t, scenario(t))))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != "pcapng" || s.Frames != 12 || len(s.Links) != 4 {
		t.Errorf("format %q, %d frames, %d links; want pcapng, 12, 4", s.Format, s.Frames, len(s.Links))
	}
	if s.Broadcasts != 2 || s.Multicasts != 1 || s.NonIP != 1 {
		t.Errorf("broadcasts %d multicasts %d non-ip %d; want 2, 1, 1", s.Broadcasts, s.Multicasts, s.NonIP)
	}
	if want := (FragmentSummary{Frames: 5, Datagrams: 2, Reassembled: 2}); s.Fragments != want {
		t.Errorf("Fragments = %+v, want %+v", s.Fragments, want)
	}
	wantDrops := []DropSummary{{"mtu", 1, 1514}, {"queue-full", 1, 142}}
	if len(s.Drops) != 2 || s.Drops[0] != wantDrops[0] || s.Drops[1] != wantDrops[1] {
		t.Errorf("Drops = %+v, want %+v", s.Drops, wantDrops)
	}
	// The fragmented datagram counts in its flow: 40000 -> 9000 on h1 and h2.
	var flow *FlowSummary
	for i := range s.Flows {
		f := &s.Flows[i]
		if f.Src == ip1 && f.Dst == ip2 && f.SrcPort == 40000 && f.DstPort == 9000 {
			flow = f
		}
	}
	if flow == nil || flow.Frames != 5 || flow.MinLen != 82 || flow.MaxLen != 1514 || flow.Proto != "udp" {
		t.Errorf("flow 10.0.0.1:40000 > 10.0.0.2:9000 = %+v, want 5 frames from 82 to 1514 bytes", flow)
	}
}

func TestSummarizeGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(writePcapng(t, scenario(t)))
	zw.Close()
	s, err := Summarize(&buf)
	if err != nil || s.Frames != 12 {
		t.Fatalf("Summarize(gzip) = %+v, %v", s, err)
	}
}

func TestSummarizeErrors(t *testing.T) {
	ng := writePcapng(t, scenario(t))
	pc := writePcap(t, scenario(t))
	pcRec := pcapRecords(t, pc)
	ngBlk := pcapngBlocks(t, ng)
	var epb []int // the Enhanced Packet Blocks
	for _, off := range ngBlk {
		if binary.LittleEndian.Uint32(ng[off:]) == 6 {
			epb = append(epb, off)
		}
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		format string
		offset int64
		text   string
	}{
		{"empty", nil, "", 0, "too short"},
		{"short", []byte{0xd4, 0xc3}, "", 2, "too short"},
		{"text", []byte("hello, world\n"), "", 0, "not a pcap or pcapng file (starts with 68656c6c)"},
		{"pcap header cut", pc[:20], "pcap", 0, "file header cut short: 20 of 24 bytes"},
		{"pcap record header cut", pc[:24+8], "pcap", 24, "(after 0 packets): record header cut short: 8 of 16 bytes"},
		{"pcap packet cut", pc[:pcRec[1]+100], "pcap", int64(pcRec[1]), "(after 1 packets): record: captured length 142 exceeds the 84 bytes left after its header"},
		{"pcap caplen too large", setU32(pc, pcRec[4]+8, binary.LittleEndian, 0x7ffffff0), "pcap", int64(pcRec[4]),
			fmt.Sprintf("(after 4 packets): record: captured length 2147483632 exceeds the %d bytes left after its header", len(pc)-pcRec[4]-16)},
		{"pcapng cut in a block", ng[:ngBlk[5]+30], "pcapng", int64(ngBlk[5]), "enhanced packet block: total length"},
		{"pcapng block header cut", ng[:ngBlk[5]+2], "pcapng", int64(ngBlk[5]), "block header cut short: 2 of 8 bytes"},
		{"pcapng total length too large", setU32(ng, epb[4]+4, binary.LittleEndian, 0x7ffffff0), "pcapng", int64(epb[4]),
			fmt.Sprintf("(after 4 packets): enhanced packet block: total length 2147483632 exceeds the %d bytes left", len(ng)-epb[4])},
		{"pcapng total length not a multiple of 4", setU32(ng, epb[1]+4, binary.LittleEndian, 30), "pcapng", int64(epb[1]),
			"(after 1 packets): enhanced packet block: total length 30 is not a multiple of 4 of at least 12"},
		{"pcapng total lengths differ", setU32(ng, epb[2]+epbLen(ng, epb[2])-4, binary.LittleEndian, uint32(epbLen(ng, epb[2])+4)), "pcapng", int64(epb[2]),
			fmt.Sprintf("(after 2 packets): enhanced packet block: total lengths differ: %d at the start, %d at the end", epbLen(ng, epb[2]), epbLen(ng, epb[2])+4)},
		{"pcapng caplen too large", setU32(ng, epb[3]+20, binary.LittleEndian, uint32(epbLen(ng, epb[3]))), "pcapng", int64(epb[3]),
			fmt.Sprintf("(after 3 packets): enhanced packet block: captured length %d exceeds the %d bytes of packet data", epbLen(ng, epb[3]), epbLen(ng, epb[3])-32)},
		{"pcapng bad byte order", append(append([]byte{}, ng[:8]...), 1, 2, 3, 4), "pcapng", 0, "byte-order magic 01020304 is not 1a2b3c4d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Summarize(bytes.NewReader(tc.in))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Summarize = %+v, %v; want a *FormatError", s, err)
			}
			if fe.Format != tc.format || fe.Offset != tc.offset || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error = %q (format %q, offset %d); want format %q, offset %d, containing %q",
					err, fe.Format, fe.Offset, tc.format, tc.offset, tc.text)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader(ng[:100]), iotestErrReader{})
		_, err := Summarize(r)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("Summarize = %v, want the reader's error", err)
		}
	})
}

func TestSummarizeFileReadError(t *testing.T) {
	dir := t.TempDir()
	_, err := SummarizeFile(dir)
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "too short") {
		t.Errorf("SummarizeFile(a directory) = %v, want a *FormatError with the read error", err)
	}
	// The same for a gzip stream that breaks in its first bytes.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(writePcapng(t, scenario(t)))
	zw.Close()
	gz := buf.Bytes()
	_, err = Summarize(io.MultiReader(bytes.NewReader(gz[:12]), iotestErrReader{}))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Summarize(gzip, then a read error) = %v, want the reader's error", err)
	}
}

// pcapRecords returns the offset of each record of a pcap file.
func pcapRecords(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 24; off < len(b); off += 16 + int(binary.LittleEndian.Uint32(b[off+8:])) {
		offs = append(offs, off)
	}
	return offs
}

// pcapngBlocks returns the offset of each block of a little-endian pcapng
// file.
func pcapngBlocks(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(b); off += int(binary.LittleEndian.Uint32(b[off+4:])) {
		offs = append(offs, off)
	}
	return offs
}

func epbLen(b []byte, off int) int { return int(binary.LittleEndian.Uint32(b[off+4:])) }

// setU32 returns a copy of b with the 32-bit word at off set to v.
func setU32(b []byte, off int, order binary.ByteOrder, v uint32) []byte {
	c := bytes.Clone(b)
	order.PutUint32(c[off:], v)
	return c
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
