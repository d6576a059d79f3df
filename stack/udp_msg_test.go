package stack_test

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/dgramlab/dgramlab/stack"
)

// ReadMsgUDP gives the destination, interface, TTL and TOS of each
// datagram as Linux's control messages, which x/net parses; WriteMsgUDP
// takes x/net's marshalled messages for the source, TTL and TOS.
func TestMsgUDPControlMessages(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500)
	rcv := listen(t, hosts[1], "udp4", "0.0.0.0:9000")
	snd := listen(t, hosts[0], "udp4", "10.0.0.1:0")
	if err := rcv.SetControlMessage(stack.FlagDst|stack.FlagTTL|stack.FlagTOS, true); err != nil {
		t.Fatal(err)
	}
	// x/net marshals only IP_PKTINFO for IPv4: IP_TTL (2) and IP_TOS (1)
	// by hand, as Linux reads them (an int each, after a 16-byte header).
	oob := (&ipv4.ControlMessage{Src: net.IPv4(10, 0, 0, 1)}).Marshal()
	oob = append(oob, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0)
	oob = append(oob, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xb9, 0, 0, 0, 0, 0, 0, 0)
	n, oobn, err := snd.WriteMsgUDP([]byte("hello"), oob, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9000})
	if n != 5 || oobn != len(oob) || err != nil {
		t.Fatalf("WriteMsgUDP = %d, %d, %v", n, oobn, err)
	}
	rcv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, rb := make([]byte, 3), make([]byte, 128)
	n, oobn, flags, from, err := rcv.ReadMsgUDP(buf, rb)
	if err != nil || n != 3 || flags&0x20 == 0 || from.String() != "10.0.0.1:"+itoa(snd.LocalAddrPort().Port()) {
		t.Fatalf("ReadMsgUDP = %d, %d, %#x, %v, %v; want 3 bytes, MSG_TRUNC", n, oobn, flags, from, err)
	}
	var got ipv4.ControlMessage
	if err := got.Parse(rb[:oobn]); err != nil {
		t.Fatal(err)
	}
	if !got.Dst.Equal(net.IPv4(10, 0, 0, 2)) || got.TTL != 9 || got.IfIndex != 2 {
		t.Errorf("control messages = %+v, want dst 10.0.0.2, TTL 9, interface 2", got)
	}
	// A source that is not the host's fails as on Linux.
	bad := (&ipv4.ControlMessage{Src: net.IPv4(10, 0, 0, 77)}).Marshal()
	if _, _, err := snd.WriteMsgUDP([]byte("x"), bad, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9000}); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("WriteMsgUDP from 10.0.0.77 = %v, want ENETUNREACH", err)
	}
	if _, _, err := snd.WriteMsgUDP([]byte("x"), []byte{100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9000}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("WriteMsgUDP with malformed oob = %v, want EINVAL", err)
	}
}

// The same for IPv6, with the hop limit and the traffic class.
func TestMsgUDPControlMessagesIPv6(t *testing.T) {
	h := loHost(t)
	rcv := listen(t, h, "udp6", "[::1]:9000")
	snd := listen(t, h, "udp6", "[::1]:0")
	if err := rcv.SetControlMessage(stack.FlagDst|stack.FlagTTL|stack.FlagTOS, true); err != nil {
		t.Fatal(err)
	}
	oob := (&ipv6.ControlMessage{HopLimit: 7, TrafficClass: 0x2e}).Marshal()
	if _, _, err := snd.WriteMsgUDPAddrPort([]byte("v6"), oob, rcv.LocalAddrPort()); err != nil {
		t.Fatal(err)
	}
	rcv.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 128)
	n, oobn, _, _, err := rcv.ReadMsgUDPAddrPort(make([]byte, 10), rb)
	if err != nil || n != 2 {
		t.Fatalf("ReadMsgUDPAddrPort = %d, %v", n, err)
	}
	var got ipv6.ControlMessage
	if err := got.Parse(rb[:oobn]); err != nil {
		t.Fatal(err)
	}
	if !got.Dst.Equal(net.IPv6loopback) || got.HopLimit != 7 || got.TrafficClass != 0x2e {
		t.Errorf("control messages = %+v, want dst ::1, hop limit 7, traffic class 0x2e", got)
	}
}

// ReadFromUDP and WriteToUDP are *net.UDPConn's.
func TestReadFromWriteToUDP(t *testing.T) {
	h := loHost(t)
	a := listen(t, h, "udp4", "127.0.0.1:0")
	b := listen(t, h, "udp4", "127.0.0.1:0")
	if _, err := a.WriteToUDP([]byte("hi"), net.UDPAddrFromAddrPort(b.LocalAddrPort())); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	n, from, err := b.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "hi" || from.AddrPort() != a.LocalAddrPort() {
		t.Fatalf("ReadFromUDP = %q, %v, %v", buf[:n], from, err)
	}
	if _, err := a.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 70000}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("WriteToUDP(port 70000) = %v, want EINVAL", err)
	}
	_ = netip.AddrPort{}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}
