package stack_test

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/dgramlab/dgramlab/stack"
)

var noAddr netip.Addr

// expectNothing checks that c has nothing to read. Every datagram of these
// tests is delivered synchronously, so "not there yet" means "not coming".
func expectNothing(t testing.TB, c *stack.UDPConn) {
	t.Helper()
	if n, from, err := c.TryReadFromUDPAddrPort(make([]byte, 100)); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("read %d bytes from %s (%v), want nothing", n, from, err)
	}
}

func TestMulticastOverSwitch(t *testing.T) {
	for _, tc := range []struct {
		network, group string
		iface          func(h *stack.Host) netip.Addr
	}{
		{"udp4", "224.0.0.251", func(*stack.Host) netip.Addr { return noAddr }},
		{"udp4", "239.1.2.3", func(*stack.Host) netip.Addr { return netip.MustParseAddr("10.0.0.2") }},
		{"udp6", "224.0.0.251", func(*stack.Host) netip.Addr { return noAddr }},
		{"udp6", "ff02::fb", func(*stack.Host) netip.Addr { return noAddr }},
		{"udp6", "ff02::fb", func(*stack.Host) netip.Addr { return netip.MustParseAddr("::%eth0") }},
	} {
		t.Run(tc.network+" "+tc.group, func(t *testing.T) {
			_, hosts, _ := lan(t, 1500, 1500, 1500)
			wild := "0.0.0.0:5353"
			if tc.network == "udp6" {
				wild = "[::]:5353"
			}
			group := netip.MustParseAddr(tc.group)
			to := netip.AddrPortFrom(group, 5353)
			member := listen(t, hosts[1], tc.network, wild)
			other := listen(t, hosts[2], tc.network, wild) // not a member
			if err := member.JoinGroup(group, tc.iface(hosts[1])); err != nil {
				t.Fatalf("JoinGroup = %v", err)
			}
			if err := member.JoinGroup(group, tc.iface(hosts[1])); !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second JoinGroup = %v, want EADDRINUSE", err)
			}
			tx := listen(t, hosts[0], tc.network, wild)
			send(t, tx, "hello group", to)
			if got, from := recv(t, member); string(got) != "hello group" || from.Port() != 5353 {
				t.Fatalf("member got %q from %s", got, from)
			}
			expectNothing(t, other)
			if err := member.LeaveGroup(group, tc.iface(hosts[1])); err != nil {
				t.Fatalf("LeaveGroup = %v", err)
			}
			if err := member.LeaveGroup(group, tc.iface(hosts[1])); !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("second LeaveGroup = %v, want EADDRNOTAVAIL", err)
			}
			send(t, tx, "after leave", to)
			expectNothing(t, member)
		})
	}
}

func TestSourceSpecificMembership(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500, 1500)
	group := netip.MustParseAddr("232.1.1.1")
	to := netip.AddrPortFrom(group, 6000)
	rx := listen(t, hosts[2], "udp4", "0.0.0.0:6000")
	a := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	b := listen(t, hosts[1], "udp4", "0.0.0.0:0")
	srcA := netip.MustParseAddr("10.0.0.1")
	if err := rx.JoinSourceSpecificGroup(group, srcA, noAddr); err != nil {
		t.Fatalf("JoinSourceSpecificGroup = %v", err)
	}
	if err := rx.JoinSourceSpecificGroup(group, srcA, noAddr); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("second JoinSourceSpecificGroup = %v, want EADDRNOTAVAIL", err)
	}
	if err := rx.JoinGroup(group, noAddr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("JoinGroup after a source-specific join = %v, want EADDRINUSE", err)
	}
	send(t, b, "from b", to)
	send(t, a, "from a", to)
	if got, from := recv(t, rx); string(got) != "from a" || from.Addr() != srcA {
		t.Fatalf("got %q from %s, want \"from a\" from %s", got, from, srcA)
	}
	expectNothing(t, rx)
	if got := hosts[2].Stats().UDP.SourceFiltered; got != 1 {
		t.Errorf("SourceFiltered = %d, want 1", got)
	}
	if err := rx.LeaveSourceSpecificGroup(group, netip.MustParseAddr("10.0.0.2"), noAddr); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("leaving a source not joined = %v, want EADDRNOTAVAIL", err)
	}
	if err := rx.LeaveSourceSpecificGroup(group, srcA, noAddr); err != nil {
		t.Fatalf("LeaveSourceSpecificGroup = %v", err)
	}
	if err := rx.LeaveSourceSpecificGroup(group, srcA, noAddr); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("leaving twice = %v, want EINVAL", err)
	}
	send(t, a, "gone", to)
	expectNothing(t, rx)
}

