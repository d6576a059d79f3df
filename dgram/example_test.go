package dgram_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// newLAN builds hosts on one switch: 10.0.0.1/24, 10.0.0.2/24, ...
func newLAN(names ...string) ([]*stack.Host, func()) {
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "lan"})
	var hosts []*stack.Host
	for i, name := range names {
		h, err := stack.NewHost(stack.HostOptions{Name: name})
		if err != nil {
			panic(err)
		}
		port, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			panic(err)
		}
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(port, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			panic(err)
		}
		hosts = append(hosts, h)
	}
	return hosts, func() {
		for _, h := range hosts {
			h.Close()
		}
	}
}

// The seed's UDP server and client, on two virtual hosts of one LAN. Each
// host runs its own loop, like two Node processes.
func Example() {
	hosts, closeLAN := newLAN("server", "client")
	defer closeLAN()

	// The server, on 10.0.0.1.
	serverLoop := dgram.NewLoop(hosts[0])
	server, _ := serverLoop.CreateSocket("udp4", nil)
	server.OnError(func(err error) {
		fmt.Printf("server error:\n%v\n", err)
		server.Close(nil)
	})
	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		fmt.Printf("server got: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
		server.Close(nil)
	})
	listening := make(chan struct{})
	server.OnListening(func() {
		address, _ := server.Address()
		fmt.Printf("server listening %s:%d\n", address.Address, address.Port)
		close(listening)
	})
	server.Bind(41234, "", nil)
	done := make(chan error)
	go func() { done <- serverLoop.Run(context.Background()) }()
	<-listening

	// The client, on 10.0.0.2.
	clientLoop := dgram.NewLoop(hosts[1])
	message := []byte("Some bytes")
	client, _ := clientLoop.CreateSocket("udp4", nil)
	client.Send(message, 41234, "10.0.0.1", func(n int, err error) {
		client.Close(nil)
	})
	clientLoop.Run(context.Background())
	<-done

	// Output:
	// server listening 0.0.0.0:41234
	// server got: Some bytes from 10.0.0.2:25561
}

// The seed's broadcast: one datagram to 255.255.255.255 reaches every host
// of the LAN (the sender's own socket, bound to 0.0.0.0, gets a copy too).
func Example_broadcast() {
	hosts, closeLAN := newLAN("a", "b", "c")
	defer closeLAN()
	loop := dgram.NewLoop(nil) // one loop for all hosts: a deterministic order of events
	received := 0
	var sockets []*dgram.Socket
	for _, h := range hosts {
		s, _ := loop.CreateSocketWith(dgram.SocketOptions{Type: "udp4", Network: h}, nil)
		name := h.Name()
		s.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
			fmt.Printf("%s got %q from %s\n", name, msg, rinfo.Address)
			if received++; received == len(hosts) {
				for _, s := range sockets {
					s.Close(nil)
				}
			}
		})
		sockets = append(sockets, s)
	}
	bound := 0
	for _, s := range sockets {
		s.Bind(41234, "", func() {
			if bound++; bound < len(sockets) {
				return
			}
			sender := sockets[0]
			sender.SetBroadcast(true)
			sender.Send([]byte("hello LAN"), 41234, "255.255.255.255", nil)
		})
	}
	loop.Run(context.Background())

	// Unordered output:
	// a got "hello LAN" from 10.0.0.1
	// b got "hello LAN" from 10.0.0.1
	// c got "hello LAN" from 10.0.0.1
}

// Multicast discovery: every host joins a group; one datagram to the group
// reaches them all (the sender's own socket too, by multicast loopback).
func Example_multicast() {
	hosts, closeLAN := newLAN("a", "b", "c")
	defer closeLAN()
	loop := dgram.NewLoop(nil)
	received := 0
	var sockets []*dgram.Socket
	for _, h := range hosts {
		s, _ := loop.CreateSocketWith(dgram.SocketOptions{Type: "udp4", Network: h, ReuseAddr: true}, nil)
		name := h.Name()
		s.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
			fmt.Printf("%s got %q from %s\n", name, msg, rinfo.Address)
			if received++; received == len(hosts) {
				for _, s := range sockets {
					s.Close(nil)
				}
			}
		})
		sockets = append(sockets, s)
	}
	bound := 0
	for _, s := range sockets {
		s.Bind(5353, "", func() {
			if err := s.AddMembership("224.0.0.251", ""); err != nil {
				fmt.Println(err)
			}
			if bound++; bound == len(sockets) {
				sockets[0].Send([]byte("who is there?"), 5353, "224.0.0.251", nil)
			}
		})
	}
	loop.Run(context.Background())

	// Unordered output:
	// a got "who is there?" from 10.0.0.1
	// b got "who is there?" from 10.0.0.1
	// c got "who is there?" from 10.0.0.1
}

// A connected socket sends without naming its peer, and learns from ICMP
// that nobody listens there.
func ExampleSocket_Connect() {
	hosts, closeLAN := newLAN("a", "b")
	defer closeLAN()
	loop := dgram.NewLoop(hosts[0])
	s, _ := loop.CreateSocket("udp4", nil)
	s.OnError(func(err error) {
		fmt.Println("error:", err)
		s.Close(nil)
	})
	s.Connect(9999, "10.0.0.2", func(err error) {
		r, _ := s.RemoteAddress()
		fmt.Println("connected to", r.Address, r.Port)
		s.Send([]byte("anyone?"), 0, "", func(n int, err error) { fmt.Println("sent", n, err) })
	})
	loop.Run(context.Background())

	// Output:
	// connected to 10.0.0.2 9999
	// sent 7 <nil>
	// error: recvmsg ECONNREFUSED
}
