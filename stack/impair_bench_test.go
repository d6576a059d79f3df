package stack_test

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
)

// BenchmarkImpairInactive measures what the impairment layer costs on the
// datagram path when nothing is impaired: 64-byte datagrams between two
// hosts on a Switch whose ports never had impairments ("none"), had them
// set with nothing in force, loss 0 ("inactive"), and, for scale, with a
// loss probability so small that nothing is lost ("active"), which takes
// the impairment path. Each datagram is written and read on one goroutine.
func BenchmarkImpairInactive(b *testing.B) {
	for _, c := range []struct {
		name string
		im   *stack.Impairments
	}{
		{"none", nil},
		{"inactive", &stack.Impairments{Loss: 0, Seed: 7}},
		{"active", &stack.Impairments{Loss: 1e-12, Seed: 7}},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, hosts, ports := lan(b, 1500, 1500)
			if c.im != nil {
				for _, p := range ports {
					if err := p.SetImpairments(stack.BothDirections, *c.im); err != nil {
						b.Fatal(err)
					}
				}
			}
			tx := listen(b, hosts[0], "udp4", "0.0.0.0:9000")
			rx := listen(b, hosts[1], "udp4", "0.0.0.0:9000")
			dst := netip.MustParseAddrPort("10.0.0.2:9000")
			msg, buf := make([]byte, 64), make([]byte, 2048)
			tx.WriteToUDPAddrPort(msg, dst) // resolve ARP before timing
			rx.ReadFromUDPAddrPort(buf)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := tx.WriteToUDPAddrPort(msg, dst); err != nil {
					b.Fatal(err)
				}
				if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nullDispatcher takes packets and does nothing with them.
type nullDispatcher struct{}

func (nullDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gvstack.PacketBuffer) {}
func (nullDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gvstack.PacketBuffer)    {}

// BenchmarkLinkHop isolates one hop over a Pipe (write, checks, counters,
// delivery to a dispatcher that does nothing): the part of the path the
// impairment layer touches.
func BenchmarkLinkHop(b *testing.B) {
	a, peer, _ := stack.NewPipe(stack.PipeOptions{})
	peer.Attach(nullDispatcher{})
	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(make([]byte, 92))})
	pkt.NetworkProtocolNumber = ipv4.ProtocolNumber
	defer pkt.DecRef()
	var list gvstack.PacketBufferList
	list.PushBack(pkt)
	b.ReportAllocs()
	for b.Loop() {
		a.WritePackets(list)
	}
}
