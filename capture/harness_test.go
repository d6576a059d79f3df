package capture

import (
	"bytes"
	"math/rand"
	randv2 "math/rand/v2"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// epoch is the start of every fake clock in these tests.
var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// fakeClock returns a clock that starts at epoch and advances one
// microsecond (plus one nanosecond, so that nanoseconds show) per call.
func fakeClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time {
		return epoch.Add(time.Duration(n.Add(1)) * (time.Microsecond + time.Nanosecond))
	}
}

var (
	ip1 = netip.MustParseAddr("10.0.0.1")
	ip2 = netip.MustParseAddr("10.0.0.2")
)

// lab is two gVisor stacks joined by a pair link, each NIC wrapped in a
// Tap that records into rec.
type lab struct {
	s1, s2 *stack.Stack
	end1   *pairEnd
	end2   *pairEnd
	tap1   *Tap
	tap2   *Tap
	rec    *Recorder
}

// newLab builds the lab; the sink gets the frames of both taps besides rec.
func newLab(t testing.TB, ether bool, mtu uint32, extra Sink) *lab {
	t.Helper()
	l := &lab{rec: NewRecorder()}
	l.end1, l.end2 = newPair(ether, mtu)
	sink := Tee(l.rec, extra)
	clock := fakeClock()
	l.tap1 = NewTap(l.end1, TapOptions{Name: "h1/eth0", Sink: sink, Clock: clock})
	l.tap2 = NewTap(l.end2, TapOptions{Name: "h2/eth0", Sink: sink, Clock: clock})
	l.s1 = newStack(t, l.tap1, ip1, 1)
	l.s2 = newStack(t, l.tap2, ip2, 2)
	return l
}

func newStack(t testing.TB, ep stack.LinkEndpoint, addr netip.Addr, seed int64) *stack.Stack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol},
		RandSource:         rand.NewSource(seed),
		SecureRNG:          randv2.NewChaCha8([32]byte{byte(seed)}),
	})
	t.Cleanup(func() {
		s.Close()
		s.Wait()
	})
	if tcpipErr := s.CreateNIC(1, ep); tcpipErr != nil {
		t.Fatalf("CreateNIC = %v", tcpipErr)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(addr.As4()).WithPrefix(),
	}
	pa.AddressWithPrefix.PrefixLen = 24
	if tcpipErr := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); tcpipErr != nil {
		t.Fatalf("AddProtocolAddress = %v", tcpipErr)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s
}

// udpEndpoint opens a UDP endpoint on s bound to port, with DF off.
func udpEndpoint(t testing.TB, s *stack.Stack, port uint16) tcpip.Endpoint {
	t.Helper()
	var wq waiter.Queue
	ep, tcpipErr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if tcpipErr != nil {
		t.Fatalf("NewEndpoint = %v", tcpipErr)
	}
	t.Cleanup(ep.Close)
	if tcpipErr := ep.SetSockOptInt(tcpip.MTUDiscoverOption, int(tcpip.PMTUDiscoveryDont)); tcpipErr != nil {
		t.Fatalf("SetSockOptInt(MTUDiscover) = %v", tcpipErr)
	}
	if tcpipErr := ep.Bind(tcpip.FullAddress{Port: port}); tcpipErr != nil {
		t.Fatalf("Bind = %v", tcpipErr)
	}
	return ep
}

// sendUDP sends a datagram of size bytes from ep to addr:port.
func sendUDP(t testing.TB, ep tcpip.Endpoint, addr netip.Addr, port uint16, size int) {
	t.Helper()
	to := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.As4()), Port: port}
	var r bytes.Reader
	r.Reset(bytes.Repeat([]byte{'x'}, size))
	if _, tcpipErr := ep.Write(&r, tcpip.WriteOptions{To: &to}); tcpipErr != nil {
		t.Fatalf("Write(%d bytes to %v:%d) = %v", size, addr, port, tcpipErr)
	}
}

// newInboundPacket returns a packet holding frame, as a link hands it to
// its dispatcher.
func newInboundPacket(frame []byte) *stack.PacketBuffer {
	return stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
}

// writeFile writes b to a file in a temporary directory.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
