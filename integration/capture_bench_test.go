package integration

import (
	"io"
	"net/netip"
	"testing"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// BenchmarkCaptureOverhead measures what capture costs on the datagram
// path: 64-byte datagrams between two hosts on a Switch, with no tap, with
// taps into an in-memory Recorder, and with taps into a pcapng writer. Each
// datagram is written and read on one goroutine (the Switch delivers
// synchronously), so the figure is the per-datagram CPU cost.
func BenchmarkCaptureOverhead(b *testing.B) {
	for _, c := range []struct {
		name string
		sink func() capture.Sink
	}{
		{"off", nil},
		{"recorder", func() capture.Sink { return capture.NewRecorder() }},
		{"pcapng", func() capture.Sink { return capture.NewPcapngWriter(io.Discard) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			sw := stack.NewSwitch(stack.SwitchOptions{})
			var conns []*stack.UDPConn
			for i := 0; i < 2; i++ {
				h, err := stack.NewHost(stack.HostOptions{Name: "bench" + string(rune('a'+i))})
				if err != nil {
					b.Fatal(err)
				}
				defer h.Close()
				p, _ := sw.NewPort(stack.PortOptions{})
				var ep gvstack.LinkEndpoint = p
				if c.sink != nil {
					sink := c.sink()
					if r, ok := sink.(*capture.Recorder); ok {
						// Keep memory flat: forget frames as we go.
						sink = capture.SinkFunc(func(f capture.Frame) {
							if r.Len() > 4096 {
								r.Reset()
							}
							r.Record(f)
						})
					}
					ep = capture.NewTap(p, capture.TapOptions{Name: h.Name(), Sink: sink})
				}
				addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
				if _, err := h.AddNIC(ep, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
					b.Fatal(err)
				}
				conn, err := h.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:9000"))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				conns = append(conns, conn)
			}
			dst := netip.MustParseAddrPort("10.0.0.2:9000")
			msg, buf := make([]byte, 64), make([]byte, 2048)
			// Resolve ARP before timing.
			conns[0].WriteToUDPAddrPort(msg, dst)
			conns[1].ReadFromUDPAddrPort(buf)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := conns[0].WriteToUDPAddrPort(msg, dst); err != nil {
					b.Fatal(err)
				}
				if _, _, err := conns[1].ReadFromUDPAddrPort(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datagrams/s")
		})
	}
}
