package stack_test

import (
	"fmt"
	"net/netip"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Two hosts on a switch exchange a datagram through net.PacketConn-style
// conns; a third host sits behind a port whose MTU is too small for it.
func Example() {
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "lan"})
	newHost := func(name, addr string, mtu int) (*stack.Host, *stack.Port) {
		h, _ := stack.NewHost(stack.HostOptions{Name: name})
		p, _ := sw.NewPort(stack.PortOptions{MTU: mtu})
		h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}})
		return h, p
	}
	a, _ := newHost("a", "10.0.0.1/24", 1500)
	b, _ := newHost("b", "10.0.0.2/24", 1500)
	c, cport := newHost("c", "10.0.0.3/24", 576)
	defer a.Close()
	defer b.Close()
	defer c.Close()

	server, _ := b.ListenPacket("udp4", ":7")
	client, _ := a.ListenPacket("udp4", ":0")
	dst, _ := a.ResolveUDPAddr("udp4", "10.0.0.2:7")
	client.WriteTo([]byte("ping"), dst)

	buf := make([]byte, 1500)
	n, from, _ := server.ReadFrom(buf)
	fmt.Printf("b got %q from %v\n", buf[:n], from)

	// 1400 bytes fit a's 1500-byte MTU but not c's port: the switch drops
	// the frame there and counts it.
	// A drop hook must not block: it may run on the goroutine of WriteTo.
	dropped := make(chan wire.DropReason, 1)
	cport.AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) { dropped <- reason })
	bigDst, _ := a.ResolveUDPAddr("udp4", "10.0.0.3:7")
	client.WriteTo(make([]byte, 1400), bigDst)
	fmt.Println("dropped at c's port:", <-dropped, cport.Counters().Drops)

	// Output:
	// b got "ping" from 10.0.0.1:30650
	// dropped at c's port: mtu map[mtu:1]
}
