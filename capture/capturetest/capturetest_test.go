package capturetest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/wire"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTB records failures instead of failing the real test.
type fakeTB struct {
	testing.TB
	ctx      context.Context
	errors   []string
	logs     []string
	fatal    bool
	dir      string
	cleanups []func()
}

func (f *fakeTB) Failed() bool                 { return len(f.errors) > 0 }
func (f *fakeTB) ArtifactDir() string          { return f.dir }
func (f *fakeTB) Cleanup(fn func())            { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(format string, a ...any) { f.logs = append(f.logs, fmt.Sprintf(format, a...)) }

func (f *fakeTB) Helper()                  {}
func (f *fakeTB) Context() context.Context { return f.ctx }
func (f *fakeTB) Error(args ...any)        { f.errors = append(f.errors, fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
	f.fatal = true
	runtime.Goexit()
}

// run calls fn with a fakeTB on its own goroutine, so that Fatalf can end it.
func run(ctx context.Context, fn func(tb *fakeTB)) *fakeTB {
	tb := &fakeTB{ctx: ctx}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb
}

// udpFrames returns the raw IPv4 frames of a UDP datagram of payload bytes
// to port 9000, split into fragments of fragSize bytes when non-zero.
func udpFrames(t *testing.T, payload, fragSize int) []capture.Frame {
	t.Helper()
	src, dst := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: 1, SrcIP: src, DstIP: dst}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9000}
	udp.SetNetworkLayerForChecksum(ip)
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	seg := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(seg, opts, udp, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	b := seg.Bytes()
	if fragSize == 0 {
		fragSize = len(b)
	}
	var fs []capture.Frame
	for off := 0; off < len(b); off += fragSize {
		end := min(off+fragSize, len(b))
		h := *ip
		h.FragOffset = uint16(off / 8)
		if end < len(b) {
			h.Flags = layers.IPv4MoreFragments
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, &h, gopacket.Payload(b[off:end])); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		fs = append(fs, capture.Frame{Link: "l", LinkType: layers.LinkTypeRaw, Dir: wire.Outbound,
			Time: time.Unix(0, int64(off)), Data: data, Len: len(data)})
	}
	return fs
}

func TestExpect(t *testing.T) {
	fs := udpFrames(t, 100, 0)
	tb := run(t.Context(), func(tb *fakeTB) { Expect(tb, fs, capture.DstPort(9000), 1) })
	if len(tb.errors) != 0 {
		t.Errorf("Expect failed on a match: %v", tb.errors)
	}
	tb = run(t.Context(), func(tb *fakeTB) { ExpectNone(tb, fs, capture.DstPort(9000)) })
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "got 1, want 0") ||
		!strings.Contains(tb.errors[0], "* 00:00:00.000000000 l out len=128 udp 10.0.0.1:40000>10.0.0.2:9000 payload=100") {
		t.Errorf("ExpectNone failure = %q, want the count and the frame listed", tb.errors)
	}
}

func TestExpectReassembled(t *testing.T) {
	fs := udpFrames(t, 3000, 1480)
	tb := run(t.Context(), func(tb *fakeTB) {
		ds := ExpectReassembled(tb, fs, capture.All(), 3000)
		if len(ds) != 1 || ds[0].Fragments != 3 {
			tb.Errorf("datagrams = %+v", ds)
		}
	})
	if len(tb.errors) != 0 {
		t.Errorf("ExpectReassembled failed on a whole datagram: %v", tb.errors)
	}
	tb = run(t.Context(), func(tb *fakeTB) { ExpectReassembled(tb, fs[:2], capture.All(), 3000) })
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "complete=false") {
		t.Errorf("ExpectReassembled with a fragment missing = %q", tb.errors)
	}
	tb = run(t.Context(), func(tb *fakeTB) { ExpectReassembled(tb, udpFrames(t, 10, 0), capture.All(), 10) })
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "found 0 datagram(s)") {
		t.Errorf("ExpectReassembled without fragments = %q", tb.errors)
	}
}

func TestWaitFor(t *testing.T) {
	rec := capture.NewRecorder()
	fs := udpFrames(t, 100, 0)
	go rec.Record(fs[0])
	got := WaitFor(t, rec, capture.DstPort(9000))
	if got.Len != 128 {
		t.Errorf("WaitFor = %v", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the test is over: the wait fails at once
	tb := run(ctx, func(tb *fakeTB) { WaitForCount(tb, rec, capture.DstPort(9000), 2) })
	if !tb.fatal || len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "1 matched among 1 recorded: context canceled") ||
		!strings.Contains(tb.errors[0], "* 00:00:00.000000000 l out") {
		t.Errorf("WaitForCount failure = %q, want a fatal error listing the frame", tb.errors)
	}
}

func TestDumpOnFailure(t *testing.T) {
	rec := capture.NewRecorder()
	for _, f := range udpFrames(t, 3000, 1480) {
		rec.Record(f)
	}
	for _, fail := range []bool{false, true} {
		tb := &fakeTB{dir: t.TempDir()}
		DumpOnFailure(tb, rec)
		if fail {
			tb.Errorf("boom")
		}
		for _, fn := range tb.cleanups {
			fn()
		}
		path := filepath.Join(tb.dir, "frames.pcapng")
		s, err := capture.SummarizeFile(path)
		switch {
		case !fail && err == nil:
			t.Errorf("DumpOnFailure wrote %s for a passing test", path)
		case fail && (err != nil || s.Frames != 3):
			t.Errorf("DumpOnFailure for a failed test: Summarize = %+v, %v; want 3 frames", s, err)
		case fail && (len(tb.logs) != 1 || !strings.Contains(tb.logs[0], path)):
			t.Errorf("logs = %q, want the path", tb.logs)
		}
	}
}
