package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dgramlab/dgramlab/wire"
)

// writePcapng writes frames with a PcapngWriter and returns the bytes.
func writePcapng(t *testing.T, frames []Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewPcapngWriter(&buf)
	for _, f := range frames {
		w.Record(f)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	return buf.Bytes()
}

func TestPcapngWriterRoundTrip(t *testing.T) {
	frames := scenario(t)
	b := writePcapng(t, frames)
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		var errs []error
		check := func(what string, got, want any) {
			if fmt.Sprint(got) != fmt.Sprint(want) {
				errs = append(errs, fmt.Errorf("%s = %v, want %v", what, got, want))
			}
		}
		check("interface name", intf.Name, f.Link)
		check("link type", intf.LinkType, f.LinkType)
		check("ts resolution", intf.TimestampResolution, 9)
		check("data", fmt.Sprintf("%x", data), fmt.Sprintf("%x", f.Data))
		check("length", ci.Length, f.Len)
		check("time", ci.Timestamp.UnixNano(), f.Time.UnixNano())
		wantDir := pcapgo.NgEpbFlagDirectionOutbound
		if f.Dir == wire.Inbound {
			wantDir = pcapgo.NgEpbFlagDirectionInbound
		}
		if opts.Flags == nil {
			errs = append(errs, errors.New("no EPB flags"))
		} else {
			check("direction flag", opts.Flags.Direction, wantDir)
		}
		var wantComments []string
		if f.Drop != 0 {
			wantComments = []string{DropComment(f.Drop, f.Link, f.Dir)}
		}
		check("comments", opts.Comments, wantComments)
		if err := errors.Join(errs...); err != nil {
			t.Errorf("packet %d (%v):\n%v", i, f, err)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("after the last packet: err = %v, want io.EOF", err)
	}
	if got := r.NInterfaces(); got != 4 {
		t.Errorf("NInterfaces() = %d, want 4 (h1/eth0, h2/eth0, tun0, sw0/port2)", got)
	}
}

func TestPcapngWriterAddLinkOrder(t *testing.T) {
	var buf bytes.Buffer
	w := NewPcapngWriter(&buf)
	w.AddLink("b", layers.LinkTypeRaw)
	w.AddLink("a", layers.LinkTypeEthernet)
	w.AddLink("b", layers.LinkTypeRaw) // again: no new interface
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("ReadPacketData() err = %v, want io.EOF", err)
	}
	var got []string
	for i := range r.NInterfaces() {
		intf, _ := r.Interface(i)
		got = append(got, fmt.Sprintf("%s/%v", intf.Name, intf.LinkType))
	}
	if want := []string{"b/Raw", "a/Ethernet"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("interfaces = %v, want %v", got, want)
	}
}

func TestPcapngWriterEmpty(t *testing.T) {
	b := writePcapng(t, nil)
	if len(b) != 28 {
		t.Fatalf("empty capture is %d bytes, want a 28-byte section header", len(b))
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("ReadPacketData() err = %v, want io.EOF", err)
	}
}

func TestPcapngWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := NewPcapngWriter(&buf)
	base := Filter(scenario(t), Func("ethernet", func(f Frame) bool { return f.LinkType == layers.LinkTypeEthernet }))
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				f := base[(g+i)%len(base)]
				f.Link = fmt.Sprintf("link%d", g)
				w.Record(f)
				if i%10 == 0 {
					if err := w.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Links) != writers {
		t.Errorf("links = %d, want %d", len(s.Links), writers)
	}
	total := 0
	for _, l := range s.Links {
		total += l.Frames + l.Drops
	}
	if total != writers*each {
		t.Errorf("frames read back = %d, want %d", total, writers*each)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestPcapngWriterKeepsFirstError(t *testing.T) {
	w := NewPcapngWriter(&failingWriter{n: 100})
	for _, f := range scenario(t) {
		w.Record(f)
	}
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Flush() = %v, want disk full", err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close() = %v, want disk full", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush() after Close = %v, want ErrClosed", err)
	}
}

