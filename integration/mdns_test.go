package integration

import (
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/wire"
)

// An mDNS exchange (RFC 6762) between five virtual hosts, with real DNS
// messages: every host joins 224.0.0.251 (or ff02::fb) on port 5353; h1
// asks the group for _dgramlab._udp.local PTR records; h2 and h3 offer
// that service and answer to the group, as mDNS responders do, so every
// host (the querier included, by multicast loopback) hears both answers;
// h4, which offers nothing, stays silent. The capture shows one query and
// two answers sent to the group's multicast MAC, each flooded to the four
// other hosts, with TTL 255 as RFC 6762 asks.
func TestMDNSQueryAndAnswers(t *testing.T) {
	const service = "_dgramlab._udp.local."
	for _, tc := range []struct {
		name, typ, group, groupMAC string
	}{
		{"ipv4", "udp4", "224.0.0.251", "01:00:5e:00:00:fb"},
		{"ipv6", "udp6", "ff02::fb", "33:33:00:00:00:fb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLAN(t, 1500, 1500, 1500, 1500, 1500)
			loop := dgram.NewLoop(nil)
			n := len(l.hosts)
			offers := map[int]string{2: "printer-h2." + service, 3: "sensor-h3." + service}
			socks := make([]*dgram.Socket, n)
			answers := make([][]string, n) // PTR targets each host heard
			queries := make([]int, n)      // queries each host heard
			pack := func(m *dns.Msg) []byte {
				b, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			send := func(s *dgram.Socket, b []byte) {
				s.Send(b, 5353, tc.group, func(_ int, err error) {
					if err != nil {
						t.Errorf("send to %s: %v", tc.group, err)
					}
				})
			}
			heard := 0 // answers heard in all
			for i, h := range l.hosts {
				s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: tc.typ, Network: h, ReuseAddr: true, IPv6Only: tc.typ == "udp6"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				socks[i] = s
				s.OnMessage(func(b []byte, r dgram.RemoteInfo) {
					var m dns.Msg
					if err := m.Unpack(b); err != nil {
						t.Errorf("h%d: datagram from %s is not DNS: %v", i, r.Address, err)
						return
					}
					if r.Port != 5353 {
						t.Errorf("h%d: mDNS from port %d", i, r.Port)
					}
					if !m.Response {
						queries[i]++
						if name, ok := offers[i]; ok && len(m.Question) == 1 && m.Question[0].Name == service {
							resp := new(dns.Msg)
							resp.Response, resp.Authoritative = true, true
							resp.Answer = []dns.RR{&dns.PTR{
								Hdr: dns.RR_Header{Name: service, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120},
								Ptr: name,
							}}
							send(s, pack(resp))
						}
						return
					}
					for _, rr := range m.Answer {
						if ptr, ok := rr.(*dns.PTR); ok {
							answers[i] = append(answers[i], ptr.Ptr)
						}
					}
					if heard++; heard == 2*n {
						for _, s := range socks {
							s.Close(nil)
						}
					}
				})
			}
			bound := 0
			for _, s := range socks {
				s.Bind(5353, "", func() {
					if err := s.AddMembership(tc.group, ""); err != nil {
						t.Fatalf("AddMembership(%s) = %v", tc.group, err)
					}
					// RFC 6762 §11: mDNS is sent with TTL (hop limit) 255.
					if err := s.SetMulticastTTL(255); err != nil {
						t.Fatal(err)
					}
					if bound++; bound == n {
						q := new(dns.Msg)
						q.SetQuestion(service, dns.TypePTR)
						q.Id = 0 // mDNS queries carry ID 0
						send(socks[1], pack(q))
					}
				})
			}
			runLoop(t, loop)

			want := []string{"printer-h2." + service, "sensor-h3." + service}
			for i := range n {
				got := slices.Sorted(slices.Values(answers[i]))
				if !slices.Equal(got, want) || queries[i] != 1 {
					t.Errorf("h%d heard %d queries and answers %q; want 1 and %q", i, queries[i], got, want)
				}
			}
			frames := l.rec.Frames()
			toGroup := capture.All(capture.DstMAC(mac(tc.groupMAC)), capture.DstIP(ip(tc.group)), capture.UDP(), capture.DstPort(5353), ipTTL(255))
			for h, sent := range map[string]int{"h0": 0, "h1": 1, "h2": 1, "h3": 1, "h4": 0} {
				capturetest.Expect(t, frames, capture.All(capture.Link(h), capture.Dir(wire.Outbound), toGroup), sent)
				// Each host gets every frame it did not send itself.
				capturetest.Expect(t, frames, capture.All(capture.Link(h), capture.Dir(wire.Inbound), toGroup), 3-sent)
			}
			capturetest.ExpectNone(t, frames, capture.Dropped(0))
		})
	}
}
