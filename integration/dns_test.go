package integration

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// peerConn is a UDPConn seen as a connected net.Conn, like what
// net.DialUDP returns: Write sends to peer, Read returns what peer sends.
// miekg/dns's Client.ExchangeWithConn wants one.
type peerConn struct {
	*stack.UDPConn
	peer netip.AddrPort
}

func (c peerConn) Write(b []byte) (int, error) { return c.WriteToUDPAddrPort(b, c.peer) }

func (c peerConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.ReadFromUDPAddrPort(b)
		if err != nil || from == c.peer {
			return n, err
		}
	}
}

func (c peerConn) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(c.peer) }

// TestDNSOverVirtualLAN: a miekg/dns server answers over the virtual LAN
// through net.PacketConn, to a client whose cable delays each frame 5 ms
// each way; a lost query times out. In a synctest bubble, the round trip is
// exactly 10 ms of virtual time.
func TestDNSOverVirtualLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newTestLAN(t, 1500, 1500) // h0 10.0.0.1: the server; h1 10.0.0.2: the client
		pc, err := l.hosts[0].ListenPacket("udp4", "0.0.0.0:53")
		if err != nil {
			t.Fatal(err)
		}
		mux := dns.NewServeMux()
		mux.HandleFunc("lan.", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			if q.Question[0].Name == "printer.lan." && q.Question[0].Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: "printer.lan.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(10, 0, 0, 7),
				})
			} else {
				m.Rcode = dns.RcodeNameError
			}
			w.WriteMsg(m)
		})
		started := make(chan struct{})
		srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
		served := make(chan error, 1)
		go func() { served <- srv.ActivateAndServe() }()
		<-started
		defer func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
			<-served
		}()

		if err := l.ports[1].SetImpairments(stack.BothDirections, stack.Impairments{Delay: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		cc, err := l.hosts[1].ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		conn := &dns.Conn{Conn: peerConn{cc, netip.MustParseAddrPort("10.0.0.1:53")}}
		client := &dns.Client{Net: "udp", Timeout: time.Second}

		ask := func(name string) (*dns.Msg, time.Duration, error) {
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeA)
			return client.ExchangeWithConn(q, conn)
		}
		// The first exchange also resolves the server's MAC (ARP crosses
		// the delayed cable too); time the second.
		if _, _, err := ask("printer.lan."); err != nil {
			t.Fatalf("exchange: %v", err)
		}
		r, rtt, err := ask("printer.lan.")
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.7" {
			t.Fatalf("answer %v", r.Answer)
		}
		if rtt != 10*time.Millisecond {
			t.Errorf("rtt %v, want 10ms (5ms each way across the client's cable)", rtt)
		}
		r, _, err = ask("nope.lan.")
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Fatalf("nope.lan.: %v, %v; want NXDOMAIN", r, err)
		}

		// All queries lost: the client times out, and the capture says why.
		l.ports[1].SetImpairments(wire.Outbound, stack.Impairments{Loss: 1})
		if _, _, err := ask("printer.lan."); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("exchange over a dead link = %v, want a timeout", err)
		}
		if c := l.ports[1].Counters(); c.Drops[wire.DropLoss] != 1 {
			t.Errorf("client port drops %v, want 1 loss", c.Drops)
		}
		capturetest.Expect(t, l.rec.Frames(), capture.All(capture.Dropped(wire.DropLoss), capture.Link("h1"),
			capture.Dir(wire.Outbound), capture.UDP(), capture.DstPort(53)), 1)
	})
}
