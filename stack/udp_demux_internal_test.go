package stack

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// The host's demux table gives each unicast datagram to the conn whose
// endpoint gVisor's demuxer would have chosen, for every shape of binding:
// udp4 and udp6, dual-stack and v6-only, wildcard, specific and
// IPv4-mapped addresses, SO_REUSEADDR groups, connected, disconnected.
func TestDemuxMirrorsGVisor(t *testing.T) {
	h, err := NewHost(HostOptions{Name: "mirror"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sw := NewSwitch(SwitchOptions{})
	p, _ := sw.NewPort(PortOptions{})
	if _, err := h.AddNIC(p, NICOptions{Addresses: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64"),
	}}); err != nil {
		t.Fatal(err)
	}
	type shape struct {
		network, addr string
		reuse, v6only bool
		connect       string // a peer to connect to, or ""
		disconnect    bool
	}
	shapes := []shape{
		{network: "udp4", addr: "0.0.0.0:7000", reuse: true},
		{network: "udp4", addr: "10.0.0.1:7000", reuse: true},
		{network: "udp4", addr: "0.0.0.0:7000", reuse: true, connect: "10.0.0.9:53"},
		{network: "udp6", addr: "[::]:7000", reuse: true},
		{network: "udp6", addr: "[::]:7001", v6only: true},
		{network: "udp4", addr: "0.0.0.0:7001"},
		{network: "udp6", addr: "[::ffff:10.0.0.1]:7002"},
		{network: "udp6", addr: "[fd00::1]:7003"},
		{network: "udp6", addr: "[::]:7004", connect: "10.0.0.9:53"},
		{network: "udp6", addr: "[::]:7005", connect: "[fd00::9]:53"},
		{network: "udp4", addr: "0.0.0.0:0", connect: "10.0.0.9:53"},
		{network: "udp4", addr: "0.0.0.0:7006", connect: "10.0.0.9:53", disconnect: true},
		{network: "udp4", addr: "0.0.0.0:0", connect: "10.0.0.9:53", disconnect: true},
		{network: "udp6", addr: "[::]:7007", reuse: true, connect: "[fd00::9]:53"},
		{network: "udp6", addr: "[::]:7007", reuse: true},
		{network: "udp4", addr: "127.0.0.1:7008"},
	}
	var conns []*UDPConn
	for _, s := range shapes {
		c, err := h.openUDP(s.network, netip.MustParseAddrPort(s.addr), s.reuse, s.v6only)
		if err != nil {
			t.Fatalf("open %+v: %v", s, err)
		}
		defer c.Close()
		if s.connect != "" {
			if err := c.Connect(netip.MustParseAddrPort(s.connect)); err != nil {
				t.Fatalf("connect %+v: %v", s, err)
			}
		}
		if s.disconnect {
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	byEndpoint := func(ep stack.TransportEndpoint) *UDPConn {
		for _, c := range conns {
			if any(c.ep) == any(ep) {
				return c
			}
		}
		return nil
	}
	var ports []uint16
	for _, c := range conns {
		ports = append(ports, c.LocalAddrPort().Port())
	}
	locals := []string{"10.0.0.1", "127.0.0.1", "fd00::1", "10.0.0.255"}
	remotes := []string{"10.0.0.9:53", "10.0.0.8:53", "10.0.0.9:54", "[fd00::9]:53", "[fd00::8]:53"}
	checked, matched := 0, 0
	for _, port := range ports {
		for _, l := range locals {
			for _, r := range remotes {
				la, ra := netip.MustParseAddr(l), netip.MustParseAddrPort(r)
				if la.Is4() != ra.Addr().Is4() {
					continue
				}
				proto := ipv4.ProtocolNumber
				if la.Is6() {
					proto = ipv6.ProtocolNumber
				}
				id := stack.TransportEndpointID{
					LocalPort: port, LocalAddress: toTCPIPAddr(la),
					RemotePort: ra.Port(), RemoteAddress: toTCPIPAddr(ra.Addr()),
				}
				want := byEndpoint(h.s.FindTransportEndpoint(proto, udp.ProtocolNumber, id, 2))
				got := h.udp.unicast(proto, id)
				if got != want {
					t.Errorf("datagram %s -> %s:%d: our demux gives %v, gVisor's %v", ra, la, port, got, want)
				}
				checked++
				if got != nil {
					matched++
				}
			}
		}
	}
	if matched == 0 || matched == checked {
		t.Fatalf("%d of %d datagram IDs matched a conn: the table checks nothing", matched, checked)
	}
	t.Logf("%d datagram IDs checked against gVisor's demuxer, %d for a conn", checked, matched)
}
