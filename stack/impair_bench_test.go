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
// datagram path when it impairs nothing: 64-byte datagrams between two
// hosts, each written and read on one goroutine. The bar is under
// 5% against no impairment layer.
//
// A Switch port or Pipe end whose impairments are all zero (Loss 0, ...)
// takes the very path of one that never had any: SetImpairments with
// nothing in force leaves no layer installed, so "switch/none" and
// "switch/zero-set" differ only by noise. The cases that do install
// something are:
//
//   - pipe/wrapped: a Pipe end wrapped in an ImpairedLink with no
//     impairment in force, against pipe/bare, the same end unwrapped: the
//     cost of the extra link layer (one atomic load per frame and the
//     nested.Endpoint indirection), the way a TUN device is wrapped.
//   - switch/loss-1e-12 and pipe/wrapped-loss-1e-12: a loss probability so
//     small that nothing is lost, which keeps the impairment path installed
//     (a lock, a random draw per frame) while dropping nothing.
func BenchmarkImpairInactive(b *testing.B) {
	zero := &stack.Impairments{Loss: 0, Seed: 7}
	tiny := &stack.Impairments{Loss: 1e-12, Seed: 7}
	for _, c := range []struct {
		name string
		im   *stack.Impairments
	}{
		{"none", nil},
		{"zero-set", zero},
		{"loss-1e-12", tiny},
	} {
		b.Run("switch/"+c.name, func(b *testing.B) {
			_, hosts, ports := lan(b, 1500, 1500)
			if c.im != nil {
				for _, p := range ports {
					if err := p.SetImpairments(stack.BothDirections, *c.im); err != nil {
						b.Fatal(err)
					}
				}
			}
			pingLoop(b, hosts[0], hosts[1])
		})
	}
	for _, c := range []struct {
		name string
		wrap bool
		im   *stack.Impairments
	}{
		{"bare", false, nil},
		{"wrapped", true, zero},
		{"wrapped-loss-1e-12", true, tiny},
	} {
		b.Run("pipe/"+c.name, func(b *testing.B) {
			ea, eb, err := stack.NewPipe(stack.PipeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var hosts []*stack.Host
			for i, e := range []*stack.PipeEnd{ea, eb} {
				var ep gvstack.LinkEndpoint = e
				if c.wrap {
					il := stack.NewImpairedLink(e, stack.ImpairedLinkOptions{Name: e.Name()})
					if err := il.SetImpairments(stack.BothDirections, *c.im); err != nil {
						b.Fatal(err)
					}
					ep = il
				}
				h, err := stack.NewHost(stack.HostOptions{Name: "p" + string(rune('a'+i))})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { h.Close() })
				addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
				if _, err := h.AddNIC(ep, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
					b.Fatal(err)
				}
				hosts = append(hosts, h)
			}
			pingLoop(b, hosts[0], hosts[1])
		})
	}
}

// pingLoop times one 64-byte datagram from a to b (10.0.0.2), written and
// read on the benchmark's goroutine.
func pingLoop(b *testing.B, a, bh *stack.Host) {
	tx := listen(b, a, "udp4", "0.0.0.0:9000")
	rx := listen(b, bh, "udp4", "0.0.0.0:9000")
	dst := netip.MustParseAddrPort("10.0.0.2:9000")
	msg, buf := make([]byte, 64), make([]byte, 2048)
	tx.WriteToUDPAddrPort(msg, dst) // resolve addresses before timing
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
