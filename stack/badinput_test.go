package stack_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
)

// TestLinkAttachedOnce: a link carries one NIC. Attaching a link (or a
// wrapper around one) that is attached already would take its frames away
// from the first NIC with no counter saying so; AddNIC refuses it.
func TestLinkAttachedOnce(t *testing.T) {
	_, hosts, ports := lan(t, 1500, 1500)
	h2, err := stack.NewHost(stack.HostOptions{Name: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	pa, pb, err := stack.NewPipe(stack.PipeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hosts[0].AddNIC(pa, stack.NICOptions{Name: "p0"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		host *stack.Host
		ep   gvstack.LinkEndpoint
	}{
		{"port on another host", h2, ports[0]},
		{"port on its own host again", hosts[0], ports[0]},
		{"pipe end on another host", h2, pa},
		{"wrapped attached port", h2, stack.NewImpairedLink(ports[1], stack.ImpairedLinkOptions{})},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.host.AddNIC(c.ep, stack.NICOptions{Name: "dup"})
			if err == nil || !strings.Contains(err.Error(), "attached to a NIC already") {
				t.Fatalf("AddNIC = %v, want an error saying the link is attached already", err)
			}
		})
	}
	// The first NICs still carry their traffic.
	c1 := listen(t, hosts[1], "udp4", "10.0.0.2:7")
	c0 := listen(t, hosts[0], "udp4", "10.0.0.1:0")
	if _, err := c0.WriteToUDPAddrPort([]byte("still here"), netip.MustParseAddrPort("10.0.0.2:7")); err != nil {
		t.Fatal(err)
	}
	if got, _ := recv(t, c1); string(got) != "still here" {
		t.Fatalf("got %q", got)
	}
	// A free end of the same pipe can be attached; a port whose host has
	// closed has left its switch, and is refused rather than attached dead.
	if _, err := h2.AddNIC(pb, stack.NICOptions{}); err != nil {
		t.Fatalf("AddNIC(free pipe end) = %v", err)
	}
	hosts[1].Close()
	if _, err := h2.AddNIC(ports[1], stack.NICOptions{Name: "again"}); err == nil || !strings.Contains(err.Error(), "switch port was removed") {
		t.Fatalf("AddNIC(port of a closed host) = %v, want a removed-port error", err)
	}
}

// TestLinkAttachRace: hosts racing to attach the same link (bare or
// wrapped) end with exactly one NIC on it.
func TestLinkAttachRace(t *testing.T) {
	sw := stack.NewSwitch(stack.SwitchOptions{})
	for round := range 50 {
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const n = 4
		errs := make(chan error, n)
		for i := range n {
			h, err := stack.NewHost(stack.HostOptions{Name: fmt.Sprintf("r%d-%d", round, i)})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			var ep gvstack.LinkEndpoint = p
			if i%2 == 1 {
				ep = stack.NewImpairedLink(p, stack.ImpairedLinkOptions{})
			}
			go func() {
				_, err := h.AddNIC(ep, stack.NICOptions{})
				errs <- err
			}()
		}
		ok := 0
		for range n {
			if <-errs == nil {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d hosts attached the same port, want 1", round, ok)
		}
	}
}

// TestLinkMTURange: link MTUs out of [68, 65535] are errors, never a silent
// default or a wrapped-around uint32 that turns enforcement off.
func TestLinkMTURange(t *testing.T) {
	sw := stack.NewSwitch(stack.SwitchOptions{})
	for _, mtu := range []int{-5, 1, 67, 65536, 1 << 40} {
		if _, err := sw.NewPort(stack.PortOptions{MTU: mtu}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("NewPort(MTU %d) = %v, want out of range", mtu, err)
		}
		if _, err := sw.NewPort(stack.PortOptions{NICMTU: mtu}); err == nil {
			t.Errorf("NewPort(NICMTU %d) succeeded", mtu)
		}
		if _, _, err := stack.NewPipe(stack.PipeOptions{MTU: mtu}); err == nil {
			t.Errorf("NewPipe(MTU %d) succeeded", mtu)
		}
	}
	big := stack.NewSwitch(stack.SwitchOptions{Name: "big", MTU: 70000})
	if _, err := big.NewPort(stack.PortOptions{}); err == nil || !strings.Contains(err.Error(), "switch big's default port MTU 70000") {
		t.Errorf("NewPort on a switch whose default MTU is 70000 = %v, want an error naming the switch's default", err)
	}
	p, err := sw.NewPort(stack.PortOptions{MTU: 576})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := stack.NewPipe(stack.PipeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mtu := range []int{-1, 0, 67, 65536} {
		if err := p.SetPortMTU(mtu); err == nil {
			t.Errorf("SetPortMTU(%d) succeeded", mtu)
		}
		if err := a.SetLinkMTU(mtu); err == nil {
			t.Errorf("SetLinkMTU(%d) succeeded", mtu)
		}
	}
	if p.PortMTU() != 576 {
		t.Errorf("port MTU %d after refused changes, want 576", p.PortMTU())
	}
	if err := p.SetPortMTU(68); err != nil || p.PortMTU() != 68 {
		t.Errorf("SetPortMTU(68) = %v, MTU %d", err, p.PortMTU())
	}
}

// TestNilContext: calls that take a context fail on a nil one instead of
// panicking.
func TestNilContext(t *testing.T) {
	h, err := stack.NewHost(stack.HostOptions{Name: "nilctx"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var nilCtx context.Context
	if _, err := h.LookupNetIP(nilCtx, "ip", "localhost"); err == nil {
		t.Error("LookupNetIP(nil ctx) succeeded")
	}
	if _, err := h.DialContext(nilCtx, "udp", "127.0.0.1:9"); err == nil {
		t.Error("DialContext(nil ctx) succeeded")
	}
}

// TestNICAddressRefused: prefixes a NIC cannot have are refused by
// CheckNICAddress, AddNIC and AddAddress alike, with an error wrapping
// ErrInvalidAddress that says why; a refused AddNIC leaves the link free,
// and a refused AddAddress leaves the NIC's addresses as they were.
func TestNICAddressRefused(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		name   string
		prefix netip.Prefix
		want   string
	}{
		// An IPv4-mapped prefix is IPv6 to Linux, and no use as IPv4 to
		// gVisor: the error names the IPv4 form.
		{"v4-mapped /120", pfx("::ffff:10.9.0.1/120"), "is an IPv4-mapped IPv6 address, which a NIC cannot use for IPv4: use the IPv4 form 10.9.0.1/24"},
		{"v4-mapped /128", pfx("::ffff:10.9.0.1/128"), "use the IPv4 form 10.9.0.1/32"},
		{"v4-mapped /97", pfx("::ffff:10.9.0.1/97"), "use the IPv4 form 10.9.0.1/1"},
		{"v4-mapped /96", pfx("::ffff:10.9.0.1/96"), "use the IPv4 form, 10.9.0.1 with an IPv4 prefix length"},
		{"v4-mapped /24", pfx("::ffff:10.9.0.1/24"), "use the IPv4 form, 10.9.0.1 with an IPv4 prefix length"},
		// Addresses no interface can have, and prefixes that would put
		// every address on the link.
		{"0.0.0.0/8", pfx("0.0.0.0/8"), "0.0.0.0/8 is the unspecified address"},
		{"0.0.0.0/32", pfx("0.0.0.0/32"), "0.0.0.0/32 is the unspecified address"},
		{"::/64", pfx("::/64"), "::/64 is the unspecified address"},
		{"::/0", pfx("::/0"), "::/0 is the unspecified address"},
		{"IPv4 multicast", pfx("224.0.0.1/24"), "224.0.0.1/24 is a multicast address"},
		{"IPv4 multicast /32", pfx("239.1.2.3/32"), "239.1.2.3/32 is a multicast address"},
		{"IPv6 multicast", pfx("ff02::1/64"), "ff02::1/64 is a multicast address"},
		{"limited broadcast", pfx("255.255.255.255/32"), "255.255.255.255/32 is the limited broadcast address"},
		{"limited broadcast /8", pfx("255.255.255.255/8"), "is the limited broadcast address"},
		{"IPv4 /0", pfx("10.0.0.1/0"), "10.0.0.1/0 has prefix length 0"},
		{"IPv6 /0", pfx("2001:db8::1/0"), "2001:db8::1/0 has prefix length 0"},
		{"zero prefix", netip.Prefix{}, "the address is missing"},
		{"IPv4 /33", netip.PrefixFrom(netip.MustParseAddr("10.9.0.1"), 33), "10.9.0.1 has a prefix length out of range [0, 32]"},
		{"IPv6 /129", netip.PrefixFrom(netip.MustParseAddr("2001:db8::1"), 129), "2001:db8::1 has a prefix length out of range [0, 128]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			refused := func(call string, err error, context string) {
				t.Helper()
				if !errors.Is(err, stack.ErrInvalidAddress) || !strings.HasPrefix(err.Error(), context) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s = %v, want an ErrInvalidAddress error %q...%q", call, err, context, c.want)
				}
			}
			refused("CheckNICAddress(..)", stack.CheckNICAddress(c.prefix), "")
			h, err := stack.NewHost(stack.HostOptions{Name: "h"})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			sw := stack.NewSwitch(stack.SwitchOptions{})
			port, err := sw.NewPort(stack.PortOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.AddNIC(port, stack.NICOptions{Addresses: []netip.Prefix{pfx("10.9.0.1/24"), c.prefix}})
			refused("AddNIC(..)", err, "stack: host h: NIC eth0: ")
			if len(h.NICs()) != 1 {
				t.Errorf("after a refused AddNIC the host has NICs %v, want only lo", h.NICs())
			}
			// The port is still free, and the NIC gets the same name.
			n, err := h.AddNIC(port, stack.NICOptions{Addresses: []netip.Prefix{pfx("10.9.0.1/24")}})
			if err != nil {
				t.Fatalf("AddNIC(the port again, 10.9.0.1/24) = %v", err)
			}
			before := sortedAddresses(n)
			refused("AddAddress(..)", n.AddAddress(c.prefix), "stack: h/eth0: ")
			if after := sortedAddresses(n); !slices.Equal(after, before) {
				t.Errorf("addresses after a refused AddAddress: %v, want %v", after, before)
			}
		})
	}
}

// TestLoopbackAddresses: the checks AddAddress makes let NewHost give "lo"
// its addresses.
func TestLoopbackAddresses(t *testing.T) {
	h, err := stack.NewHost(stack.HostOptions{Name: "lo-addrs"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := h.NIC("lo").Addresses()
	for _, want := range []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")} {
		if !slices.Contains(got, want) {
			t.Errorf("lo has addresses %v, want %v among them", got, want)
		}
	}
	c := listen(t, h, "udp4", "127.0.0.1:0")
	if _, err := c.WriteToUDPAddrPort([]byte("lo"), c.LocalAddrPort()); err != nil {
		t.Fatal(err)
	}
	if got, _ := recv(t, c); string(got) != "lo" {
		t.Errorf("got %q over lo, want %q", got, "lo")
	}
}

// sortedAddresses returns n's addresses in order.
func sortedAddresses(n *stack.NIC) []netip.Prefix {
	return slices.SortedFunc(slices.Values(n.Addresses()), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
}

// TestNICAddressAccepted: the checks leave alone what Linux lets an
// Ethernet interface have and a host can use.
func TestNICAddressAccepted(t *testing.T) {
	_, hosts, _ := lan(t, 1500)
	n := hosts[0].NIC("eth0")
	for _, s := range []string{"10.1.0.1/32", "10.2.0.255/24", "10.3.0.0/31", "127.0.0.2/8", "fe80::1/64", "2001:db8::1/128", "2001:db8:1::1/1"} {
		p := netip.MustParsePrefix(s)
		if err := stack.CheckNICAddress(p); err != nil {
			t.Errorf("CheckNICAddress(%v) = %v, want nil", p, err)
		}
		if err := n.AddAddress(p); err != nil {
			t.Errorf("AddAddress(%v) = %v, want nil", p, err)
		}
		if !slices.Contains(n.Addresses(), p) {
			t.Errorf("after AddAddress(%v): addresses %v", p, n.Addresses())
		}
	}
}

// TestNICMTURange: a NIC's MTU follows the link MTU rule, [68, 65535],
// and is never wrapped into a uint32; 0 means the link's. A refused MTU
// leaves the link free.
func TestNICMTURange(t *testing.T) {
	h, err := stack.NewHost(stack.HostOptions{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sw := stack.NewSwitch(stack.SwitchOptions{})
	port, err := sw.NewPort(stack.PortOptions{MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	for _, mtu := range []int{-1, 1, 67, 65536, 1 << 32, 1<<32 + 1500} {
		_, err := h.AddNIC(port, stack.NICOptions{Name: "eth7", MTU: mtu})
		want := fmt.Sprintf("stack: host h: NIC eth7 MTU %d is out of range [68, 65535]", mtu)
		if err == nil || err.Error() != want {
			t.Errorf("AddNIC(MTU %d) = %v, want %q", mtu, err, want)
		}
	}
	if len(h.NICs()) != 1 {
		t.Fatalf("after refused AddNICs the host has NICs %v, want only lo", h.NICs())
	}
	for _, c := range []struct{ mtu, want int }{{0, 1400}, {68, 68}, {1279, 1279}, {65535, 65535}} {
		p, err := sw.NewPort(stack.PortOptions{MTU: 1400})
		if err != nil {
			t.Fatal(err)
		}
		if c.mtu == 0 {
			p = port // the port the refused AddNICs left free
		}
		n, err := h.AddNIC(p, stack.NICOptions{MTU: c.mtu})
		if err != nil {
			t.Errorf("AddNIC(MTU %d) = %v", c.mtu, err)
			continue
		}
		if n.MTU() != c.want {
			t.Errorf("AddNIC(MTU %d): NIC MTU %d, want %d", c.mtu, n.MTU(), c.want)
		}
	}
}

// TestNICMTUBelowIPv6Minimum: a NIC MTU below IPv6's 1280 is allowed, as
// for a link; IPv4 then works and IPv6 sends fail with EINVAL.
func TestNICMTUBelowIPv6Minimum(t *testing.T) {
	a, b, err := stack.NewPipe(stack.PipeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var hosts [2]*stack.Host
	for i, ep := range []gvstack.LinkEndpoint{a, b} {
		h, err := stack.NewHost(stack.HostOptions{Name: fmt.Sprintf("h%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		addrs := []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 5, 0, byte(i + 1)}), 24), netip.MustParsePrefix(fmt.Sprintf("fd00::%d/64", i+1))}
		if _, err := h.AddNIC(ep, stack.NICOptions{MTU: 1000, Addresses: addrs}); err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
	}
	rx := listen(t, hosts[1], "udp4", "10.5.0.2:7")
	tx := listen(t, hosts[0], "udp4", "10.5.0.1:0")
	if _, err := tx.WriteToUDPAddrPort([]byte("v4"), netip.MustParseAddrPort("10.5.0.2:7")); err != nil {
		t.Fatalf("udp4 WriteTo on a 1000-MTU NIC = %v", err)
	}
	if got, _ := recv(t, rx); string(got) != "v4" {
		t.Errorf("got %q, want %q", got, "v4")
	}
	tx6 := listen(t, hosts[0], "udp6", "[fd00::1]:0")
	if _, err := tx6.WriteToUDPAddrPort([]byte("v6"), netip.MustParseAddrPort("[fd00::2]:7")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("udp6 WriteTo on a 1000-MTU NIC = %v, want EINVAL", err)
	}
}
