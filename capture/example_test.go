package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/wire"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// A host's NIC gets a Tap around its link; a test waits for the frames it
// expects. Here the link is a gVisor channel endpoint (an L3 link, so
// frames are raw IP) and the clock is fixed.
func Example() {
	link := channel.New(16, 1500, "")
	defer link.Close()
	rec := capture.NewRecorder()
	clock := func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
	tap := capture.NewTap(link, capture.TapOptions{Name: "h1/tun0", Sink: rec, Clock: clock})

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol},
	})
	defer s.Wait()
	defer s.Close()
	if err := s.CreateNIC(1, tap); err != nil {
		log.Fatal(err)
	}
	addr := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), PrefixLen: 24}}
	if err := s.AddProtocolAddress(1, addr, stack.AddressProperties{}); err != nil {
		log.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: addr.AddressWithPrefix.Subnet(), NIC: 1}})

	var wq waiter.Queue
	ep, err := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		log.Fatal(err)
	}
	defer ep.Close()
	if err := ep.Bind(tcpip.FullAddress{Port: 40000}); err != nil {
		log.Fatal(err)
	}
	to := tcpip.FullAddress{Addr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), Port: 9000}
	if _, err := ep.Write(bytes.NewReader([]byte("hello")), tcpip.WriteOptions{To: &to}); err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, werr := rec.Wait(ctx, capture.All(capture.Dir(wire.Outbound), capture.DstPort(9000)))
	if werr != nil {
		log.Fatal(werr)
	}
	fmt.Println(f)
	fmt.Println("on-wire bytes:", f.Len, "= 5 + 8 (UDP) + 20 (IPv4)")
	// Output:
	// 12:00:00.000000000 h1/tun0 out len=33 udp 10.0.0.1:40000>10.0.0.2:9000 payload=5
	// on-wire bytes: 33 = 5 + 8 (UDP) + 20 (IPv4)
}

func ExampleSummarize() {
	f, err := os.Open("testdata/scenario.pcapng")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	s, err := capture.Summarize(f)
	if err != nil {
		log.Fatal(err)
	}
	s.WriteText(os.Stdout)
	// Output:
	// pcapng: 12 frames, 5900 bytes, 2 dropped
	//
	// LINK       TYPE      FRAMES  BYTES  IN  OUT  DROPS
	// h1/eth0    ethernet  7       3434   0   7    1
	// h2/eth0    ethernet  2       284    1   1    0
	// tun0       raw       3       2182   0   3    0
	// sw0/port2  ethernet  0       0      0   0    1
	//
	// FLOW                              PROTO  FRAMES  BYTES  MIN  MAX
	// 10.0.0.1:40000 > 10.0.0.2:9000    udp    5       3394   82   1514
	// 10.0.0.2:9000 > 10.0.0.1:40000    udp    1       142    142  142
	// 10.0.0.1:7000 > 224.0.0.251:7000  udp    1       62     62   62
	// 10.0.0.1:6000 > 10.0.0.255:6000   udp    1       60     60   60
	// [fd00::1]:1234 > [fd00::2]:9053   udp    3       2182   78   1280
	//
	// fragments: 5 frames, 2 datagrams, 2 reassembled
	// broadcasts: 2  multicasts: 1  non-ip: 1
	//
	// DROP REASON  FRAMES  BYTES
	// mtu          1       1514
	// queue-full   1       142
}

func ExampleParseDropComment() {
	c := capture.DropComment(wire.DropMTU, "sw0/port2", wire.Outbound)
	fmt.Println(c)
	word, link, dir, ok := capture.ParseDropComment(c)
	fmt.Println(word, link, dir, ok)
	reason, known := wire.ParseDropReason(word) // files may hold other words
	fmt.Println(reason == wire.DropMTU, known)
	// Output:
	// dgramlab: dropped: mtu (link sw0/port2, outbound)
	// mtu sw0/port2 outbound true
	// true true
}
