package integration

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/wire"
)

// IPv4 datagrams larger than the MTU leave as fragments with DF clear and
// an IP ID of their own, as on Linux: gVisor's default (DF set, ID 0 for
// every datagram) lets the fragments of two datagrams mix.
func TestFragmentsHaveDFClearAndDistinctIDs(t *testing.T) {
	l := newTestLAN(t, 1500, 1500)
	rx, err := l.hosts[1].ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:9000"))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := l.hosts[0].ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	buf := make([]byte, 4000)
	for i := 0; i < 2; i++ {
		if _, err := tx.WriteToUDPAddrPort(make([]byte, 3000), netip.MustParseAddrPort("10.0.0.2:9000")); err != nil {
			t.Fatal(err)
		}
		if n, _, err := rx.ReadFromUDPAddrPort(buf); err != nil || n != 3000 {
			t.Fatalf("read %d bytes, %v", n, err)
		}
	}
	frags := capture.Filter(l.rec.Frames(), capture.All(capture.OnWire(), capture.Link("h0"), capture.Dir(wire.Outbound), capture.Fragment()))
	capturetest.Expect(t, frags, capture.FirstFragment(), 2)
	ids := map[uint16]int{}
	for _, f := range frags {
		ip4, _ := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip4 == nil {
			t.Fatalf("not IPv4: %v", f)
		}
		if ip4.Flags&layers.IPv4DontFragment != 0 {
			t.Errorf("fragment with DF set: %v", f)
		}
		ids[ip4.Id]++
	}
	if len(ids) != 2 {
		t.Errorf("IP IDs of the two datagrams' fragments: %v, want two distinct IDs", ids)
	}
}
