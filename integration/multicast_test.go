package integration

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/wire"
)

// ipTTL matches IP packets whose TTL (IPv4) or hop limit (IPv6) is ttl.
func ipTTL(ttl byte) capture.Matcher {
	return capture.Func(fmt.Sprintf("ttl=%d", ttl), func(f capture.Frame) bool {
		b := f.Data
		if f.LinkType == layers.LinkTypeEthernet {
			b = b[14:]
		}
		switch {
		case len(b) > 8 && b[0]>>4 == 4:
			return b[8] == ttl
		case len(b) > 7 && b[0]>>4 == 6:
			return b[7] == ttl
		}
		return false
	})
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// mDNS-style discovery between five virtual hosts, over IPv4
// (224.0.0.251) and IPv6 (ff02::fb): every host joins the group on port
// 5353 and h0 announces; everyone (h0 too, by multicast loopback) hears
// it. Then h4 leaves: the switch still floods the frame to h4's NIC, but
// h4's socket no longer gets it (a unicast sentinel sent right after it is
// the next thing h4 reads). The multicast TTL is 1 unless set, and the
// frames carry the group's multicast MAC.
func TestMulticastDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name, typ, group, groupMAC string
		iface                      string // for AddMembership; "" = by route
	}{
		{"ipv4", "udp4", "224.0.0.251", "01:00:5e:00:00:fb", ""},
		{"ipv6", "udp6", "ff02::fb", "33:33:00:00:00:fb", ""},
		{"ipv6 on eth0", "udp6", "ff02::fb", "33:33:00:00:00:fb", "::%eth0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLAN(t, 1500, 1500, 1500, 1500, 1500)
			loop := dgram.NewLoop(nil)
			n := len(l.hosts)
			socks := make([]*dgram.Socket, n)
			got := make([][]string, n) // what each host's socket read
			from4 := "10.0.0.5"        // h4's address, for the sentinel
			if tc.typ == "udp6" {
				for _, p := range l.hosts[4].NICs()[1].Addresses() {
					if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
						// NIC.Addresses drops the zone (netip.Prefix has none).
						from4 = p.Addr().WithZone("eth0").String()
					}
				}
			}
			step := 0
			var announce func(msg string)
			announce = func(msg string) {
				socks[0].Send([]byte(msg), 5353, tc.group, func(_ int, err error) {
					if err != nil {
						t.Errorf("announce %q: %v", msg, err)
					}
				})
			}
			// progress runs after every message: each step waits for its
			// datagrams, then starts the next.
			progress := func() {
				count := func(msg string) (c int) {
					for _, g := range got {
						if slices.Contains(g, msg) {
							c++
						}
					}
					return c
				}
				switch {
				case step == 0 && count("announce 1") == n:
					step++
					// h4 leaves; h0 announces again, then sends h4 a
					// unicast sentinel (which also makes h0 resolve h4's
					// link-layer address: ARP or NDP).
					if err := socks[4].DropMembership(tc.group, tc.iface); err != nil {
						t.Fatalf("DropMembership = %v", err)
					}
					if err := socks[4].DropMembership(tc.group, tc.iface); err == nil || !strings.Contains(err.Error(), "EADDRNOTAVAIL") {
						t.Errorf("second DropMembership = %v, want EADDRNOTAVAIL", err)
					}
					announce("announce 2")
					socks[0].Send([]byte("sentinel"), 5353, from4, func(_ int, err error) {
						if err != nil {
							t.Errorf("sentinel to %s: %v", from4, err)
						}
					})
				case step == 1 && count("announce 2") == n-1 && count("sentinel") == 1:
					step++
					if err := socks[0].SetMulticastTTL(7); err != nil {
						t.Fatal(err)
					}
					announce("announce 3")
				case step == 2 && count("announce 3") == n-1:
					step++
					for _, s := range socks {
						s.Close(nil)
					}
				}
			}
			bound := 0
			for i, h := range l.hosts {
				s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: tc.typ, Network: h, ReuseAddr: true, IPv6Only: tc.typ == "udp6"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				socks[i] = s
				s.OnMessage(func(msg []byte, r dgram.RemoteInfo) {
					got[i] = append(got[i], string(msg))
					if r.Port != 5353 || r.Size != len(msg) {
						t.Errorf("h%d: rinfo %+v", i, r)
					}
					if tc.typ == "udp6" && !strings.HasSuffix(r.Address, "%eth0") {
						t.Errorf("h%d: IPv6 link-local sender %q without its zone", i, r.Address)
					}
					progress()
				})
				s.Bind(5353, "", func() {
					if err := s.AddMembership(tc.group, tc.iface); err != nil {
						t.Fatalf("h%d AddMembership(%s, %q) = %v", i, tc.group, tc.iface, err)
					}
					if bound++; bound == n {
						announce("announce 1")
					}
				})
			}
			runLoop(t, loop)

			for i, g := range got {
				want := []string{"announce 1", "announce 2", "announce 3"}
				if i == 4 {
					want = []string{"announce 1", "sentinel"}
				}
				if !slices.Equal(g, want) {
					t.Errorf("h%d read %q, want %q", i, g, want)
				}
			}
			frames := l.rec.Frames()
			toGroup := capture.All(capture.DstMAC(mac(tc.groupMAC)), capture.DstIP(ip(tc.group)), capture.UDP(), capture.DstPort(5353))
			// Three announces leave h0 with the group's MAC, TTL 1, 1, 7.
			capturetest.Expect(t, frames, capture.All(capture.Link("h0"), capture.Dir(wire.Outbound), toGroup), 3)
			capturetest.Expect(t, frames, capture.All(capture.Link("h0"), capture.Dir(wire.Outbound), toGroup, ipTTL(1)), 2)
			capturetest.Expect(t, frames, capture.All(capture.Link("h0"), capture.Dir(wire.Outbound), toGroup, ipTTL(7)), 1)
			// The switch floods each to every other host, h4 included after
			// it left: its stack, not the wire, drops them (no-member, as
			// the neighbour solicitations for other hosts' groups).
			for _, h := range []string{"h1", "h2", "h3", "h4"} {
				capturetest.Expect(t, frames, capture.All(capture.Link(h), capture.Dir(wire.Inbound), toGroup, capture.Not(capture.Dropped(0))), 3)
			}
			capturetest.ExpectNone(t, frames, capture.All(capture.Dropped(0), capture.Not(capture.Dropped(wire.DropNoMember))))
		})
	}
}