func TestMulticastErrors(t *testing.T) {
	_, hosts, _ := lan(t, 1500)
	c4 := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	c6 := listen(t, hosts[0], "udp6", "[::]:0")
	g := netip.MustParseAddr("239.1.2.3")
	for _, tc := range []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"udp4 join unicast", c4.JoinGroup(netip.MustParseAddr("10.0.0.9"), noAddr), syscall.EINVAL},
		{"udp4 join v6 group", c4.JoinGroup(netip.MustParseAddr("ff02::fb"), noAddr), syscall.ENOPROTOOPT},
		{"udp4 join on a foreign address", c4.JoinGroup(g, netip.MustParseAddr("1.2.3.4")), syscall.ENODEV},
		{"udp4 join with a v6 interface", c4.JoinGroup(g, netip.MustParseAddr("::1")), syscall.EINVAL},
		{"udp4 join on the broadcast address", c4.JoinGroup(g, netip.MustParseAddr("255.255.255.255")), syscall.ENODEV},
		{"udp4 leave not joined", c4.LeaveGroup(g, noAddr), syscall.EADDRNOTAVAIL},
		{"udp4 leave unicast", c4.LeaveGroup(netip.MustParseAddr("10.0.0.9"), noAddr), syscall.EADDRNOTAVAIL},
		{"udp4 SSM mixed families", c4.JoinSourceSpecificGroup(g, netip.MustParseAddr("::1"), noAddr), syscall.EINVAL},
		{"udp4 SSM leave not joined", c4.LeaveSourceSpecificGroup(g, netip.MustParseAddr("10.0.0.1"), noAddr), syscall.EINVAL},
		{"udp4 multicast interface v6", c4.SetMulticastInterface(netip.MustParseAddr("::1")), syscall.ENOPROTOOPT},
		{"udp4 multicast interface foreign", c4.SetMulticastInterface(netip.MustParseAddr("1.2.3.4")), syscall.EADDRNOTAVAIL},
		{"udp4 multicast interface local", c4.SetMulticastInterface(netip.MustParseAddr("10.0.0.1")), 0},
		{"udp4 multicast interface reset", c4.SetMulticastInterface(netip.IPv4Unspecified()), 0},
		{"udp6 join v4 group", c6.JoinGroup(g, noAddr), 0},
		{"udp6 join v6 group twice", errors.Join(c6.JoinGroup(netip.MustParseAddr("ff02::fb"), noAddr),
			c6.JoinGroup(netip.MustParseAddr("ff02::fb"), netip.MustParseAddr("::%eth0"))), syscall.EADDRINUSE},
		{"udp6 multicast interface v4", c6.SetMulticastInterface(netip.MustParseAddr("10.0.0.1")), 0},
		{"udp6 multicast interface zone", c6.SetMulticastInterface(netip.MustParseAddr("::%eth0")), 0},
		{"udp6 multicast interface unknown zone", c6.SetMulticastInterface(netip.MustParseAddr("::%nope")), 0},
	} {
		if tc.want == 0 {
			if tc.err != nil {
				t.Errorf("%s = %v, want success", tc.name, tc.err)
			}
		} else if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// A host without a route to the group: ENODEV, as on Linux.
	lo := listen(t, loHost(t), "udp4", "0.0.0.0:0")
	if err := lo.JoinGroup(g, noAddr); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("join without a route = %v, want ENODEV", err)
	}
}

// Multicast on the loopback interface, as Node does it on Linux's lo.
func TestMulticastLoopback(t *testing.T) {
	h := loHost(t)
	g := netip.MustParseAddr("239.1.2.3")
	lo := netip.MustParseAddr("127.0.0.1")
	rx := listen(t, h, "udp4", "0.0.0.0:21300")
	if err := rx.JoinGroup(g, lo); err != nil {
		t.Fatal(err)
	}
	tx := listen(t, h, "udp4", "0.0.0.0:0")
	if _, err := tx.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(g, 21300)); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("send without a multicast interface = %v, want ENETUNREACH", err)
	}
	if err := tx.SetMulticastInterface(lo); err != nil {
		t.Fatal(err)
	}
	for _, loop := range []bool{true, false} {
		tx.SetMulticastLoopback(loop)
		send(t, tx, "loop", netip.AddrPortFrom(g, 21300))
		if got, from := recv(t, rx); string(got) != "loop" || from.Addr() != lo {
			t.Fatalf("loopback %v: got %q from %s", loop, got, from)
		}
		expectNothing(t, rx) // once only
	}
}

// Regression (found in review): JoinGroup took the membership lock then the
// endpoint's, Disconnect (replacing the endpoint of a conn opened on port
// 0) the other way round: run together, they could deadlock.
func TestJoinGroupWhileDisconnecting(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500)
	c := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	group := netip.MustParseAddr("239.1.1.1")
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			c.JoinGroup(group, netip.Addr{})
			c.LeaveGroup(group, netip.Addr{})
		}
	})
	wg.Go(func() {
		for range 2000 {
			c.Connect(netip.MustParseAddrPort("10.0.0.2:9"))
			c.Disconnect()
		}
	})
	wg.Wait() // a deadlock ends in the test binary's timeout
}
