package stack_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lan builds n hosts on one switch, 10.0.0.1/24 ... and closes them at the end.
func lan(t testing.TB, mtus ...int) (*stack.Switch, []*stack.Host, []*stack.Port) {
	t.Helper()
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	var hosts []*stack.Host
	var ports []*stack.Port
	for i, mtu := range mtus {
		h, err := stack.NewHost(stack.HostOptions{Name: "h" + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err := sw.NewPort(stack.PortOptions{MTU: mtu})
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		ports = append(ports, p)
	}
	return sw, hosts, ports
}

func listen(t testing.TB, h *stack.Host, network, addr string) *stack.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(network, netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatalf("ListenUDP(%s, %s) = %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t testing.TB, c *stack.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 70000)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("ReadFromUDPAddrPort = %v", err)
	}
	return buf[:n], from
}

func TestUnicastOverSwitch(t *testing.T) {
	_, hosts, ports := lan(t, 1500, 1500)
	srv := listen(t, hosts[1], "udp4", "0.0.0.0:41234")
	cli := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	for _, size := range []int{0, 1, 1472, 1473, 65507} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := cli.WriteToUDPAddrPort(msg, netip.MustParseAddrPort("10.0.0.2:41234")); err != nil {
			t.Fatalf("WriteTo(%d bytes) = %v", size, err)
		}
		got, from := recv(t, srv)
		if !bytes.Equal(got, msg) || from.Addr() != netip.MustParseAddr("10.0.0.1") || from.Port() != cli.LocalAddrPort().Port() {
			t.Fatalf("size %d: got %d bytes from %v", size, len(got), from)
		}
	}
	if _, err := cli.WriteToUDPAddrPort(make([]byte, 65508), netip.MustParseAddrPort("10.0.0.2:41234")); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("WriteTo(65508 bytes) = %v, want EMSGSIZE", err)
	}
	if c := ports[0].Counters(); c.Dropped() != 0 || c.TxFrames == 0 {
		t.Fatalf("port counters %+v", c)
	}
}

func TestBroadcastAndMTUDrop(t *testing.T) {
	_, hosts, ports := lan(t, 1500, 1500, 576)
	var rx []*stack.UDPConn
	for _, h := range hosts[1:] {
		rx = append(rx, listen(t, h, "udp4", "0.0.0.0:5000"))
	}
	tx := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	bc := netip.MustParseAddrPort("255.255.255.255:5000")
	if _, err := tx.WriteToUDPAddrPort([]byte("x"), bc); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("broadcast without SO_BROADCAST = %v, want EACCES", err)
	}
	tx.SetBroadcast(true)
	for _, dst := range []string{"255.255.255.255:5000", "10.0.0.255:5000"} {
		if _, err := tx.WriteToUDPAddrPort([]byte("hello"), netip.MustParseAddrPort(dst)); err != nil {
			t.Fatalf("broadcast to %s = %v", dst, err)
		}
		for _, c := range rx {
			if got, _ := recv(t, c); string(got) != "hello" {
				t.Fatalf("got %q", got)
			}
		}
	}
	// 1400 bytes fit host a's 1500 MTU but not port c's 576: dropped there
	// (once ARP has resolved, which happens on another goroutine).
	dropped := make(chan wire.DropReason, 1)
	ports[2].AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) { dropped <- reason })
	if _, err := tx.WriteToUDPAddrPort(make([]byte, 1400), netip.MustParseAddrPort("10.0.0.3:5000")); err != nil {
		t.Fatal(err)
	}
	if r := <-dropped; r != wire.DropMTU {
		t.Fatalf("drop reason %v, want mtu", r)
	}
	if got := ports[2].Counters().Drops[wire.DropMTU]; got != 1 {
		t.Fatalf("MTU drops on port c = %d, want 1 (%+v)", got, ports[2].Counters())
	}
	if _, err := tx.WriteToUDPAddrPort(make([]byte, 1400), netip.MustParseAddrPort("10.0.0.2:5000")); err != nil {
		t.Fatal(err)
	}
	if got, _ := recv(t, rx[0]); len(got) != 1400 {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestPipe(t *testing.T) {
	a, b, err := stack.NewPipe(stack.PipeOptions{MTU: 1280})
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := stack.NewHost(stack.HostOptions{Name: "a"})
	hb, _ := stack.NewHost(stack.HostOptions{Name: "b"})
	defer ha.Close()
	defer hb.Close()
	if _, err := ha.AddNIC(a, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("192.168.9.1/30"), netip.MustParsePrefix("fd00::1/64")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := hb.AddNIC(b, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("192.168.9.2/30"), netip.MustParsePrefix("fd00::2/64")}}); err != nil {
		t.Fatal(err)
	}
	srv := listen(t, hb, "udp6", "[::]:7")
	cli := listen(t, ha, "udp6", "[::]:0")
	for _, dst := range []string{"[fd00::2]:7", "192.168.9.2:7"} {
		msg := bytes.Repeat([]byte("p"), 3000)
		if _, err := cli.WriteToUDPAddrPort(msg, netip.MustParseAddrPort(dst)); err != nil {
			t.Fatalf("WriteTo %s = %v", dst, err)
		}
		got, from := recv(t, srv)
		if !bytes.Equal(got, msg) {
			t.Fatalf("%s: got %d bytes from %v", dst, len(got), from)
		}
		t.Logf("%s from %v", dst, from)
	}
}

func TestErrors(t *testing.T) {
	_, hosts, _ := lan(t, 1500)
	h := hosts[0]
	c := listen(t, h, "udp4", "127.0.0.1:9")
	if _, err := h.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:9")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second bind = %v, want EADDRINUSE", err)
	}
	if _, err := h.ListenUDP("udp4", netip.MustParseAddrPort("1.2.3.4:9")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("bind non-local = %v, want EADDRNOTAVAIL", err)
	}
	if _, err := h.ListenUDP("udp4", netip.MustParseAddrPort("[::1]:9")); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bind wrong family = %v, want EINVAL", err)
	}
	if _, err := c.WriteTo([]byte("x"), fakeAddr{}); err == nil {
		t.Fatal("WriteTo(foreign addr) succeeded")
	}
	for _, port := range []int{70000, -1, 65536} {
		if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("WriteTo(port %d) = %v, want EINVAL (not a wrapped port)", port, err)
		}
	}
	if _, err := c.WriteTo([]byte("x"), nil); err == nil {
		t.Fatal("WriteTo(nil) succeeded")
	}
	done := make(chan error)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		done <- err
	}()
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close = %v, want net.ErrClosed", err)
	}
	c.SetReadDeadline(time.Now())
	h.Close()
	if _, err := h.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0")); err == nil {
		t.Fatal("ListenUDP on closed host succeeded")
	}
}

func TestReadDeadline(t *testing.T) {
	_, hosts, _ := lan(t, 1500)
	c := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, _, err := c.ReadFrom(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline = %v, want timeout", err)
	}
}

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "not an address" }
