package capture

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/dgramlab/dgramlab/wire"
)

// BenchmarkPcapngWriter measures PcapngWriter.Record into io.Discard.
func BenchmarkPcapngWriter(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			w := NewPcapngWriter(io.Discard)
			f := Frame{Link: "h1/eth0", LinkType: layers.LinkTypeEthernet, Dir: wire.Outbound,
				Time: epoch, Data: make([]byte, size), Len: size}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				w.Record(f)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkTapOverhead sends 64-byte UDP datagrams between two gVisor
// stacks over the synchronous test link, without taps and with taps
// recording into a sink that discards or into a PcapngWriter.
func BenchmarkTapOverhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		sink func() Sink // nil: no tap
	}{
		{"no-tap", nil},
		{"tap-discard", func() Sink { return SinkFunc(func(Frame) {}) }},
		{"tap-pcapng", func() Sink { return NewPcapngWriter(io.Discard) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			end1, end2 := newPair(true, 1500)
			var ep1, ep2 = tcpipEndpoint(end1), tcpipEndpoint(end2)
			if tc.sink != nil {
				sink := tc.sink()
				ep1 = NewTap(end1, TapOptions{Name: "h1", Sink: sink})
				ep2 = NewTap(end2, TapOptions{Name: "h2", Sink: sink})
			}
			s1 := newStack(b, ep1, ip1, 1)
			s2 := newStack(b, ep2, ip2, 2)
			_ = udpEndpoint(b, s2, 9000)
			ep := udpEndpoint(b, s1, 40000)
			sendUDP(b, ep, ip2, 9000, 64) // ARP
			to := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ip2.As4()), Port: 9000}
			payload := make([]byte, 64)
			var r bytes.Reader
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				r.Reset(payload)
				if _, tcpipErr := ep.Write(&r, tcpip.WriteOptions{To: &to}); tcpipErr != nil {
					b.Fatal(tcpipErr)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "datagrams/s")
		})
	}
}
