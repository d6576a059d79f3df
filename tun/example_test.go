package tun_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/tun"
)

// A userspace host on a TUN device made beforehand, as root:
//
//	ip tuntap add dev dgl0 mode tun
//	ip addr add 10.99.0.1/24 dev dgl0
//	ip link set dgl0 up
//
// runs the seed's UDP server; the kernel and real programs reach it at
// 10.99.0.2:41234 (try: echo hi | nc -u -w1 10.99.0.2 41234). It needs
// CAP_NET_ADMIN, so it is not run by go test.
func Example() {
	dev, err := tun.Open(tun.Options{Name: "dgl0"})
	if err != nil {
		log.Fatal(err) // e.g. "tun: attach dgl0: no such device (create it first with: ip tuntap add dev dgl0 mode tun)"
	}
	host, err := stack.NewHost(stack.HostOptions{Name: "userspace"})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close() // removes the NIC, which closes the device

	pcap, err := capture.CreatePcapngFile("dgl0.pcapng") // raw IP frames, drops with their reason
	if err != nil {
		log.Fatal(err)
	}
	defer pcap.Close()
	nic := capture.NewTap(dev, capture.TapOptions{Name: "userspace/dgl0", Sink: pcap})
	if _, err := host.AddNIC(nic, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/24")}}); err != nil {
		log.Fatal(err)
	}

	loop := dgram.NewLoop(host)
	server, _ := loop.CreateSocket("udp4", nil)
	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		fmt.Printf("server got: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
		server.Send(msg, rinfo.Port, rinfo.Address, nil)
	})
	server.Bind(41234, "", nil)
	go func() {
		<-dev.Done() // closed when the device vanishes (ip link del)
		if err := dev.Err(); err != nil {
			loop.Post(func() { server.Close(nil) })
		}
	}()
	loop.Run(context.Background())
	fmt.Println(dev.Counters())
}
