package integration

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/wire"
)

// Unconnected writes of a stack.UDPConn go through routes the conn caches
// and are built by the conn, not by gVisor's endpoint (stack/udp_send.go).
// On the wire they must be what the endpoint sends: the same headers, the
// same checksum, a TTL set afterwards taken into account, large datagrams
// fragmented. The endpoint's own path is the connected Write.
func TestUnconnectedWriteMatchesEndpoint(t *testing.T) {
	for _, tc := range []struct {
		network  string
		src, dst netip.Addr
	}{
		{"udp4", ip("10.0.0.1"), ip("10.0.0.2")},
		{"udp6", ip("fd00::1"), ip("fd00::2")},
	} {
		t.Run(tc.network, func(t *testing.T) {
			l := newTestLAN(t, 1500, 1500)
			if tc.src.Is6() {
				for i, a := range []netip.Addr{tc.src, tc.dst} {
					if err := l.hosts[i].NICs()[1].AddAddress(netip.PrefixFrom(a, 64)); err != nil {
						t.Fatal(err)
					}
				}
			}
			rx, err := l.hosts[1].ListenUDP(tc.network, netip.AddrPortFrom(tc.dst, 9000))
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			tx, err := l.hosts[0].ListenUDP(tc.network, netip.AddrPortFrom(tc.src, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			dst := rx.LocalAddrPort()
			buf := make([]byte, 4000)
			receive := func(want int) {
				t.Helper()
				rx.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, _, err := rx.ReadFromUDPAddrPort(buf); err != nil || n != want {
					t.Fatalf("read %d bytes, %v; want %d bytes", n, err, want)
				}
			}
			sent := func() []byte {
				t.Helper()
				frames := capture.Filter(l.rec.Frames(), capture.All(capture.OnWire(), capture.Link("h0"), capture.Dir(wire.Outbound), capture.UDP()))
				if len(frames) == 0 {
					t.Fatal("no UDP frame left h0")
				}
				return frames[len(frames)-1].Data
			}
			msg := []byte("the same datagram, three ways")

			// Received: the UDP checksum is right (a wrong one is dropped).
			if _, err := tx.WriteToUDPAddrPort(msg, dst); err != nil {
				t.Fatal(err)
			}
			receive(len(msg))
			if ttl := hopLimit(t, sent()); ttl != 64 {
				t.Errorf("TTL %d, want the default 64", ttl)
			}
			if err := tx.SetTTL(9); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.WriteToUDPAddrPort(msg, dst); err != nil {
				t.Fatal(err)
			}
			receive(len(msg))
			cached := sent()
			if err := tx.Connect(dst); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Write(msg); err != nil {
				t.Fatal(err)
			}
			receive(len(msg))
			endpoint := sent()
			if got, want := withoutIPID(t, cached), withoutIPID(t, endpoint); !bytes.Equal(got, want) {
				t.Errorf("unconnected write sent\n%x\nthe endpoint sends\n%x\n(IPv4 ID and header checksum zeroed)", got, want)
			}
			if ttl := hopLimit(t, cached); ttl != 9 {
				t.Errorf("TTL %d after SetTTL(9)", ttl)
			}

			if err := tx.Disconnect(); err != nil {
				t.Fatal(err)
			}
			l.rec.Reset()
			if _, err := tx.WriteToUDPAddrPort(make([]byte, 3000), dst); err != nil {
				t.Fatal(err)
			}
			receive(3000)
			out := capture.All(capture.OnWire(), capture.Link("h0"), capture.Dir(wire.Outbound))
			capturetest.Expect(t, l.rec.Frames(), capture.All(out, capture.FirstFragment()), 1)
			capturetest.ExpectReassembled(t, l.rec.Frames(), out, 3000)
		})
	}
}

// hopLimit returns the TTL or hop limit of an Ethernet frame's IP packet.
func hopLimit(t *testing.T, frame []byte) uint8 {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		return ip4.TTL
	}
	if ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		return ip6.HopLimit
	}
	t.Fatalf("not an IP frame: %x", frame)
	return 0
}

// withoutIPID returns a copy of an Ethernet frame with its IPv4 ID and
// header checksum zeroed: a datagram's ID is random.
func withoutIPID(t *testing.T, frame []byte) []byte {
	t.Helper()
	f := bytes.Clone(frame)
	if layers.EthernetType(uint16(f[12])<<8|uint16(f[13])) == layers.EthernetTypeIPv4 {
		ipHdr := f[14:]
		if ipHdr[6]&0x40 != 0 {
			t.Errorf("DF set on an IPv4 datagram: %x", frame)
		}
		clear(ipHdr[4:6])   // identification
		clear(ipHdr[10:12]) // header checksum
	}
	return f
}