// Frames recorded after Close are counted, not lost without a word.
func TestPcapngWriterCountsDiscarded(t *testing.T) {
	w := NewPcapngWriter(io.Discard)
	frames := scenario(t)
	for _, f := range frames {
		w.Record(f)
	}
	if got := w.Discarded(); got != 0 {
		t.Fatalf("Discarded() = %d before Close, want 0", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Record(frames[0])
	w.Record(frames[1])
	if got := w.Discarded(); got != 2 {
		t.Errorf("Discarded() = %d after two frames recorded past Close, want 2", got)
	}
}

func TestCreatePcapngFile(t *testing.T) {
	path := t.TempDir() + "/x.pcapng"
	w, err := CreatePcapngFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range scenario(t) {
		w.Record(f)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := SummarizeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != "pcapng" || len(s.Drops) != 2 {
		t.Errorf("SummarizeFile = %+v, want pcapng with 2 drop reasons", s)
	}
}

// TestPcapngOpensInTshark checks that Wireshark's reader accepts our files
// without warnings and decodes what we wrote: interface names, link types,
// directions, UDP ports, fragments reassembled, and drop comments.
func TestPcapngOpensInTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not on PATH (apt-get install tshark); cannot check the file with Wireshark's reader")
	}
	run := func(t *testing.T, path string, args ...string) string {
		t.Helper()
		cmd := exec.Command(tshark, append([]string{"-r", path}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			// tshark warns about running as root; that is not about the file.
			if line != "" && !strings.Contains(line, "Running as user \"root\"") {
				t.Errorf("tshark %v wrote to stderr: %s", args, line)
			}
		}
		return stdout.String()
	}

	t.Run("scenario", func(t *testing.T) {
		path := writeFile(t, "scenario.pcapng", writePcapng(t, scenario(t)))
		// frame.p2p_dir is 0 for sent (outbound) and 1 for received (inbound).
		out := run(t, path, "-T", "fields", "-E", "separator=|",
			"-e", "frame.interface_name", "-e", "frame.p2p_dir", "-e", "frame.comment", "-e", "frame.len",
			"-e", "eth.dst", "-e", "udp.dstport", "-e", "ip.dst", "-e", "ipv6.dst")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(scenario(t)) {
			t.Fatalf("tshark printed %d packets, want %d:\n%s", len(lines), len(scenario(t)), out)
		}
		want := []string{
			// the ARP request (padded to 60 bytes): outbound on h1/eth0
			"h1/eth0|0||60|ff:ff:ff:ff:ff:ff|||",
			"h1/eth0|0||142|02:00:00:00:00:02|9000|10.0.0.2|",
			"h2/eth0|1||142|02:00:00:00:00:02|9000|10.0.0.2|",
		}
		for i, w := range want {
			if lines[i] != w {
				t.Errorf("packet %d: tshark says %q, want %q", i+1, lines[i], w)
			}
		}
		for _, w := range []string{
			"sw0/port2|1|dgramlab: dropped: mtu (link sw0/port2, inbound)|1514|",
			"h1/eth0|0|dgramlab: dropped: queue-full (link h1/eth0, outbound)|142|",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("tshark output lacks %q:\n%s", w, out)
			}
		}
		// Fragments: tshark reassembles both datagrams and decodes UDP.
		frag := run(t, path, "-Y", "udp.length == 3008 || udp.length == 2008", "-T", "fields", "-e", "udp.length", "-e", "frame.interface_name")
		if got, want := strings.Fields(frag), []string{"3008", "h1/eth0", "2008", "tun0"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("reassembled datagrams per tshark = %v, want %v", got, want)
		}
		// -V decodes every layer without complaint.
		verbose := run(t, path, "-V")
		for _, bad := range []string{"Malformed", "Expert Info (Error", "[Checksum Status: Bad]"} {
			if strings.Contains(verbose, bad) {
				t.Errorf("tshark -V reports %q", bad)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		path := writeFile(t, "empty.pcapng", writePcapng(t, nil))
		if out := run(t, path); strings.TrimSpace(out) != "" {
			t.Errorf("tshark on an empty capture printed %q", out)
		}
	})
	t.Run("gvisor", func(t *testing.T) {
		var buf bytes.Buffer
		w := NewPcapngWriter(&buf)
		l := newLab(t, true, 1500, w)
		_ = udpEndpoint(t, l.s2, 9000)
		ep := udpEndpoint(t, l.s1, 40000)
		sendUDP(t, ep, ip2, 9000, 3000)
		if _, err := l.rec.WaitCount(waitCtx(t), All(Dir(wire.Inbound), Fragment()), 3); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, "gvisor.pcapng", buf.Bytes())
		// Wireshark reassembles by addresses and IP ID across interfaces:
		// the datagram is rebuilt once, from h1's fragments, and h2's copies
		// show as plain fragments.
		out := run(t, path, "-Y", "udp", "-T", "fields", "-e", "frame.interface_name", "-e", "udp.length")
		if got, want := strings.Fields(out), []string{"h1/eth0", "3008"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tshark sees %v, want %v", got, want)
		}
		frags := run(t, path, "-Y", "ip.flags.mf == 1 || ip.frag_offset > 0", "-T", "fields", "-e", "frame.interface_name")
		if got := strings.Count(frags, "h2/eth0"); got != 3 {
			t.Errorf("tshark sees %d fragments on h2/eth0, want 3:\n%s", got, frags)
		}
		if verbose := run(t, path, "-V"); strings.Contains(verbose, "Malformed") {
			t.Errorf("tshark -V reports a malformed packet:\n%s", verbose)
		}
	})
}
