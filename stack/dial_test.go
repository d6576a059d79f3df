package stack_test

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/dgramlab/dgramlab/stack"
)

// Dial gives a connected net.Conn: Write goes to the peer, Read returns
// only what the peer sends, and the hosts table resolves names.
func TestDial(t *testing.T) {
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	newHost := func(name, addr string) *stack.Host {
		h, err := stack.NewHost(stack.HostOptions{Name: name, Hosts: map[string][]netip.Addr{"server": {netip.MustParseAddr("10.0.0.2")}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	client, server := newHost("client", "10.0.0.1/24"), newHost("server", "10.0.0.2/24")
	srv := listen(t, server, "udp4", "0.0.0.0:53")
	other := listen(t, server, "udp4", "0.0.0.0:54")

	var conn net.Conn
	conn, err := client.Dial("udp", "server:53")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != "10.0.0.2:53" {
		t.Errorf("RemoteAddr = %s", got)
	}
	if _, err := conn.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	msg, from := recv(t, srv)
	if string(msg) != "query" {
		t.Fatalf("server got %q", msg)
	}
	// A datagram from another port is not for the connected conn.
	if _, err := other.WriteToUDPAddrPort([]byte("stray"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteToUDPAddrPort([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Errorf("Read = %q, %v, want the answer only", buf[:n], err)
	}

	if _, err := client.DialUDP("udp4", netip.AddrPort{}, netip.AddrPort{}); !errors.Is(err, syscall.EDESTADDRREQ) {
		t.Errorf("DialUDP without a peer = %v, want EDESTADDRREQ", err)
	}
	if _, err := client.Dial("udp", "nowhere:53"); err == nil {
		t.Error("Dial to an unknown name succeeded")
	}
}
